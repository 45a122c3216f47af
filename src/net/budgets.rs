//! What the node serves, charged beyond one identity: a peer's answers cost its own byte
//! bucket (in the peer manager), its network group's, and the node's total upload budget.
//! So eight identities from one address, or a thousand from one /16, get no more than one
//! group's share, and everyone together no more than the node is willing to upload.
//!
//! Groups are Core's netgroups without the AS map: the /16 of an IPv4 address, the /64 of an
//! IPv6 one (what one subscriber is usually given). Local addresses (loopback, link-local,
//! unspecified) have no group: a local testnet runs every node on 127.0.0.1, and the total
//! budget still bounds them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use libp2p::Multiaddr;

use super::peer_manager::bannable_ip;

/// A network group's share of what we serve: as much as one peer may draw.
pub(super) const GROUP_BYTES_PER_SEC: f64 = super::peer_manager::RESPONSE_BYTES_PER_SEC;
pub(super) const GROUP_BYTES_BURST: f64 = super::peer_manager::RESPONSE_BYTES_BURST;
/// The node's total upload budget for answers, by default (`net.max_upload_bytes_per_sec`).
pub const DEFAULT_UPLOAD_BYTES_PER_SEC: u64 = 24 * 1024 * 1024;
/// Group buckets kept at most (a full bucket is forgotten first; connections are bounded
/// anyway, so this is only a backstop).
const MAX_GROUPS: usize = 4096;

/// A token bucket: `rate` tokens per second up to `burst`. Charging may take it below zero
/// (a response is charged once its size is known); it then refuses until it is paid back.
#[derive(Debug)]
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Takes one token if there is one.
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, going into debt if needed.
    pub(super) fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n;
    }

    /// Whether the bucket is empty or in debt.
    pub(super) fn is_exhausted(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens <= 0.0
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// The network group of a peer's address, if it has one (see the module docs).
pub(super) fn group_of(addr: &Multiaddr) -> Option<IpAddr> {
    bannable_ip(addr).map(|ip| match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V6(v6_prefix64(v6)),
    })
}

/// What a ban of `ip` covers: the address itself for IPv4 (a /16 is 65,536 addresses, often
/// a whole provider's customers: Core bans addresses), its /64 for IPv6 (one subscriber's
/// allocation, in which a new address costs nothing).
pub(super) fn ban_scope(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(v6_prefix64(v6)),
        v4 => v4,
    }
}

fn v6_prefix64(v6: Ipv6Addr) -> Ipv6Addr {
    let s = v6.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
}

/// The group and total upload budgets.
#[derive(Debug)]
pub(super) struct UploadBudget {
    total: TokenBucket,
    groups: HashMap<IpAddr, TokenBucket>,
}

impl UploadBudget {
    /// At most `bytes_per_sec` in all (a burst of two seconds' worth).
    pub(super) fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        Self {
            total: TokenBucket::new(rate, 2.0 * rate, now),
            groups: HashMap::new(),
        }
    }

    /// Whether an answer to a peer of `group` must wait: its group's share or the total is
    /// spent.
    pub(super) fn is_exhausted(&mut self, group: Option<IpAddr>, now: Instant) -> bool {
        if self.total.is_exhausted(now) {
            return true;
        }
        group
            .and_then(|g| self.groups.get_mut(&g))
            .is_some_and(|b| b.is_exhausted(now))
    }

    /// An answer of `bytes` went to a peer of `group`.
    pub(super) fn charge(&mut self, group: Option<IpAddr>, bytes: usize, now: Instant) {
        self.total.charge(bytes as f64, now);
        let Some(group) = group else { return };
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&group) {
            self.groups.retain(|_, b| !b.is_full(now));
        }
        self.groups
            .entry(group)
            .or_insert_with(|| TokenBucket::new(GROUP_BYTES_PER_SEC, GROUP_BYTES_BURST, now))
            .charge(bytes as f64, now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_are_a_v4_16_or_a_v6_64_and_local_addresses_have_none() {
        let a = group_of(&addr("/ip4/203.0.113.7/tcp/1")).unwrap();
        let b = group_of(&addr("/ip4/203.0.9.9/tcp/2")).unwrap();
        let c = group_of(&addr("/ip4/203.1.113.7/tcp/1")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let d = group_of(&addr("/ip6/2001:db8:1:2:aaaa::1/tcp/1")).unwrap();
        let e = group_of(&addr("/ip6/2001:db8:1:2:bbbb::9/tcp/1")).unwrap();
        let f = group_of(&addr("/ip6/2001:db8:1:3::1/tcp/1")).unwrap();
        assert_eq!(d, e);
        assert_ne!(d, f);
        assert_eq!(group_of(&addr("/ip4/127.0.0.1/tcp/1")), None);
        assert_eq!(group_of(&addr("/ip6/::1/tcp/1")), None);
        // A ban covers an IPv4 address alone, and a whole IPv6 /64.
        let v6: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other_in_64: IpAddr = "2001:db8:1:2:ffff::2".parse().unwrap();
        assert_eq!(ban_scope(v6), ban_scope(other_in_64));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(ban_scope(v4), v4);
    }

    #[test]
    fn a_group_gets_one_share_and_everyone_together_the_total() {
        let t0 = Instant::now();
        let mut b = UploadBudget::new(24 * 1024 * 1024, t0);
        let g1 = group_of(&addr("/ip4/198.51.100.1/tcp/1"));
        let g2 = group_of(&addr("/ip4/192.0.2.1/tcp/1"));
        // One group draws its burst: it must wait, another group need not.
        b.charge(g1, GROUP_BYTES_BURST as usize, t0);
        assert!(b.is_exhausted(g1, t0));
        assert!(!b.is_exhausted(g2, t0));
        // The total (48 MiB burst) spent by many groups: nobody is served, local peers neither.
        b.charge(g2, 20 * 1024 * 1024, t0);
        b.charge(None, 1, t0);
        assert!(b.is_exhausted(g2, t0));
        assert!(b.is_exhausted(None, t0));
        // It refills at the configured rate.
        assert!(!b.is_exhausted(None, t0 + Duration::from_secs(1)));
    }
}
