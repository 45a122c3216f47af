//! Dialing: the bootstrap peers, the anchors, the outbound targets from the DHT, and addresses
//! the node asks for.
//!
//! Every second the node tops up its outbound connections ([`super::outbound`]):
//! full-relay and block-relay-only peers chosen at random across network groups from the DHT's
//! routing table (kad refreshes it by itself). A node left alone redials its bootstrap peers. That is how the network forms a graph of bounded degree and
//! survives losing the central node.

use std::time::Instant;

use libp2p::Multiaddr;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::outbound::{Candidate, DISCOVERY_GRACE};
use super::service::Service;
use super::{NetError, PeerKind};

impl Service {
    /// Dials the bootstrap peers (after `join`, so our subscriptions go out with the hello)
    /// as full-relay peers.
    pub(super) fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            let peer = split_peer(&addr).map(|(peer, _)| peer);
            if self.config.discovery
                && let Some((peer, plain)) = split_peer(&addr)
            {
                self.swarm.behaviour_mut().kad.add_address(&peer, plain);
            }
            if peer.is_some_and(|p| self.peers.is_connected(&p)) {
                continue;
            }
            let opts = DialOpts::from(addr.clone());
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.outbound
                        .dialing(id, peer, PeerKind::FullRelay, Instant::now());
                }
                Err(e) => warn!(target: "net", addr = %addr, "cannot dial the bootstrap peer: {e}"),
            }
        }
    }

    /// Dials the block-relay peers of the last run (`anchors.json`), before anyone else.
    pub(super) fn dial_anchors(&mut self) {
        let now = Instant::now();
        for addr in self.outbound.take_anchors() {
            let Some((peer, plain)) = split_peer(&addr) else {
                continue;
            };
            if self.peers.is_banned(&peer) {
                continue;
            }
            info!(target: "net", peer = %peer, addr = %plain, "dialing an anchor (a block-relay peer of the last run)");
            self.dial_for(peer, vec![plain], PeerKind::BlockRelay, now);
        }
    }

    pub(super) fn on_dial(
        &mut self,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    ) {
        // already connected to the peer the address names: nothing to do (a third
        // connection would only be refused by the per-peer limit)
        if split_peer(&addr).is_some_and(|(peer, _)| self.peers.is_connected(&peer)) {
            let _ = reply.send(Ok(()));
            return;
        }
        let opts = DialOpts::from(addr.clone());
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, (addr, reply));
            }
            // already connected to (or dialing) the peer named by the address
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                }));
            }
        }
    }

    /// Redials the bootstrap peers when alone; tops up the outbound targets.
    pub(super) fn discover(&mut self) {
        if self.peers.connected_count() == 0 && !self.bootstrap.is_empty() {
            debug!(target: "net", "no peers; redialing the bootstrap peers");
            self.dial_bootstrap();
        }
        self.fill_outbound();
    }

    /// Tops up the outbound targets: first by keeping connections the DHT opened, then by
    /// dialling peers of the routing table (one per network group, at random).
    pub(super) fn fill_outbound(&mut self) {
        if !self.config.discovery {
            return;
        }
        let now = Instant::now();
        let (full, block) = self.outbound.missing();
        if full + block == 0 {
            return;
        }
        let promotable: Vec<_> = self
            .peers
            .iter_connected()
            .filter(|(p, r)| r.kind == PeerKind::Discovery && !self.peers.is_banned(p))
            .map(|(p, r)| (*p, r.addr.clone()))
            .take(full + block)
            .collect();
        for (i, (peer, addr)) in promotable.into_iter().enumerate() {
            // full-relay first, then block-relay-only
            let kind = if i < full {
                PeerKind::FullRelay
            } else {
                PeerKind::BlockRelay
            };
            let addrs: Vec<Multiaddr> = addr.into_iter().collect();
            // a DHT connection kept as an outbound peer: connected as far as a reader of the
            // log is concerned ("DHT connection opened" is at debug)
            self.outbound.promote(peer, kind, &addrs, now);
            self.peers.set_kind(&peer, kind);
            info!(target: "net", peer = %peer, addr = ?addrs.first().map(ToString::to_string),
                  outbound = true, bootstrap = false, kind = %kind, "peer connected");
        }
        if block > 0 {
            self.save_anchors();
        }
        let local = *self.swarm.local_peer_id();
        let mut candidates = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                candidates.push(Candidate {
                    peer,
                    addrs: entry.node.value.iter().cloned().collect(),
                });
            }
        }
        // a peer connected to us inbound only is still a candidate: our outbound peers are
        // our own choice (Core connects out to an address that also connected in)
        candidates.retain(|c| {
            c.peer != local
                && self
                    .peers
                    .kind_of(&c.peer)
                    .is_none_or(|k| k == PeerKind::Inbound)
                && !self.peers.is_banned(&c.peer)
        });
        for (c, kind) in self.outbound.choose(candidates, now) {
            debug!(target: "net", peer = %c.peer, kind = %kind, "dialing a discovered peer");
            self.dial_for(c.peer, c.addrs, kind, now);
        }
    }

    /// Dials `peer` for one of the outbound targets, unless dialing it already.
    fn dial_for(
        &mut self,
        peer: libp2p::PeerId,
        addrs: Vec<Multiaddr>,
        kind: PeerKind,
        now: Instant,
    ) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::NotDialing)
            .build();
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_ok() {
            self.outbound.dialing(id, Some(peer), kind, now);
        }
    }

    /// Closes the connections the DHT opened for its queries once they are
    /// [`DISCOVERY_GRACE`] old and the full-relay target is met, so queries never grow the
    /// degree.
    pub(super) fn close_idle_discovery(&mut self, now: Instant) {
        if !self.outbound.full_relay_met() {
            return;
        }
        let idle: Vec<libp2p::PeerId> = self
            .peers
            .iter_connected()
            .filter(|(_, r)| {
                r.kind == PeerKind::Discovery && r.connected_for(now) >= DISCOVERY_GRACE
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in idle {
            debug!(target: "net", peer = %peer, "closing a DHT connection: the outbound targets are met");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Keeps the block-relay peers in `anchors.json` for the next start.
    pub(super) fn save_anchors(&mut self) {
        let peers = &self.peers;
        self.outbound.save_anchors(|p| peers.addr_of(p));
    }
}

/// Splits `/…/p2p/<id>` into the peer id and the address without it.
pub(super) fn split_peer(addr: &Multiaddr) -> Option<(libp2p::PeerId, Multiaddr)> {
    let mut plain = addr.clone();
    match plain.pop()? {
        libp2p::multiaddr::Protocol::P2p(peer) => Some((peer, plain)),
        _ => None,
    }
}
