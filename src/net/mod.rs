//! The network layer: libp2p over TCP + Noise + Yamux, and the only place libp2p appears.
//!
//! [`spawn`] starts one task that owns the swarm and returns a [`NetHandle`] (commands) and a
//! receiver of [`NetworkEvent`]s (what peers said). Everything crossing that boundary is a
//! gossipcoin type: blocks and transactions arrive decoded, requests come with a [`Reply`].
//!
//! | file | owns |
//! |---|---|
//! | `behaviour.rs` | the protocols (slots, limits, block list, gossipsub, sync, identify, kad, ping) |
//! | `slots.rs` | inbound slots: per-IP limits, banned addresses, Core-style eviction |
//! | `gossip.rs` | gossipsub settings, peer-score parameters, the two topics of a network |
//! | `codec.rs` | framing and size limits of `/gossipcoin/sync/1` |
//! | `service.rs` | the task owning the swarm: its `select!` loop and commands |
//! | `events.rs` | what the service does with each swarm event |
//! | `publish.rs` | joining a network's topics, publishing and the publish queue |
//! | `dial.rs` | bootstrap, discovery and explicit dials |
//! | `outbound.rs` | the outbound targets (full-relay, block-relay-only), choice across groups, backoff, anchors |
//! | `handle.rs` | [`NetHandle`] and the commands it sends |
//! | `peer_manager.rs` | every peer's record (connections, Status, ping, budgets) and every penalty and ban |
//! | `identity.rs` | the persistent ed25519 key in `node.key` |
//! | `config.rs`, `error.rs`, `types.rs` | [`NetConfig`], [`NetError`], the public types |
//!
//! Gossip flow: a message arrives, is decoded (undecodable → Reject here), goes to the node as
//! [`NetworkEvent::GossipBlock`] / [`NetworkEvent::GossipTx`], and is forwarded only once the
//! node reports [`Verdict::Accept`]. Every offence (a Reject, a malformed or over-limit request,
//! a bad response, or the node's [`NetHandle::report_peer`]) is charged to the sending peer as a
//! [`Misbehaviour`] by the peer manager; at [`BAN_SCORE`] the peer is banned (its id, and its IP
//! unless local) and [`NetworkEvent::PeerBanned`] is its last event. Sync requests are
//! rate-limited and budgeted (response bytes, unsent responses) per peer before the node sees
//! them. Pings every 5 s close a dead link within about 13 s.

mod banlist;
mod behaviour;
mod budgets;
mod codec;
mod config;
mod dial;
mod error;
mod events;
mod gossip;
mod handle;
mod identity;
mod outbound;
mod peer_manager;
mod publish;
mod service;
mod slots;
mod types;

use libp2p::{SwarmBuilder, noise, tcp, yamux};
use tokio::sync::{mpsc, watch};
use tracing::info;

pub use budgets::DEFAULT_UPLOAD_BYTES_PER_SEC;
pub use config::NetConfig;
pub use error::NetError;
pub use gossip::REPORT_WINDOW;
pub use handle::NetHandle;
pub use peer_manager::BAN_SCORE;
pub use types::{
    MessageId, Misbehaviour, NetworkEvent, PeerId, PeerInfo, PeerKind, Reply, Verdict,
};

use behaviour::Behaviour;
use service::Service;

/// Capacity of the event channel to the node. Small on purpose: events can carry blocks, and
/// what waits beyond it sits in the service's outbox, which is bounded by bytes.
const EVENT_CHANNEL: usize = 16;
/// Connections stay open this long without traffic (libp2p's default of 10 s would drop a
/// wallet that only makes the odd request).
const IDLE_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Starts the network: loads or creates the node key, listens, joins `config.genesis` if
/// given, dials the bootstrap peers, and runs until `shutdown` turns true (or its sender, or
/// every handle, is dropped). The listen addresses are known when it returns.
///
/// # Errors
/// A bad address or setting, an unusable key file, or a listener that cannot bind.
pub async fn spawn(
    config: NetConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(NetHandle, mpsc::Receiver<NetworkEvent>), NetError> {
    config.validate()?;
    let listen = config::parse_addrs(&config.listen)?;
    let bootstrap = config::parse_addrs(&config.bootstrap)?;
    let key_file = config.key_file.clone();
    let key = tokio::task::spawn_blocking(move || identity::load_or_create(&key_file))
        .await
        .map_err(|e| NetError::Config(format!("loading the node key panicked: {e}")))??;
    let local_peer_id = PeerId(key.public().to_peer_id());

    let behaviour = Behaviour::new(&key, &config)?;
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Config(format!("noise: {e}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetError::Config(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        // TCP + Noise + Yamux must finish within this, both ways: a socket that never speaks
        // holds an inbound handshake slot for this long at most
        .with_connection_timeout(slots::HANDSHAKE_TIMEOUT)
        .build();

    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL);
    let handle = NetHandle::new(command_tx, local_peer_id, config.request_timeout);
    let genesis = config.genesis;
    let mut service = Service::new(swarm, config, bootstrap, command_rx, event_tx);
    service.restore_bans();
    service.listen(&listen).await?;
    if let Some(genesis) = genesis {
        // subscribe before dialing, so the first hello already carries our subscriptions
        service.join(genesis)?;
    }
    service.dial_anchors();
    service.dial_bootstrap();
    info!(target: "net", peer = %local_peer_id, "network service started");
    tokio::spawn(service.run(shutdown));
    Ok((handle, event_rx))
}
