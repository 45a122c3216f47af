//! The chain: the only writer of the store.
//!
//! `accept_block` runs every rule in order — context-free checks, parent lookup, header context,
//! then (for a block that makes a chain with more cumulative work than the tip) the full UTXO
//! validation while connecting it. Connecting a block, or a whole reorganisation (disconnect to
//! the fork point with undo data, connect the heavier branch), is one store write transaction:
//! after a crash the store holds the old tip or the new one, never half of either.

use std::collections::HashMap;
use std::path::Path;

use gossipcoin_proto::message::{MAX_BLOCKS_PER_RESPONSE, MAX_LOCATOR_HASHES, SOFT_RESPONSE_BYTES};
use gossipcoin_proto::{Block, BlockHash, OutPoint};
use tracing::{debug, info, warn};

use crate::consensus::{self, HeaderContext, ValidationError};
use crate::params::ChainParams;
use crate::store::{ChainRead, IndexEntry, Store, StoreError, Tip, WriteView};

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
    #[error("genesis block is invalid: {0}")]
    BadGenesis(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    /// Whether the block proves its sender misbehaved (as opposed to being early or known).
    pub fn is_peer_misbehaviour(&self) -> bool {
        matches!(self, Self::Invalid { source, .. } if source.is_peer_misbehaviour())
    }
}

