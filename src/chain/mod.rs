//! The chain: the only writer of the store.
//!
//! `accept_block` runs every rule in order — context-free checks, parent lookup, header context,
//! then (for a block that makes a chain with more cumulative work than the tip) the full UTXO
//! validation while connecting it. Connecting a block, or a whole reorganisation (disconnect to
//! the fork point with undo data, connect the heavier branch), is one store write transaction:
//! after a crash the store holds the old tip or the new one, never half of either.
//!
//! Two more ways in, for headers-first sync: `accept_headers` (`headers.rs`) indexes headers
//! before their blocks, and `accept_batch` (`batch.rs`) connects downloaded blocks several per
//! write transaction with the same result as `accept_block` on each.

use std::collections::HashMap;
use std::path::Path;

use gossipcoin_proto::message::{
    MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_PER_RESPONSE, MAX_HEADERS_PER_RESPONSE, MAX_LOCATOR_HASHES,
};
use gossipcoin_proto::{Block, BlockHash, BlockHeader, OutPoint, U256};
use tracing::{debug, info, warn};

use crate::consensus::{self, ValidationError};
use crate::params::ChainParams;
use crate::store::{BlockStatus, ChainRead, IndexEntry, Store, StoreError, Tip, WriteView};

mod batch;
pub mod difficulty;
mod headers;

pub use batch::{BATCH_COMMIT_INTERVAL, BATCH_MAX_BLOCKS, BatchAccepted, BatchCommit};
pub use headers::HeadersAccepted;

/// Why a block was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("block {hash} is invalid: {source}")]
    Invalid {
        hash: BlockHash,
        source: ValidationError,
    },
    #[error("block {hash} is already known")]
    Duplicate { hash: BlockHash },
    /// Its parent is unknown, or known by its header alone (its block is not stored yet).
    #[error("block {hash} builds on unknown block {prev} (orphan)")]
    Orphan { hash: BlockHash, prev: BlockHash },
    #[error("block {hash} is already known to be invalid")]
    KnownInvalid { hash: BlockHash },
    #[error("block {hash} builds on {failed}, which is known to be invalid")]
    InvalidAncestor { hash: BlockHash, failed: BlockHash },
    #[error("block {hash} is on a branch whose block {failed} is invalid: {source}")]
    AncestorFailed {
        hash: BlockHash,
        failed: BlockHash,
        source: Box<ValidationError>,
    },
    /// A run of headers whose branch ends with less work than our tip's minus
    /// [`headers::ANTI_DOS_BLOCKS`] blocks' (Core's anti-DoS work threshold): not stored, not
    /// misbehaviour (a peer on a stale fork), never followed.
    #[error("headers ending at chain work {work} are too far below our tip's {tip} to be stored")]
    LowWorkHeaders { work: U256, tip: U256 },
    /// [`Chain::accept_headers`] was given no header.
    #[error("no headers to accept")]
    NoHeaders,
    /// The first header of a run builds on a header we do not know (not misbehaviour: ask
    /// for the headers before it).
    #[error("the headers build on unknown block {prev}")]
    UnconnectedHeaders { prev: BlockHash },
    /// Header `at` of a run does not build on header `at - 1` (misbehaviour).
    #[error("header {at} of the run does not build on the header before it")]
    DiscontinuousHeaders { at: usize },
    #[error("genesis block is invalid: {0}")]
    BadGenesis(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    /// Whether the block proves its sender misbehaved (as opposed to being early or known).
    ///
    /// A block (or header) that breaks a rule itself, repeats a block known to be invalid, or
    /// builds on one, does; so does a run of headers that does not link up. A block that fails only because an ancestor on its branch (stored earlier,
    /// maybe from another peer) turned out invalid when the branch was connected blames nobody
    /// new: its sender may not have been able to know.
    pub fn is_peer_misbehaviour(&self) -> bool {
        match self {
            Self::Invalid { source, .. } => source.is_block_misbehaviour(),
            Self::KnownInvalid { .. }
            | Self::InvalidAncestor { .. }
            | Self::DiscontinuousHeaders { .. } => true,
            // An unconnected run may just be ahead of what we know (ask for the headers
            // before it); an empty run is the caller's mistake, not the peer's.
            _ => false,
        }
    }

    /// Whether the node cannot go on: the store failed (as opposed to the block being bad).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// Side blocks this many blocks below the tip are pruned to their headers
/// ([`Chain::prune_side_blocks`]).
pub const SIDE_PRUNE_DEPTH: u32 = 100;
/// The chain actor prunes side blocks every this many heights.
pub const SIDE_PRUNE_EVERY: u32 = 50;

/// What accepting a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The block is the new tip. `disconnected` lists the blocks a reorg removed from the main
    /// chain, tip first (empty when the block simply extended the tip).
    NewTip { tip: Tip, disconnected: Vec<Block> },
    /// Stored on a branch with no more work than the tip (its spends are checked only if that
    /// branch ever becomes the main chain).
    SideBranch { hash: BlockHash, height: u32 },
    /// Valid as far as it was checked, but not stored: nobody asked for it and its branch has
    /// less work than the tip (or as much, past the sender's side-branch allowance).
    NotStored { hash: BlockHash, height: u32 },
}

