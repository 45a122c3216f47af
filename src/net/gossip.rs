//! Gossipsub settings for a small proof-of-work network, and the two topics of one network.
//!
//! - Messages are signed (`ValidationMode::Strict`) and named by content (SHA-256 of topic and
//!   data), so the same block published by two nodes is one message.
//! - Validation comes first (`validate_messages`): nothing is forwarded before the node says
//!   Accept. The message cache keeps a message for [`REPORT_WINDOW`], the time to decide.
//! - The mesh fits the node's degree (8 full-relay + 2 block-relay outbound peers, and
//!   inbound ones): lo 4 / n 6 / hi 12 / outbound 2, gossipsub's usual degrees, with a short
//!   heartbeat and flood publishing, so a new block reaches every direct peer at once and
//!   crosses a network of hundreds of nodes in a few hops.
//! - Peer scoring: delivery-rate penalties (P3/P3b) are off (a slow PoW chain delivers rarely),
//!   loopback is not penalised for sharing an IP, invalid messages (P4) cost a lot and are
//!   remembered for minutes.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use gossipcoin_proto::BlockHash;
use gossipcoin_proto::message::{MAX_GOSSIP_BYTES, TopicKind, topic};
use libp2p::gossipsub::{
    self, IdentTopic, PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams,
    ValidationMode,
};
use sha2::{Digest, Sha256};

use super::NetError;

/// How long a received message stays in the message cache: the node must report its verdict
/// within this time or the message is never forwarded.
pub const REPORT_WINDOW: Duration = Duration::from_secs(30);
/// Room for the envelope (signature, key, topic, sequence number, control messages).
const ENVELOPE_BYTES: usize = 64 * 1024;

/// Gossipsub mesh degrees.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mesh {
    pub outbound_min: usize,
    pub lo: usize,
    pub n: usize,
    pub hi: usize,
}

/// The mesh: about as many mesh peers as the node has full-relay outbound peers.
pub(super) const MESH: Mesh = Mesh {
    outbound_min: 2,
    lo: 4,
    n: 6,
    hi: 12,
};

impl Mesh {
    /// The invariants gossipsub relies on but `ConfigBuilder::build` does not check for the
    /// default topic parameters.
    pub(super) fn check(&self) -> Result<(), NetError> {
        let ok = self.outbound_min <= self.lo
            && self.lo <= self.n
            && self.n <= self.hi
            && self.outbound_min * 2 <= self.n
            && self.lo >= 1;
        if ok {
            Ok(())
        } else {
            Err(NetError::Config(format!(
                "gossipsub mesh needs 1 ≤ lo, outbound_min ≤ lo ≤ n ≤ hi and 2·outbound_min ≤ n; \
                 got {self:?}"
            )))
        }
    }
}

/// The gossipsub configuration for a heartbeat of `heartbeat`.
pub(super) fn config(heartbeat: Duration) -> Result<gossipsub::Config, NetError> {
    MESH.check()?;
    gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_GOSSIP_BYTES + ENVELOPE_BYTES)
        .mesh_outbound_min(MESH.outbound_min)
        .mesh_n_low(MESH.lo)
        .mesh_n(MESH.n)
        .mesh_n_high(MESH.hi)
        .heartbeat_interval(heartbeat)
        .history_length(history_length(heartbeat))
        .history_gossip(3)
        .flood_publish(true)
        .build()
        .map_err(|e| NetError::Config(format!("gossipsub: {e}")))
}

/// The message-cache length in heartbeats that covers [`REPORT_WINDOW`].
fn history_length(heartbeat: Duration) -> usize {
    let beats = REPORT_WINDOW
        .as_millis()
        .div_ceil(heartbeat.as_millis().max(1));
    usize::try_from(beats).unwrap_or(usize::MAX).max(5)
}

/// Names a message by its content: SHA-256 of the topic, a zero byte, and the data.
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    content_id(&message.topic, &message.data)
}

