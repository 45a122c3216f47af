//! Changing the chain: [`WriteView`], the inside of one write transaction.
//!
//! Each mutation (`put_block`, `connect_block`, `disconnect_tip`, `reindex_utxo`, and
//! `put_header`, `mark_failed` in `status.rs`) runs in a
//! nested transaction: if it fails, the write transaction is left exactly as before the call,
//! so a caller that handles the error and carries on never commits half a block. Nothing is
//! durable until the closure passed to [`Store::write`](super::Store::write) returns `Ok`.

use gossipcoin_proto::encode::MAX_BLOCK_BYTES;
use gossipcoin_proto::{Block, BlockHash, Coin, OutPoint};
use heed::{Env, MdbError, PutFlags, RwTxn, WithoutTls};

use super::error::{LmdbResultExt, StoreError, from_heed, is_map_full};
use super::tables::{
    BLOCK_STATUS, Db, META_GENESIS, META_TIP, TX_INDEX, Tables, addr_key, block_txids, corrupt,
    encode_value, height_key, status_value, tx_location_value,
};
use super::utxo::{CoinSet, apply_block, unapply_block};
use super::view::{BlockStatus, ChainRead, IndexEntry, sealed};

/// One write transaction: every [`ChainRead`] method (seeing this transaction's own changes)
/// plus the mutations. Obtained only inside [`Store::write`](super::Store::write).
pub struct WriteView<'e> {
    txn: RwTxn<'e>,
    env: &'e Env<WithoutTls>,
    tables: Tables,
    /// An LMDB call failed with MDB_MAP_FULL: the transaction is dead and must be retried in a
    /// bigger map, whatever the closure returns.
    map_full: bool,
}

impl<'e> WriteView<'e> {
    pub(super) fn new(txn: RwTxn<'e>, env: &'e Env<WithoutTls>, tables: Tables) -> Self {
        Self {
            txn,
            env,
            tables,
            map_full: false,
        }
    }

    /// The transaction, and whether it hit a full map.
    pub(crate) fn finish(self) -> (RwTxn<'e>, bool) {
        (self.txn, self.map_full)
    }

    /// Converts a heed result, remembering a full map.
    fn track<T>(&mut self, result: heed::Result<T>) -> Result<T, StoreError> {
        if let Err(e) = &result
            && is_map_full(e)
        {
            self.map_full = true;
        }
        result.lmdb()
    }

    /// The table handles.
    pub(super) fn tables(&self) -> Tables {
        self.tables
    }

    pub(super) fn put(&mut self, db: Db, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let r = db.put(&mut self.txn, key, value);
        self.track(r)
    }

    /// Inserts a new key; `Ok(false)` if it already exists (LMDB's NO_OVERWRITE).
    fn put_new(&mut self, db: Db, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        match db.put_with_flags(&mut self.txn, PutFlags::NO_OVERWRITE, key, value) {
            Err(heed::Error::Mdb(MdbError::KeyExist)) => Ok(false),
            r => self.track(r).map(|()| true),
        }
    }

    pub(super) fn delete(&mut self, db: Db, key: &[u8]) -> Result<bool, StoreError> {
        let r = db.delete(&mut self.txn, key);
        self.track(r)
    }

    /// Runs `f` in a nested transaction, merged into this one only if `f` succeeds.
    pub(super) fn atomically<R>(
        &mut self,
        f: impl FnOnce(&mut WriteView<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = match self.env.nested_write_txn(&mut self.txn) {
            Ok(txn) => txn,
            Err(e) => {
                self.map_full |= is_map_full(&e);
                return Err(from_heed(e));
            }
        };
        let mut child = WriteView::new(txn, self.env, self.tables);
        let result = f(&mut child);
        let (txn, full) = child.finish();
        self.map_full |= full;
        match result {
            Ok(value) if !full => match txn.commit() {
                Ok(()) => Ok(value),
                Err(e) => {
                    self.map_full |= is_map_full(&e);
                    Err(from_heed(e))
                }
            },
            Ok(_) => {
                txn.abort();
                Err(StoreError::Lmdb("the memory map is full".into()))
            }
            Err(e) => {
                txn.abort();
                Err(e)
            }
        }
    }

    /// Stores a block and its index entry (on no chain yet: the main chain is untouched), with
    /// status [`BlockStatus::DataStored`]: a block indexed as a header only
    /// ([`BlockStatus::HeaderValid`]) gets its data; one that already has data keeps its status.
    /// Storing the same block again is a no-op; a different entry for a known hash is refused.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a block marked failed or descending from a failed block
    /// (its own status, or its parent's, [`is_failed`](BlockStatus::is_failed)), a block whose
    /// entry does not match, and a block over the size limit.
    pub fn put_block(&mut self, block: &Block, entry: IndexEntry) -> Result<(), StoreError> {
        let hash = block.block_hash();
        let rejected = |reason: String| StoreError::Rejected { hash, reason };
        if entry.header != block.header {
            return Err(rejected(
                "the index entry's header is not the block's".into(),
            ));
        }
        let bytes = encode_value(block);
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(rejected(format!(
                "{} bytes exceed the limit of {MAX_BLOCK_BYTES}",
                bytes.len()
            )));
        }
        let status = self.status(&hash)?;
        if let Some(failed) = status.filter(|s| s.is_failed()) {
            return Err(rejected(format!("it is marked {failed:?}")));
        }
        if let Some(parent) = self.status(&block.header.prev)?.filter(|s| s.is_failed()) {
            return Err(rejected(format!(
                "its parent {} is marked {parent:?}",
                block.header.prev
            )));
        }
        match self.index(&hash)? {
            Some(known) if known != entry => {
                return Err(rejected(format!(
                    "already indexed with another height or chain work (height {})",
                    known.height
                )));
            }
            Some(_) if self.has_block(&hash)? => return Ok(()),
            _ => {}
        }
        let status = match status {
            None | Some(BlockStatus::HeaderValid) => BlockStatus::DataStored,
            Some(known) => known,
        };
        self.atomically(|w| {
            w.put(w.tables.blocks, &hash.0, &bytes)?;
            w.put(w.tables.block_index, &hash.0, &encode_value(&entry))?;
            w.set_status(&hash, status)
        })
    }

