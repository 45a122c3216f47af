//! What the service does with each swarm event: connections, gossip, sync requests and
//! responses, identify and kad. Each protocol's events go to one `on_*` method.

use std::time::Instant;

use futures::FutureExt;
use gossipcoin_proto::encode::from_bytes;
use gossipcoin_proto::message::{Response, TopicKind};
use gossipcoin_proto::{Block, MAX_TX_BYTES, Transaction};
use libp2p::core::ConnectedPoint;
use libp2p::request_response::{self, InboundRequestId, Message, OutboundFailure, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, gossipsub, identify, kad, ping};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::behaviour::{BehaviourEvent, KAD_PROTOCOL};
use super::codec::{Inbound, Outbound};
use super::dial::split_peer;
use super::peer_manager::bannable_ip;
use super::service::{PendingReply, Service};
use super::{MessageId, Misbehaviour, NetError, NetworkEvent, PeerId, PeerKind, Reply, Verdict};

impl Service {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossipsub(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.on_ping(e),
            SwarmEvent::Behaviour(BehaviourEvent::Slots(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Blocked(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: "net", addr = %address, peer = %self.swarm.local_peer_id(), "listening");
                self.listen_addrs.push(address.clone());
                self.emit(
                    NetworkEvent::Listening {
                        addr: address.to_string(),
                    },
                    0,
                );
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
                let manual = match self.dials.remove(&connection_id) {
                    Some((_, reply)) => {
                        let _ = reply.send(Ok(()));
                        true
                    }
                    None => false,
                };
                self.on_connected(peer_id, connection_id, endpoint, manual);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                self.on_disconnected(peer_id, connection_id, close_cause(cause.as_ref()));
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(target: "net", peer = ?peer_id, "dial failed: {error}");
                self.outbound
                    .dial_failed(connection_id, peer_id, Instant::now());
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

    fn on_connected(
        &mut self,
        peer: libp2p::PeerId,
        id: ConnectionId,
        endpoint: ConnectedPoint,
        manual: bool,
    ) {
        let (addr, outbound) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address, true),
            ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr, false),
        };
        if let Some(ip) = bannable_ip(&addr)
            && self.peers.is_ip_banned(&ip)
        {
            debug!(target: "net", peer = %peer, %ip, "closing a connection from a banned IP");
            self.swarm.close_connection(id);
            return;
        }
        let now = Instant::now();
        let kind = match (outbound, manual) {
            (false, _) => PeerKind::Inbound,
            (true, true) => PeerKind::Manual,
            (true, false) => self.outbound.established(id, peer, &addr, now),
        };
        if !self.peers.connected(peer, id, addr.clone(), kind, now) {
            return;
        }
        let bootstrap = outbound && self.is_bootstrap(peer, &addr);
        let kind = self.peers.kind_of(&peer).unwrap_or(kind);
        if kind == PeerKind::Discovery {
            debug!(target: "net", peer = %peer, addr = %addr, "DHT connection opened");
        } else {
            info!(target: "net", peer = %peer, addr = %addr, outbound, bootstrap, kind = %kind, "peer connected");
        }
        if kind == PeerKind::BlockRelay {
            self.save_anchors();
        }
        self.emit(
            NetworkEvent::PeerConnected {
                peer: PeerId(peer),
                addr: addr.to_string(),
                outbound,
                kind,
                bootstrap,
            },
            0,
        );
        if self.config.discovery && !self.bootstrapped {
            // Our first peer: ask the DHT for our neighbours (kad repeats it periodically).
            self.bootstrapped = self.swarm.behaviour_mut().kad.bootstrap().is_ok();
        }
    }

    /// Whether a peer we dialled at `addr` is one of our bootstrap peers: the same address
    /// (with or without `/p2p/`), or the peer id a bootstrap address names.
    fn is_bootstrap(&self, peer: libp2p::PeerId, addr: &Multiaddr) -> bool {
        let plain = |a: &Multiaddr| split_peer(a).map_or_else(|| a.clone(), |(_, plain)| plain);
        let dialled = plain(addr);
        self.bootstrap.iter().any(|b| match split_peer(b) {
            Some((id, plain_b)) => id == peer || plain_b == dialled,
            None => *b == dialled,
        })
    }

