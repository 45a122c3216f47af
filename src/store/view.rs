//! Reading the chain: the records reads return ([`IndexEntry`], [`BlockStatus`], [`Tip`],
//! [`TxLocation`]) and the
//! [`ChainRead`] methods, shared by [`ReadView`] (a snapshot) and
//! [`WriteView`](super::WriteView) (which sees its own uncommitted changes).
//!
//! Every method is implemented once, here, on top of a sealed accessor to the transaction, so
//! code that only reads (validation, the API) can take `&impl ChainRead` and run against either
//! a snapshot or the write transaction in progress. Bring the trait into scope to call them:
//! `use gossipcoin::store::ChainRead;`.

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, Coin, OutPoint, PubkeyHash, Transaction, Txid, U256,
};
use heed::{RoTxn, WithoutTls};
use serde::{Deserialize, Serialize};

use super::error::{LmdbResultExt, StoreError};
use super::gate::Pass;
use super::tables::{
    BLOCK_STATUS, META_GENESIS, META_TIP, TX_INDEX, Tables, corrupt, decode_addr_key,
    decode_amount, decode_coin, decode_hash, decode_outpoint, decode_status, decode_tx_location,
    decode_value, get, height_key,
};

/// What the store knows about any block it has seen, on the main chain or not.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IndexEntry {
    pub header: BlockHeader,
    /// Distance from genesis (genesis is 0).
    pub height: u32,
    /// Work of the chain ending at this block, this block included.
    pub chain_work: U256,
}

impl IndexEntry {
    /// The block hash of this entry's header.
    pub fn hash(&self) -> BlockHash {
        self.header.block_hash()
    }
}

/// Validation state of a block in the index (DESIGN §4). Every index entry has one.
///
/// A block's data is stored exactly when its status [`has_data`](Self::has_data): a block
/// marked failed loses its data ([`WriteView::mark_failed`](super::WriteView::mark_failed)).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum BlockStatus {
    /// Header checked (PoW, link, time); block data not stored.
    HeaderValid,
    /// Data stored, transactions not yet validated against the UTXO set (side branch).
    DataStored,
    /// Connected to the main chain at least once: every rule passed.
    FullyValid,
    /// The block itself broke a rule (never a mutation: see `ValidationError::is_mutation`).
    Failed,
    /// An ancestor failed.
    DescendantOfFailed,
}

impl BlockStatus {
    /// Whether the block is invalid: [`Failed`](Self::Failed) itself or
    /// [`DescendantOfFailed`](Self::DescendantOfFailed). Such a block is refused without
    /// validation.
    pub fn is_failed(self) -> bool {
        matches!(self, Self::Failed | Self::DescendantOfFailed)
    }

    /// Whether the block's data is stored ([`DataStored`](Self::DataStored) or
    /// [`FullyValid`](Self::FullyValid)).
    pub fn has_data(self) -> bool {
        matches!(self, Self::DataStored | Self::FullyValid)
    }
}

/// The main chain's last block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tip {
    pub hash: BlockHash,
    pub height: u32,
    pub chain_work: U256,
}

/// Where a main-chain transaction is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxLocation {
    /// The main-chain block holding it.
    pub block: BlockHash,
    /// That block's height.
    pub height: u32,
    /// Its position in the block's transactions (the coinbase is 0).
    pub index: u32,
}

pub(crate) mod sealed {
    use super::{RoTxn, Tables};

    /// A transaction and the table handles, borrowed for one read.
    pub struct Snap<'a> {
        pub(crate) txn: &'a RoTxn<'a>,
        pub(crate) t: Tables,
    }

    /// Gives [`super::ChainRead`] its transaction. Sealed: only the store's views implement it.
    pub trait Snapshot {
        fn snap(&self) -> Snap<'_>;
    }
}

/// Everything that can be read from the chain store. Implemented by [`ReadView`] and
/// [`WriteView`](super::WriteView); every method reads one consistent state.
pub trait ChainRead: sealed::Snapshot {
    /// The main chain's tip, or `None` for an empty chain.
    fn tip(&self) -> Result<Option<Tip>, StoreError> {
        let s = self.snap();
        let Some(bytes) = get(s.t.meta, s.txn, META_TIP)? else {
            return Ok(None);
        };
        let hash = decode_hash(bytes, "meta", META_TIP)?;
        let entry = self
            .index(&hash)?
            .ok_or_else(|| corrupt("meta", META_TIP, format!("tip {hash} is not indexed")))?;
        Ok(Some(Tip {
            hash,
            height: entry.height,
            chain_work: entry.chain_work,
        }))
    }