/// How a block reached the chain, for the side-branch rules (Bitcoin Core's `fRequested`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// We asked a peer for it (sync), or made it ourselves: stored whatever its branch's work.
    Requested,
    /// Nobody asked for it (gossip): a branch with less work than the tip is not stored, one
    /// with equal work only when `may_store_side` (the sender's side-branch allowance).
    Unrequested { may_store_side: bool },
}

/// The chain state machine over one store.
pub struct Chain {
    store: Store,
    params: ChainParams,
}

impl Chain {
    /// Creates a new store at `dir` holding only `genesis`, atomically: after a kill at any
    /// moment `dir` holds either no store or this one, complete ([`Store::create_filled`]). A
    /// store with no chain in it, left by an interrupted create of an older version, is
    /// removed first ([`Store::remove_incomplete`]); one that has a chain is refused with
    /// `StoreError::AlreadyExists`.
    pub fn create(dir: &Path, params: ChainParams, genesis: &Block) -> Result<Self, ChainError> {
        let hash = genesis.block_hash();
        if genesis.header.prev != BlockHash::ZERO {
            return Err(ChainError::BadGenesis(
                "its previous hash is not zero".into(),
            ));
        }
        consensus::check_block(genesis, &params)
            .map_err(|source| ChainError::Invalid { hash, source })?;
        // The genesis block carries `pow_bits` whatever the retargeting (with ASERT: the limit).
        if genesis.header.bits != params.pow_bits {
            let source = ValidationError::WrongBits {
                got: genesis.header.bits,
                expected: params.pow_bits,
            };
            return Err(ChainError::Invalid { hash, source });
        }
        let spends = consensus::check_block_spends(genesis, 0, &HashMap::new(), &params)
            .map_err(|source| ChainError::Invalid { hash, source })?;
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chain_work: genesis.header.work(),
        };
        Store::remove_incomplete(dir)?;
        let store = Store::create_filled(dir, |store| {
            store.write(|w| -> Result<(), ChainError> {
                w.put_block(genesis, entry)?;
                w.connect_block(genesis, 0, &spends.spent)?;
                Ok(())
            })
        })?;
        info!(target: "chain", height = 0, %hash, "created chain with genesis block");
        Ok(Self { store, params })
    }

    /// Opens the existing store at `dir` for writing.
    pub fn open(dir: &Path, params: ChainParams) -> Result<Self, ChainError> {
        Ok(Self {
            store: Store::open(dir)?,
            params,
        })
    }

    /// The store, for reading.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The current tip.
    pub fn tip(&self) -> Result<Tip, ChainError> {
        self.store
            .read()?
            .tip()?
            .ok_or_else(|| StoreError::Corrupt("store has no tip".into()).into())
    }

    /// The hash of this chain's genesis block.
    /// Prunes the data of side blocks more than [`SIDE_PRUNE_DEPTH`] blocks below the tip,
    /// keeping their headers (a losing branch must not hold disk for ever). Returns how many.
    pub fn prune_side_blocks(&self) -> Result<usize, ChainError> {
        let below = self.tip()?.height.saturating_sub(SIDE_PRUNE_DEPTH);
        if below == 0 {
            return Ok(0);
        }
        Ok(self.store.write(|w| w.prune_side_blocks(below))?)
    }

    pub fn genesis_hash(&self) -> Result<BlockHash, ChainError> {
        self.store
            .read()?
            .genesis_hash()?
            .ok_or_else(|| StoreError::Corrupt("store has no genesis".into()).into())
    }

    /// The median time past that a block building on `prev` must exceed.
    pub fn median_time_past(&self, prev: &BlockHash) -> Result<u32, ChainError> {
        let times = self
            .store
            .read()?
            .recent_times(prev, self.params.median_time_span)?;
        Ok(consensus::median_time_past(&times))
    }

    /// See [`locator`].
    pub fn locator(&self) -> Result<Vec<BlockHash>, ChainError> {
        Ok(locator(&self.store.read()?)?)
    }

    /// The main-chain blocks from height `from` up to the tip (oldest first).
    pub fn main_chain_from(&self, from: u32) -> Result<Vec<Block>, ChainError> {
        let r = self.store.read()?;
        let Some(tip) = r.tip()? else {
            return Ok(vec![]);
        };
        let mut blocks = Vec::new();
        for height in from..=tip.height {
            let hash = r
                .hash_at(height)?
                .ok_or_else(|| missing(&BlockHash::ZERO))?;
            blocks.push(r.block(&hash)?.ok_or_else(|| missing(&hash))?);
        }
        Ok(blocks)
    }

    /// Validates `block` and adds it to the store, moving the tip if it makes the chain with the
    /// most work. `now` is the node's clock (seconds since 1970), for the future-time rule.
    ///
    /// Cheap refusals come first: a block known to be invalid, or building on one, is refused
    /// from the index without validating anything. A block that breaks a rule (other than by
    /// being mutated in transit, or too early for our clock) is remembered as failed, with every
    /// descendant, so it is never validated again.
    pub fn accept_block(
        &self,
        block: &Block,
        now: u32,
        origin: Origin,
    ) -> Result<Accepted, ChainError> {
        let hash = block.block_hash();
        let invalid = |source| ChainError::Invalid { hash, source };
        let (parent, tip) = {
            let r = self.store.read()?;
            match r.status(&hash)? {
                Some(status) if status.is_failed() => {
                    return Err(ChainError::KnownInvalid { hash });
                }
                Some(status) if status.has_data() => return Err(ChainError::Duplicate { hash }),
                _ => {}
            }
            let parent = match r.index(&block.header.prev)? {
                Some(parent) => Some((parent, r.status(&block.header.prev)?)),
                None => None,
            };
            (parent, r.tip()?)
        };
        let entry_on = |parent: &IndexEntry| IndexEntry {
            header: block.header,
            height: parent.height + 1,
            chain_work: parent.chain_work.saturating_add(block.header.work()),
        };
        if let Some((parent, Some(status))) = &parent
            && status.is_failed()
        {
            let entry = entry_on(parent);
            self.store
                .write(|w| w.put_header(entry, BlockStatus::DescendantOfFailed))?;
            return Err(ChainError::InvalidAncestor {
                hash,
                failed: block.header.prev,
            });
        }
        if let Err(source) = consensus::check_block(block, &self.params) {
            if let Some((parent, _)) = &parent
                && !source.is_mutation()
            {
                self.remember_failed(entry_on(parent), &source)?;
            }
            return Err(invalid(source));
        }
        // A parent known only by its header (headers-first sync) is as good as unknown here:
        // its block must be connected first.
        let Some((parent, _)) =
            parent.filter(|(_, status)| status.is_some_and(BlockStatus::has_data))
        else {
            return Err(ChainError::Orphan {
                hash,
                prev: block.header.prev,
            });
        };
        let ctx = {
            let r = self.store.read()?;
            let anchor = difficulty::anchor(&r, &self.params)?;
            difficulty::context(&r, &self.params, anchor.as_ref(), &parent, now)?
        };
        let entry = entry_on(&parent);
        if let Err(source) = consensus::check_header_context(&block.header, &ctx, &self.params) {
            self.remember_failed(entry, &source)?;
            return Err(invalid(source));
        }

        let (height, chain_work) = (entry.height, entry.chain_work);
        let tip = tip.ok_or_else(|| StoreError::Corrupt("store has no tip".into()))?;

        if chain_work <= tip.chain_work {
            let store = match origin {
                Origin::Requested => true,
                Origin::Unrequested { may_store_side } => {
                    chain_work == tip.chain_work && may_store_side
                }
            };
            if !store {
                debug!(target: "chain", height, %hash, "not storing an unrequested block on a branch with no more work than the tip");
                return Ok(Accepted::NotStored { hash, height });
            }
            self.store
                .write(|w| -> Result<(), ChainError> { Ok(w.put_block(block, entry)?) })?;
            info!(target: "chain", height, %hash, "stored block on a side branch (no more work than the tip)");
            return Ok(Accepted::SideBranch { hash, height });
        }

        let started = std::time::Instant::now();
        let result = self.store.write(|w| {
            w.put_block(block, entry)?;
            self.reorganise_to(w, hash, height)
        });
        let disconnected = match result {
            Ok(disconnected) => disconnected,
            Err(ChainError::Invalid {
                hash: failed,
                source,
            }) if !source.is_mutation() => {
                // The write was rolled back. Remember the block that broke the rule (and so
                // every block built on it, this one included) as failed, in a write of its own.
                if failed == hash {
                    self.store
                        .write(|w| w.put_header(entry, BlockStatus::Failed))?;
                    return Err(ChainError::Invalid { hash, source });
                }
                self.store.write(|w| -> Result<(), ChainError> {
                    w.mark_failed(&failed)?;
                    w.put_header(entry, BlockStatus::DescendantOfFailed)?;
                    Ok(())
                })?;
                warn!(target: "chain", height, %hash, %failed, "a block of this branch is invalid: branch marked failed");
                return Err(ChainError::AncestorFailed {
                    hash,
                    failed,
                    source: Box::new(source),
                });
            }
            Err(e) => return Err(e),
        };
        let new_tip = Tip {
            hash,
            height,
            chain_work,
        };
        if disconnected.is_empty() {
            debug!(target: "chain", height, %hash, txs = block.txs.len(),
                  ms = started.elapsed().as_millis() as u64, "connected block");
        } else {
            warn!(target: "chain", height, %hash, depth = disconnected.len(), old_tip = %tip.hash,
                  "reorganised to a chain with more work");
        }
        Ok(Accepted::NewTip {
            tip: new_tip,
            disconnected,
        })
    }

    /// Indexes a block that broke `source` as failed (unless it may become valid later: a time
    /// ahead of our clock), so it is refused from the index next time.
    fn remember_failed(
        &self,
        entry: IndexEntry,
        source: &ValidationError,
    ) -> Result<(), ChainError> {
        if !source.is_block_misbehaviour() {
            return Ok(());
        }
        let hash = entry.hash();
        self.store
            .write(|w| w.put_header(entry, BlockStatus::Failed))?;
        debug!(target: "chain", height = entry.height, %hash, "remembered invalid block");
        Ok(())
    }

    /// Inside one write transaction: disconnects the main chain down to the fork point with the
    /// branch ending at `new_tip`, then connects the branch, validating every block's spends.
    fn reorganise_to(
        &self,
        w: &mut WriteView,
        new_tip: BlockHash,
        new_height: u32,
    ) -> Result<Vec<Block>, ChainError> {
        // Walk back from the new tip until a block on the main chain: the fork point.
        let mut branch = vec![(new_tip, new_height)];
        let mut cursor = new_tip;
        loop {
            let entry = w.index(&cursor)?.ok_or_else(|| missing(&cursor))?;
            let (prev, prev_height) = (entry.header.prev, entry.height - 1);
            if w.hash_at(prev_height)? == Some(prev) {
                break;
            }
            branch.push((prev, prev_height));
            cursor = prev;
        }
        branch.reverse();
        let fork_height = branch[0].1 - 1;

        let mut disconnected = Vec::new();
        while w.tip()?.map(|t| t.height) > Some(fork_height) {
            let block = w.disconnect_tip()?;
            debug!(target: "chain", hash = %block.block_hash(), "disconnected block");
            disconnected.push(block);
        }
        for (hash, height) in branch {
            let block = w.block(&hash)?.ok_or_else(|| missing(&hash))?;
            let coins = prior_coins(w, &block)?;
            let spends = consensus::check_block_spends(&block, height, &coins, &self.params)
                .map_err(|source| ChainError::Invalid { hash, source })?;
            w.connect_block(&block, height, &spends.spent)?;
        }
        Ok(disconnected)
    }
}

