//! The orphan pool: gossiped blocks whose parent is unknown, kept until sync has fetched their
//! ancestors. Each remembers the peer that sent it, so if it turns out invalid once its parent
//! arrives, *its* sender is charged — not the peer that delivered the parent.
//!
//! Bounded by count, by bytes, and per sender (oldest dropped first).

use std::collections::{HashMap, VecDeque};

use gossipcoin_proto::{Block, BlockHash};

use crate::net::PeerId;

/// At most this many orphan blocks are kept.
pub const MAX_ORPHANS: usize = 100;
/// At most this many bytes of orphan blocks are kept.
pub const MAX_ORPHAN_BYTES: usize = 8 * 1024 * 1024;
/// At most this many orphans from one peer.
pub const MAX_ORPHANS_PER_PEER: usize = 16;

/// A pooled orphan and who sent it.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub block: Block,
    pub from: PeerId,
    pub bytes: usize,
}

/// See the module docs.
#[derive(Default)]
pub struct Orphans {
    by_parent: HashMap<BlockHash, Vec<Orphan>>,
    /// (parent, hash), oldest first.
    order: VecDeque<(BlockHash, BlockHash)>,
    bytes: usize,
}

impl Orphans {
    /// Adds an orphan of `bytes` from `from`, dropping the oldest ones over the bounds.
    pub fn add(&mut self, block: Block, from: PeerId, bytes: usize) {
        let (parent, hash) = (block.header.prev, block.block_hash());
        if self.contains(&parent, &hash) {
            return;
        }
        let from_peer = self
            .by_parent
            .values()
            .flatten()
            .filter(|o| o.from == from)
            .count();
        if from_peer >= MAX_ORPHANS_PER_PEER {
            self.drop_oldest_of(&from);
        }
        self.by_parent
            .entry(parent)
            .or_default()
            .push(Orphan { block, from, bytes });
        self.order.push_back((parent, hash));
        self.bytes += bytes;
        while self.order.len() > MAX_ORPHANS || self.bytes > MAX_ORPHAN_BYTES {
            let Some((p, h)) = self.order.pop_front() else {
                break;
            };
            self.remove(&p, &h);
        }
    }

    fn contains(&self, parent: &BlockHash, hash: &BlockHash) -> bool {
        self.by_parent
            .get(parent)
            .is_some_and(|v| v.iter().any(|o| o.block.block_hash() == *hash))
    }

    fn remove(&mut self, parent: &BlockHash, hash: &BlockHash) {
        if let Some(v) = self.by_parent.get_mut(parent) {
            if let Some(i) = v.iter().position(|o| o.block.block_hash() == *hash) {
                self.bytes -= v.remove(i).bytes;
            }
            if v.is_empty() {
                self.by_parent.remove(parent);
            }
        }
    }

    fn drop_oldest_of(&mut self, from: &PeerId) {
        let oldest = self.order.iter().position(|(p, h)| {
            self.by_parent.get(p).is_some_and(|v| {
                v.iter()
                    .any(|o| o.block.block_hash() == *h && o.from == *from)
            })
        });
        if let Some(i) = oldest
            && let Some((p, h)) = self.order.remove(i)
        {
            self.remove(&p, &h);
        }
    }

    /// Takes the orphans waiting for `parent`.
    pub fn children_of(&mut self, parent: &BlockHash) -> Vec<Orphan> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        self.order.retain(|(p, _)| p != parent);
        self.bytes -= children.iter().map(|o| o.bytes).sum::<usize>();
        children
    }

    /// Forgets every orphan `peer` sent (it was banned).
    pub fn drop_peer(&mut self, peer: &PeerId) {
        let mut gone = Vec::new();
        for (parent, v) in &self.by_parent {
            for o in v.iter().filter(|o| o.from == *peer) {
                gone.push((*parent, o.block.block_hash()));
            }
        }
        for (p, h) in gone {
            self.remove(&p, &h);
            self.order.retain(|x| *x != (p, h));
        }
    }

    /// How many orphans are pooled.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, BlockHeader, PubkeyHash, Transaction};

    use super::*;

    fn block(prev: u8, nonce: u32) -> Block {
        Block {
            header: BlockHeader {
                version: 1,
                prev: BlockHash([prev; 32]),
                merkle_root: Default::default(),
                time: 0,
                bits: 0,
                nonce,
            },
            txs: vec![Transaction::coinbase(1, PubkeyHash::ZERO, Amount::ZERO)],
        }
    }

    fn peer(n: u8) -> PeerId {
        thread_local! {
            static IDS: Vec<PeerId> = (0..16).map(|_| PeerId::random()).collect();
        }
        IDS.with(|ids| ids[usize::from(n)])
    }

    #[test]
    fn children_come_back_with_their_own_sender() {
        let mut pool = Orphans::default();
        pool.add(block(1, 1), peer(1), 10);
        pool.add(block(1, 2), peer(2), 10);
        pool.add(block(1, 2), peer(3), 10); // the same block again: kept once
        pool.add(block(9, 3), peer(2), 10);
        let kids = pool.children_of(&BlockHash([1; 32]));
        let senders: Vec<_> = kids.iter().map(|o| o.from).collect();
        assert_eq!(senders, [peer(1), peer(2)]);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes, 10);
    }

    #[test]
    fn bounded_by_count_bytes_and_sender() {
        let mut pool = Orphans::default();
        for n in 0..(MAX_ORPHANS as u32 + 10) {
            pool.add(block(1, n), peer((n % 10) as u8), 1);
        }
        assert_eq!(pool.len(), MAX_ORPHANS);
        let mut pool = Orphans::default();
        for n in 0..5 {
            pool.add(block(2, n), peer(1), MAX_ORPHAN_BYTES / 4);
        }
        assert!(pool.bytes <= MAX_ORPHAN_BYTES);
        assert_eq!(pool.len(), 4);
        let mut pool = Orphans::default();
        for n in 0..(MAX_ORPHANS_PER_PEER as u32 + 5) {
            pool.add(block(3, n), peer(7), 1);
        }
        pool.add(block(3, 999), peer(8), 1);
        assert_eq!(pool.len(), MAX_ORPHANS_PER_PEER + 1);
        pool.drop_peer(&peer(7));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.children_of(&BlockHash([3; 32]))[0].from, peer(8));
    }
}