    /// The hash of the main chain's block at height 0, or `None` for an empty chain.
    fn genesis_hash(&self) -> Result<Option<BlockHash>, StoreError> {
        let s = self.snap();
        get(s.t.meta, s.txn, META_GENESIS)?
            .map(|b| decode_hash(b, "meta", META_GENESIS))
            .transpose()
    }

    /// The index entry of any known block.
    fn index(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, StoreError> {
        let s = self.snap();
        get(s.t.block_index, s.txn, &hash.0)?
            .map(|b| decode_value(b, "block_index", &hash.0))
            .transpose()
    }

    /// The validation state of an indexed block; `None` for a block the index does not know.
    ///
    /// A store of schema 1 or 2 opened read-only has no status table: the status is then
    /// derived from the index (main chain [`BlockStatus::FullyValid`], else
    /// [`BlockStatus::DataStored`], or [`BlockStatus::HeaderValid`] if the data is missing).
    fn status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, StoreError> {
        let s = self.snap();
        let Some(table) = s.t.block_status else {
            return Ok(match self.index(hash)? {
                None => None,
                Some(_) if self.is_on_main_chain(hash)? => Some(BlockStatus::FullyValid),
                Some(_) if self.has_block(hash)? => Some(BlockStatus::DataStored),
                Some(_) => Some(BlockStatus::HeaderValid),
            });
        };
        match get(table, s.txn, &hash.0)? {
            Some(bytes) => decode_status(bytes, &hash.0).map(Some),
            None if get(s.t.block_index, s.txn, &hash.0)?.is_some() => Err(corrupt(
                BLOCK_STATUS,
                &hash.0,
                "indexed block has no status",
            )),
            None => Ok(None),
        }
    }

    /// Whether `hash` is a block of the main chain.
    fn is_on_main_chain(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        Ok(match self.index(hash)? {
            Some(entry) => self.hash_at(entry.height)? == Some(*hash),
            None => false,
        })
    }

    /// Whether the block's data is stored (on the main chain or not). An indexed block may
    /// have no data (see [`BlockStatus::has_data`]).
    fn has_block(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        let s = self.snap();
        Ok(get(s.t.blocks, s.txn, &hash.0)?.is_some())
    }

    /// A stored block (on the main chain or not).
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let s = self.snap();
        get(s.t.blocks, s.txn, &hash.0)?
            .map(|b| decode_value(b, "blocks", &hash.0))
            .transpose()
    }

