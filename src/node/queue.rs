//! `FairQueue`: the bounded, per-peer, round-robin queue between the network and the workers
//! that validate what peers send.
//!
//! - **Bounded**: by item count and by bytes, in all and per peer. A push over a bound is
//!   refused and handed back (the router then answers Ignore and counts it), never queued
//!   behind the others and never turned into another task.
//! - **Ordered**: one peer's items come out in the order they arrived (a transaction and then
//!   its child stay in that order).
//! - **Fair**: peers take turns, one item each, so a peer flooding its own queue delays only
//!   itself.
//! - **Accountable**: [`FairQueue::drop_peer`] discards a banned peer's queued work at once.
//!
//! Items of no peer (our own miner, the API) use a key of their own.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;

/// The bounds of one queue.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Items queued at most, all peers together.
    pub items: usize,
    /// Bytes queued at most, all peers together.
    pub bytes: usize,
    /// Bytes queued at most for one peer.
    pub bytes_per_peer: usize,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The queue as a whole is full.
    Queue,
    /// This peer has too much queued already.
    Peer,
    /// The queue was closed (the node is stopping).
    Closed,
}

impl Full {
    /// A label for the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Queue => "queue_full",
            Self::Peer => "peer_full",
            Self::Closed => "closed",
        }
    }
}

struct Inner<K, T> {
    per_peer: HashMap<K, (VecDeque<(T, usize)>, usize)>,
    /// Peers with queued items, in turn order.
    turns: VecDeque<K>,
    items: usize,
    bytes: usize,
    closed: bool,
}

/// A bounded round-robin queue of `T`, keyed by peer `K`. Cheap to share behind an `Arc`.
pub struct FairQueue<K, T> {
    bounds: Bounds,
    inner: Mutex<Inner<K, T>>,
    ready: Notify,
}

impl<K: Copy + Eq + Hash, T> FairQueue<K, T> {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            inner: Mutex::new(Inner {
                per_peer: HashMap::new(),
                turns: VecDeque::new(),
                items: 0,
                bytes: 0,
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` of `bytes` from `peer`, or hands it back with the reason it did not fit.
    pub fn push(&self, peer: K, item: T, bytes: usize) -> Result<(), (T, Full)> {
        let mut guard = self.lock();
        let q = &mut *guard;
        if q.closed {
            return Err((item, Full::Closed));
        }
        if q.items >= self.bounds.items || q.bytes + bytes > self.bounds.bytes {
            return Err((item, Full::Queue));
        }
        let queued = q.per_peer.get(&peer).map_or(0, |(_, b)| *b);
        if queued + bytes > self.bounds.bytes_per_peer {
            return Err((item, Full::Peer));
        }
        let (items, peer_bytes) = q.per_peer.entry(peer).or_default();
        if items.is_empty() {
            q.turns.push_back(peer);
        }
        items.push_back((item, bytes));
        *peer_bytes += bytes;
        q.items += 1;
        q.bytes += bytes;
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, the peers taking turns; `None` once closed and empty.
    pub async fn pop(&self) -> Option<(K, T)> {
        loop {
            let notified = self.ready.notified();
            if let Some(next) = self.try_pop() {
                return Some(next);
            }
            if self.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// The next item if there is one.
    pub fn try_pop(&self) -> Option<(K, T)> {
        let mut q = self.lock();
        let peer = q.turns.pop_front()?;
        let (items, peer_bytes) = q.per_peer.get_mut(&peer).expect("a peer in turn has items");
        let (item, bytes) = items.pop_front().expect("a peer in turn has items");
        *peer_bytes -= bytes;
        let more = !items.is_empty();
        if more {
            q.turns.push_back(peer);
        } else {
            q.per_peer.remove(&peer);
        }
        q.items -= 1;
        q.bytes -= bytes;
        if more || !q.turns.is_empty() {
            // let another worker take the next one
            self.ready.notify_one();
        }
        Some((peer, item))
    }

    /// Discards everything `peer` has queued; returns the items (to answer them).
    pub fn drop_peer(&self, peer: &K) -> Vec<T> {
        let mut q = self.lock();
        let Some((items, bytes)) = q.per_peer.remove(peer) else {
            return Vec::new();
        };
        q.turns.retain(|p| p != peer);
        q.items -= items.len();
        q.bytes -= bytes;
        items.into_iter().map(|(item, _)| item).collect()
    }

    /// Items queued now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().items
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses further pushes; `pop` returns what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> FairQueue<u8, u32> {
        FairQueue::new(Bounds {
            items: 10,
            bytes: 1000,
            bytes_per_peer: 300,
        })
    }

    #[test]
    fn one_peers_items_keep_their_order_and_peers_take_turns() {
        let q = queue();
        for n in 0..3 {
            q.push(1, 10 + n, 10).unwrap();
        }
        q.push(2, 20, 10).unwrap();
        q.push(2, 21, 10).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(order, [(1, 10), (2, 20), (1, 11), (2, 21), (1, 12)]);
        assert!(q.is_empty());
    }

    #[test]
    fn bounds_refuse_and_hand_the_item_back() {
        let q = queue();
        q.push(1, 1, 300).unwrap();
        assert_eq!(q.push(1, 2, 1), Err((2, Full::Peer)));
        q.push(2, 3, 300).unwrap();
        q.push(3, 4, 300).unwrap();
        assert_eq!(q.push(4, 5, 200), Err((5, Full::Queue)));
        for n in 0..7 {
            q.push(10 + n, 0, 1).unwrap();
        }
        assert_eq!(q.len(), 10);
        assert_eq!(q.push(30, 9, 1), Err((9, Full::Queue)));
    }

    #[test]
    fn a_dropped_peers_work_is_gone_and_its_room_freed() {
        let q = queue();
        q.push(1, 1, 100).unwrap();
        q.push(2, 2, 100).unwrap();
        q.push(1, 3, 200).unwrap();
        assert_eq!(q.drop_peer(&1), vec![1, 3]);
        assert_eq!(q.len(), 1);
        q.push(1, 4, 300).unwrap();
        assert_eq!(q.try_pop(), Some((2, 2)));
        assert_eq!(q.try_pop(), Some((1, 4)));
        assert_eq!(q.try_pop(), None);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push_and_ends_when_closed() {
        let q = std::sync::Arc::new(queue());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        tokio::task::yield_now().await;
        q.push(7, 70, 1).unwrap();
        assert_eq!(waiter.await.unwrap(), Some((7, 70)));
        q.push(7, 71, 1).unwrap();
        q.close();
        assert_eq!(q.push(7, 72, 1), Err((72, Full::Closed)));
        assert_eq!(q.pop().await, Some((7, 71)));
        assert_eq!(q.pop().await, None);
    }
}
