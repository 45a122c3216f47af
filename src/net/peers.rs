//! Per-peer state: connection count and address, the Status the sync layer saw, our score of
//! the peer, and its inbound request rate limiter.
//!
//! Scores start at 0. Each [`Penalty`] lowers it; at [`BAN_SCORE`] the service bans the peer.
//! Scores recover towards 0 at [`RECOVERY_PER_SEC`], so a rare mistake is forgiven but a burst
//! of bad data is not. A disconnected peer keeps its entry while its score is negative, so
//! reconnecting does not wipe the slate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gossipcoin_proto::message::Status;
use libp2p::{Multiaddr, PeerId};

/// At or below this score a peer is banned.
pub const BAN_SCORE: f64 = -100.0;
/// Points a negative score regains per second.
pub(super) const RECOVERY_PER_SEC: f64 = 0.1;

/// A reason to lower a peer's score.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Penalty {
    /// Gossip that was undecodable or that the node rejected: three in a row get a ban.
    InvalidGossip,
    /// A request over the peer's rate limit.
    RateLimited,
    /// A request that is malformed or over its limits.
    BadRequest,
    /// A response that is malformed or over its limits.
    BadResponse,
}

impl Penalty {
    fn points(self) -> f64 {
        match self {
            Self::InvalidGossip => 40.0,
            Self::RateLimited => 1.0,
            Self::BadRequest => 20.0,
            Self::BadResponse => 20.0,
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `rate`.
#[derive(Debug)]
pub(super) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What we know about one peer.
#[derive(Debug)]
pub(super) struct PeerState {
    pub(super) connections: u32,
    pub(super) addr: Option<Multiaddr>,
    pub(super) status: Option<Status>,
    pub(super) score: f64,
    /// Round-trip time of the last ping.
    pub(super) ping: Option<Duration>,
    bucket: TokenBucket,
}

/// Every peer we are connected to, or that still owes score.
#[derive(Debug)]
pub(super) struct Peers {
    map: HashMap<PeerId, PeerState>,
    requests_per_second: u32,
}

impl Peers {
    pub(super) fn new(requests_per_second: u32) -> Self {
        Self {
            map: HashMap::new(),
            requests_per_second,
        }
    }

    fn entry(&mut self, peer: PeerId, now: Instant) -> &mut PeerState {
        let rate = self.requests_per_second;
        self.map.entry(peer).or_insert_with(|| PeerState {
            connections: 0,
            addr: None,
            status: None,
            score: 0.0,
            ping: None,
            bucket: TokenBucket::new(rate, now),
        })
    }

    /// Counts a new connection; returns whether it is the peer's first.
    pub(super) fn connected(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) -> bool {
        let state = self.entry(peer, now);
        state.connections += 1;
        if state.connections == 1 {
            state.addr = Some(addr);
        }
        state.connections == 1
    }

    /// Counts a closed connection; returns whether it was the peer's last.
    pub(super) fn disconnected(&mut self, peer: &PeerId) -> bool {
        let Some(state) = self.map.get_mut(peer) else {
            return false;
        };
        state.connections = state.connections.saturating_sub(1);
        if state.connections > 0 {
            return false;
        }
        state.status = None;
        if state.score >= 0.0 {
            self.map.remove(peer);
        }
        true
    }

    /// How many peers have at least one connection.
    pub(super) fn connected_count(&self) -> usize {
        self.map.values().filter(|s| s.connections > 0).count()
    }

    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.map.get(peer).is_some_and(|s| s.connections > 0)
    }

    /// Lowers the peer's score; returns the new score.
    pub(super) fn penalise(&mut self, peer: PeerId, penalty: Penalty, now: Instant) -> f64 {
        let state = self.entry(peer, now);
        state.score -= penalty.points();
        state.score
    }

    /// Takes a request token; `false` means the peer is over its rate.
    pub(super) fn allow_request(&mut self, peer: PeerId, now: Instant) -> bool {
        self.entry(peer, now).bucket.try_take(now)
    }

    /// Records the Status the sync layer got from a connected peer.
    /// Records a ping round trip of a connected peer.
    pub(super) fn set_ping(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(state) = self.map.get_mut(peer) {
            state.ping = Some(rtt);
        }
    }

    pub(super) fn set_status(&mut self, peer: &PeerId, status: Status) {
        if let Some(state) = self.map.get_mut(peer)
            && state.connections > 0
        {
            state.status = Some(status);
        }
    }

    /// Raises a known status to `status`'s tip when that has more work; keeps the peer's role.
    pub(super) fn raise_tip(&mut self, peer: &PeerId, status: Status) {
        if let Some(Some(known)) = self.map.get_mut(peer).map(|s| s.status.as_mut())
            && known.chain_work < status.chain_work
        {
            known.tip = status.tip;
            known.height = status.height;
            known.chain_work = status.chain_work;
        }
    }

    /// Moves negative scores towards 0; forgets disconnected peers that are back at 0.
    pub(super) fn recover(&mut self, elapsed: Duration) {
        let gain = elapsed.as_secs_f64() * RECOVERY_PER_SEC;
        self.map.retain(|_, s| {
            if s.score < 0.0 {
                s.score = (s.score + gain).min(0.0);
            }
            s.connections > 0 || s.score < 0.0
        });
    }

    /// The connected peers.
    pub(super) fn iter_connected(&self) -> impl Iterator<Item = (&PeerId, &PeerState)> {
        self.map.iter().filter(|(_, s)| s.connections > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5, t0);
        let allowed = (0..20).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(allowed, 5);
        // 400 ms later two more tokens have accrued
        let t1 = t0 + Duration::from_millis(400);
        assert!(bucket.try_take(t1));
        assert!(bucket.try_take(t1));
        assert!(!bucket.try_take(t1));
        // a long pause refills to the burst size, not beyond
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(t2)).count(), 5);
    }

