//! What the service does with each swarm event: connections, gossip, sync requests and
//! responses, identify and kad. Each protocol's events go to one `on_*` method.

use std::time::Instant;

use futures::FutureExt;
use gossipcoin_proto::encode::from_bytes;
use gossipcoin_proto::message::{Request, Response, TopicKind};
use gossipcoin_proto::{Block, MAX_TX_BYTES, Transaction};
use libp2p::core::ConnectedPoint;
use libp2p::request_response::{self, InboundFailure, Message, OutboundFailure, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::behaviour::{BehaviourEvent, KAD_PROTOCOL};
use super::peers::Penalty;
use super::service::{PendingReply, Service};
use super::{MessageId, NetError, NetworkEvent, PeerId, Reply, Verdict};

impl Service {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossipsub(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => {
                if let Ok(rtt) = e.result {
                    self.peers.set_ping(&e.peer, rtt);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Slots(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Blocked(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: "net", addr = %address, peer = %self.swarm.local_peer_id(), "listening");
                self.listen_addrs.push(address.clone());
                self.emit(NetworkEvent::Listening {
                    addr: address.to_string(),
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                self.on_connected(peer_id, endpoint);
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                self.on_disconnected(peer_id, cause.map(|c| c.to_string()));
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(target: "net", peer = ?peer_id, "dial failed: {error}");
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                debug!(target: "net", addr = %send_back_addr, "inbound connection failed: {error}");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(target: "net", "listener error: {error}");
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: libp2p::PeerId, endpoint: ConnectedPoint) {
        let (addr, outbound) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address, true),
            ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr, false),
        };
        let bootstrap = outbound && self.is_bootstrap(&peer, &addr);
        if !self.peers.connected(peer, addr.clone(), Instant::now()) {
            return;
        }
        info!(target: "net", peer = %peer, addr = %addr, "peer connected");
        self.emit(NetworkEvent::PeerConnected {
            peer: PeerId(peer),
            addr: addr.to_string(),
            outbound,
            bootstrap,
        });
        if self.config.discovery && !self.bootstrapped {
            // Our first peer: ask the DHT for our neighbours (kad repeats it periodically).
            self.bootstrapped = self.swarm.behaviour_mut().kad.bootstrap().is_ok();
        }
    }

    /// Whether a connection we dialled to `peer` at `addr` is one of our bootstrap peers: the
    /// address is a bootstrap address, or a bootstrap address names this peer id.
    fn is_bootstrap(&self, peer: &libp2p::PeerId, addr: &libp2p::Multiaddr) -> bool {
        use libp2p::multiaddr::Protocol;
        let plain = |a: &libp2p::Multiaddr| {
            a.iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect::<libp2p::Multiaddr>()
        };
        self.bootstrap.iter().any(|b| {
            plain(b) == plain(addr) || b.iter().any(|p| matches!(p, Protocol::P2p(id) if id == *peer))
        })
    }

    fn on_disconnected(&mut self, peer: libp2p::PeerId, cause: Option<String>) {
        if !self.peers.disconnected(&peer) {
            return;
        }
        let cause = cause.unwrap_or_else(|| "closed".to_owned());
        info!(target: "net", peer = %peer, cause, "peer disconnected");
        self.emit(NetworkEvent::PeerDisconnected { peer: PeerId(peer) });
        if self.peers.connected_count() == 0 {
            self.bootstrapped = false;
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.on_gossip_message(propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, topic } => {
                debug!(target: "net", peer = %peer_id, %topic, "peer subscribed");
                if !self.unpublished.is_empty() {
                    self.retry_unpublished();
                }
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                debug!(target: "net", peer = %peer_id, "peer does not speak gossipsub");
            }
            _ => {}
        }
    }

    /// Decodes gossip for the node; undecodable gossip is rejected here and never surfaces.
    fn on_gossip_message(
        &mut self,
        source: libp2p::PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let kind = self.topics.as_ref().and_then(|t| t.kind_of(&message.topic));
        let (event, problem) = match kind {
            Some(TopicKind::Block) => match from_bytes::<Block>(&message.data, self.config.max_block_bytes) {
                Ok(block) => {
                    debug!(target: "net", peer = %source, hash = %block.block_hash(), "gossip block");
                    let (id, peer) = (MessageId(id.clone()), PeerId(source));
                    let bytes = message.data.len();
                    (Some(NetworkEvent::GossipBlock { id, peer, block, bytes }), None)
                }
                Err(e) => (None, Some(format!("undecodable block: {e}"))),
            },
            Some(TopicKind::Tx) => match from_bytes::<Transaction>(&message.data, MAX_TX_BYTES) {
                Ok(tx) => {
                    debug!(target: "net", peer = %source, txid = %tx.compute_txid(), "gossip transaction");
                    let (id, peer) = (MessageId(id.clone()), PeerId(source));
                    let bytes = message.data.len();
                    (Some(NetworkEvent::GossipTx { id, peer, tx, bytes }), None)
                }
                Err(e) => (None, Some(format!("undecodable transaction: {e}"))),
            },
            None => (None, None),
        };
        match (event, problem) {
            (Some(event), _) => self.emit(event),
            (None, Some(problem)) => {
                warn!(target: "net", peer = %source, "rejected gossip: {problem}");
                self.on_report(id, source, Verdict::Reject);
            }
            (None, None) => self.on_report(id, source, Verdict::Ignore),
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => self.on_inbound_request(peer, request, channel),
                Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.on_outbound_failure(peer, request_id, error),
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(target: "net", peer = %peer, "inbound request failed: {error}");
                if let InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.penalise(peer, Penalty::BadRequest);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Rate-limits the request, then hands it to the node with a [`Reply`] to answer it.
    fn on_inbound_request(
        &mut self,
        peer: libp2p::PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if !self.peers.allow_request(peer, Instant::now()) {
            debug!(target: "net", peer = %peer, "rate limited a request");
            let refusal = Response::Error("rate limited".to_owned());
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, refusal);
            self.penalise(peer, Penalty::RateLimited);
            return;
        }
        let (tx, rx) = oneshot::channel();
        let timeout = self.config.request_timeout;
        self.replies.push(
            async move {
                let response = match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => Response::Error("no response".to_owned()),
                    Err(_) => Response::Error("timed out".to_owned()),
                };
                PendingReply {
                    peer,
                    channel,
                    response,
                }
            }
            .boxed(),
        );
        self.emit(NetworkEvent::InboundRequest {
            peer: PeerId(peer),
            request,
            reply: Reply(tx),
        });
    }

    fn on_outbound_failure(
        &mut self,
        peer: libp2p::PeerId,
        request_id: request_response::OutboundRequestId,
        error: OutboundFailure,
    ) {
        let Some((_, reply)) = self.requests.remove(&request_id) else {
            return;
        };
        let who = PeerId(peer);
        let error = match error {
            OutboundFailure::Timeout => NetError::Timeout { peer: who },
            OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.penalise(peer, Penalty::BadResponse);
                NetError::BadResponse {
                    peer: who,
                    reason: e.to_string(),
                }
            }
            other => NetError::RequestFailed {
                peer: who,
                reason: other.to_string(),
            },
        };
        debug!(target: "net", peer = %peer, "request failed: {error}");
        let _ = reply.send(Err(error));
    }

    /// Feeds the peer's own listen addresses to the DHT (never `observed_addr`: that is *our*
    /// address as the peer sees it).
    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if !self.config.discovery || !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        for addr in info.listen_addrs.into_iter().filter(is_dialable) {
            kad.add_address(&peer_id, addr);
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                addresses,
                ..
            } => {
                debug!(target: "net", peer = %peer, "discovered peer");
                if self.config.discovery
                    && self.peers.connected_count() < self.config.max_peers as usize
                    && !self.peers.is_connected(&peer)
                {
                    self.dial_peer(peer, addresses.into_vec());
                }
            }
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(result),
                ..
            } => debug!(target: "net", ?result, "kad bootstrap step"),
            _ => {}
        }
    }
}

/// Whether an announced listen address can be dialed (not `0.0.0.0` / `::`).
fn is_dialable(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().all(|p| match p {
        Protocol::Ip4(ip) => !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_unspecified(),
        _ => true,
    })
}
