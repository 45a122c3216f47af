//! Block intervals under ASERT (issue 20's numbers), with real daemons on loopback.
//!
//! The devnet's parameters (ASERT, 2 s spacing, 60 s half-life, limit 0x1e0fffff): a central
//! node and one miner that mines all the time (`[mining] empty_blocks = true`, one thread) from
//! genesis for BLOCKS blocks, then four more such miners join for BLOCKS more. Each block's
//! arrival at the central node is timed (its `GET /status` polled every 20 ms). Printed per
//! phase and per 100 blocks: mean, median and 90th percentile of the interval; the blocks from
//! genesis (at the limit) until 20 consecutive intervals average within 20 % of the spacing, and
//! the same after the miners joined; the difficulty reached.
//!
//! `cargo bench --bench interval [-- BLOCKS]` (default 300, about 20 minutes in all);
//! `GOSSIPCOIN_BIN=PATH` runs another build of the daemon. The miners share the machine's cores:
//! on 2 cores, five one-thread miners have about twice the hash rate of one, not five times.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{Node, bin};

/// The devnet's target spacing, seconds.
const SPACING: f64 = 2.0;
/// Consecutive intervals whose mean must be within 20 % of the spacing to count as settled.
const WINDOW: usize = 20;

fn main() {
    let per_phase: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().unwrap();
    let params = tmp.path().join("params.toml");
    std::fs::write(&params, gossipcoin::params::DEVNET_TOML).unwrap();
    let miner_toml = tmp.path().join("miner.toml");
    std::fs::write(
        &miner_toml,
        "role = \"miner\"\n[mining]\nempty_blocks = true\n",
    )
    .unwrap();

    let central_dir = tmp.path().join("central");
    let central_addr = new_address(&central_dir, &params);
    cli(
        &central_dir,
        &params,
        &["createblockchain", "--address", &central_addr],
    );
    let central = Node::start(&central_dir, &params, &["--role", "central"]);
    let mut miners = Vec::new();
    let mut add_miner = |i: usize| {
        let dir = tmp.path().join(format!("miner-{i}"));
        let address = new_address(&dir, &params);
        let config = miner_toml.to_str().unwrap();
        let args = [
            "--role",
            "miner",
            "--config",
            config,
            "--bootstrap",
            &central.p2p,
            "--miner-address",
            &address,
        ];
        miners.push(Node::spawn(&dir, &params, &args));
    };

    let mut arrivals = BTreeMap::new();
    add_miner(1);
    let one = wait_for(&central, per_phase, &mut arrivals);
    for i in 2..=5 {
        add_miner(i);
    }
    let five = wait_for(&central, 2 * per_phase, &mut arrivals);
    drop(miners);

    let intervals: BTreeMap<u64, f64> = arrivals
        .iter()
        .filter_map(|(&h, &t)| Some((h, t - *arrivals.get(&h.checked_sub(1)?)?)))
        .collect();
    println!("block intervals at the central node, target {SPACING} s (ASERT, half-life 60 s)");
    println!(
        "{:<28} {:>6} {:>8} {:>8} {:>8}",
        "blocks", "n", "mean s", "p50 s", "p90 s"
    );
    let row = |name: String, lo: u64, hi: u64| {
        let mut xs: Vec<f64> = intervals.range(lo..=hi).map(|(_, &v)| v).collect();
        if xs.is_empty() {
            return;
        }
        xs.sort_by(f64::total_cmp);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let at = |q: f64| xs[((xs.len() - 1) as f64 * q) as usize];
        println!(
            "{name:<28} {:>6} {mean:>8.2} {:>8.2} {:>8.2}",
            xs.len(),
            at(0.5),
            at(0.9)
        );
    };
    row(format!("1 miner, 2..={per_phase}"), 2, per_phase);
    row(
        format!("5 miners, {}..={}", per_phase + 1, 2 * per_phase),
        per_phase + 1,
        2 * per_phase,
    );
    let mut lo = 2;
    while lo <= 2 * per_phase {
        let hi = (lo + 99).min(2 * per_phase);
        row(format!("  {lo}..={hi}"), lo, hi);
        lo = hi + 1;
    }
    let settled = |from: u64| {
        (from..=2 * per_phase).find(|&k| {
            let xs: Vec<f64> = intervals.range(k..).take(WINDOW).map(|(_, &v)| v).collect();
            xs.len() == WINDOW
                && (xs.iter().sum::<f64>() / WINDOW as f64 - SPACING).abs() <= 0.2 * SPACING
        })
    };
    let show = |k: Option<u64>, from: u64| k.map_or("never".into(), |k| (k - from).to_string());
    println!(
        "blocks until {WINDOW} intervals average within 20 % of {SPACING} s: from genesis {}, \
         after 4 miners joined {}",
        show(settled(2), 1),
        show(settled(per_phase + 1), per_phase)
    );
    println!(
        "difficulty (next block over the limit): {} after 1 miner, {} after 5",
        one["difficulty"], five["difficulty"]
    );
}

/// Polls `node` until its height reaches `height`, noting when each block was first seen
/// (seconds since the first call); panics if the blocks come 10 times slower than the spacing.
fn wait_for(node: &Node, height: u64, arrivals: &mut BTreeMap<u64, f64>) -> serde_json::Value {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let from = arrivals.keys().next_back().copied().unwrap_or(0);
    let deadline =
        Instant::now() + Duration::from_secs_f64((height - from) as f64 * SPACING * 10.0);
    loop {
        if let Some(status) = node.status()
            && let Some(h) = status["height"].as_u64()
        {
            let now = start.elapsed().as_secs_f64();
            let last = arrivals.keys().next_back().copied();
            for k in last.map_or(h, |l| l + 1)..=h {
                arrivals.entry(k).or_insert(now);
            }
            if h >= height {
                return status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "height {height} not reached in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn new_address(dir: &Path, params: &Path) -> String {
    let out = cli(dir, params, &["createwallet"]);
    out.trim()
        .strip_prefix("Your new address: ")
        .expect("address line")
        .to_string()
}

/// `gossipcoin ARGS` on `dir`; its stdout, or a panic with its stderr.
fn cli(dir: &Path, params: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .arg("--params")
        .arg(params)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("NODE_ID")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gossipcoin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
