//! The service task: the one owner of the `Swarm`, and its `select!` switchboard.
//!
//! Each arm of the loop calls one `on_*` method: swarm events (in `events.rs`), commands from
//! handles, replies the node produced for inbound requests, room in the event channel, and a
//! one-second timer (score recovery, publish retries, discovery). Nothing here blocks or waits:
//! slow work happens in the node and comes back through a channel.
//!
//! Events for the node go through a bounded channel; when the node is slow they wait in an
//! outbox of at most [`MAX_OUTBOX`] events instead of stalling the swarm (a stalled swarm
//! would stall the very requests the node is waiting on). Past that, gossip is dropped with an
//! Ignore verdict and requests are answered with an error.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use gossipcoin_proto::message::Response;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::behaviour::Behaviour;
use super::gossip::Topics;
use super::handle::Command;
use super::peers::{BAN_SCORE, Peers, Penalty};
use super::publish::Unpublished;
use super::{NetConfig, NetError, NetworkEvent, PeerId, PeerInfo, Verdict};

/// At most this many events wait for the node beyond the channel's own buffer.
pub(super) const MAX_OUTBOX: usize = 4096;
/// The timer period.
const TICK: Duration = Duration::from_secs(1);
/// First redial of the bootstrap peers after the node finds itself alone (e.g. it started
/// before the central node listened); it doubles up to the discovery interval.
const ALONE_RETRY_MIN: Duration = Duration::from_secs(1);

/// The answer the node produced for an inbound request, ready to send.
pub(super) struct PendingReply {
    pub(super) peer: libp2p::PeerId,
    pub(super) channel: ResponseChannel<Response>,
    pub(super) response: Response,
}

pub(super) struct Service {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) config: NetConfig,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) events: mpsc::Sender<NetworkEvent>,
    pub(super) outbox: VecDeque<NetworkEvent>,
    pub(super) peers: Peers,
    pub(super) topics: Option<Topics>,
    pub(super) unpublished: VecDeque<Unpublished>,
    pub(super) requests:
        HashMap<OutboundRequestId, (libp2p::PeerId, oneshot::Sender<Result<Response, NetError>>)>,
    pub(super) replies: FuturesUnordered<BoxFuture<'static, PendingReply>>,
    pub(super) dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<(), NetError>>)>,
    pub(super) bootstrap: Vec<Multiaddr>,
    pub(super) listen_addrs: Vec<Multiaddr>,
    /// Whether a kad bootstrap query has been started since the node was last alone.
    pub(super) bootstrapped: bool,
    last_tick: Instant,
    last_discovery: Instant,
    /// While the node has no peer: when it last redialed the bootstrap peers, and how long it
    /// waits before the next try (1 s, doubling up to the discovery interval).
    last_alone_dial: Instant,
    alone_retry: Duration,
}

