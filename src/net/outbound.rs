//! Outbound connections: how many the node keeps, to whom, and which it lets go (Bitcoin
//! Core's `ThreadOpenConnections`, its block-relay-only connections and its anchors).
//!
//! - **Targets.** The node keeps `outbound_full_relay` connections that relay everything and
//!   `outbound_block_relay` that are used for blocks only (no mempool exchange, no addresses
//!   learnt from them): an eclipse attacker must then own every address the node picks, and
//!   the block-relay peers are invisible to address gossip. Inbound connections are capped by
//!   `max_peers` (the slots, `slots.rs`). So a network of N nodes is a random graph of degree
//!   about 10 + inbound, never a full mesh.
//! - **Choice.** Candidates are the DHT's routing table. They are taken in random order, one
//!   per network group ([`Diversity`]: an IPv4 /16, an IPv6 /64; on a loopback or private
//!   testnet every peer is its own group) not already held, and a second peer of a held group
//!   only when no other group is known.
//! - **Backoff.** A peer whose dial failed, or whose outbound connection closed, is not dialled
//!   again for a while (5 s, doubling to 10 min while it keeps failing), so a full peer that
//!   evicts us is not redialled at once, and a dead address costs one dial in minutes.
//! - **Connections the DHT opens** for its own queries are [`PeerKind::Discovery`]: they are
//!   kept as outbound peers while the node needs some, the others are closed after
//!   [`DISCOVERY_GRACE`], so queries never grow the degree.
//! - **Anchors.** The block-relay peers are written to `anchors.json` when they change; at
//!   start the file is read, removed, and those peers are dialled first, as block-relay peers
//!   (Core's `anchors.dat`), so a restart does not hand the node to whoever answers first.
//!
//! [`OutboundPeers`] keeps the books; the service does the dialling and closing.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use tracing::{debug, warn};

use super::PeerKind;
use super::budgets::group_of;

/// A connection the DHT opened for a query is closed after this long, unless promoted.
pub(super) const DISCOVERY_GRACE: Duration = Duration::from_secs(30);
/// The first backoff of a peer; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A connection that lasted this long resets its peer's backoff.
const STABLE: Duration = Duration::from_secs(60);
/// At most this many peers are remembered in backoff (the oldest expiry goes first).
const MAX_BACKOFF_ENTRIES: usize = 4096;
/// A dial not answered by then no longer counts towards the targets.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many anchors are read from the file.
const MAX_ANCHORS: usize = 8;
/// Outbound connections allowed beyond the targets: manual dials (`connect`, `testnet heal`)
/// and the DHT's queries.
pub(super) const EXTRA_OUTBOUND: u32 = 16;

/// What outbound diversity counts: the network group of a public address, or the peer itself
/// for a local one (a testnet on one machine has no groups to spread over).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Diversity {
    Group(IpAddr),
    Peer(PeerId),
}

impl Diversity {
    pub(super) fn of(peer: PeerId, addrs: &[Multiaddr]) -> Self {
        addrs
            .iter()
            .find_map(group_of)
            .map_or(Self::Peer(peer), Self::Group)
    }
}

/// A peer the node could dial.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    pub(super) peer: PeerId,
    pub(super) addrs: Vec<Multiaddr>,
}

#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Instant,
    next: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    kind: PeerKind,
    diversity: Diversity,
    since: Instant,
}

/// The books of the node's outbound connections.
#[derive(Debug)]
pub(super) struct OutboundPeers {
    full_target: usize,
    block_target: usize,
    /// Dials started for a target, by connection id.
    dialing: HashMap<ConnectionId, (Option<PeerId>, PeerKind, Instant)>,
    /// Connected peers held for a target.
    held: HashMap<PeerId, Held>,
    backoff: HashMap<PeerId, Backoff>,
    anchors_file: Option<PathBuf>,
    /// The anchors last written, to write only on a change.
    written: Vec<Multiaddr>,
}

impl OutboundPeers {
    pub(super) fn new(full_target: u32, block_target: u32, anchors_file: Option<PathBuf>) -> Self {
        Self {
            full_target: full_target as usize,
            block_target: block_target as usize,
            dialing: HashMap::new(),
            held: HashMap::new(),
            backoff: HashMap::new(),
            anchors_file,
            written: Vec::new(),
        }
    }