    /// Records the status of an indexed block.
    pub(super) fn set_status(
        &mut self,
        hash: &BlockHash,
        status: BlockStatus,
    ) -> Result<(), StoreError> {
        let table = self.tables.block_status.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "table {BLOCK_STATUS} is missing in a writable store"
            ))
        })?;
        self.put(table, &hash.0, &status_value(status))
    }

    /// Makes `block` (already stored with [`Self::put_block`] at `height`) the new tip: spends
    /// its inputs, adds its outputs, records undo data, the height and where each of its
    /// transactions is, and marks it [`BlockStatus::FullyValid`] (it stays so once
    /// disconnected). `spent` is what the caller validated against (the coins of the
    /// non-coinbase inputs, in block order); it must equal what the UTXO set holds. A block with
    /// a transaction already on the main chain is refused.
    pub fn connect_block(
        &mut self,
        block: &Block,
        height: u32,
        spent: &[Coin],
    ) -> Result<(), StoreError> {
        let hash = block.block_hash();
        let rejected = |reason: String| StoreError::Rejected { hash, reason };
        let entry = self.index(&hash)?.ok_or(StoreError::UnknownBlock(hash))?;
        if entry.height != height {
            return Err(rejected(format!(
                "indexed at height {}, connected at {height}",
                entry.height
            )));
        }
        if let Some(failed) = self.status(&hash)?.filter(|s| s.is_failed()) {
            return Err(rejected(format!("it is marked {failed:?}")));
        }
        if !self.has_block(&hash)? {
            return Err(rejected("its data is not stored".into()));
        }
        match self.tip()? {
            None if height != 0 => {
                return Err(rejected(format!(
                    "the chain is empty but height is {height}"
                )));
            }
            Some(tip)
                if block.header.prev != tip.hash || Some(height) != tip.height.checked_add(1) =>
            {
                return Err(rejected(format!(
                    "it does not extend the tip {} at height {}",
                    tip.hash, tip.height
                )));
            }
            _ => {}
        }
        self.atomically(|w| {
            let undo = apply_block(w, block, height)?;
            if undo != spent {
                return Err(rejected(
                    "the spent coins given differ from the UTXO set's".into(),
                ));
            }
            w.put(w.tables.undo, &hash.0, &encode_value(&undo))?;
            let tx_index = w.tx_index_table()?;
            for (txid, position) in block_txids(block)? {
                if !w.put_new(tx_index, &txid.0, &tx_location_value(&hash, position))? {
                    return Err(rejected(format!(
                        "its transaction {txid} is already on the main chain"
                    )));
                }
            }
            let key = height_key(height);
            if !w.put_new(w.tables.height_hash, &key, &hash.0)? {
                return Err(StoreError::Corrupt(format!(
                    "height_hash already has an entry at height {height}, above the tip"
                )));
            }
            w.put(w.tables.meta, META_TIP, &hash.0)?;
            if height == 0 {
                w.put(w.tables.meta, META_GENESIS, &hash.0)?;
            }
            w.set_status(&hash, BlockStatus::FullyValid)
        })
    }

    /// Reverses the tip block with its undo data and returns it; its parent becomes the tip
    /// (disconnecting genesis empties the chain). Its transactions leave the transaction index;
    /// the block stays stored and in the block index.
    pub fn disconnect_tip(&mut self) -> Result<Block, StoreError> {
        let tip = self.tip()?.ok_or(StoreError::EmptyChain)?;
        let block = self.block(&tip.hash)?.ok_or_else(|| {
            StoreError::Corrupt(format!("the tip block {} is not stored", tip.hash))
        })?;
        let undo = self
            .undo(&tip.hash)?
            .ok_or(StoreError::MissingUndo(tip.hash))?;
        self.atomically(|w| {
            unapply_block(w, &block, &undo)?;
            w.delete(w.tables.undo, &tip.hash.0)?;
            w.unindex_txs(&block, &tip.hash)?;
            if !w.delete(w.tables.height_hash, &height_key(tip.height))? {
                return Err(StoreError::Corrupt(format!(
                    "height_hash has no entry for the tip height {}",
                    tip.height
                )));
            }
            if tip.height == 0 {
                w.delete(w.tables.meta, META_TIP)?;
                w.delete(w.tables.meta, META_GENESIS)?;
            } else {
                w.put(w.tables.meta, META_TIP, &block.header.prev.0)?;
            }
            Ok(())
        })?;
        Ok(block)
    }

    /// Rebuilds `utxo`, `addr_utxo`, `undo` and `tx_index` by replaying every main-chain block
    /// from genesis. The result equals connecting the blocks one by one. Block statuses are
    /// kept as they are.
    pub fn reindex_utxo(&mut self) -> Result<(), StoreError> {
        let tip = self.tip()?;
        self.atomically(|w| {
            let t = w.tables;
            w.clear(t.utxo)?;
            w.clear(t.addr_utxo)?;
            w.clear(t.undo)?;
            let tx_index = w.tx_index_table()?;
            w.clear(tx_index)?;
            let Some(tip) = tip else { return Ok(()) };
            for height in 0..=tip.height {
                let hash = w.hash_at(height)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("no main-chain block at height {height}"))
                })?;
                let block = w.block(&hash)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("main-chain block {hash} is not stored"))
                })?;
                let undo = apply_block(w, &block, height)?;
                w.put(t.undo, &hash.0, &encode_value(&undo))?;
                for (txid, position) in block_txids(&block)? {
                    if !w.put_new(tx_index, &txid.0, &tx_location_value(&hash, position))? {
                        return Err(corrupt(TX_INDEX, &txid.0, "on the main chain twice"));
                    }
                }
            }
            Ok(())
        })
    }

    /// The `tx_index` table. Missing only in a schema-1 store opened read-only, where no write
    /// transaction can begin.
    fn tx_index_table(&self) -> Result<Db, StoreError> {
        self.tables.tx_index.ok_or_else(|| {
            StoreError::Corrupt(format!("table {TX_INDEX} is missing in a writable store"))
        })
    }

    /// Removes the `tx_index` entries of `block` (hash `hash`), each of which must place its
    /// transaction in this block at its position.
    fn unindex_txs(&mut self, block: &Block, hash: &BlockHash) -> Result<(), StoreError> {
        let tx_index = self.tx_index_table()?;
        for (txid, position) in block_txids(block)? {
            let stored = tx_index.get(&self.txn, &txid.0).lmdb()?;
            if stored != Some(&tx_location_value(hash, position)[..]) {
                return Err(corrupt(
                    TX_INDEX,
                    &txid.0,
                    format!("does not place this transaction of block {hash} where it is"),
                ));
            }
            self.delete(tx_index, &txid.0)?;
        }
        Ok(())
    }

    fn clear(&mut self, db: Db) -> Result<(), StoreError> {
        let r = db.clear(&mut self.txn);
        self.track(r)
    }

    /// Test hook: deletes a raw entry, to break the store on purpose.
    #[cfg(test)]
    pub(crate) fn raw_delete(
        &mut self,
        table: fn(&Tables) -> Db,
        key: &[u8],
    ) -> Result<bool, StoreError> {
        let db = table(&self.tables);
        self.delete(db, key)
    }

    /// Test hook: writes a raw entry, to break the store on purpose.
    #[cfg(test)]
    pub(crate) fn raw_put(
        &mut self,
        table: fn(&Tables) -> Db,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let db = table(&self.tables);
        self.put(db, key, value)
    }
}

