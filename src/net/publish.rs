//! Publishing gossip: joining a network's topics, and the queue of messages that wait for a
//! subscribed peer.
//!
//! `publish` right after start fails with `NoPeersSubscribedToTopic`: the message is queued and
//! retried when a peer subscribes (and every second), so nothing the node publishes is lost
//! while the mesh forms. A message gossipsub has seen within its duplicate window (published
//! by us, or received) is not handed to it again: [`RecentMessages`] skips it, so gossipsub
//! never logs its "already been published" warning for an honest re-announcement.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use gossipcoin_proto::BlockHash;
use gossipcoin_proto::message::TopicKind;
use libp2p::gossipsub::{MessageId, PublishError};
use tracing::{debug, info, warn};

use super::NetError;
use super::gossip::{self, Topics};
use super::service::Service;

/// At most this many messages wait for a subscribed peer; older ones are dropped first.
const MAX_UNPUBLISHED: usize = 1024;

/// How long gossipsub remembers a message id as a duplicate (its `duplicate_cache_time`).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many ids are remembered (a minute of a busy network).
const MAX_RECENT: usize = 16_384;

/// The ids of messages gossipsub saw within its duplicate window, oldest first.
#[derive(Default)]
pub(super) struct RecentMessages {
    ids: HashSet<MessageId>,
    order: VecDeque<(Instant, MessageId)>,
}

impl RecentMessages {
    /// Remembers `id` as seen at `now`.
    pub(super) fn insert(&mut self, id: MessageId, now: Instant) {
        self.expire(now);
        if self.ids.insert(id.clone()) {
            if self.order.len() >= MAX_RECENT
                && let Some((_, old)) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
            self.order.push_back((now, id));
        }
    }

    /// Whether gossipsub would call `id` a duplicate at `now`.
    pub(super) fn contains(&mut self, id: &MessageId, now: Instant) -> bool {
        self.expire(now);
        self.ids.contains(id)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < DUPLICATE_WINDOW {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }
}

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
        let id = gossip::content_id(&topic, &item.data);
        let now = Instant::now();
        if self.recent.contains(&id, now) {
            return log_gossip(item.kind, &item.name, "already gossiped");
        }
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        // Retries come every second: do not sign and copy a message only to hear "no peers".
        if !gossipsub
            .all_peers()
            .any(|(_, topics)| topics.contains(&&topic))
        {
            return self.queue(item);
        }
        match gossipsub.publish(topic, item.data.clone()) {
            Ok(_) => {
                self.recent.insert(id, now);
                log_gossip(item.kind, &item.name, "published")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_messages_expire_with_the_duplicate_window_and_are_bounded() {
        let mut recent = RecentMessages::default();
        let t0 = Instant::now();
        let id = MessageId::new(b"a");
        recent.insert(id.clone(), t0);
        assert!(recent.contains(&id, t0 + Duration::from_secs(59)));
        assert!(!recent.contains(&id, t0 + DUPLICATE_WINDOW));
        for i in 0..MAX_RECENT + 10 {
            recent.insert(MessageId::new(&i.to_le_bytes()), t0);
        }
        assert!(recent.ids.len() <= MAX_RECENT && recent.order.len() <= MAX_RECENT);
        assert!(!recent.contains(&MessageId::new(&0usize.to_le_bytes()), t0));
        assert!(recent.contains(&MessageId::new(&(MAX_RECENT + 9).to_le_bytes()), t0));
    }
}
