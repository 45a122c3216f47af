//! Connection slots: who may hold an inbound connection, and who gives one up for a newcomer.
//!
//! [`Slots`] is the first behaviour of the node, so what it refuses is never half set up in the
//! others. It follows the shape of `connection_limits::Behaviour` (count at
//! `handle_pending_inbound_connection` / `handle_established_inbound_connection`, keep the books
//! in `on_swarm_event`) and adds what that behaviour cannot do (it counts; it does not choose):
//!
//! - **Per-address limits.** At most [`PENDING_PER_IP`] inbound connections in their handshake
//!   from one IP, and at most [`ESTABLISHED_PER_IP`] established ones ([`ESTABLISHED_PER_LOOPBACK_IP`]
//!   for a loopback address, where a whole test network shares 127.0.0.1). The pending limit is
//!   the same for loopback: a handshake takes milliseconds, and half-open sockets from one
//!   address must not take every pending slot (the global limit is [`MAX_PENDING_INBOUND`]).
//!   With [`HANDSHAKE_TIMEOUT`] a silent socket costs its slot for a few seconds at most.
//!   An IPv6 /64 counts as one address (one subscriber's allocation).
//! - **Pending eviction.** A full handshake table never refuses a newcomer outright: the
//!   oldest handshake of the network group holding the most of them gives up its place (it is
//!   refused when, if ever, it completes), so half-open sockets from many addresses cannot
//!   lock new peers out. libp2p's own pending limit, [`MAX_PENDING_HARD`], bounds the sockets.
//! - **Denied addresses.** [`Slots::ban_ip`] until an instant, [`Slots::unban_ip`]; checked when
//!   a connection arrives, before any handshake work.
//! - **Inbound eviction**, as Bitcoin Core's `SelectNodeToEvict` (net.cpp): when an inbound
//!   connection is established while the inbound slots (`max_peers`) are full, the newcomer is
//!   kept and one existing inbound connection is closed instead. Protected from eviction are the
//!   peers that most recently delivered a valid block or transaction ([`Slots::note_useful`]),
//!   those with the lowest ping ([`Slots::note_rtt`]), and the longest-connected half of the
//!   rest; among the others, the network group (the IP on loopback, the /16 of an IPv4 address,
//!   the /32 of an IPv6 one) with the most connections loses its youngest connection. Only when
//!   everyone is protected is the newcomer refused. Outbound connections are never candidates:
//!   outbound slots are counted separately (by `connection_limits`) and stay ours.
//!
//! The choice is the pure function [`select_to_evict`] over [`Candidate`] records.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use tracing::{debug, info};

/// Inbound connections from one IP still in their TCP + Noise + Yamux handshake.
pub(super) const PENDING_PER_IP: usize = 8;
/// Established inbound connections from one non-loopback IP.
pub(super) const ESTABLISHED_PER_IP: usize = 4;
/// Established inbound connections from one loopback IP: a local testnet of hundreds of
/// nodes shares 127.0.0.1, so only the inbound cap (`max_peers`) and eviction bound them.
pub(super) const ESTABLISHED_PER_LOOPBACK_IP: usize = 1024;
/// Inbound connections in their handshake, from everyone: high enough that the per-IP limit,
/// not this one, stops a single attacker.
pub(super) const MAX_PENDING_INBOUND: u32 = 128;
/// Handshakes in progress at all, including those that gave up their place (libp2p's limit:
/// what bounds the sockets and their memory).
pub(super) const MAX_PENDING_HARD: u32 = 4 * MAX_PENDING_INBOUND;
/// Inbound connections allowed above `max_peers` while evicted ones are still closing: the
/// hard cap is `max_peers + EVICTION_SLACK`.
pub(super) const EVICTION_SLACK: u32 = 8;
/// A connection that has not finished TCP + Noise + Yamux by then is dropped (libp2p's
/// default is 10 s, during which a silent socket holds a pending slot).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many recently useful peers are protected (Core: 4 for blocks + 4 for txs).
const PROTECT_USEFUL: usize = 8;
/// At most this many lowest-ping peers are protected (Core: 8).
const PROTECT_PING: usize = 8;

/// Why [`Slots`] refused an inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The address is denied until its ban expires.
    Banned(IpAddr),
    /// Too many handshakes from this address.
    PendingPerIp { ip: IpAddr, limit: usize },
    /// Too many established connections from this address.
    EstablishedPerIp { ip: IpAddr, limit: usize },
    /// The inbound slots are full and every holder is protected (or the hard cap is reached).
    Full { limit: usize },
    /// Its handshake gave up its place to a newcomer while the handshake table was full.
    PendingEvicted,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Banned(ip) => write!(f, "address {ip} is banned"),
            Self::PendingPerIp { ip, limit } => {
                write!(f, "already {limit} handshakes in progress from {ip}")
            }
            Self::EstablishedPerIp { ip, limit } => {
                write!(f, "already {limit} inbound connections from {ip}")
            }
            Self::Full { limit } => {
                write!(f, "all {limit} inbound slots are taken by protected peers")
            }
            Self::PendingEvicted => {
                write!(
                    f,
                    "its handshake made room for a newcomer's in a full table"
                )
            }
        }
    }
}

