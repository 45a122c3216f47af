//! `Reads`: everything peers and the API read from the chain, answered from read-only store
//! snapshots on blocking threads, never by the chain actor (which only writes).
//!
//! At most one reader per core runs at a time (a semaphore), so a flood of requests or queries
//! cannot take every core from validation; what a peer may ask for is bounded in bytes before
//! any block is loaded ([`crate::chain::blocks_after`] reads sizes first).

use std::sync::Arc;

use gossipcoin_proto::message::{Response, Role, Status};
use gossipcoin_proto::{Block, BlockHash, BlockHeader, Txid, U256};
use tokio::sync::Semaphore;

use crate::chain;
use crate::store::{ChainRead, ReadView, Store, StoreError};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the chain is empty")]
    Empty,
    #[error("the node is stopping")]
    Stopping,
    #[error("store reader failed: {0}")]
    Panicked(String),
}

/// Snapshot reads of the chain store. Cheap to clone.
#[derive(Clone)]
pub struct Reads {
    store: Store,
    role: Role,
    readers: Arc<Semaphore>,
}

impl Reads {
    pub fn new(store: Store, role: Role) -> Self {
        Self {
            store,
            role,
            readers: Arc::new(Semaphore::new(max_readers())),
        }
    }

    /// Runs `f` on a fresh snapshot, on a blocking thread, once a reader slot is free.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ReadError> + Send + 'static,
        F: FnOnce(&ReadView) -> Result<T, E> + Send + 'static,
    {
        let _permit = self
            .readers
            .acquire()
            .await
            .map_err(|_| ReadError::Stopping)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let view = store.read().map_err(ReadError::from)?;
            f(&view)
        })
        .await
        .map_err(|e| ReadError::Panicked(e.to_string()))?
    }

    /// Our Status for peers: genesis, tip, height, chain work, role.
    pub async fn status(&self) -> Result<Status, ReadError> {
        let role = self.role;
        self.run(move |r| status_of(r, role)).await
    }

    /// A locator of our main chain.
    pub async fn locator(&self) -> Result<Vec<BlockHash>, ReadError> {
        self.run(|r| Ok(chain::locator(r)?)).await
    }

    /// Main-chain blocks after `locator` (at most `max`, and about `max_bytes`), as the encoded
    /// `Response::Blocks` a peer is sent, built from the blocks as the store holds them: no
    /// block is decoded or encoded again.
    pub async fn encoded_blocks_after(
        &self,
        locator: Vec<BlockHash>,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ReadError> {
        self.run(move |r| {
            let blocks = chain::encoded_blocks_after(r, &locator, max, max_bytes)?;
            Ok(Response::encode_blocks(&blocks))
        })
        .await
    }

    /// Main-chain headers after `locator`, at most `max`.
    pub async fn headers_after(
        &self,
        locator: Vec<BlockHash>,
        max: usize,
    ) -> Result<Vec<BlockHeader>, ReadError> {
        self.run(move |r| Ok(chain::headers_after(r, &locator, max)?))
            .await
    }

    /// The stored blocks among `hashes` (about `max_bytes` of them), as the encoded
    /// `Response::Blocks` a peer is sent, straight from the store's bytes.
    pub async fn encoded_blocks_by_hash(
        &self,
        hashes: Vec<BlockHash>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ReadError> {
        self.run(move |r| {
            let blocks = chain::encoded_blocks_by_hash(r, &hashes, max_bytes)?;
            Ok(Response::encode_blocks(&blocks))
        })
        .await
    }

    /// A header we indexed and do not know to be invalid: its height and chain work.
    pub async fn header(&self, hash: BlockHash) -> Result<Option<(u32, U256)>, ReadError> {
        self.run(move |r| {
            if r.status(&hash)?.is_none_or(|s| s.is_failed()) {
                return Ok(None);
            }
            Ok(r.index(&hash)?.map(|e| (e.height, e.chain_work)))
        })
        .await
    }

    /// The indexed headers after `from` up to `to` (oldest first), if `to` descends from
    /// `from`.
    pub async fn branch_between(
        &self,
        from: BlockHash,
        to: BlockHash,
    ) -> Result<Option<Vec<BlockHash>>, ReadError> {
        self.run(move |r| {
            let Some(bottom) = r.index(&from)? else {
                return Ok(None);
            };
            let mut hashes = Vec::new();
            let mut cursor = to;
            while cursor != from {
                let Some(entry) = r.index(&cursor)? else {
                    return Ok(None);
                };
                if entry.height <= bottom.height {
                    return Ok(None);
                }
                hashes.push(cursor);
                cursor = entry.header.prev;
            }
            hashes.reverse();
            Ok(Some(hashes))
        })
        .await
    }

    /// The branch of indexed headers ending at `to`, above the main chain: the height of the
    /// main-chain block it forks from, and its hashes (oldest first). None if `to` is unknown.
    pub async fn branch_to(
        &self,
        to: BlockHash,
    ) -> Result<Option<(u32, Vec<BlockHash>)>, ReadError> {
        self.run(move |r| {
            let mut hashes = Vec::new();
            let mut cursor = to;
            loop {
                let Some(entry) = r.index(&cursor)? else {
                    return Ok(None);
                };
                if r.hash_at(entry.height)? == Some(cursor) {
                    hashes.reverse();
                    return Ok(Some((entry.height, hashes)));
                }
                hashes.push(cursor);
                cursor = entry.header.prev;
            }
        })
        .await
    }

    /// Whether any of `txids` is a confirmed (main-chain) transaction, from the transaction
    /// index (false without one). An input missing from the UTXO set whose transaction is
    /// confirmed was spent on chain: the spender is a double spend, not an orphan.
    pub async fn any_confirmed(&self, txids: Vec<Txid>) -> Result<bool, ReadError> {
        self.run(move |r| {
            if !r.has_tx_index() {
                return Ok(false);
            }
            for txid in &txids {
                if r.tx_location(txid)?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
    }

    /// One block by hash, on the main chain or not (never a block known to be invalid).
    pub async fn block(&self, hash: BlockHash) -> Result<Option<Block>, ReadError> {
        self.run(move |r| {
            if r.status(&hash)?.is_some_and(|s| s.is_failed()) {
                return Ok(None);
            }
            Ok(r.block(&hash)?)
        })
        .await
    }
}

/// The Status of the chain in snapshot `r`.
pub fn status_of(r: &impl ChainRead, role: Role) -> Result<Status, ReadError> {
    let (Some(genesis), Some(tip)) = (r.genesis_hash()?, r.tip()?) else {
        return Err(ReadError::Empty);
    };
    Ok(Status {
        genesis,
        tip: tip.hash,
        height: tip.height,
        chain_work: tip.chain_work,
        role,
        time: super::unix_now(),
    })
}

/// Concurrent store readers: one per core, at least two.
fn max_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}