    #[test]
    fn three_invalid_messages_reach_the_ban_score_and_scores_recover() {
        let now = Instant::now();
        let mut peers = Peers::new(10);
        let p = PeerId::random();
        assert!(peers.connected(p, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), now));
        assert!(peers.penalise(p, Penalty::InvalidGossip, now) > BAN_SCORE);
        assert!(peers.penalise(p, Penalty::InvalidGossip, now) > BAN_SCORE);
        assert!(peers.penalise(p, Penalty::InvalidGossip, now) <= BAN_SCORE);

        let q = PeerId::random();
        peers.connected(q, "/ip4/127.0.0.1/tcp/2".parse().unwrap(), now);
        peers.penalise(q, Penalty::BadRequest, now);
        // a disconnected peer with a debt is remembered until it is paid
        assert!(peers.disconnected(&q));
        assert!(!peers.is_connected(&q));
        peers.recover(Duration::from_secs(100));
        assert_eq!(peers.penalise(q, Penalty::RateLimited, now), -11.0);
        peers.recover(Duration::from_secs(1000));
        assert_eq!(peers.connected_count(), 1);
        assert!(!peers.map.contains_key(&q));
    }

    #[test]
    fn status_is_kept_only_for_connected_peers() {
        let now = Instant::now();
        let mut peers = Peers::new(10);
        let p = PeerId::random();
        let status = Status {
            genesis: gossipcoin_proto::BlockHash::ZERO,
            tip: gossipcoin_proto::BlockHash::ZERO,
            height: 9,
            chain_work: gossipcoin_proto::U256::from_u64(1),
            role: gossipcoin_proto::message::Role::Miner,
        };
        peers.set_status(&p, status);
        assert!(!peers.map.contains_key(&p));
        peers.connected(p, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), now);
        peers.set_status(&p, status);
        assert_eq!(
            peers.iter_connected().next().unwrap().1.status,
            Some(status)
        );
    }

    #[test]
    fn a_tip_is_raised_only_with_more_work_and_keeps_the_role() {
        let now = Instant::now();
        let mut peers = Peers::new(10);
        let p = PeerId::random();
        let status = |height: u32, role| Status {
            genesis: gossipcoin_proto::BlockHash::ZERO,
            tip: gossipcoin_proto::BlockHash([height as u8; 32]),
            height,
            chain_work: gossipcoin_proto::U256::from_u64(u64::from(height)),
            role,
        };
        use gossipcoin_proto::message::Role;
        peers.connected(p, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), now);
        peers.raise_tip(&p, status(5, Role::Central));
        assert_eq!(peers.iter_connected().next().unwrap().1.status, None);
        peers.set_status(&p, status(3, Role::Miner));
        peers.raise_tip(&p, status(5, Role::Central));
        let known = peers.iter_connected().next().unwrap().1.status.unwrap();
        assert_eq!((known.height, known.role), (5, Role::Miner));
        peers.raise_tip(&p, status(4, Role::Central));
        let known = peers.iter_connected().next().unwrap().1.status.unwrap();
        assert_eq!(known.height, 5);
    }
}
