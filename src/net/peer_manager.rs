//! The peer manager: the one owner of every peer's record and of every penalty and ban.
//!
//! Shaped after Lighthouse's `peer_manager`: everything that notices an offence (gossip
//! verdicts, the codec's malformed requests, rate limits, bad responses, the node's
//! `report_peer`) calls [`PeerManager::report`] with a [`Misbehaviour`]; the manager updates
//! the score and answers with an [`Action`] (nothing, or a ban) that the service carries out on
//! the swarm. Nothing else changes a score. There is no disconnect threshold above the ban on
//! purpose: with the contract's points (three High, ten Mid ban), dropping the connection
//! first would only stop the evidence that completes the ban.
//!
//! - **Scores** start at 0, lose [`Misbehaviour::points`], recover towards 0 at
//!   [`RECOVERY_PER_SEC`]; [`BAN_SCORE`] bans. A disconnected peer keeps its record while its
//!   score is negative, so reconnecting does not wipe the slate.
//! - **Bans** cover the peer id and, unless the address is loopback, unspecified or link-local
//!   (a loopback testnet runs every node on 127.0.0.1), its IP. Both expire after
//!   `NetConfig::ban_duration`.
//! - **Budgets** of what we serve: a request rate ([`TokenBucket`] of requests), a byte bucket
//!   of responses ([`RESPONSE_BYTES_PER_SEC`], burst [`RESPONSE_BYTES_BURST`]) charged when a
//!   response is handed to request-response, and at most [`MAX_UNSENT_RESPONSES`] responses
//!   handed over but not yet written to the peer (one that does not read stays there). Beyond
//!   the identity, every answer is also charged to the peer's network group and to the node's
//!   total upload budget ([`super::budgets`]): new identities buy no more bandwidth.
//! - **Liveness**: the last successful ping of each connection; a connection silent for
//!   [`LIVENESS_TIMEOUT`] is dead (ping 0.48 reports failures but never closes anything).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use gossipcoin_proto::message::Status;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, warn};

use super::budgets::{TokenBucket, UploadBudget, ban_scope, group_of};

use super::{Misbehaviour, PeerKind};

/// At or below this score a peer is banned.
pub const BAN_SCORE: f64 = -100.0;
/// Points a negative score regains per second.
pub(super) const RECOVERY_PER_SEC: f64 = 0.1;
/// Response bytes per second we serve one peer, sustained: about 64k transactions a second,
/// more than twice what a 2-core node can verify (25k signatures/s), so one peer can feed an
/// initial sync at full speed, while a peer that only downloads cannot take more.
pub(super) const RESPONSE_BYTES_PER_SEC: f64 = 16.0 * 1024.0 * 1024.0;
/// Response bytes one peer may take in a burst.
pub(super) const RESPONSE_BYTES_BURST: f64 = 32.0 * 1024.0 * 1024.0;
/// Responses to one peer handed to request-response but not yet written (a peer that does
/// not read its responses keeps them in our memory): past this, requests are refused "busy".
pub(super) const MAX_UNSENT_RESPONSES: usize = 2;
/// How often each connection is pinged.
pub(super) const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long a ping may take.
pub(super) const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no successful ping for this long is dead and closed: a cut link is
/// noticed within about 13 s (this plus the one-second tick).
pub(super) const LIVENESS_TIMEOUT: Duration = Duration::from_secs(12);
/// At most this many banned peer ids (and as many IPs) are remembered; past it the ban that
/// expires soonest is forgotten first.
const MAX_BANS: usize = 10_000;

/// What the service must do after a report.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Action {
    None,
    /// Block the peer id (and deny `ips`) until `until`, and close its connections.
    Ban {
        ips: Vec<IpAddr>,
        until: Instant,
    },
}

/// Why an inbound request is refused before the node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Over the request rate.
    RateLimited,
    /// Over the byte budget or the unsent-responses cap.
    Busy,
}

impl Refusal {
    /// The `Response::Error` text the peer gets.
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::RateLimited => "rate limited",
            Self::Busy => "busy",
        }
    }
}

/// Bans that ran out, to lift on the swarm.
#[derive(Debug, Default)]
pub(super) struct Expired {
    pub(super) peers: Vec<PeerId>,
    pub(super) ips: Vec<IpAddr>,
}