    fn on_disconnected(&mut self, peer: libp2p::PeerId, id: ConnectionId, cause: String) {
        if !self.peers.disconnected(&peer, id) {
            return;
        }
        let held = self.outbound.kind_of(&peer);
        self.outbound.closed(&peer, Instant::now());
        if held == Some(PeerKind::BlockRelay) {
            self.save_anchors();
        }
        if self.peers.is_banned(&peer) {
            // PeerBanned was the last word about it
            debug!(target: "net", peer = %peer, cause, "banned peer disconnected");
        } else {
            info!(target: "net", peer = %peer, cause, "peer disconnected");
            self.emit(NetworkEvent::PeerDisconnected { peer: PeerId(peer) }, 0);
        }
        if self.peers.connected_count() == 0 {
            self.bootstrapped = false;
        }
    }

    /// Records a round trip, or closes a connection whose pings fail.
    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(rtt) => {
                self.swarm.behaviour_mut().slots.note_rtt(event.peer, rtt);
                self.peers
                    .set_ping(&event.peer, event.connection, rtt, Instant::now());
            }
            Err(ping::Failure::Unsupported) => self.peers.set_ping_unsupported(&event.peer),
            Err(failure) => {
                self.close_dead_link(event.peer, event.connection, &failure.to_string())
            }
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