/// A block locator of the main chain in snapshot `r`: the tip, the 9 blocks below it, then
/// steps doubling in size, and always genesis; at most `MAX_LOCATOR_HASHES` hashes.
pub fn locator(r: &impl ChainRead) -> Result<Vec<BlockHash>, StoreError> {
    let Some(tip) = r.tip()? else {
        return Ok(vec![]);
    };
    let mut hashes = Vec::new();
    let (mut height, mut step) = (i64::from(tip.height), 1i64);
    while height > 0 && hashes.len() < MAX_LOCATOR_HASHES - 1 {
        hashes.extend(r.hash_at(height as u32)?);
        if hashes.len() >= 10 {
            step *= 2;
        }
        height -= step;
    }
    hashes.extend(r.hash_at(0)?);
    Ok(hashes)
}

/// Main-chain blocks of snapshot `r` after the first `locator` hash found on its main chain
/// (from genesis when none is): at most `max` blocks, and no more than `max_bytes` of them
/// (always at least one, which is at most the chain's block size limit). Sizes are read from
/// the store before a block is loaded, so what a peer asks for is bounded before it is read.
pub fn blocks_after(
    r: &impl ChainRead,
    locator: &[BlockHash],
    max: usize,
    max_bytes: usize,
) -> Result<Vec<Block>, StoreError> {
    main_chain_after(r, locator, max, max_bytes)?
        .iter()
        .map(|hash| r.block(hash)?.ok_or_else(|| missing_block(hash)))
        .collect()
}

