//! Recording what is known about blocks without their data: [`WriteView::put_header`] indexes
//! a header alone, [`WriteView::mark_failed`] marks a block invalid with all its descendants.
//!
//! Statuses themselves are [`BlockStatus`] (in `view.rs`), read with
//! [`ChainRead::status`](super::ChainRead::status) and stored one byte per block in
//! `block_status`. `put_block` and `connect_block` (in `write.rs`) set `DataStored` and
//! `FullyValid`. The invariants (checked by `check.rs`): every index entry has a status; a
//! block's data is stored exactly when its status has data; main-chain blocks are
//! `FullyValid`; the indexed children of a failed block are `DescendantOfFailed`.

use std::collections::HashMap;

use gossipcoin_proto::BlockHash;

use super::error::{LmdbResultExt, StoreError};
use super::tables::{decode_hash, decode_value, encode_value};
use super::view::{BlockStatus, ChainRead, IndexEntry, sealed::Snapshot};
use super::write::WriteView;

impl WriteView<'_> {
    /// Indexes a block whose data is not stored: a header checked on its own
    /// ([`BlockStatus::HeaderValid`]), or one remembered as invalid ([`BlockStatus::Failed`],
    /// [`BlockStatus::DescendantOfFailed`]) so that it is refused cheaply from now on. A header
    /// whose parent is failed is indexed as `DescendantOfFailed` whatever `status` says. A
    /// no-op if the hash is already indexed with this entry, whatever its status (to mark a
    /// known block failed, use [`Self::mark_failed`]).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a status with data (`DataStored`, `FullyValid`: use
    /// `put_block`) and for a known hash indexed with another entry.
    pub fn put_header(&mut self, entry: IndexEntry, status: BlockStatus) -> Result<(), StoreError> {
        let hash = entry.hash();
        let rejected = |reason: String| StoreError::Rejected { hash, reason };
        if status.has_data() {
            return Err(rejected(format!(
                "a header alone cannot be {status:?}: store the block"
            )));
        }
        match self.index(&hash)? {
            Some(known) if known != entry => {
                return Err(rejected(format!(
                    "already indexed with another height or chain work (height {})",
                    known.height
                )));
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let status = if self.parent_failed(&entry)? {
            BlockStatus::DescendantOfFailed
        } else {
            status
        };
        self.atomically(|w| {
            w.put(w.tables().block_index, &hash.0, &encode_value(&entry))?;
            w.set_status(&hash, status)
        })
    }

    /// Marks `hash` [`BlockStatus::Failed`] and every indexed descendant
    /// [`BlockStatus::DescendantOfFailed`] (a descendant marked `Failed` before becomes
    /// `DescendantOfFailed` too; so does `hash` if its parent is failed already), and deletes
    /// their stored data: an invalid block is never
    /// served nor validated again, and [`put_block`](Self::put_block) refuses it. Their index
    /// entries stay. Returns how many entries changed status (0 if all were already so).
    ///
    /// Finds descendants with one pass over the whole block index (rare: only when a block
    /// fails validation). Do not mark a block that failed only because it was mutated (a
    /// valid block with the same hash exists).
    ///
    /// # Errors
    /// [`StoreError::UnknownBlock`] if `hash` is not indexed; [`StoreError::Rejected`] if it is
    /// on the main chain (disconnect it first).
    pub fn mark_failed(&mut self, hash: &BlockHash) -> Result<usize, StoreError> {
        let entry = self.index(hash)?.ok_or(StoreError::UnknownBlock(*hash))?;
        if self.is_on_main_chain(hash)? {
            return Err(StoreError::Rejected {
                hash: *hash,
                reason: "it is on the main chain: disconnect it before marking it failed".into(),
            });
        }
        let children = self.children_map()?;
        let status = if self.parent_failed(&entry)? {
            BlockStatus::DescendantOfFailed
        } else {
            BlockStatus::Failed
        };
        let mut marks = vec![(*hash, status)];
        let mut next = 0;
        while let Some(&(parent, _)) = marks.get(next) {
            next += 1;
            for &child in children.get(&parent).into_iter().flatten() {
                marks.push((child, BlockStatus::DescendantOfFailed));
            }
        }
        self.atomically(|w| {
            let mut changed = 0;
            for &(block, status) in &marks {
                if w.is_on_main_chain(&block)? {
                    return Err(StoreError::Corrupt(format!(
                        "main-chain block {block} descends from {hash}, which is not on it"
                    )));
                }
                if w.status(&block)? != Some(status) {
                    w.set_status(&block, status)?;
                    changed += 1;
                }
                w.delete(w.tables().blocks, &block.0)?;
            }
            Ok(changed)
        })
    }

    /// Deletes the stored data of every block off the main chain at a height below `below`
    /// (side blocks left on a losing branch), keeping their index entries as
    /// [`BlockStatus::HeaderValid`]: they cost no more disk than a header, and can be fetched
    /// again should their branch ever lead. Returns how many were pruned.
    ///
    /// One pass over the whole block index: call it now and then, not for every block.
    pub fn prune_side_blocks(&mut self, below: u32) -> Result<usize, StoreError> {
        let s = self.snap();
        let mut side = Vec::new();
        for item in s.t.block_index.iter(s.txn).lmdb()? {
            let (key, value) = item.lmdb()?;
            let hash = decode_hash(key, "block_index", key)?;
            let entry: IndexEntry = decode_value(value, "block_index", key)?;
            if entry.height < below {
                side.push(hash);
            }
        }
        self.atomically(|w| {
            let mut pruned = 0;
            for hash in &side {
                if !w.status(hash)?.is_some_and(BlockStatus::has_data)
                    || w.is_on_main_chain(hash)?
                {
                    continue;
                }
                w.delete(w.tables().blocks, &hash.0)?;
                w.set_status(hash, BlockStatus::HeaderValid)?;
                pruned += 1;
            }
            Ok(pruned)
        })
    }

    /// Whether the parent of `entry`'s block is failed (or descends from a failed block).
    fn parent_failed(&self, entry: &IndexEntry) -> Result<bool, StoreError> {
        Ok(self
            .status(&entry.header.prev)?
            .is_some_and(BlockStatus::is_failed))
    }

    /// Every indexed block's children, by parent hash: one pass over `block_index`.
    fn children_map(&self) -> Result<HashMap<BlockHash, Vec<BlockHash>>, StoreError> {
        let s = self.snap();
        let mut children: HashMap<BlockHash, Vec<BlockHash>> = HashMap::new();
        for item in s.t.block_index.iter(s.txn).lmdb()? {
            let (key, value) = item.lmdb()?;
            let hash = decode_hash(key, "block_index", key)?;
            let entry: IndexEntry = decode_value(value, "block_index", key)?;
            children.entry(entry.header.prev).or_default().push(hash);
        }
        Ok(children)
    }
}