    /// The hash of the main chain's block at `height`.
    fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        let s = self.snap();
        let key = height_key(height);
        get(s.t.height_hash, s.txn, &key)?
            .map(|b| decode_hash(b, "height_hash", &key))
            .transpose()
    }

    /// An unspent coin.
    fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        let s = self.snap();
        let key = outpoint.to_key();
        get(s.t.utxo, s.txn, &key)?
            .map(|b| decode_coin(b, &key))
            .transpose()
    }

    /// The sum of `owner`'s unspent coins: one prefix scan of the address index.
    fn balance(&self, owner: &PubkeyHash) -> Result<Amount, StoreError> {
        let mut total = Amount::ZERO;
        for (outpoint, amount) in self.utxos_of(owner)? {
            total = total.checked_add(amount).ok_or_else(|| {
                corrupt("addr_utxo", &outpoint.to_key(), "balance above MAX_MONEY")
            })?;
        }
        Ok(total)
    }

    /// `owner`'s unspent coins with their amounts, in outpoint order.
    fn utxos_of(&self, owner: &PubkeyHash) -> Result<Vec<(OutPoint, Amount)>, StoreError> {
        let s = self.snap();
        let mut out = Vec::new();
        for entry in s.t.addr_utxo.prefix_iter(s.txn, &owner.0).lmdb()? {
            let (key, value) = entry.lmdb()?;
            let (_, outpoint) = decode_addr_key(key)?;
            out.push((outpoint, decode_amount(value, "addr_utxo", key)?));
        }
        Ok(out)
    }

    /// The coins spent by a main-chain block's non-coinbase inputs, in block order.
    fn undo(&self, hash: &BlockHash) -> Result<Option<Vec<Coin>>, StoreError> {
        let s = self.snap();
        get(s.t.undo, s.txn, &hash.0)?
            .map(|b| decode_value(b, "undo", &hash.0))
            .transpose()
    }

    /// The number of unspent coins (O(1)).
    fn utxo_count(&self) -> Result<u64, StoreError> {
        let s = self.snap();
        s.t.utxo.len(s.txn).lmdb()
    }

    /// The whole UTXO set in outpoint order. Loads everything: for tools and tests.
    fn utxo_set(&self) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let s = self.snap();
        let mut out = Vec::new();
        for entry in s.t.utxo.iter(s.txn).lmdb()? {
            let (key, value) = entry.lmdb()?;
            out.push((decode_outpoint(key)?, decode_coin(value, key)?));
        }
        Ok(out)
    }

    /// The times of block `from` and of up to `n - 1` of its ancestors, newest first, following
    /// prev links through the block index (works off the main chain too): the input of the
    /// median-time-past rule. Fewer than `n` near genesis.
    fn recent_times(&self, from: &BlockHash, n: usize) -> Result<Vec<u32>, StoreError> {
        let mut times = Vec::with_capacity(n.min(64));
        let mut hash = *from;
        let mut child: Option<BlockHash> = None;
        while times.len() < n {
            let entry = match (self.index(&hash)?, child) {
                (Some(entry), _) => entry,
                (None, None) => return Err(StoreError::UnknownBlock(hash)),
                (None, Some(child)) => {
                    return Err(corrupt(
                        "block_index",
                        &hash.0,
                        format!("missing, but it is the parent of indexed block {child}"),
                    ));
                }
            };
            times.push(entry.header.time);
            if entry.height == 0 {
                break;
            }
            child = Some(hash);
            hash = entry.header.prev;
        }
        Ok(times)
    }

    /// Whether the store has a transaction index. Always, except in a schema-1 store opened
    /// read-only (see [`Store::open_read_only`](super::Store::open_read_only)).
    fn has_tx_index(&self) -> bool {
        self.snap().t.tx_index.is_some()
    }

    /// Where a main-chain transaction is (coinbases included); `None` for a transaction that is
    /// not on the main chain, and for every transaction if the store has no transaction index
    /// ([`Self::has_tx_index`]).
    fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, StoreError> {
        let s = self.snap();
        let Some(tx_index) = s.t.tx_index else {
            return Ok(None);
        };
        let Some(bytes) = get(tx_index, s.txn, &txid.0)? else {
            return Ok(None);
        };
        let (block, index) = decode_tx_location(bytes, &txid.0)?;
        let entry = self
            .index(&block)?
            .ok_or_else(|| corrupt(TX_INDEX, &txid.0, format!("block {block} is not indexed")))?;
        Ok(Some(TxLocation {
            block,
            height: entry.height,
            index,
        }))
    }

    /// A main-chain transaction and where it is: [`Self::tx_location`], then the transaction
    /// from its block (which is decoded whole).
    fn transaction(&self, txid: &Txid) -> Result<Option<(Transaction, TxLocation)>, StoreError> {
        let Some(location) = self.tx_location(txid)? else {
            return Ok(None);
        };
        let block = self.block(&location.block)?.ok_or_else(|| {
            corrupt(
                TX_INDEX,
                &txid.0,
                format!("block {} is not stored", location.block),
            )
        })?;
        let mut txs = block.txs;
        let tx = usize::try_from(location.index)
            .ok()
            .filter(|&i| i < txs.len())
            .map(|i| txs.swap_remove(i))
            .filter(|tx| tx.compute_txid() == *txid)
            .ok_or_else(|| {
                corrupt(
                    TX_INDEX,
                    &txid.0,
                    format!(
                        "transaction {} of block {} is not this one",
                        location.index, location.block
                    ),
                )
            })?;
        Ok(Some((tx, location)))
    }

    /// A stored block in its canonical encoding, as stored (not decoded): what a peer is
    /// sent, byte for byte.
    fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let s = self.snap();
        Ok(get(s.t.blocks, s.txn, &hash.0)?.map(<[u8]>::to_vec))
    }

    /// The encoded size of a stored block, without decoding it.
    fn block_size(&self, hash: &BlockHash) -> Result<Option<usize>, StoreError> {
        let s = self.snap();
        Ok(get(s.t.blocks, s.txn, &hash.0)?.map(<[u8]>::len))
    }
}

/// A consistent snapshot of the whole store, as of [`Store::read`](super::Store::read).
///
/// `Send`, so it may move between threads or tasks. Hold it briefly: while it lives, LMDB
/// cannot reuse pages freed after it began, and the map cannot be grown.
pub struct ReadView {
    // Field order matters: the transaction ends before the pass is returned.
    txn: RoTxn<'static, WithoutTls>,
    tables: Tables,
    _pass: Pass,
}

impl ReadView {
    pub(crate) fn new(txn: RoTxn<'static, WithoutTls>, tables: Tables, pass: Pass) -> Self {
        Self {
            txn,
            tables,
            _pass: pass,
        }
    }
}

impl sealed::Snapshot for ReadView {
    fn snap(&self) -> sealed::Snap<'_> {
        sealed::Snap {
            txn: &self.txn,
            t: self.tables,
        }
    }
}

impl ChainRead for ReadView {}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("txn_id", &self.txn.id())
            .finish()
    }
}