/// What accepting a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The block is the new tip. `disconnected` lists the blocks a reorg removed from the main
    /// chain, tip first (empty when the block simply extended the tip).
    NewTip { tip: Tip, disconnected: Vec<Block> },
    /// Stored on a branch with no more work than the tip.
    SideBranch { hash: BlockHash, height: u32 },
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

    /// A block locator of the main chain: the tip, the 9 blocks below it, then steps doubling
    /// in size, and always genesis; at most `MAX_LOCATOR_HASHES` hashes.
    pub fn locator(&self) -> Result<Vec<BlockHash>, ChainError> {
        let r = self.store.read()?;
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

    /// Main-chain blocks after the first `locator` hash found on the main chain (from genesis
    /// when none is), at most `max` and about `SOFT_RESPONSE_BYTES` in all.
    pub fn blocks_after(
        &self,
        locator: &[BlockHash],
        max: usize,
    ) -> Result<Vec<Block>, ChainError> {
        let r = self.store.read()?;
        let Some(tip) = r.tip()? else {
            return Ok(vec![]);
        };
        let mut start = 0;
        for hash in locator {
            if let Some(entry) = r.index(hash)?
                && r.hash_at(entry.height)? == Some(*hash)
            {
                start = entry.height + 1;
                break;
            }
        }
        let (mut blocks, mut bytes) = (Vec::new(), 0usize);
        for height in start..=tip.height {
            if blocks.len() >= max.min(MAX_BLOCKS_PER_RESPONSE) || bytes >= SOFT_RESPONSE_BYTES {
                break;
            }
            let hash = r
                .hash_at(height)?
                .ok_or_else(|| missing(&BlockHash::ZERO))?;
            let block = r.block(&hash)?.ok_or_else(|| missing(&hash))?;
            bytes += gossipcoin_proto::encode::to_bytes(&block).len();
            blocks.push(block);
        }
        Ok(blocks)
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
    pub fn accept_block(&self, block: &Block, now: u32) -> Result<Accepted, ChainError> {
        let hash = block.block_hash();
        let invalid = |source| ChainError::Invalid { hash, source };
        let (parent, tip) = {
            let r = self.store.read()?;
            if r.index(&hash)?.is_some() {
                return Err(ChainError::Duplicate { hash });
            }
            let parent = r.index(&block.header.prev)?;
            (parent, r.tip()?)
        };
        consensus::check_block(block, &self.params).map_err(invalid)?;
        let Some(parent) = parent else {
            return Err(ChainError::Orphan {
                hash,
                prev: block.header.prev,
            });
        };
        let ctx = HeaderContext {
            median_time_past: self.median_time_past(&block.header.prev)?,
            now,
        };
        consensus::check_header_context(&block.header, &ctx, &self.params).map_err(invalid)?;

        let height = parent.height + 1;
        let chain_work = parent.chain_work.saturating_add(self.params.block_work());
        let entry = IndexEntry {
            header: block.header,
            height,
            chain_work,
        };
        let tip = tip.ok_or_else(|| StoreError::Corrupt("store has no tip".into()))?;

        if chain_work <= tip.chain_work {
            self.store
                .write(|w| -> Result<(), ChainError> { Ok(w.put_block(block, entry)?) })?;
            info!(target: "chain", height, %hash, "stored block on a side branch (no more work than the tip)");
            return Ok(Accepted::SideBranch { hash, height });
        }

        let started = std::time::Instant::now();
        let disconnected = self.store.write(|w| {
            w.put_block(block, entry)?;
            self.reorganise_to(w, hash, height)
        })?;
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
        let accepted = chain.accept_block(&b1, NOW).unwrap();
        assert!(
            matches!(accepted, Accepted::NewTip { ref tip, ref disconnected } if tip.height == 1 && disconnected.is_empty())
        );
        assert_eq!(balance(&chain, &key(2)), coins(4));
        assert!(matches!(
            chain.accept_block(&b1, NOW),
            Err(ChainError::Duplicate { .. })
        ));
        let mut orphan = child(&b1, 2, &key(3), vec![], 0);
        orphan.header.prev = BlockHash([9; 32]);
        crate::consensus::testutil::remine(&mut orphan, &params());
        assert!(matches!(
            chain.accept_block(&orphan, NOW),
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
        let err = chain.accept_block(&greedy, NOW).unwrap_err();
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
        let err = chain.accept_block(&early, NOW).unwrap_err();
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
        chain.accept_block(&a1, NOW).unwrap();
        chain.accept_block(&a2, NOW).unwrap();
        assert_eq!(balance(&chain, &key(2)), coins(4));
        // Branch: b1, b2 (equal work: stays a side branch), b3 takes over.
        let mut b1 = child(&g, 1, &key(4), vec![], 0);
        b1.header.time += 7; // a different block than a1's sibling
        crate::consensus::testutil::remine(&mut b1, &params());
        let b2 = child(&b1, 2, &key(4), vec![], 0);
        let b3 = child(&b2, 3, &key(4), vec![], 0);
        assert!(matches!(
            chain.accept_block(&b1, NOW).unwrap(),
            Accepted::SideBranch { height: 1, .. }
        ));
        assert!(matches!(
            chain.accept_block(&b2, NOW).unwrap(),
            Accepted::SideBranch { height: 2, .. }
        ));
        let Accepted::NewTip { tip, disconnected } = chain.accept_block(&b3, NOW).unwrap() else {
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
        chain.accept_block(&a3, NOW).unwrap();
        chain.accept_block(&a4, NOW).unwrap();
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
            chain.accept_block(&b, NOW).unwrap();
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
        let after = chain
            .blocks_after(&[BlockHash([9; 32]), hash(12), hash(5)], 5)
            .unwrap();
        assert_eq!(
            after.iter().map(Block::block_hash).collect::<Vec<_>>(),
            (13..18).map(hash).collect::<Vec<_>>()
        );
        // An unknown locator starts from genesis.
        assert_eq!(chain.blocks_after(&[], 2).unwrap()[0].block_hash(), hash(0));
        assert!(chain.blocks_after(&[hash(30)], 10).unwrap().is_empty());
    }

    #[test]
    fn a_reorg_onto_an_invalid_branch_is_refused_whole() {
        let (_d, chain, g) = new_chain();
        let a1 = child(&g, 1, &key(3), vec![], 0);
        chain.accept_block(&a1, NOW).unwrap();
        let mut b1 = child(&g, 1, &key(4), vec![payment(&g)], 0);
        b1.header.time += 7;
        crate::consensus::testutil::remine(&mut b1, &params());
        chain.accept_block(&b1, NOW).unwrap(); // side branch, spends not yet checked
        // b2 spends the genesis coin again: the branch is invalid once connected.
        let again = {
            let (k1, k5) = (key(1), key(5));
            signed_tx(
                &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
                vec![pay(&k5, coins(10))],
            )
        };
        let b2 = child(&b1, 2, &key(4), vec![again], 0);
        let err = chain.accept_block(&b2, NOW).unwrap_err();
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
}
