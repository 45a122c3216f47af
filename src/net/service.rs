//! The service task: the one owner of the `Swarm`, and its `select!` switchboard.
//!
//! Each arm of the loop calls one `on_*` method: swarm events (in `events.rs`), commands from
//! handles, replies the node produced for inbound requests, room in the event channel, and a
//! one-second timer (score recovery, ban expiry, dead links, publish retries, discovery).
//! Nothing here blocks or waits: slow work happens in the node and comes back through a channel.
//!
//! Every penalty goes through the [`PeerManager`]; the service carries out the [`Action`] it
//! returns (a ban: block list, gossipsub blacklist, IP denial, `PeerBanned`).
//!
//! Events for the node go through a small bounded channel; when the node is slow they wait in
//! an [`Outbox`] bounded by count ([`MAX_OUTBOX`]) and by payload bytes ([`MAX_OUTBOX_BYTES`])
//! instead of stalling the swarm (a stalled swarm would stall the very requests the node is
//! waiting on). Past that, gossip is dropped with an Ignore verdict and requests are answered
//! with an error.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use gossipcoin_proto::message::Response;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::behaviour::Behaviour;
use super::codec::{Inbound, Outbound};
use super::gossip::Topics;
use super::handle::Command;
use super::outbound::OutboundPeers;
use super::peer_manager::{Action, PeerManager};
use super::publish::{RecentMessages, Unpublished};
use super::{Misbehaviour, NetConfig, NetError, NetworkEvent, PeerId, PeerInfo, Verdict};
use crate::metrics::metrics;

/// At most this many events wait for the node beyond the channel's own buffer.
pub(super) const MAX_OUTBOX: usize = 4096;
/// At most this many bytes of gossip and request payload wait for the node beyond the
/// channel's buffer (about eight of the largest protocol blocks).
pub(super) const MAX_OUTBOX_BYTES: usize = 32 * 1024 * 1024;
/// The timer period.
const TICK: Duration = Duration::from_secs(1);
/// First redial of the bootstrap peers after the node finds itself alone (e.g. it started
/// before the central node listened); it doubles up to the discovery interval.
const ALONE_RETRY_MIN: Duration = Duration::from_secs(1);

/// The answer the node produced for an inbound request, ready to send.
pub(super) struct PendingReply {
    pub(super) peer: libp2p::PeerId,
    pub(super) request_id: InboundRequestId,
    pub(super) channel: ResponseChannel<Outbound>,
    pub(super) response: Outbound,
}

/// Events waiting for room in the channel to the node, with their payload bytes.
#[derive(Default)]
pub(super) struct Outbox {
    queue: VecDeque<(NetworkEvent, usize)>,
    bytes: usize,
    /// Whether the node was told (once per episode) that it is dropping events.
    warned: bool,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether an event of `bytes` fits; events without payload only count.
    fn fits(&self, bytes: usize) -> bool {
        self.queue.len() < MAX_OUTBOX && (bytes == 0 || self.bytes + bytes <= MAX_OUTBOX_BYTES)
    }

    fn push(&mut self, event: NetworkEvent, bytes: usize) {
        self.bytes += bytes;
        self.queue.push_back((event, bytes));
    }

