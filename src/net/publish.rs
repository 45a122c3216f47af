//! Publishing gossip: joining a network's topics, and the queue of messages that wait for a
//! subscribed peer.
//!
//! `publish` right after start fails with `NoPeersSubscribedToTopic`: the message is queued and
//! retried when a peer subscribes (and every second), so nothing the node publishes is lost
//! while the mesh forms. A duplicate publish is harmless and only logged.

use gossipcoin_proto::BlockHash;
use gossipcoin_proto::message::TopicKind;
use libp2p::gossipsub::PublishError;
use tracing::{debug, info, warn};

use super::NetError;
use super::gossip::{self, Topics};
use super::service::Service;

/// At most this many messages wait for a subscribed peer; older ones are dropped first.
const MAX_UNPUBLISHED: usize = 1024;

/// A message waiting for a subscribed peer (or for `join`).
pub(super) struct Unpublished {
    pub(super) kind: TopicKind,
    pub(super) data: Vec<u8>,
    pub(super) name: String,
}

impl Service {
    /// Subscribes to the topics of the network of `genesis`.
    pub(super) fn join(&mut self, genesis: BlockHash) -> Result<(), NetError> {
        if let Some(topics) = &self.topics {
            return if topics.genesis == genesis {
                Ok(())
            } else {
                Err(NetError::AlreadyJoined {
                    joined: topics.genesis,
                    requested: genesis,
                })
            };
        }
        let topics = Topics::new(genesis);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        for topic in [&topics.block, &topics.tx] {
            gossipsub
                .set_topic_params(topic.clone(), gossip::topic_score_params())
                .map_err(|e| NetError::Config(format!("gossipsub scoring: {e}")))?;
            gossipsub
                .subscribe(topic)
                .map_err(|e| NetError::Config(format!("cannot subscribe to {topic}: {e}")))?;
        }
        info!(target: "net", genesis = %genesis, "joined the network");
        self.topics = Some(topics);
        self.retry_unpublished();
        Ok(())
    }

    /// Publishes, or queues when no peer is subscribed yet.
    pub(super) fn publish(&mut self, item: Unpublished) {
        let Some(topics) = &self.topics else {
            return self.queue(item);
        };
        let topic = topics.hash_of(item.kind);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        // Retries come every second: do not sign and copy a message only to hear "no peers".
        if !gossipsub
            .all_peers()
            .any(|(_, topics)| topics.contains(&&topic))
        {
            return self.queue(item);
        }
        match gossipsub.publish(topic, item.data.clone()) {
            Ok(_) => log_gossip(item.kind, &item.name, "published"),
            Err(PublishError::Duplicate) => log_gossip(item.kind, &item.name, "already published"),
            Err(PublishError::NoPeersSubscribedToTopic | PublishError::AllQueuesFull(_)) => {
                self.queue(item)
            }
            Err(e) => warn!(target: "net", name = %item.name, "cannot publish: {e}"),
        }
    }

    fn queue(&mut self, item: Unpublished) {
        if self.unpublished.len() >= MAX_UNPUBLISHED
            && let Some(old) = self.unpublished.pop_front()
        {
            warn!(target: "net", name = %old.name, "publish queue full; dropped the oldest message");
        }
        self.unpublished.push_back(item);
    }

    /// Tries the queued messages again, in order.
    pub(super) fn retry_unpublished(&mut self) {
        for item in std::mem::take(&mut self.unpublished) {
            self.publish(item);
        }
    }
}

fn log_gossip(kind: TopicKind, name: &str, what: &str) {
    match kind {
        TopicKind::Block => info!(target: "net", hash = %name, "{what} block"),
        TopicKind::Tx => debug!(target: "net", txid = %name, "{what} transaction"),
    }
}