impl Service {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        config: NetConfig,
        bootstrap: Vec<Multiaddr>,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
    ) -> Self {
        let now = Instant::now();
        Self {
            swarm,
            peers: Peers::new(config.requests_per_second_per_peer),
            config,
            commands,
            events,
            outbox: VecDeque::new(),
            topics: None,
            unpublished: VecDeque::new(),
            requests: HashMap::new(),
            replies: FuturesUnordered::new(),
            dials: HashMap::new(),
            bootstrap,
            listen_addrs: Vec::new(),
            bootstrapped: false,
            last_tick: now,
            last_discovery: now,
            last_alone_dial: now,
            alone_retry: ALONE_RETRY_MIN,
        }
    }

    /// Opens the listeners and waits until each has an address, so the addresses are known
    /// when `spawn` returns.
    pub(super) async fn listen(&mut self, addrs: &[Multiaddr]) -> Result<(), NetError> {
        for addr in addrs {
            self.swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.listen_addrs.len() < addrs.len() {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => {
                    return Err(NetError::Listen {
                        addr: format!("{addrs:?}"),
                        reason: "no listen address after 10 s".to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs until `shutdown` turns true (or its sender or every handle is dropped).
    pub(super) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A permit borrows its sender; reserving on a local clone leaves `self` free.
        let events = self.events.clone();
        while !*shutdown.borrow_and_update() {
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() { break },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => self.on_reply(reply),
                Ok(permit) = events.reserve(), if !self.outbox.is_empty() =>
                    Self::on_event_room(permit, &mut self.outbox),
                _ = tick.tick() => self.on_tick(),
            }
        }
        info!(target: "net", "network service stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join { genesis, reply } => {
                let _ = reply.send(self.join(genesis));
            }
            Command::Publish { kind, data, name } => self.publish(Unpublished { kind, data, name }),
            Command::Report { id, peer, verdict } => self.on_report(id, peer, verdict),
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.requests.insert(id, (peer, reply));
            }
            Command::ReportPeer {
                peer,
                action,
                reason,
            } => match action {
                super::Misbehaviour::Fatal => self.ban(peer, &reason),
                super::Misbehaviour::High => self.penalise(peer, Penalty::InvalidGossip),
                super::Misbehaviour::Mid => self.penalise(peer, Penalty::BadRequest),
                super::Misbehaviour::Low => self.penalise(peer, Penalty::RateLimited),
            },
            Command::Ban {
                peer,
                reason,
                reply,
            } => {
                self.ban(peer, &reason);
                let _ = reply.send(());
            }
            Command::Dial { addr, reply } => self.on_dial(addr, reply),
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_infos());
            }
            Command::SetStatus {
                peer,
                status,
                raise_only: false,
            } => self.peers.set_status(&peer, status),
            Command::SetStatus {
                peer,
                status,
                raise_only: true,
            } => self.peers.raise_tip(&peer, status),
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs.iter().map(|a| a.to_string()).collect());
            }
        }
    }

    pub(super) fn on_report(
        &mut self,
        id: libp2p::gossipsub::MessageId,
        peer: libp2p::PeerId,
        verdict: Verdict,
    ) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject => MessageAcceptance::Reject,
            Verdict::Ignore => MessageAcceptance::Ignore,
        };
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        if !gossipsub.report_message_validation_result(&id, &peer, acceptance) {
            debug!(target: "net", peer = %peer, "verdict on a message no longer in the cache");
        }
        if verdict == Verdict::Reject {
            self.penalise(peer, Penalty::InvalidGossip);
        }
    }

    /// Lowers the peer's score, banning it at [`BAN_SCORE`].
    pub(super) fn penalise(&mut self, peer: libp2p::PeerId, penalty: Penalty) {
        let score = self.peers.penalise(peer, penalty, Instant::now());
        debug!(target: "net", peer = %peer, ?penalty, score, "penalised peer");
        if score <= BAN_SCORE {
            self.ban(peer, &format!("score {score} after {penalty:?}"));
        }
    }

    /// Blocks the peer (closing its connections) and forgets it in gossipsub and the DHT.
    pub(super) fn ban(&mut self, peer: libp2p::PeerId, reason: &str) {
        let behaviour = self.swarm.behaviour_mut();
        if !behaviour.blocked.block_peer(peer) {
            return;
        }
        behaviour.gossipsub.blacklist_peer(&peer);
        behaviour.kad.remove_peer(&peer);
        warn!(target: "net", peer = %peer, reason, "banned peer");
        self.emit(NetworkEvent::PeerBanned { peer: PeerId(peer) });
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let block_topic = self.topics.as_ref().map(|t| t.block.hash());
        let subscribed: std::collections::HashSet<_> = gossipsub
            .all_peers()
            .filter(|(_, topics)| block_topic.as_ref().is_some_and(|b| topics.contains(&b)))
            .map(|(peer, _)| *peer)
            .collect();
        self.peers
            .iter_connected()
            .map(|(peer, state)| PeerInfo {
                peer: PeerId(*peer),
                addr: state
                    .addr
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                status: state.status,
                score: state.score,
                gossip_score: gossipsub.peer_score(peer),
                subscribed: subscribed.contains(peer),
                ping_ms: state.ping.map(|d| d.as_secs_f64() * 1000.0),
            })
            .collect()
    }

    /// Queues an event for the node, never blocking the swarm.
    pub(super) fn emit(&mut self, event: NetworkEvent) {
        if self.events.is_closed() {
            // the node dropped its receiver (it is shutting down): nobody to tell
            self.outbox.clear();
            return;
        }
        if self.outbox.is_empty() {
            match self.events.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(event)) => self.outbox.push_back(event),
            }
        } else if self.outbox.len() < MAX_OUTBOX {
            self.outbox.push_back(event);
        } else {
            self.drop_event(event);
        }
    }

    /// Gives up on an event the node has no room for.
    fn drop_event(&mut self, event: NetworkEvent) {
        warn!(target: "net", "the node is not keeping up with network events; dropping one");
        match event {
            NetworkEvent::GossipBlock { id, peer, .. }
            | NetworkEvent::GossipTx { id, peer, .. } => {
                self.on_report(id.0, peer.0, Verdict::Ignore)
            }
            // dropping the Reply answers the peer with an error
            _ => {}
        }
    }

    fn on_event_room(permit: mpsc::Permit<'_, NetworkEvent>, outbox: &mut VecDeque<NetworkEvent>) {
        if let Some(event) = outbox.pop_front() {
            permit.send(event);
        }
    }

    fn on_reply(&mut self, reply: PendingReply) {
        let sync = &mut self.swarm.behaviour_mut().sync;
        if sync.send_response(reply.channel, reply.response).is_err() {
            debug!(target: "net", peer = %reply.peer, "the peer stopped waiting for our response");
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.peers
            .recover(now.saturating_duration_since(self.last_tick));
        self.last_tick = now;
        self.retry_unpublished();
        if self.peers.connected_count() > 0 || self.bootstrap.is_empty() {
            self.alone_retry = ALONE_RETRY_MIN;
        } else if now.saturating_duration_since(self.last_alone_dial) >= self.alone_retry {
            debug!(target: "net", retry_in = ?self.alone_retry, "no peers; redialing the bootstrap peers");
            self.last_alone_dial = now;
            self.alone_retry = (self.alone_retry * 2).min(self.config.discovery_interval);
            self.dial_bootstrap();
        }
        if now.saturating_duration_since(self.last_discovery) >= self.config.discovery_interval {
            self.last_discovery = now;
            self.discover();
        }
    }
}