/// One open connection of a peer.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) addr: Multiaddr,
    pub(super) outbound: bool,
    /// When the connection opened or last answered a ping.
    last_alive: Instant,
    /// Found dead and being closed: not reported again.
    closing: bool,
}

/// What we know about one peer.
#[derive(Debug)]
pub(super) struct PeerRecord {
    pub(super) connections: HashMap<ConnectionId, Connection>,
    /// The address of the peer's first connection.
    pub(super) addr: Option<Multiaddr>,
    /// What the peer's connections are for: the first one's kind, raised when a later
    /// connection is one the node dialled for a target.
    pub(super) kind: PeerKind,
    /// When its first open connection opened.
    connected_at: Instant,
    /// The network group of `addr` ([`group_of`]), kept so that budgets do not parse the
    /// address on every request.
    group: Option<IpAddr>,
    pub(super) status: Option<Status>,
    pub(super) score: f64,
    /// Round-trip time of the last ping.
    pub(super) ping: Option<Duration>,
    /// The peer does not speak ping: liveness is not checked (it cannot be).
    ping_unsupported: bool,
    requests: TokenBucket,
    response_bytes: TokenBucket,
    /// Responses handed to request-response and not yet sent (or failed).
    unsent: usize,
}

impl PeerRecord {
    /// How long the peer has been connected.
    pub(super) fn connected_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.connected_at)
    }

    /// Whether one of the peer's connections is one we dialled.
    pub(super) fn is_outbound(&self) -> bool {
        self.connections.values().any(|c| c.outbound)
    }
}

/// Every peer we are connected to or that still owes score, and every ban.
#[derive(Debug)]
pub(super) struct PeerManager {
    peers: HashMap<PeerId, PeerRecord>,
    banned_peers: HashMap<PeerId, Instant>,
    banned_ips: HashMap<IpAddr, Instant>,
    /// The IPs banned with each banned peer, lifted with it by [`Self::unban`].
    ips_of_ban: HashMap<PeerId, Vec<IpAddr>>,
    requests_per_second: u32,
    ban_duration: Duration,
    /// What all peers together, and each network group, may draw.
    upload: UploadBudget,
}