/// [`blocks_after`], each block in its canonical encoding as the store holds it: nothing is
/// decoded or encoded again to serve a peer.
pub fn encoded_blocks_after(
    r: &impl ChainRead,
    locator: &[BlockHash],
    max: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    main_chain_after(r, locator, max, max_bytes)?
        .iter()
        .map(|hash| r.block_bytes(hash)?.ok_or_else(|| missing_block(hash)))
        .collect()
}

/// The hashes [`blocks_after`] serves, chosen from the index and the stored sizes alone.
fn main_chain_after(
    r: &impl ChainRead,
    locator: &[BlockHash],
    max: usize,
    max_bytes: usize,
) -> Result<Vec<BlockHash>, StoreError> {
    let Some(tip) = r.tip()? else {
        return Ok(vec![]);
    };
    let start = fork_height(r, locator)?;
    let (mut hashes, mut bytes) = (Vec::new(), 0usize);
    for height in start..=tip.height {
        if hashes.len() >= max.min(MAX_BLOCKS_PER_RESPONSE) {
            break;
        }
        let missing = || StoreError::Corrupt(format!("main-chain block {height} is missing"));
        let hash = r.hash_at(height)?.ok_or_else(missing)?;
        let size = r.block_size(&hash)?.ok_or_else(missing)?;
        if !hashes.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        hashes.push(hash);
    }
    Ok(hashes)
}