impl CoinSet for WriteView<'_> {
    fn add_coin(&mut self, outpoint: OutPoint, coin: Coin) -> Result<(), StoreError> {
        let t = self.tables;
        if !self.put_new(t.utxo, &outpoint.to_key(), &encode_value(&coin))? {
            return Err(StoreError::DuplicateCoin(outpoint));
        }
        let amount = coin.output.value.units().to_be_bytes();
        if !self.put_new(
            t.addr_utxo,
            &addr_key(&coin.output.owner, &outpoint),
            &amount,
        )? {
            return Err(StoreError::Corrupt(format!(
                "addr_utxo already lists the new coin {outpoint}"
            )));
        }
        Ok(())
    }

    fn remove_coin(&mut self, outpoint: &OutPoint) -> Result<Coin, StoreError> {
        let t = self.tables;
        let coin = self
            .coin(outpoint)?
            .ok_or(StoreError::MissingCoin(*outpoint))?;
        self.delete(t.utxo, &outpoint.to_key())?;
        if !self.delete(t.addr_utxo, &addr_key(&coin.output.owner, outpoint))? {
            return Err(StoreError::Corrupt(format!(
                "addr_utxo does not list the unspent coin {outpoint} of {}",
                coin.output.owner
            )));
        }
        Ok(coin)
    }
}

impl sealed::Snapshot for WriteView<'_> {
    fn snap(&self) -> sealed::Snap<'_> {
        sealed::Snap {
            txn: &self.txn,
            t: self.tables,
        }
    }
}

impl ChainRead for WriteView<'_> {}