impl PeerManager {
    pub(super) fn new(requests_per_second: u32, ban_duration: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            banned_peers: HashMap::new(),
            banned_ips: HashMap::new(),
            ips_of_ban: HashMap::new(),
            requests_per_second,
            ban_duration,
            upload: UploadBudget::new(super::budgets::DEFAULT_UPLOAD_BYTES_PER_SEC, Instant::now()),
        }
    }

    /// Sets the node's total upload budget for answers (`net.max_upload_bytes_per_sec`).
    pub(super) fn set_upload_budget(&mut self, bytes_per_sec: u64) {
        self.upload = UploadBudget::new(bytes_per_sec, Instant::now());
    }

    fn entry(&mut self, peer: PeerId, now: Instant) -> &mut PeerRecord {
        let rate = f64::from(self.requests_per_second.max(1));
        self.peers.entry(peer).or_insert_with(|| PeerRecord {
            connections: HashMap::new(),
            addr: None,
            kind: PeerKind::Inbound,
            connected_at: now,
            group: None,
            status: None,
            score: 0.0,
            ping: None,
            ping_unsupported: false,
            requests: TokenBucket::new(rate, rate, now),
            response_bytes: TokenBucket::new(RESPONSE_BYTES_PER_SEC, RESPONSE_BYTES_BURST, now),
            unsent: 0,
        })
    }

    // ---- connections ----

    /// Records a new connection; returns whether it is the peer's first.
    pub(super) fn connected(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        addr: Multiaddr,
        kind: PeerKind,
        now: Instant,
    ) -> bool {
        let outbound = kind != PeerKind::Inbound;
        let record = self.entry(peer, now);
        let first = record.connections.is_empty();
        if first {
            record.group = group_of(&addr);
            record.addr = Some(addr.clone());
            record.kind = kind;
            record.connected_at = now;
        } else if matches!(record.kind, PeerKind::Inbound | PeerKind::Discovery)
            && matches!(
                kind,
                PeerKind::FullRelay | PeerKind::BlockRelay | PeerKind::Manual
            )
        {
            record.kind = kind;
        }
        record.connections.insert(
            id,
            Connection {
                addr,
                outbound,
                last_alive: now,
                closing: false,
            },
        );
        first
    }

    /// Records a closed connection; returns whether it was the peer's last.
    pub(super) fn disconnected(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let Some(record) = self.peers.get_mut(peer) else {
            return false;
        };
        if record.connections.remove(&id).is_none() || !record.connections.is_empty() {
            return false;
        }
        record.status = None;
        if record.score >= 0.0 {
            self.peers.remove(peer);
        }
        true
    }

    /// What a connected peer is for.
    pub(super) fn kind_of(&self, peer: &PeerId) -> Option<PeerKind> {
        self.peers
            .get(peer)
            .filter(|r| !r.connections.is_empty())
            .map(|r| r.kind)
    }

    /// The address of a connected peer's first connection.
    pub(super) fn addr_of(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.peers
            .get(peer)
            .filter(|r| !r.connections.is_empty())
            .and_then(|r| r.addr.clone())
    }

    /// Sets what a connected peer is for (a DHT connection promoted to full relay).
    pub(super) fn set_kind(&mut self, peer: &PeerId, kind: PeerKind) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.kind = kind;
        }
    }

    /// How many peers have at least one connection.
    pub(super) fn connected_count(&self) -> usize {
        self.peers
            .values()
            .filter(|r| !r.connections.is_empty())
            .count()
    }

    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|r| !r.connections.is_empty())
    }

    /// The connected peers.
    pub(super) fn iter_connected(&self) -> impl Iterator<Item = (&PeerId, &PeerRecord)> {
        self.peers.iter().filter(|(_, r)| !r.connections.is_empty())
    }

    /// The network group of the peer's first address ([`super::budgets::group_of`]).
    pub(super) fn group_of(&self, peer: &PeerId) -> Option<IpAddr> {
        self.peers.get(peer).and_then(|r| r.group)
    }

    /// The peer's score (0 for a peer we know nothing against).
    #[cfg(test)]
    pub(super) fn score(&self, peer: &PeerId) -> f64 {
        self.peers.get(peer).map_or(0.0, |r| r.score)
    }

    // ---- penalties and bans ----

    /// Charges `peer` for an offence; `reason` starts with a short stable phrase (it labels
    /// the metric up to its first colon). Returns what the service must do.
    pub(super) fn report(
        &mut self,
        peer: PeerId,
        offence: Misbehaviour,
        reason: &str,
        now: Instant,
    ) -> Action {
        if self.is_banned(&peer) {
            return Action::None;
        }
        crate::metrics::metrics().peer_penalty(&metric_reason(reason));
        let record = self.entry(peer, now);
        record.score = (record.score - offence.points()).max(BAN_SCORE * 2.0);
        let score = record.score;
        debug!(target: "net", peer = %peer, reason, score, ?offence, "penalised peer");
        if offence == Misbehaviour::Fatal || score <= BAN_SCORE {
            self.ban(peer, reason, now)
        } else {
            Action::None
        }
    }

    /// Bans `peer` (and the IPs of its non-local connections) for the ban duration.
    fn ban(&mut self, peer: PeerId, reason: &str, now: Instant) -> Action {
        let until = now + self.ban_duration;
        let record = self.entry(peer, now);
        record.score = record.score.min(BAN_SCORE);
        let score = record.score;
        let ips: Vec<IpAddr> = record
            .connections
            .values()
            .map(|c| &c.addr)
            .chain(record.addr.as_ref())
            .filter_map(bannable_ip)
            .map(ban_scope)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.restore(peer, &ips, until);
        crate::metrics::metrics().peer_ban();
        warn!(target: "net", peer = %peer, reason, score, ?ips, "banned peer");
        Action::Ban { ips, until }
    }

    /// Records a ban of `peer` and `ips` until `until` (a new one, or one from the saved ban
    /// list).
    pub(super) fn restore(&mut self, peer: PeerId, ips: &[IpAddr], until: Instant) {
        evict_soonest(&mut self.banned_peers);
        self.banned_peers.insert(peer, until);
        for ip in ips {
            evict_soonest(&mut self.banned_ips);
            self.banned_ips.insert(ban_scope(*ip), until);
        }
        self.ips_of_ban
            .retain(|p, _| self.banned_peers.contains_key(p));
        self.ips_of_ban.insert(peer, ips.to_vec());
    }

    /// Lifts `peer`'s ban at once, with a fresh score, and the bans of the IPs banned with it
    /// (unless another banned peer holds them too). `None` when it was not banned; else the
    /// IPs to let in again.
    pub(super) fn unban(&mut self, peer: &PeerId) -> Option<Vec<IpAddr>> {
        self.banned_peers.remove(peer)?;
        if let Some(record) = self.peers.get_mut(peer) {
            record.score = 0.0;
        }
        let mut lifted = self.ips_of_ban.remove(peer).unwrap_or_default();
        lifted.retain(|ip| !self.ips_of_ban.values().any(|held| held.contains(ip)));
        for ip in &lifted {
            self.banned_ips.remove(&ban_scope(*ip));
        }
        Some(lifted)
    }

    /// The bans in force, with the IPs banned with each, for the ban list on disk.
    pub(super) fn saved_bans(&self, now: Instant) -> Vec<super::banlist::SavedBan> {
        self.banned_peers
            .iter()
            .map(|(peer, until)| super::banlist::SavedBan {
                peer: peer.to_string(),
                ips: self.ips_of_ban.get(peer).cloned().unwrap_or_default(),
                until_unix: super::banlist::to_unix(*until, now),
            })
            .collect()
    }

    /// The banned peers and how long each ban still runs.
    pub(super) fn bans(&self, now: Instant) -> Vec<(super::PeerId, Duration)> {
        self.banned_peers
            .iter()
            .map(|(p, until)| (super::PeerId(*p), until.saturating_duration_since(now)))
            .collect()
    }

    /// Whether `peer` is banned now.
    pub(super) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned_peers.contains_key(peer)
    }

    /// Whether connections from `ip` are to be refused now.
    pub(super) fn is_ip_banned(&self, ip: &IpAddr) -> bool {
        self.banned_ips.contains_key(&ban_scope(*ip))
    }

    /// Lifts the bans that ran out by `now`.
    pub(super) fn expire_bans(&mut self, now: Instant) -> Expired {
        let mut expired = Expired::default();
        self.banned_peers.retain(|peer, until| {
            let keep = *until > now;
            if !keep {
                expired.peers.push(*peer);
            }
            keep
        });
        self.banned_ips.retain(|ip, until| {
            let keep = *until > now;
            if !keep {
                expired.ips.push(*ip);
            }
            keep
        });
        for peer in &expired.peers {
            self.ips_of_ban.remove(peer);
            // a fresh start, as if never seen (its debt was the ban)
            if self
                .peers
                .get(peer)
                .is_some_and(|r| r.connections.is_empty())
            {
                self.peers.remove(peer);
            }
        }
        expired
    }

    /// Moves negative scores towards 0; forgets disconnected peers that are back at 0.
    pub(super) fn recover(&mut self, elapsed: Duration) {
        let gain = elapsed.as_secs_f64() * RECOVERY_PER_SEC;
        self.peers.retain(|_, r| {
            if r.score < 0.0 {
                r.score = (r.score + gain).min(0.0);
            }
            !r.connections.is_empty() || r.score < 0.0
        });
    }

    // ---- what we serve ----

    /// Admits an inbound request, or says why not. A refused request is not yet charged:
    /// the caller reports it.
    pub(super) fn admit_request(&mut self, peer: PeerId, now: Instant) -> Result<(), Refusal> {
        let record = self.entry(peer, now);
        if !record.requests.try_take(now) {
            return Err(Refusal::RateLimited);
        }
        if record.unsent >= MAX_UNSENT_RESPONSES || record.response_bytes.is_exhausted(now) {
            return Err(Refusal::Busy);
        }
        let group = record.group;
        if self.upload.is_exhausted(group, now) {
            return Err(Refusal::Busy);
        }
        Ok(())
    }

    /// Whether the peer has spent its response bytes (checked again when the node's answer
    /// is ready: a burst of requests admitted together must not all be served).
    pub(super) fn out_of_response_bytes(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(record) = self.peers.get_mut(peer) else {
            return false;
        };
        let group = record.group;
        record.response_bytes.is_exhausted(now) || self.upload.is_exhausted(group, now)
    }

    /// A response of `bytes` was handed to request-response for `peer`: charge it, and count
    /// it as unsent until [`Self::response_done`] (the service pairs the two by request id).
    pub(super) fn response_handed(&mut self, peer: PeerId, bytes: usize, now: Instant) {
        let record = self.entry(peer, now);
        record.response_bytes.charge(bytes as f64, now);
        record.unsent += 1;
        let group = record.group;
        self.upload.charge(group, bytes, now);
    }

    /// A response handed over for `peer` was written to it, or failed.
    pub(super) fn response_done(&mut self, peer: &PeerId) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.unsent = record.unsent.saturating_sub(1);
        }
    }

    // ---- status and liveness ----

    /// Records a ping round trip on one of the peer's connections.
    pub(super) fn set_ping(
        &mut self,
        peer: &PeerId,
        id: ConnectionId,
        rtt: Duration,
        now: Instant,
    ) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.ping = Some(rtt);
            if let Some(connection) = record.connections.get_mut(&id) {
                connection.last_alive = now;
            }
        }
    }

    /// The peer does not speak ping: its liveness cannot be checked.
    pub(super) fn set_ping_unsupported(&mut self, peer: &PeerId) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.ping_unsupported = true;
        }
    }

    /// Connections with no successful ping for [`LIVENESS_TIMEOUT`], marked as closing (each
    /// is returned once).
    pub(super) fn dead_connections(&mut self, now: Instant) -> Vec<(PeerId, ConnectionId)> {
        let mut dead = Vec::new();
        for (peer, record) in self.peers.iter_mut().filter(|(_, r)| !r.ping_unsupported) {
            for (id, c) in &mut record.connections {
                if !c.closing && now.saturating_duration_since(c.last_alive) >= LIVENESS_TIMEOUT {
                    c.closing = true;
                    dead.push((*peer, *id));
                }
            }
        }
        dead
    }

    /// Marks a connection as closing; returns whether it was open and not already closing.
    pub(super) fn mark_closing(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        self.peers
            .get_mut(peer)
            .and_then(|r| r.connections.get_mut(&id))
            .is_some_and(|c| !std::mem::replace(&mut c.closing, true))
    }

    /// Records the Status the sync layer got from a connected peer.
    pub(super) fn set_status(&mut self, peer: &PeerId, status: Status) {
        if let Some(record) = self.peers.get_mut(peer)
            && !record.connections.is_empty()
        {
            record.status = Some(status);
        }
    }

    /// Raises a known status to `status`'s tip when that has more work; keeps the peer's role.
    pub(super) fn raise_tip(&mut self, peer: &PeerId, status: Status) {
        if let Some(Some(known)) = self.peers.get_mut(peer).map(|r| r.status.as_mut())
            && known.chain_work < status.chain_work
        {
            known.tip = status.tip;
            known.height = status.height;
            known.chain_work = status.chain_work;
        }
    }
}