/// The id gossipsub gives a message of `data` on `topic` ([`message_id`]).
pub(super) fn content_id(topic: &TopicHash, data: &[u8]) -> gossipsub::MessageId {
    let digest = Sha256::new()
        .chain_update(topic.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(data)
        .finalize();
    gossipsub::MessageId::new(&digest)
}

/// Peer-score parameters (topic parameters are added when the node joins a network).
pub(super) fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let params = PeerScoreParams {
        topic_score_cap: 20.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        // tolerate a few re-grafts during backoff (reconnects are common in a small network)
        behaviour_penalty_threshold: 6.0,
        ..PeerScoreParams::default()
    };
    (params, PeerScoreThresholds::default())
}

/// Score parameters of our two topics.
pub(super) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: a little credit for time in the mesh, at most +1
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        // P2: a little credit for delivering first, at most +10
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 100.0,
        // P3 and P3b off: blocks are minutes apart, silence is no fault
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: −10·n² for n invalid messages, decaying over ten minutes
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            600,
        )),
        ..TopicScoreParams::default()
    }
}

/// The gossip topics of the network whose genesis is `genesis`.
#[derive(Clone, Debug)]
pub(super) struct Topics {
    pub genesis: BlockHash,
    pub block: IdentTopic,
    pub tx: IdentTopic,
}

impl Topics {
    pub(super) fn new(genesis: BlockHash) -> Self {
        Self {
            genesis,
            block: IdentTopic::new(topic(&genesis, TopicKind::Block)),
            tx: IdentTopic::new(topic(&genesis, TopicKind::Tx)),
        }
    }

    /// Which of our topics `hash` is.
    pub(super) fn kind_of(&self, hash: &TopicHash) -> Option<TopicKind> {
        if *hash == self.block.hash() {
            Some(TopicKind::Block)
        } else if *hash == self.tx.hash() {
            Some(TopicKind::Tx)
        } else {
            None
        }
    }

    pub(super) fn hash_of(&self, kind: TopicKind) -> TopicHash {
        match kind {
            TopicKind::Block => self.block.hash(),
            TopicKind::Tx => self.tx.hash(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_invariants_hold_and_bad_meshes_are_caught() {
        MESH.check().unwrap();
        let bad = Mesh {
            outbound_min: 3,
            lo: 2,
            n: 4,
            hi: 8,
        };
        assert!(bad.check().is_err());
        let bad = Mesh {
            outbound_min: 1,
            lo: 5,
            n: 4,
            hi: 8,
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn config_and_scores_are_accepted_by_gossipsub() {
        let config = config(Duration::from_millis(500)).unwrap();
        assert!(config.max_transmit_size() > MAX_GOSSIP_BYTES);
        assert_eq!(history_length(Duration::from_millis(500)), 60);
        assert_eq!(history_length(Duration::from_millis(700)), 43);
        assert_eq!(history_length(Duration::from_secs(10)), 5);
        let (params, thresholds) = score_params();
        params.validate().unwrap();
        thresholds.validate().unwrap();
        topic_score_params().validate().unwrap();
    }

    #[test]
    fn message_ids_depend_on_topic_and_data_only() {
        let msg = |topic: &str, data: &[u8], seq: u64| gossipsub::Message {
            source: Some(libp2p::PeerId::random()),
            data: data.to_vec(),
            sequence_number: Some(seq),
            topic: TopicHash::from_raw(topic),
        };
        assert_eq!(
            message_id(&msg("a", b"x", 1)),
            message_id(&msg("a", b"x", 2))
        );
        assert_ne!(
            message_id(&msg("a", b"x", 1)),
            message_id(&msg("b", b"x", 1))
        );
        assert_ne!(
            message_id(&msg("a", b"x", 1)),
            message_id(&msg("a", b"y", 1))
        );
    }

    #[test]
    fn topics_know_their_kind() {
        let topics = Topics::new(BlockHash([0xab; 32]));
        assert_eq!(topics.kind_of(&topics.block.hash()), Some(TopicKind::Block));
        assert_eq!(topics.kind_of(&topics.tx.hash()), Some(TopicKind::Tx));
        assert_eq!(topics.kind_of(&TopicHash::from_raw("/other")), None);
        assert!(topics.block.hash().as_str().contains("abababab"));
    }
}
