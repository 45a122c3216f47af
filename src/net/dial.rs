//! Dialing: the bootstrap peers, peers the DHT discovered, and addresses the node asks for.
//!
//! Discovery runs every `discovery_interval`: a node left alone redials its bootstrap peers,
//! and a node with room dials routing-table peers it is not connected to, up to `max_peers`.
//! That is how the network survives losing the central node.

use libp2p::Multiaddr;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::NetError;
use super::service::Service;

impl Service {
    /// Dials the bootstrap peers (after `join`, so our subscriptions go out with the hello).
    pub(super) fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            if self.config.discovery
                && let Some((peer, plain)) = split_peer(&addr)
            {
                self.swarm.behaviour_mut().kad.add_address(&peer, plain);
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                warn!(target: "net", addr = %addr, "cannot dial the bootstrap peer: {e}");
            }
        }
    }

    pub(super) fn on_dial(
        &mut self,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    ) {
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

    /// Redials the bootstrap peers when alone; dials DHT peers we are not connected to.
    pub(super) fn discover(&mut self) {
        if self.peers.connected_count() == 0 && !self.bootstrap.is_empty() {
            debug!(target: "net", "no peers; redialing the bootstrap peers");
            self.dial_bootstrap();
        }
        if self.config.discovery {
            self.dial_known_peers();
        }
    }

    /// Dials peers from the routing table until `max_peers` are connected or dialing.
    pub(super) fn dial_known_peers(&mut self) {
        let room = (self.config.max_peers as usize).saturating_sub(self.peers.connected_count());
        let local = *self.swarm.local_peer_id();
        let mut candidates = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                if peer != local && !self.peers.is_connected(&peer) {
                    candidates.push((peer, entry.node.value.iter().cloned().collect()));
                }
            }
        }
        for (peer, addrs) in candidates.into_iter().take(room) {
            self.dial_peer(peer, addrs);
        }
    }

    /// Dials a discovered peer unless connected to or dialing it already.
    pub(super) fn dial_peer(&mut self, peer: libp2p::PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if self.swarm.dial(opts).is_ok() {
            debug!(target: "net", peer = %peer, "dialing a discovered peer");
        }
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