impl std::error::Error for Refused {}

/// What eviction knows about one inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    /// Its network group ([`net_group`]).
    pub(super) group: IpAddr,
    /// When it was established.
    pub(super) since: Instant,
    /// The peer's lowest ping so far, if measured.
    pub(super) rtt: Option<Duration>,
    /// When the peer last delivered a valid block or transaction.
    pub(super) useful: Option<Instant>,
}

/// The index of the inbound connection to close for a newcomer, or `None` when every
/// candidate is protected (Core's `SelectNodeToEvict`, scaled down for small `max_peers`:
/// each protection takes at most a quarter of the candidates left, uptime half).
pub(super) fn select_to_evict(candidates: &[Candidate]) -> Option<usize> {
    let mut left: Vec<usize> = (0..candidates.len()).collect();
    // Recently useful peers, most recent first.
    let quota = PROTECT_USEFUL.min(left.len() / 4);
    left.sort_by_key(|&i| std::cmp::Reverse(candidates[i].useful));
    let protected = left
        .iter()
        .take(quota)
        .take_while(|&&i| candidates[i].useful.is_some())
        .count();
    left.drain(..protected);
    // The lowest pings (unmeasured peers are not protected).
    let quota = PROTECT_PING.min(left.len() / 4);
    left.sort_by_key(|&i| (candidates[i].rtt.is_none(), candidates[i].rtt));
    let protected = left
        .iter()
        .take(quota)
        .take_while(|&&i| candidates[i].rtt.is_some())
        .count();
    left.drain(..protected);
    // The longest-connected half of the rest.
    left.sort_by_key(|&i| candidates[i].since);
    left.drain(..left.len() / 2);
    // The group with the most connections (ties: the one with the youngest member) loses its
    // youngest connection.
    let mut groups: HashMap<IpAddr, (usize, usize)> = HashMap::new(); // count, youngest
    for &i in &left {
        let entry = groups.entry(candidates[i].group).or_insert((0, i));
        entry.0 += 1;
        if candidates[i].since >= candidates[entry.1].since {
            entry.1 = i;
        }
    }
    groups
        .into_values()
        .max_by_key(|&(count, youngest)| (count, candidates[youngest].since))
        .map(|(_, youngest)| youngest)
}

/// The network group of an address: the address itself on loopback (each local process is
/// its own group), else the /16 of an IPv4 address or the /32 of an IPv6 one (Core's groups
/// without the AS map).
pub(super) fn net_group(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return ip;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, 0, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], 0, 0, 0, 0, 0, 0))
        }
    }
}

/// How many established inbound connections one IP may hold.
pub(super) fn established_limit(ip: IpAddr) -> usize {
    if ip.to_canonical().is_loopback() {
        ESTABLISHED_PER_LOOPBACK_IP
    } else {
        ESTABLISHED_PER_IP
    }
}

/// The IP of a TCP multiaddr (`/ip4/…/tcp/…`), canonical (IPv4-mapped IPv6 → IPv4).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip).to_canonical()),
        _ => None,
    })
}

/// One established inbound connection.
#[derive(Debug, Clone, Copy)]
struct Inbound {
    peer: PeerId,
    ip: Option<IpAddr>,
    since: Instant,
}

/// The connection-slot behaviour (see the module docs).
pub(super) struct Slots {
    /// Inbound slots (`NetConfig::max_peers`).
    max_inbound: usize,
    /// Handshakes holding a place: the address (a /64 for IPv6) and when they began.
    pending: HashMap<ConnectionId, (IpAddr, Instant)>,
    /// Handshakes that gave up their place: refused if they complete.
    evicted_pending: HashSet<ConnectionId>,
    inbound: HashMap<ConnectionId, Inbound>,
    /// Inbound connections we asked the swarm to close, not yet closed.
    closing: HashSet<ConnectionId>,
    banned: HashMap<IpAddr, Instant>,
    useful: HashMap<PeerId, Instant>,
    rtt: HashMap<PeerId, Duration>,
    to_close: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
}

impl Slots {
    /// Slots for at most `max_inbound` inbound connections (outbound ones are not counted).
    pub(super) fn new(max_inbound: u32) -> Self {
        Self {
            max_inbound: max_inbound as usize,
            pending: HashMap::new(),
            evicted_pending: HashSet::new(),
            inbound: HashMap::new(),
            closing: HashSet::new(),
            banned: HashMap::new(),
            useful: HashMap::new(),
            rtt: HashMap::new(),
            to_close: VecDeque::new(),
            waker: None,
        }
    }

    /// Refuses inbound connections from `ip` until `until` (existing ones stay; the peer
    /// manager closes the offender's).
    pub(super) fn ban_ip(&mut self, ip: IpAddr, until: Instant) {
        let ip = super::budgets::ban_scope(ip);
        let now = Instant::now();
        self.banned.retain(|_, t| *t > now);
        debug!(target: "net", %ip, in_secs = until.saturating_duration_since(now).as_secs(), "address banned");
        self.banned.insert(ip, until);
    }