/// Main-chain headers of snapshot `r` after the first `locator` hash found on its main chain
/// (from genesis when none is): at most `max` (and [`MAX_HEADERS_PER_RESPONSE`]).
pub fn headers_after(
    r: &impl ChainRead,
    locator: &[BlockHash],
    max: usize,
) -> Result<Vec<BlockHeader>, StoreError> {
    let Some(tip) = r.tip()? else {
        return Ok(vec![]);
    };
    let start = fork_height(r, locator)?;
    let end = tip.height.min(
        start
            .saturating_add(max.min(MAX_HEADERS_PER_RESPONSE) as u32)
            .saturating_sub(1),
    );
    let mut headers = Vec::with_capacity((end + 1).saturating_sub(start) as usize);
    for height in start..=end {
        let missing = || StoreError::Corrupt(format!("main-chain header {height} is missing"));
        let hash = r.hash_at(height)?.ok_or_else(missing)?;
        headers.push(r.index(&hash)?.ok_or_else(missing)?.header);
    }
    Ok(headers)
}

/// The stored blocks among `hashes`, in their canonical encoding, in the order asked, stopping
/// before `max_bytes` is passed (always at least one, if the first is stored) and skipping
/// blocks we lack or know to be invalid. Sizes are read before any block is loaded.
pub fn encoded_blocks_by_hash(
    r: &impl ChainRead,
    hashes: &[BlockHash],
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let (mut blocks, mut bytes) = (Vec::new(), 0usize);
    for hash in hashes.iter().take(MAX_BLOCKS_PER_REQUEST) {
        if r.status(hash)?.is_some_and(|s| s.is_failed()) {
            continue;
        }
        let Some(size) = r.block_size(hash)? else {
            continue;
        };
        if !blocks.is_empty() && bytes + size > max_bytes {
            break;
        }
        let Some(block) = r.block_bytes(hash)? else {
            continue;
        };
        bytes += size;
        blocks.push(block);
    }
    Ok(blocks)
}

/// The height after the first `locator` hash on the main chain of `r` (0 when none is).
fn fork_height(r: &impl ChainRead, locator: &[BlockHash]) -> Result<u32, StoreError> {
    for hash in locator {
        if let Some(entry) = r.index(hash)?
            && r.hash_at(entry.height)? == Some(*hash)
        {
            return Ok(entry.height + 1);
        }
    }
    Ok(0)
}

fn missing_block(hash: &BlockHash) -> StoreError {
    StoreError::Corrupt(format!("main-chain block {hash} is missing"))
}

fn missing(hash: &BlockHash) -> ChainError {
    StoreError::Corrupt(format!("block {hash} is indexed but missing")).into()
}

/// The coins in the UTXO set that `block`'s inputs name (absent ones are left out).
fn prior_coins(
    w: &WriteView,
    block: &Block,
) -> Result<HashMap<OutPoint, gossipcoin_proto::Coin>, StoreError> {
    let mut coins = HashMap::new();
    for input in block.txs.iter().skip(1).flat_map(|tx| &tx.inputs) {
        if let Some(coin) = w.coin(&input.prevout)? {
            coins.insert(input.prevout, coin);
        }
    }
    Ok(coins)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_asert;
