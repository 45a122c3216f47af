#!/usr/bin/env bash
# Measures the WAN emulation of `testnet up --hosts`: for each configured one-way latency, the
# ping round trip between two hosts (central and wallet-1) against the configured 2 x latency,
# and the loss seen (a ping is lost when either direction is: 1-(1-p)^2, ~2% at --loss 1%). Needs root, iproute2, nftables and ping (Debian: iputils-ping).
#   scripts/wan-ping.sh [GOSSIPCOIN_BINARY] [COUNT]
set -euo pipefail
bin=${1:-target/debug/gossipcoin}
count=${2:-100}
dir=$(mktemp -d)/testnet
trap '"$bin" testnet down --dir "$dir" >/dev/null 2>&1 || true' EXIT
printf '%-34s %10s %10s %10s %10s %8s\n' conditions "rtt want" "rtt avg" "rtt min" "rtt max" loss
for cond in "--latency 0ms" "--latency 20ms" "--latency 80ms --jitter 20ms" \
            "--latency 100ms --jitter 20ms --loss 1%" "--latency 10ms --loss 5%"; do
  # shellcheck disable=SC2086
  "$bin" testnet up --hosts --dir "$dir" --miners 0 --wallets 1 $cond >/dev/null
  tag=$(sed -n 's/.*"tag": "\(gc[0-9a-f]*\)".*/\1/p' "$dir/testnet.json")
  lat=$(sed -n 's/.*--latency \([0-9]*\)ms.*/\1/p' <<<"$cond")
  out=$(ip netns exec "$tag-0" ping -q -c "$count" -i 0.02 -W 2 10.77.0.3 || true)
  stats=$(sed -n 's/.*= \([0-9.]*\)\/\([0-9.]*\)\/\([0-9.]*\)\/.*/\2 \1 \3/p' <<<"$out")
  loss=$(sed -n 's/.* \([0-9.]*%\) packet loss.*/\1/p' <<<"$out")
  read -r avg min max <<<"$stats"
  printf '%-34s %8s ms %7s ms %7s ms %7s ms %8s\n' "$cond" "$((2 * lat))" "$avg" "$min" "$max" "$loss"
  "$bin" testnet down --dir "$dir" >/dev/null
done
