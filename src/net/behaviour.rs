//! The libp2p behaviour of a gossipcoin node: which protocols it speaks, and their settings.
//!
//! The denying behaviours (connection slots, connection limits, block list) come first, so a
//! connection they refuse is never half-set-up in the others. `slots` (per-address limits,
//! banned addresses, inbound eviction) goes first of all: it may keep a newcomer to full
//! inbound slots by evicting someone, so `limits` leaves it [`slots::EVICTION_SLACK`] of room
//! and only holds the hard caps. Then gossipsub (blocks and transactions),
//! request-response (`/gossipcoin/sync/1`), identify (listen addresses for the DHT), kad (peer
//! discovery on our own protocol name, always in server mode: on loopback an external address is
//! never confirmed, and a client-mode node is invisible), and ping (keeps NATs and dead links
//! honest).

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, kad, ping,
    request_response,
};

use super::codec::SyncCodec;
use super::slots::{self, Slots};
use super::{NetConfig, NetError, gossip};
use gossipcoin_proto::message::SYNC_PROTOCOL;

/// Our DHT protocol: not the IPFS one, so gossipcoin nodes only find each other.
pub(super) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/gossipcoin/kad/1");
/// What identify announces as our protocol family.
const IDENTIFY_PROTOCOL: &str = "/gossipcoin/id/1";

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) slots: Slots,
    pub(super) limits: connection_limits::Behaviour,
    pub(super) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) sync: request_response::Behaviour<SyncCodec>,
    pub(super) identify: identify::Behaviour,
    pub(super) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(super) ping: ping::Behaviour,
}

impl Behaviour {
    pub(super) fn new(key: &Keypair, config: &NetConfig) -> Result<Self, NetError> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(slots::MAX_PENDING_HARD))
            // Slots owns the inbound limit (it evicts to make room): this is the hard cap
            .with_max_established_incoming(Some(
                config.max_peers.saturating_add(slots::EVICTION_SLACK),
            ))
            // the targets, plus manual dials and the DHT's own queries
            .with_max_established_outgoing(Some(
                config.outbound_full_relay
                    + config.outbound_block_relay
                    + super::outbound::EXTRA_OUTBOUND,
            ))
            // two, not one: when two peers dial each other at once, each side may keep a
            // different connection and a limit of one would close both
            .with_max_established_per_peer(Some(2));

        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip::config(config.heartbeat)?,
        )
        .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
        let (params, thresholds) = gossip::score_params();
        gossipsub
            .with_peer_score(params, thresholds)
            .map_err(|e| NetError::Config(format!("gossipsub scoring: {e}")))?;

        let sync = request_response::Behaviour::with_codec(
            SyncCodec::new(config.max_block_bytes),
            [(
                StreamProtocol::new(SYNC_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(config.request_timeout),
        );

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(format!("gossipcoin/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        );

        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        if config.discovery {
            kad_config.set_periodic_bootstrap_interval(Some(config.discovery_interval));
        } else {
            // Nothing enters the routing table, so kad never starts a query (a query would dial
            // the peers it learns about); it still answers others with an empty table.
            kad_config
                .set_periodic_bootstrap_interval(None)
                .set_kbucket_inserts(kad::BucketInserts::Manual);
        }
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));

        Ok(Self {
            slots: Slots::new(config.max_peers),
            limits: connection_limits::Behaviour::new(limits),
            blocked: allow_block_list::Behaviour::default(),
            gossipsub,
            sync,
            identify,
            kad,
            ping: ping::Behaviour::new(super::peer_manager::ping_config()),
        })
    }
}