/// The ping settings that make a dead link visible within [`LIVENESS_TIMEOUT`].
pub(super) fn ping_config() -> libp2p::ping::Config {
    libp2p::ping::Config::new()
        .with_interval(PING_INTERVAL)
        .with_timeout(PING_TIMEOUT)
}

/// The IP of `addr` when a ban may cover it: not loopback, unspecified or link-local (Core
/// never discourages a local peer, and a loopback testnet shares one address).
pub(super) fn bannable_ip(addr: &Multiaddr) -> Option<IpAddr> {
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })?;
    let ip = ip.to_canonical();
    let local = ip.is_loopback()
        || ip.is_unspecified()
        || match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
    (!local).then_some(ip)
}

/// A low-cardinality metric label from a reason: its text before the first colon, lower
/// case, `[a-z0-9_]` only, at most 40 characters.
fn metric_reason(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or_default().trim();
    let label: String = head
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .take(40)
        .collect();
    if label.is_empty() {
        "other".to_owned()
    } else {
        label
    }
}

/// Makes room for one more ban, forgetting the one that ends soonest.
fn evict_soonest<K: Copy + Eq + std::hash::Hash>(bans: &mut HashMap<K, Instant>) {
    if bans.len() >= MAX_BANS
        && let Some(key) = bans
            .iter()
            .min_by_key(|(_, until)| **until)
            .map(|(k, _)| *k)
    {
        bans.remove(&key);
    }
}

#[cfg(test)]
mod tests;