    fn pop(&mut self) -> Option<NetworkEvent> {
        let (event, bytes) = self.queue.pop_front()?;
        self.bytes -= bytes;
        if self.queue.is_empty() {
            self.warned = false;
        }
        Some(event)
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    /// Takes out every event that came from `peer`.
    fn take_from(&mut self, peer: PeerId) -> Vec<NetworkEvent> {
        let (from, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|(event, _)| sender(event) == Some(peer));
        self.queue = rest;
        self.bytes = self.queue.iter().map(|(_, b)| b).sum();
        from.into_iter().map(|(event, _)| event).collect()
    }
}

/// The peer whose bytes an event carries.
fn sender(event: &NetworkEvent) -> Option<PeerId> {
    match event {
        NetworkEvent::GossipBlock { peer, .. }
        | NetworkEvent::GossipTx { peer, .. }
        | NetworkEvent::InboundRequest { peer, .. } => Some(*peer),
        _ => None,
    }
}

pub(super) struct Service {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) config: NetConfig,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) events: mpsc::Sender<NetworkEvent>,
    pub(super) outbox: Outbox,
    pub(super) peers: PeerManager,
    pub(super) topics: Option<Topics>,
    pub(super) unpublished: VecDeque<Unpublished>,
    /// Messages gossipsub would refuse to publish as duplicates.
    pub(super) recent: RecentMessages,
    pub(super) requests:
        HashMap<OutboundRequestId, (libp2p::PeerId, oneshot::Sender<Result<Response, NetError>>)>,
    pub(super) replies: FuturesUnordered<BoxFuture<'static, PendingReply>>,
    /// Responses handed to request-response, until sent or failed (the peer's unsent count).
    pub(super) unsent: HashMap<InboundRequestId, libp2p::PeerId>,
    pub(super) dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<(), NetError>>)>,
    pub(super) bootstrap: Vec<Multiaddr>,
    pub(super) listen_addrs: Vec<Multiaddr>,
    /// Whether a kad bootstrap query has been started since the node was last alone.
    pub(super) bootstrapped: bool,
    /// The outbound targets and who fills them.
    pub(super) outbound: OutboundPeers,
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
        let outbound = OutboundPeers::new(
            config.outbound_full_relay,
            config.outbound_block_relay,
            config.anchors_file.clone(),
        );
        Self {
            swarm,
            peers: {
                let mut peers =
                    PeerManager::new(config.requests_per_second_per_peer, config.ban_duration);
                peers.set_upload_budget(config.max_upload_bytes_per_sec);
                peers
            },
            config,
            commands,
            events,
            outbox: Outbox::default(),
            topics: None,
            unpublished: VecDeque::new(),
            recent: RecentMessages::default(),
            requests: HashMap::new(),
            replies: FuturesUnordered::new(),
            unsent: HashMap::new(),
            dials: HashMap::new(),
            bootstrap,
            listen_addrs: Vec::new(),
            bootstrapped: false,
            outbound,
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
            super::config::check_port_free(addr)?;
        }
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
        self.save_anchors();
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
                // request-response would dial a peer that left: a request never opens a
                // connection (the outbound targets decide whom the node connects to)
                if !self.peers.is_connected(&peer) {
                    let _ = reply.send(Err(NetError::RequestFailed {
                        peer: PeerId(peer),
                        reason: "not connected".into(),
                    }));
                    return;
                }
                let sync = &mut self.swarm.behaviour_mut().sync;
                let id = sync.send_request(&peer, Inbound::Valid(request));
                self.requests.insert(id, (peer, reply));
            }
            Command::Ban {
                peer,
                reason,
                reply,
            } => {
                self.report_peer(peer, Misbehaviour::Fatal, &reason);
                let _ = reply.send(());
            }
            Command::ReportPeer {
                peer,
                offence,
                reason,
            } => self.report_peer(peer, offence, &reason),
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
            Command::Disconnect { peer, reply } => {
                let connected = self.peers.is_connected(&peer);
                if connected {
                    let _ = self.swarm.disconnect_peer_id(peer);
                    info!(target: "net", peer = %peer, "disconnecting peer (asked by the node or its operator)");
                }
                let _ = reply.send(connected);
            }
            Command::PeerGroup { peer, reply } => {
                let _ = reply.send(self.peers.group_of(&peer));
            }
            Command::Unban { peer, reply } => {
                let lifted = self.peers.unban(&peer);
                if let Some(ips) = &lifted {
                    let behaviour = self.swarm.behaviour_mut();
                    behaviour.blocked.unblock_peer(peer);
                    behaviour.gossipsub.remove_blacklisted_peer(&peer);
                    for ip in ips {
                        behaviour.slots.unban_ip(*ip);
                    }
                    info!(target: "net", peer = %peer, ?ips, "unbanned peer (operator)");
                    self.save_bans();
                }
                let _ = reply.send(lifted.is_some());
            }
            Command::Bans { reply } => {
                let _ = reply.send(self.peers.bans(Instant::now()));
            }
        }
    }

    pub(super) fn on_report(
        &mut self,
        id: libp2p::gossipsub::MessageId,
        peer: libp2p::PeerId,
        verdict: Verdict,
    ) {
        self.validate(id, peer, verdict);
        if verdict == Verdict::Accept {
            // delivered something valid: protected from inbound eviction for a while
            self.swarm.behaviour_mut().slots.note_useful(peer);
        }
        if verdict == Verdict::Reject {
            self.report_peer(
                peer,
                Misbehaviour::High,
                "invalid gossip: rejected by the node",
            );
        }
    }

    /// Tells gossipsub whether to forward a message.
    pub(super) fn validate(
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
    }

    /// Charges `peer` through the peer manager and carries out what it decides.
    pub(super) fn report_peer(
        &mut self,
        peer: libp2p::PeerId,
        offence: Misbehaviour,
        reason: &str,
    ) {
        match self.peers.report(peer, offence, reason, Instant::now()) {
            Action::None => {}
            Action::Ban { ips, until } => self.on_banned(peer, ips, until),
        }
    }

    /// Carries out a ban: blocks the peer (closing its connections), forgets it in gossipsub
    /// and the DHT, denies its IPs, drops what it sent that still waits for the node, and
    /// tells the node.
    fn on_banned(&mut self, peer: libp2p::PeerId, ips: Vec<IpAddr>, until: Instant) {
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.block_peer(peer);
        behaviour.gossipsub.blacklist_peer(&peer);
        behaviour.kad.remove_peer(&peer);
        for ip in ips {
            self.deny_ip(ip, until);
        }
        for event in self.outbox.take_from(PeerId(peer)) {
            self.discard(event);
        }
        self.emit(NetworkEvent::PeerBanned { peer: PeerId(peer) }, 0);
        self.save_bans();
    }

    /// Writes the bans in force to the ban list file, if there is one.
    fn save_bans(&self) {
        if let Some(path) = &self.config.ban_file {
            super::banlist::save(path, self.peers.saved_bans(Instant::now()));
        }
    }

    /// Puts the bans of the ban list file back in force (at start, before any dial).
    pub(super) fn restore_bans(&mut self) {
        let Some(path) = self.config.ban_file.clone() else {
            return;
        };
        let now = Instant::now();
        for saved in super::banlist::load(&path) {
            let left = super::banlist::time_left(saved.until_unix);
            let Ok(peer) = saved.peer.parse::<libp2p::PeerId>() else {
                warn!(target: "net", peer = saved.peer, "ban list: not a peer id, skipped");
                continue;
            };
            if left.is_zero() {
                continue;
            }
            let until = now + left;
            self.peers.restore(peer, &saved.ips, until);
            let behaviour = self.swarm.behaviour_mut();
            behaviour.blocked.block_peer(peer);
            behaviour.gossipsub.blacklist_peer(&peer);
            for ip in saved.ips {
                self.deny_ip(ip, until);
            }
        }
    }

    /// Refuses connections from `ip` until `until`, before their handshake.
    ///
    /// Until the connection gate is wired, the service closes an established connection from a
    /// banned IP at once (see `on_connected`), which is later but equivalent.
    fn deny_ip(&mut self, ip: IpAddr, until: Instant) {
        self.swarm.behaviour_mut().slots.ban_ip(ip, until);
        debug!(target: "net", %ip, in_secs = until.saturating_duration_since(Instant::now()).as_secs(), "denying IP");
    }

    /// Lets connections from `ip` in again (its ban expired).
    fn allow_ip(&mut self, ip: IpAddr) {
        self.swarm.behaviour_mut().slots.unban_ip(ip);
        debug!(target: "net", %ip, "IP ban expired");
    }

    /// Lifts the bans that ran out.
    fn expire_bans(&mut self, now: Instant) {
        let expired = self.peers.expire_bans(now);
        let changed = !expired.peers.is_empty() || !expired.ips.is_empty();
        for peer in expired.peers {
            let behaviour = self.swarm.behaviour_mut();
            behaviour.blocked.unblock_peer(peer);
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
            info!(target: "net", peer = %peer, "ban expired");
        }
        for ip in expired.ips {
            self.allow_ip(ip);
        }
        if changed {
            self.save_bans();
        }
    }

    /// Closes a connection whose pings failed (ping itself never closes one).
    pub(super) fn close_dead_link(&mut self, peer: libp2p::PeerId, id: ConnectionId, why: &str) {
        if !self.peers.mark_closing(&peer, id) {
            return;
        }
        self.close_dead(peer, id, why);
    }

    fn close_dead(&mut self, peer: libp2p::PeerId, id: ConnectionId, why: &str) {
        info!(target: "net", peer = %peer, why, "ping failed: closing");
        metrics().dead_link();
        self.swarm.close_connection(id);
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let block_topic = self.topics.as_ref().map(|t| t.block.hash());
        let subscribed: std::collections::HashSet<_> = gossipsub
            .all_peers()
            .filter(|(_, topics)| block_topic.as_ref().is_some_and(|b| topics.contains(&b)))
            .map(|(peer, _)| *peer)
            .collect();
        // a banned peer is gone for the node, even while its connections close
        self.peers
            .iter_connected()
            .filter(|(peer, _)| !self.peers.is_banned(peer))
            .map(|(peer, state)| PeerInfo {
                peer: PeerId(*peer),
                addr: state
                    .addr
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                outbound: state.is_outbound(),
                kind: state.kind,
                status: state.status,
                score: state.score,
                gossip_score: gossipsub.peer_score(peer),
                subscribed: subscribed.contains(peer),
                ping_ms: state.ping.map(|d| d.as_secs_f64() * 1000.0),
            })
            .collect()
    }

    /// Queues an event for the node, never blocking the swarm; `bytes` is its payload (gossip
    /// data, request size), 0 for events without one.
    pub(super) fn emit(&mut self, event: NetworkEvent, bytes: usize) {
        if self.events.is_closed() {
            // the node dropped its receiver (it is shutting down): nobody to tell
            self.outbox.clear();
            return;
        }
        if self.outbox.is_empty() {
            match self.events.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(event)) => self.outbox.push(event, bytes),
            }
        } else if self.outbox.fits(bytes) {
            self.outbox.push(event, bytes);
        } else {
            self.drop_event(event);
        }
    }

    /// Gives up on an event the node has no room for.
    fn drop_event(&mut self, event: NetworkEvent) {
        let kind = match event {
            NetworkEvent::GossipBlock { .. } | NetworkEvent::GossipTx { .. } => "gossip",
            NetworkEvent::InboundRequest { .. } => "request",
            _ => "other",
        };
        metrics().event_dropped(kind);
        if !std::mem::replace(&mut self.outbox.warned, true) {
            warn!(target: "net", "the node is not keeping up with network events; dropping them");
        }
        debug!(target: "net", peer = ?sender(&event), kind, "dropped an event");
        self.discard(event);
    }

    /// Settles an event the node will not see: gossip gets Ignore, a request an error
    /// (dropping its Reply answers `Response::Error`).
    fn discard(&mut self, event: NetworkEvent) {
        if let NetworkEvent::GossipBlock { id, peer, .. }
        | NetworkEvent::GossipTx { id, peer, .. } = event
        {
            self.validate(id.0, peer.0, Verdict::Ignore);
        }
    }

    fn on_event_room(permit: mpsc::Permit<'_, NetworkEvent>, outbox: &mut Outbox) {
        if let Some(event) = outbox.pop() {
            permit.send(event);
        }
    }

    /// Sends the node's answer, charged to the peer's byte budget; a peer that spent its
    /// budget while the node worked (a burst of requests admitted together) gets "busy".
    fn on_reply(&mut self, reply: PendingReply) {
        let PendingReply {
            peer,
            request_id,
            channel,
            mut response,
        } = reply;
        let now = Instant::now();
        if self.peers.is_banned(&peer) {
            response = Outbound::Value(Response::Error("banned".to_owned()));
        } else if !response.is_error() && self.peers.out_of_response_bytes(&peer, now) {
            debug!(target: "net", peer = %peer, "out of response bytes: answering busy");
            response = Outbound::Value(Response::Error("busy".to_owned()));
            self.report_peer(peer, Misbehaviour::Low, "busy");
        }
        let bytes = response.len();
        let sync = &mut self.swarm.behaviour_mut().sync;
        if sync.send_response(channel, response).is_err() {
            debug!(target: "net", peer = %peer, "the peer stopped waiting for our response");
            return;
        }
        self.peers.response_handed(peer, bytes, now);
        self.unsent.insert(request_id, peer);
    }

    /// A response we handed over was written, or failed: it no longer counts as unsent.
    pub(super) fn on_response_finished(&mut self, request_id: InboundRequestId) {
        if let Some(peer) = self.unsent.remove(&request_id) {
            self.peers.response_done(&peer);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.peers
            .recover(now.saturating_duration_since(self.last_tick));
        self.last_tick = now;
        self.expire_bans(now);
        for (peer, id) in self.peers.dead_connections(now) {
            self.close_dead(peer, id, "no answer to pings");
        }
        self.retry_unpublished();
        if self.peers.connected_count() > 0 || self.bootstrap.is_empty() {
            self.alone_retry = ALONE_RETRY_MIN;
        } else if now.saturating_duration_since(self.last_alone_dial) >= self.alone_retry {
            let bootstrap: Vec<String> = self.bootstrap.iter().map(|a| a.to_string()).collect();
            warn!(target: "net", retry_in_secs = self.alone_retry.as_secs(), bootstrap = %bootstrap.join(","),
                  "no peers: the bootstrap peers cannot be reached (not running? wrong --bootstrap?); redialing");
            self.last_alone_dial = now;
            self.alone_retry = (self.alone_retry * 2).min(self.config.discovery_interval);
            self.dial_bootstrap();
        }
        self.outbound.expire(now);
        if now.saturating_duration_since(self.last_discovery) >= self.config.discovery_interval {
            self.last_discovery = now;
            self.discover();
        } else {
            self.fill_outbound();
        }
        self.close_idle_discovery(now);
    }
}