    /// Decodes gossip for the node; undecodable or oversized gossip is rejected here and
    /// never surfaces, and gossip from a banned peer is ignored.
    fn on_gossip_message(
        &mut self,
        source: libp2p::PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        self.recent.insert(id.clone(), Instant::now());
        if self.peers.is_banned(&source) {
            return self.validate(id, source, Verdict::Ignore);
        }
        let kind = self.topics.as_ref().and_then(|t| t.kind_of(&message.topic));
        let len = message.data.len();
        let limit = self.config.max_block_bytes;
        let decoded = match kind {
            Some(TopicKind::Block) if len > limit => {
                Err(format!("oversized block: {len} bytes, over {limit}"))
            }
            Some(TopicKind::Block) => match from_bytes::<Block>(&message.data, limit) {
                Ok(block) => {
                    debug!(target: "net", peer = %source, hash = %block.block_hash(), "gossip block");
                    let (id, peer) = (MessageId(id.clone()), PeerId(source));
                    Ok(Some(NetworkEvent::GossipBlock {
                        id,
                        peer,
                        block,
                        bytes: len,
                    }))
                }
                Err(e) => Err(format!("undecodable block: {e}")),
            },
            Some(TopicKind::Tx) => match from_bytes::<Transaction>(&message.data, MAX_TX_BYTES) {
                Ok(tx) => {
                    debug!(target: "net", peer = %source, txid = %tx.compute_txid(), "gossip transaction");
                    let (id, peer) = (MessageId(id.clone()), PeerId(source));
                    Ok(Some(NetworkEvent::GossipTx {
                        id,
                        peer,
                        tx,
                        bytes: len,
                    }))
                }
                Err(e) => Err(format!("undecodable transaction: {e}")),
            },
            None => Ok(None),
        };
        match decoded {
            Ok(Some(event)) => self.emit(event, len),
            Ok(None) => self.validate(id, source, Verdict::Ignore),
            Err(problem) => {
                warn!(target: "net", peer = %source, "rejected gossip: {problem}");
                self.validate(id, source, Verdict::Reject);
                self.report_peer(
                    source,
                    Misbehaviour::High,
                    &format!("invalid gossip: {problem}"),
                );
            }
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Inbound, Outbound>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request_id,
                    request,
                    channel,
                } => self.on_inbound_request(peer, request_id, request, channel),
                Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.requests.remove(&request_id) {
                        let response = match response {
                            Outbound::Value(response) => response,
                            // the codec reads values only
                            Outbound::Encoded(_) => Response::Error("unexpected bytes".into()),
                        };
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
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(target: "net", peer = %peer, "inbound request failed: {error}");
                self.on_response_finished(request_id);
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.on_response_finished(request_id)
            }
        }
    }

    /// Answers a malformed request or one over the peer's rate or budget at once (charging
    /// the peer), and hands the others to the node with a [`Reply`] to answer them.
    fn on_inbound_request(
        &mut self,
        peer: libp2p::PeerId,
        request_id: InboundRequestId,
        request: Inbound,
        channel: ResponseChannel<Outbound>,
    ) {
        if self.peers.is_banned(&peer) {
            return self.refuse(channel, "banned".to_owned());
        }
        let request = match request {
            Inbound::Valid(request) => request,
            Inbound::Malformed(reason) => {
                let reason = format!("malformed request: {reason}");
                debug!(target: "net", peer = %peer, "{reason}");
                self.refuse(channel, reason.clone());
                return self.report_peer(peer, Misbehaviour::Mid, &reason);
            }
        };
        if let Err(refusal) = self.peers.admit_request(peer, Instant::now()) {
            debug!(target: "net", peer = %peer, refusal = refusal.message(), "refused a request");
            self.refuse(channel, refusal.message().to_owned());
            return self.report_peer(peer, Misbehaviour::Low, refusal.message());
        }
        let (tx, rx) = oneshot::channel();
        let timeout = self.config.request_timeout;
        self.replies.push(
            async move {
                let response = match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => Outbound::Value(Response::Error("no response".to_owned())),
                    Err(_) => Outbound::Value(Response::Error("timed out".to_owned())),
                };
                PendingReply {
                    peer,
                    request_id,
                    channel,
                    response,
                }
            }
            .boxed(),
        );
        let bytes = postcard::experimental::serialized_size(&request).unwrap_or(0);
        self.emit(
            NetworkEvent::InboundRequest {
                peer: PeerId(peer),
                request,
                reply: Reply(tx),
            },
            bytes,
        );
    }

    /// Answers a request with an error before the node sees it (not counted as unsent: it is
    /// a few bytes).
    fn refuse(&mut self, channel: ResponseChannel<Outbound>, why: String) {
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, Outbound::Value(Response::Error(why)));
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
                self.report_peer(peer, Misbehaviour::Mid, &format!("bad response: {e}"));
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
        // no addresses from block-relay-only peers (Core: no address relay with them)
        if self.outbound.kind_of(&peer_id) == Some(PeerKind::BlockRelay) {
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
                debug!(target: "net", peer = %peer, addresses = addresses.len(), "discovered peer");
                self.fill_outbound();
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

/// Why a connection ended, in words: "closed" when either side closed it normally (a node
/// stopping, an idle connection, our own disconnect), else the error.
///
/// A peer that stops closes its connection, and libp2p reports that as an I/O error (yamux's
/// "connection is closed", or a reset or end of file from TCP): logging it as an error made every
/// normal stop look like a fault.
fn close_cause(cause: Option<&libp2p::swarm::ConnectionError>) -> String {
    use std::io::ErrorKind;
    match cause {
        None => "closed".to_owned(),
        Some(libp2p::swarm::ConnectionError::KeepAliveTimeout) => "idle".to_owned(),
        Some(libp2p::swarm::ConnectionError::IO(e)) => {
            let normal = matches!(
                e.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            ) || e.to_string().ends_with("connection is closed");
            if normal {
                "closed by the peer".to_owned()
            } else {
                format!("I/O error: {e}")
            }
        }
    }
}

#[cfg(test)]
mod close_cause_tests {
    use std::io;

    use libp2p::swarm::ConnectionError;

    use super::close_cause;

    #[test]
    fn a_normal_close_is_not_an_error() {
        assert_eq!(close_cause(None), "closed");
        let yamux = ConnectionError::IO(io::Error::other("connection is closed"));
        assert_eq!(close_cause(Some(&yamux)), "closed by the peer");
        let eof = ConnectionError::IO(io::ErrorKind::UnexpectedEof.into());
        assert_eq!(close_cause(Some(&eof)), "closed by the peer");
        let reset = ConnectionError::IO(io::ErrorKind::ConnectionReset.into());
        assert_eq!(close_cause(Some(&reset)), "closed by the peer");
        assert_eq!(
            close_cause(Some(&ConnectionError::KeepAliveTimeout)),
            "idle"
        );
        let other = ConnectionError::IO(io::Error::other("noise handshake: bad MAC"));
        assert_eq!(
            close_cause(Some(&other)),
            "I/O error: noise handshake: bad MAC"
        );
    }
}
