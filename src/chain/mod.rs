//! The chain: the only writer of the store.
//!
//! `accept_block` runs every rule in order — context-free checks, parent lookup, header context,
//! then (for a block that makes a chain with more cumulative work than the tip) the full UTXO
//! validation while connecting it. Connecting a block, or a whole reorganisation (disconnect to
//! the fork point with undo data, connect the heavier branch), is one store write transaction:
//! after a crash the store holds the old tip or the new one, never half of either.

use std::collections::HashMap;
use std::path::Path;

use gossipcoin_proto::message::{
    MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_PER_RESPONSE, MAX_HEADERS_PER_RESPONSE, MAX_LOCATOR_HASHES,
};
use gossipcoin_proto::{Block, BlockHash, BlockHeader, OutPoint};
use tracing::{debug, info, warn};

use crate::consensus::{self, HeaderContext, ValidationError};
use crate::params::ChainParams;
use crate::store::{BlockStatus, ChainRead, IndexEntry, Store, StoreError, Tip, WriteView};

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
    #[error("genesis block is invalid: {0}")]
    BadGenesis(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    /// Whether the block proves its sender misbehaved (as opposed to being early or known).
    ///
    /// A block that breaks a rule itself, repeats a block known to be invalid, or builds on
    /// one, does. A block that fails only because an ancestor on its branch (stored earlier,
    /// maybe from another peer) turned out invalid when the branch was connected blames nobody
    /// new: its sender may not have been able to know.
    pub fn is_peer_misbehaviour(&self) -> bool {
        match self {
            Self::Invalid { source, .. } => source.is_block_misbehaviour(),
            Self::KnownInvalid { .. } | Self::InvalidAncestor { .. } => true,
            _ => false,
        }
    }

    /// Whether the node cannot go on: the store failed (as opposed to the block being bad).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

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
    /// Creates a new store at `dir` holding only `genesis`. A store left empty by an interrupted
    /// create is reused; one that has a chain is refused with `StoreError::AlreadyExists`.
    pub fn create(dir: &Path, params: ChainParams, genesis: &Block) -> Result<Self, ChainError> {
        let hash = genesis.block_hash();
        if genesis.header.prev != BlockHash::ZERO {
            return Err(ChainError::BadGenesis(
                "its previous hash is not zero".into(),
            ));
        }
        consensus::check_block(genesis, &params)
            .map_err(|source| ChainError::Invalid { hash, source })?;
        let spends = consensus::check_block_spends(genesis, 0, &HashMap::new(), &params)
            .map_err(|source| ChainError::Invalid { hash, source })?;
        let store = match Store::create(dir) {
            Err(StoreError::AlreadyExists { .. }) => {
                let store = Store::open(dir)?;
                if store.read()?.tip()?.is_some() {
                    return Err(StoreError::AlreadyExists { path: dir.into() }.into());
                }
                store
            }
            other => other?,
        };
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chain_work: params.block_work(),
        };
        store.write(|w| -> Result<(), ChainError> {
            w.put_block(genesis, entry)?;
            w.connect_block(genesis, 0, &spends.spent)?;
            Ok(())
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
            chain_work: parent.chain_work.saturating_add(self.params.block_work()),
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
        let Some((parent, _)) = parent else {
            return Err(ChainError::Orphan {
                hash,
                prev: block.header.prev,
            });
        };
        let ctx = HeaderContext {
            median_time_past: self.median_time_past(&block.header.prev)?,
            now,
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
) -> Result<HashMap<OutPoint, gossipcoin_proto::Coin>, ChainError> {
    let mut coins = HashMap::new();
    for input in block.txs.iter().skip(1).flat_map(|tx| &tx.inputs) {
        if let Some(coin) = w.coin(&input.prevout)? {
            coins.insert(input.prevout, coin);
        }
    }
    Ok(coins)
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, Transaction};

    use super::*;
    use crate::consensus::testutil::{T0, coins, key, out_of, params, pay, signed_tx};
    use crate::keys::PrivateKey;

    const NOW: u32 = T0 + 1_000_000;

    /// A block on `parent` at `height` paying 10 coins (+ `fees`) to `miner`, with `txs`, mined.
    fn child(
        parent: &Block,
        height: u32,
        miner: &PrivateKey,
        txs: Vec<Transaction>,
        fees: u64,
    ) -> Block {
        let value = coins(10)
            .checked_add(Amount::from_units(fees).unwrap())
            .unwrap();
        let mut all = vec![Transaction::coinbase(height, miner.pubkey_hash(), value)];
        all.extend(txs);
        let mut block = Block {
            header: gossipcoin_proto::BlockHeader {
                version: 1,
                prev: parent.block_hash(),
                merkle_root: Default::default(),
                time: parent.header.time + 1,
                bits: params().pow_bits,
                nonce: 0,
            },
            txs: all,
        };
        crate::consensus::testutil::remine(&mut block, &params());
        block
    }

    fn genesis() -> Block {
        let mut g = Block {
            header: gossipcoin_proto::BlockHeader {
                version: 1,
                prev: BlockHash::ZERO,
                merkle_root: Default::default(),
                time: T0,
                bits: params().pow_bits,
                nonce: 0,
            },
            txs: vec![Transaction::coinbase(0, key(1).pubkey_hash(), coins(10))],
        };
        crate::consensus::testutil::remine(&mut g, &params());
        g
    }

    fn new_chain() -> (tempfile::TempDir, Chain, Block) {
        let dir = tempfile::tempdir().unwrap();
        let g = genesis();
        let chain = Chain::create(&dir.path().join("chain"), params(), &g).unwrap();
        (dir, chain, g)
    }

    fn balance(chain: &Chain, k: &PrivateKey) -> Amount {
        chain
            .store()
            .read()
            .unwrap()
            .balance(&k.pubkey_hash())
            .unwrap()
    }

    /// Key 1 pays 4 of its genesis coins to key 2.
    fn payment(g: &Block) -> Transaction {
        let (k1, k2) = (key(1), key(2));
        signed_tx(
            &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
            vec![pay(&k2, coins(4)), pay(&k1, coins(6))],
        )
    }

    #[test]
    fn extends_the_tip_and_refuses_duplicates_and_orphans() {
        let (_d, chain, g) = new_chain();
        let b1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
        let accepted = chain.accept_block(&b1, NOW, Origin::Requested).unwrap();
        assert!(
            matches!(accepted, Accepted::NewTip { ref tip, ref disconnected } if tip.height == 1 && disconnected.is_empty())
        );
        assert_eq!(balance(&chain, &key(2)), coins(4));
        assert!(matches!(
            chain.accept_block(&b1, NOW, Origin::Requested),
            Err(ChainError::Duplicate { .. })
        ));
        let mut orphan = child(&b1, 2, &key(3), vec![], 0);
        orphan.header.prev = BlockHash([9; 32]);
        crate::consensus::testutil::remine(&mut orphan, &params());
        assert!(matches!(
            chain.accept_block(&orphan, NOW, Origin::Requested),
            Err(ChainError::Orphan { .. })
        ));
        assert_eq!(chain.tip().unwrap().height, 1);
    }

    #[test]
    fn invalid_blocks_change_nothing() {
        let (_d, chain, g) = new_chain();
        // Coinbase paying one unit more than subsidy + fees.
        let mut greedy = child(&g, 1, &key(3), vec![], 0);
        greedy.txs[0].outputs[0].value = Amount::from_units(coins(10).units() + 1).unwrap();
        crate::consensus::testutil::remine(&mut greedy, &params());
        let err = chain
            .accept_block(&greedy, NOW, Origin::Requested)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Invalid {
                    source: ValidationError::CoinbaseTooLarge { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_peer_misbehaviour());
        // A block too far in the future is refused, but not as misbehaviour.
        let mut early = child(&g, 1, &key(3), vec![], 0);
        early.header.time = NOW + params().max_future_block_time + 1;
        crate::consensus::testutil::remine(&mut early, &params());
        let err = chain
            .accept_block(&early, NOW, Origin::Requested)
            .unwrap_err();
        assert!(!err.is_peer_misbehaviour(), "{err}");
        assert_eq!(chain.tip().unwrap().hash, g.block_hash());
        chain.store().check_consistency().unwrap();
    }

    #[test]
    fn reorganises_to_the_branch_with_more_work() {
        let (_d, chain, g) = new_chain();
        // Main chain: a1 (key 1 pays key 2), a2.
        let a1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
        let a2 = child(&a1, 2, &key(3), vec![], 0);
        chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
        chain.accept_block(&a2, NOW, Origin::Requested).unwrap();
        assert_eq!(balance(&chain, &key(2)), coins(4));
        // Branch: b1, b2 (equal work: stays a side branch), b3 takes over.
        let mut b1 = child(&g, 1, &key(4), vec![], 0);
        b1.header.time += 7; // a different block than a1's sibling
        crate::consensus::testutil::remine(&mut b1, &params());
        let b2 = child(&b1, 2, &key(4), vec![], 0);
        let b3 = child(&b2, 3, &key(4), vec![], 0);
        assert!(matches!(
            chain.accept_block(&b1, NOW, Origin::Requested).unwrap(),
            Accepted::SideBranch { height: 1, .. }
        ));
        assert!(matches!(
            chain.accept_block(&b2, NOW, Origin::Requested).unwrap(),
            Accepted::SideBranch { height: 2, .. }
        ));
        let Accepted::NewTip { tip, disconnected } =
            chain.accept_block(&b3, NOW, Origin::Requested).unwrap()
        else {
            panic!("b3 should be the new tip");
        };
        assert_eq!((tip.hash, tip.height), (b3.block_hash(), 3));
        assert_eq!(disconnected, vec![a2.clone(), a1.clone()]);
        // The payment of a1 is undone; key 4 mined three blocks; key 3's rewards are gone.
        assert_eq!(balance(&chain, &key(2)), Amount::ZERO);
        assert_eq!(balance(&chain, &key(1)), coins(10));
        assert_eq!(balance(&chain, &key(4)), coins(30));
        assert_eq!(balance(&chain, &key(3)), Amount::ZERO);
        chain.store().check_consistency().unwrap();
        // And back again: a3, a4 make the first branch heavier.
        let a3 = child(&a2, 3, &key(3), vec![], 0);
        let a4 = child(&a3, 4, &key(3), vec![], 0);
        chain.accept_block(&a3, NOW, Origin::Requested).unwrap();
        chain.accept_block(&a4, NOW, Origin::Requested).unwrap();
        assert_eq!(chain.tip().unwrap().hash, a4.block_hash());
        assert_eq!(balance(&chain, &key(2)), coins(4));
        assert_eq!(balance(&chain, &key(3)), coins(40));
        chain.store().check_consistency().unwrap();
    }

    #[test]
    fn locator_and_blocks_after() {
        let (_d, chain, g) = new_chain();
        let mut blocks = vec![g];
        for h in 1..=30 {
            let b = child(blocks.last().unwrap(), h, &key(3), vec![], 0);
            chain.accept_block(&b, NOW, Origin::Requested).unwrap();
            blocks.push(b);
        }
        let loc = chain.locator().unwrap();
        let hash = |h: usize| blocks[h].block_hash();
        assert_eq!(
            &loc[..10],
            &(21..=30).rev().map(hash).collect::<Vec<_>>()[..]
        );
        assert_eq!(loc.last(), Some(&hash(0)));
        assert!(loc.len() < 20);
        // A peer that knows up to height 12 (and a hash we don't know) gets 13.. in order.
        let r = chain.store().read().unwrap();
        let after =
            blocks_after(&r, &[BlockHash([9; 32]), hash(12), hash(5)], 5, usize::MAX).unwrap();
        assert_eq!(
            after.iter().map(Block::block_hash).collect::<Vec<_>>(),
            (13..18).map(hash).collect::<Vec<_>>()
        );
        // An unknown locator starts from genesis.
        assert_eq!(
            blocks_after(&r, &[], 2, usize::MAX).unwrap()[0].block_hash(),
            hash(0)
        );
        assert!(
            blocks_after(&r, &[hash(30)], 10, usize::MAX)
                .unwrap()
                .is_empty()
        );
        // The byte bound: one block at least, then only what fits.
        let size = r.block_size(&hash(13)).unwrap().unwrap();
        assert_eq!(blocks_after(&r, &[hash(12)], 10, 1).unwrap().len(), 1);
        // Served as stored: the same blocks, byte for byte, as encoding the decoded ones.
        let encoded = encoded_blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap();
        let decoded = blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap();
        let again: Vec<Vec<u8>> = decoded
            .iter()
            .map(gossipcoin_proto::encode::to_bytes)
            .collect();
        assert_eq!(encoded, again);
        assert_eq!(
            blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap().len(),
            3
        );
        // Headers: the same walk, 80 bytes each, capped by `max`.
        let headers = headers_after(&r, &[BlockHash([9; 32]), hash(12)], 5).unwrap();
        assert_eq!(
            headers.iter().map(|h| h.block_hash()).collect::<Vec<_>>(),
            (13..18).map(hash).collect::<Vec<_>>()
        );
        assert_eq!(headers_after(&r, &[], 100).unwrap().len(), 31);
        assert!(headers_after(&r, &[hash(30)], 100).unwrap().is_empty());
        // By hash: in the order asked, unknown ones skipped, the byte bound respected.
        let asked = [hash(20), BlockHash([9; 32]), hash(3), hash(25)];
        let got = encoded_blocks_by_hash(&r, &asked, usize::MAX).unwrap();
        let want: Vec<Vec<u8>> = [20, 3, 25]
            .iter()
            .map(|&h| r.block_bytes(&hash(h)).unwrap().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(encoded_blocks_by_hash(&r, &asked, 1).unwrap().len(), 1);
    }

    #[test]
    fn a_reorg_onto_an_invalid_branch_is_refused_whole() {
        let (_d, chain, g) = new_chain();
        let a1 = child(&g, 1, &key(3), vec![], 0);
        chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
        let mut b1 = child(&g, 1, &key(4), vec![payment(&g)], 0);
        b1.header.time += 7;
        crate::consensus::testutil::remine(&mut b1, &params());
        chain.accept_block(&b1, NOW, Origin::Requested).unwrap(); // side branch, spends not yet checked
        // b2 spends the genesis coin again: the branch is invalid once connected.
        let again = {
            let (k1, k5) = (key(1), key(5));
            signed_tx(
                &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
                vec![pay(&k5, coins(10))],
            )
        };
        let b2 = child(&b1, 2, &key(4), vec![again], 0);
        let err = chain.accept_block(&b2, NOW, Origin::Requested).unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Invalid {
                    source: ValidationError::MissingInput { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(chain.tip().unwrap().hash, a1.block_hash());
        assert_eq!(balance(&chain, &key(1)), coins(10));
        chain.store().check_consistency().unwrap();
    }

    /// Core's side-branch rules: an unrequested block on a branch with less work than the tip
    /// is not stored; one with equal work only within the sender's allowance; a requested one
    /// always.
    #[test]
    fn unrequested_side_blocks_are_stored_only_with_equal_work_and_allowance() {
        let (_d, chain, g) = new_chain();
        let a1 = child(&g, 1, &key(3), vec![], 0);
        let a2 = child(&a1, 2, &key(3), vec![], 0);
        chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
        let mut b1 = child(&g, 1, &key(4), vec![], 0);
        b1.header.time += 7;
        crate::consensus::testutil::remine(&mut b1, &params());
        let gossip = |may_store_side| Origin::Unrequested { may_store_side };
        // equal work, no allowance left: not stored
        assert!(matches!(
            chain.accept_block(&b1, NOW, gossip(false)).unwrap(),
            Accepted::NotStored { height: 1, .. }
        ));
        assert!(
            !chain
                .store()
                .read()
                .unwrap()
                .has_block(&b1.block_hash())
                .unwrap()
        );
        chain.accept_block(&a2, NOW, Origin::Requested).unwrap();
        // less work than the tip now: not stored even with an allowance
        assert!(matches!(
            chain.accept_block(&b1, NOW, gossip(true)).unwrap(),
            Accepted::NotStored { .. }
        ));
        assert!(
            chain
                .store()
                .read()
                .unwrap()
                .status(&b1.block_hash())
                .unwrap()
                .is_none()
        );
        // asked for (sync): stored
        assert!(matches!(
            chain.accept_block(&b1, NOW, Origin::Requested).unwrap(),
            Accepted::SideBranch { height: 1, .. }
        ));
        let a3 = child(&a2, 3, &key(3), vec![], 0);
        let mut b3 = child(&a2, 3, &key(4), vec![], 0);
        b3.header.time += 9;
        crate::consensus::testutil::remine(&mut b3, &params());
        chain.accept_block(&a3, NOW, Origin::Requested).unwrap();
        // equal work with an allowance: stored
        assert!(matches!(
            chain.accept_block(&b3, NOW, gossip(true)).unwrap(),
            Accepted::SideBranch { height: 3, .. }
        ));
        chain.store().check_consistency().unwrap();
    }

    /// An invalid block stored on a side branch (its spends are not checked there) is found out
    /// when its branch gets more work: it is remembered as failed with its descendants, the
    /// block that revealed it blames nobody, and from then on the branch is refused from the
    /// index alone, as misbehaviour.
    #[test]
    fn an_invalid_side_branch_is_remembered_and_refused_cheaply() {
        let (_d, chain, g) = new_chain();
        let a1 = child(&g, 1, &key(3), vec![], 0);
        chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
        // b1 pays itself 1,000 coins: only the spends check (on connect) sees it
        let mut b1 = child(&g, 1, &key(4), vec![], 0);
        b1.txs[0].outputs[0].value = coins(1000);
        b1.header.time += 7;
        crate::consensus::testutil::remine(&mut b1, &params());
        let side = Origin::Unrequested {
            may_store_side: true,
        };
        assert!(matches!(
            chain.accept_block(&b1, NOW, side).unwrap(),
            Accepted::SideBranch { .. }
        ));
        let b2 = child(&b1, 2, &key(4), vec![], 0);
        let err = chain.accept_block(&b2, NOW, side).unwrap_err();
        assert!(
            matches!(err, ChainError::AncestorFailed { failed, .. } if failed == b1.block_hash()),
            "{err}"
        );
        assert!(!err.is_peer_misbehaviour(), "b2's sender could not know");
        let r = chain.store().read().unwrap();
        assert_eq!(
            r.status(&b1.block_hash()).unwrap(),
            Some(BlockStatus::Failed)
        );
        assert_eq!(
            r.status(&b2.block_hash()).unwrap(),
            Some(BlockStatus::DescendantOfFailed)
        );
        assert!(
            !r.has_block(&b2.block_hash()).unwrap(),
            "no data kept for b2"
        );
        drop(r);
        assert_eq!(chain.tip().unwrap().hash, a1.block_hash());
        // again: refused from the index, and now it is misbehaviour
        let err = chain.accept_block(&b2, NOW, side).unwrap_err();
        assert!(matches!(err, ChainError::KnownInvalid { .. }), "{err}");
        assert!(err.is_peer_misbehaviour());
        let b3 = child(&b2, 3, &key(4), vec![], 0);
        let err = chain.accept_block(&b3, NOW, Origin::Requested).unwrap_err();
        assert!(matches!(err, ChainError::InvalidAncestor { .. }), "{err}");
        assert!(err.is_peer_misbehaviour());
        chain.store().check_consistency().unwrap();
    }

    /// CVE-2012-2459: a copy of a valid block with its transactions altered (merkle root no
    /// longer matching) is refused but does not condemn the hash; the real block still connects.
    #[test]
    fn a_mutated_copy_does_not_poison_the_valid_block() {
        let (_d, chain, g) = new_chain();
        let a1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
        let mut mutated = a1.clone();
        mutated.txs.pop();
        let err = chain
            .accept_block(&mutated, NOW, Origin::Requested)
            .unwrap_err();
        assert!(err.is_peer_misbehaviour(), "{err}");
        assert!(
            chain
                .store()
                .read()
                .unwrap()
                .status(&a1.block_hash())
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            chain.accept_block(&a1, NOW, Origin::Requested).unwrap(),
            Accepted::NewTip { .. }
        ));
    }

    /// A block that breaks a context-free rule after its merkle root was checked is remembered.
    #[test]
    fn a_block_breaking_a_rule_is_remembered_as_failed() {
        let (_d, chain, g) = new_chain();
        let mut two_coinbases = child(&g, 1, &key(3), vec![], 0);
        two_coinbases
            .txs
            .push(Transaction::coinbase(7, key(3).pubkey_hash(), coins(1)));
        crate::consensus::testutil::remine(&mut two_coinbases, &params());
        let err = chain
            .accept_block(&two_coinbases, NOW, Origin::Requested)
            .unwrap_err();
        assert!(matches!(err, ChainError::Invalid { .. }), "{err}");
        let hash = two_coinbases.block_hash();
        assert_eq!(
            chain.store().read().unwrap().status(&hash).unwrap(),
            Some(BlockStatus::Failed)
        );
        let err = chain
            .accept_block(&two_coinbases, NOW, Origin::Requested)
            .unwrap_err();
        assert!(matches!(err, ChainError::KnownInvalid { .. }), "{err}");
    }
}