    fn count(&self, kind: PeerKind) -> usize {
        self.held.values().filter(|h| h.kind == kind).count()
            + self.dialing.values().filter(|d| d.1 == kind).count()
    }

    /// How many full-relay and block-relay peers are missing (dials in flight count as held).
    pub(super) fn missing(&self) -> (usize, usize) {
        (
            self.full_target
                .saturating_sub(self.count(PeerKind::FullRelay)),
            self.block_target
                .saturating_sub(self.count(PeerKind::BlockRelay)),
        )
    }

    /// Whether the full-relay target is met.
    pub(super) fn full_relay_met(&self) -> bool {
        self.missing().0 == 0
    }

    pub(super) fn is_backed_off(&self, peer: &PeerId, now: Instant) -> bool {
        self.backoff.get(peer).is_some_and(|b| b.until > now)
    }

    pub(super) fn kind_of(&self, peer: &PeerId) -> Option<PeerKind> {
        self.held.get(peer).map(|h| h.kind)
    }

    /// Picks the peers to dial among `candidates` (not connected, not banned: the caller's
    /// filter), for what is missing: full-relay first, then block-relay.
    pub(super) fn choose(
        &self,
        mut candidates: Vec<Candidate>,
        now: Instant,
    ) -> Vec<(Candidate, PeerKind)> {
        let (full, block) = self.missing();
        if full + block == 0 {
            return Vec::new();
        }
        let dialing: HashSet<PeerId> = self.dialing.values().filter_map(|d| d.0).collect();
        candidates.retain(|c| {
            !self.held.contains_key(&c.peer)
                && !dialing.contains(&c.peer)
                && !self.is_backed_off(&c.peer, now)
        });
        candidates.shuffle(&mut rand::thread_rng());
        let mut groups: HashSet<Diversity> = self.held.values().map(|h| h.diversity).collect();
        let mut picked: Vec<Candidate> = Vec::new();
        let want = full + block;
        // one per new group first; then, only if that found too few, held groups again
        let mut rest = Vec::new();
        for c in candidates {
            let d = Diversity::of(c.peer, &c.addrs);
            if picked.len() < want && groups.insert(d) {
                picked.push(c);
            } else {
                rest.push(c);
            }
        }
        if picked.is_empty() {
            picked.extend(rest.into_iter().take(want));
        }
        picked
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let kind = if i < full {
                    PeerKind::FullRelay
                } else {
                    PeerKind::BlockRelay
                };
                (c, kind)
            })
            .collect()
    }

    /// Records a dial started for `kind`.
    pub(super) fn dialing(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        kind: PeerKind,
        now: Instant,
    ) {
        self.dialing.insert(id, (peer, kind, now));
    }

    /// An outbound connection opened: what kind of connection it is. A connection we did not
    /// dial for a target (the DHT's) is [`PeerKind::Discovery`].
    pub(super) fn established(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        now: Instant,
    ) -> PeerKind {
        if let Some(held) = self.held.get(&peer) {
            self.dialing.remove(&id);
            return held.kind;
        }
        match self.dialing.remove(&id) {
            Some((_, kind, _)) => {
                self.hold(peer, kind, std::slice::from_ref(addr), now);
                kind
            }
            None => PeerKind::Discovery,
        }
    }

    /// Keeps a connection the DHT opened as one of the targets' peers.
    pub(super) fn promote(
        &mut self,
        peer: PeerId,
        kind: PeerKind,
        addrs: &[Multiaddr],
        now: Instant,
    ) {
        self.hold(peer, kind, addrs, now);
    }

    fn hold(&mut self, peer: PeerId, kind: PeerKind, addrs: &[Multiaddr], now: Instant) {
        let diversity = Diversity::of(peer, addrs);
        self.held.insert(
            peer,
            Held {
                kind,
                diversity,
                since: now,
            },
        );
    }

    /// A dial failed: it no longer counts, and its peer waits before the next one.
    pub(super) fn dial_failed(&mut self, id: ConnectionId, peer: Option<PeerId>, now: Instant) {
        let dialled = self.dialing.remove(&id).and_then(|d| d.0);
        if let Some(peer) = peer.or(dialled) {
            self.back_off(peer, now);
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn closed(&mut self, peer: &PeerId, now: Instant) {
        if let Some(held) = self.held.remove(peer) {
            if now.saturating_duration_since(held.since) >= STABLE {
                self.backoff.remove(peer);
            }
            self.back_off(*peer, now);
        }
    }

    fn back_off(&mut self, peer: PeerId, now: Instant) {
        if self.backoff.len() >= MAX_BACKOFF_ENTRIES && !self.backoff.contains_key(&peer) {
            self.backoff.retain(|_, b| b.until > now);
            if self.backoff.len() >= MAX_BACKOFF_ENTRIES
                && let Some(oldest) = self.backoff.iter().min_by_key(|(_, b)| b.until)
            {
                let oldest = *oldest.0;
                self.backoff.remove(&oldest);
            }
        }
        let entry = self.backoff.entry(peer).or_insert(Backoff {
            until: now,
            next: MIN_BACKOFF,
        });
        entry.until = now + entry.next;
        entry.next = (entry.next * 2).min(MAX_BACKOFF);
    }

    /// Forgets dials that never answered (the swarm reports every dial's end; this is a
    /// safety net so that the targets cannot be blocked by lost bookkeeping).
    pub(super) fn expire(&mut self, now: Instant) {
        self.dialing
            .retain(|_, d| now.saturating_duration_since(d.2) < DIAL_TIMEOUT);
        if self.backoff.len() > MAX_BACKOFF_ENTRIES / 2 {
            self.backoff.retain(|_, b| b.until > now);
        }
    }

    /// Writes the block-relay peers (`addr/p2p/id`) to the anchors file when they changed.
    pub(super) fn save_anchors(&mut self, addr_of: impl Fn(&PeerId) -> Option<Multiaddr>) {
        let Some(path) = &self.anchors_file else {
            return;
        };
        let mut anchors: Vec<Multiaddr> = self
            .held
            .iter()
            .filter(|(_, h)| h.kind == PeerKind::BlockRelay)
            .filter_map(|(peer, _)| {
                let addr = addr_of(peer)?;
                Some(addr.with_p2p(*peer).unwrap_or_else(|a| a))
            })
            .collect();
        anchors.sort_by_key(|a| a.to_string());
        if anchors == self.written {
            return;
        }
        let text: Vec<String> = anchors.iter().map(|a| a.to_string()).collect();
        match write_anchors(path, &text) {
            Ok(()) => self.written = anchors,
            Err(e) => warn!(target: "net", path = %path.display(), "cannot save the anchors: {e}"),
        }
    }

    /// Reads and removes the anchors file: the block-relay peers of the last run.
    pub(super) fn take_anchors(&self) -> Vec<Multiaddr> {
        let Some(path) = &self.anchors_file else {
            return Vec::new();
        };
        let anchors = read_anchors(path);
        let _ = std::fs::remove_file(path);
        anchors
    }
}

fn write_anchors(path: &Path, anchors: &[String]) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(anchors).map_err(|e| e.to_string())?;
    crate::atomic_file::write(path, &text).map_err(|e| e.to_string())
}

/// The anchors in `path`: at most [`MAX_ANCHORS`] addresses that name a peer; a missing,
/// oversized or malformed file gives none.
pub(super) fn read_anchors(path: &Path) -> Vec<Multiaddr> {
    const MAX_FILE: u64 = 16 * 1024;
    match std::fs::metadata(path) {
        Ok(m) if m.len() <= MAX_FILE => {}
        Ok(_) => {
            warn!(target: "net", path = %path.display(), "anchors file too large: ignored");
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    }
    let parsed: Result<Vec<String>, String> = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
    match parsed {
        Ok(list) => list
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .filter(|a| matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))))
            .take(MAX_ANCHORS)
            .collect(),
        Err(e) => {
            debug!(target: "net", path = %path.display(), "anchors file unreadable: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