    /// Lifts a ban on `ip`.
    pub(super) fn unban_ip(&mut self, ip: IpAddr) {
        self.banned.remove(&super::budgets::ban_scope(ip));
    }

    /// Records that `peer` just delivered a valid block or transaction (eviction protects the
    /// most recent ones).
    pub(super) fn note_useful(&mut self, peer: PeerId) {
        self.useful.insert(peer, Instant::now());
    }

    /// Records a ping round trip of `peer` (eviction protects the lowest).
    pub(super) fn note_rtt(&mut self, peer: PeerId, rtt: Duration) {
        let best = self.rtt.entry(peer).or_insert(rtt);
        *best = (*best).min(rtt);
    }

    fn is_banned(&mut self, ip: IpAddr) -> bool {
        let ip = super::budgets::ban_scope(ip);
        match self.banned.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Established inbound connections not being closed.
    fn active(&self) -> impl Iterator<Item = (&ConnectionId, &Inbound)> {
        self.inbound
            .iter()
            .filter(|(id, _)| !self.closing.contains(id))
    }

    /// The active inbound connection eviction would close, other than `except`.
    fn victim(&self, except: Option<ConnectionId>) -> Option<(ConnectionId, PeerId)> {
        let (ids, candidates): (Vec<_>, Vec<_>) = self
            .active()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(id, c)| {
                let candidate = Candidate {
                    // a non-IP connection is a group of its own: the unspecified address is
                    // never a real peer's
                    group: c.ip.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), net_group),
                    since: c.since,
                    rtt: self.rtt.get(&c.peer).copied(),
                    useful: self.useful.get(&c.peer).copied(),
                };
                ((*id, c.peer), candidate)
            })
            .unzip();
        select_to_evict(&candidates).map(|i| ids[i])
    }

    /// Makes room in a full handshake table: the oldest handshake of the network group that
    /// holds the most gives up its place.
    fn evict_pending(&mut self) {
        let mut per_group: HashMap<IpAddr, usize> = HashMap::new();
        for (ip, _) in self.pending.values() {
            *per_group.entry(net_group(*ip)).or_default() += 1;
        }
        let Some(group) = per_group
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(group, _)| group)
        else {
            return;
        };
        let oldest = self
            .pending
            .iter()
            .filter(|(_, (ip, _))| net_group(*ip) == group)
            .min_by_key(|(_, (_, since))| *since)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.pending.remove(&id);
            self.evicted_pending.insert(id);
            debug!(target: "net", %group, "handshake table full: the oldest handshake of the biggest group makes room");
        }
    }

    fn deny(refused: Refused) -> ConnectionDenied {
        debug!(target: "net", "inbound connection refused: {refused}");
        ConnectionDenied::new(refused)
    }

    fn on_established(&mut self, id: ConnectionId, peer: PeerId, remote: &Multiaddr) {
        self.inbound.insert(
            id,
            Inbound {
                peer,
                ip: ip_of(remote),
                since: Instant::now(),
            },
        );
        if self.active().count() <= self.max_inbound {
            return;
        }
        let (id, peer) = self.victim(Some(id)).unwrap_or((id, peer));
        info!(target: "net", %peer, inbound = self.max_inbound, "inbound slots full; evicting a peer");
        self.closing.insert(id);
        self.to_close.push_back((peer, id));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl NetworkBehaviour for Slots {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        if self.is_banned(ip) {
            return Err(Self::deny(Refused::Banned(ip)));
        }
        let ip = super::budgets::ban_scope(ip);
        if self.pending.values().filter(|(p, _)| *p == ip).count() >= PENDING_PER_IP {
            return Err(Self::deny(Refused::PendingPerIp {
                ip,
                limit: PENDING_PER_IP,
            }));
        }
        if self.pending.len() >= MAX_PENDING_INBOUND as usize {
            self.evict_pending();
        }
        self.pending.insert(id, (ip, Instant::now()));
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending.remove(&id);
        if self.evicted_pending.remove(&id) {
            return Err(Self::deny(Refused::PendingEvicted));
        }
        if let Some(ip) = ip_of(remote) {
            if self.is_banned(ip) {
                return Err(Self::deny(Refused::Banned(ip)));
            }
            let limit = established_limit(ip);
            let scope = super::budgets::ban_scope(ip);
            if self
                .active()
                .filter(|(_, c)| c.ip.map(super::budgets::ban_scope) == Some(scope))
                .count()
                >= limit
            {
                return Err(Self::deny(Refused::EstablishedPerIp { ip, limit }));
            }
        }
        let hard_cap = self.max_inbound + EVICTION_SLACK as usize;
        if self.inbound.len() >= hard_cap
            || (self.active().count() >= self.max_inbound && self.victim(None).is_none())
        {
            return Err(Self::deny(Refused::Full {
                limit: self.max_inbound,
            }));
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => self.on_established(connection_id, peer_id, send_back_addr),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                self.inbound.remove(&connection_id);
                self.closing.remove(&connection_id);
                if remaining_established == 0 {
                    self.useful.remove(&peer_id);
                    self.rtt.remove(&peer_id);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending.remove(&connection_id);
                self.evicted_pending.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
