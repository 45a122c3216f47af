//! Tests of the chain store against real LMDB in temporary directories, with hand-built blocks
//! (no valid proof of work or signatures: the store does not check consensus).
//!
//! - `open`: create / open / read-only (in a child process) and their errors
//! - `create`: atomic creation; what an interrupted creation left is removed only when it
//!   holds no chain
//! - `chain`: connect, disconnect, reindex, rejected mutations, atomic writes
//! - `check`: the consistency check on good and deliberately broken stores
//! - `crash`: `kill -9` of a writing child process; readers while the map grows
//! - `growth`: a full map grows and the write is retried; balances are prefix scans
//! - `tx_index`: the transaction index follows the main chain (connect, disconnect, reorg,
//!   reindex)
//! - `migrate`: a schema-1 store gets its transaction index, a schema-1 or 2 store its block
//!   statuses, when opened writable; opened read-only, statuses come from the index
//! - `status`: block statuses from header to main chain, failed blocks and their descendants

mod chain;
mod check;
mod create;
mod growth;
mod growth_readers;
mod migrate;
mod open;
mod status;
mod tx_index;

use std::collections::BTreeMap;

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, Coin, MerkleRoot, OutPoint, PubkeyHash, PublicKey,
    Signature, Target, Transaction, TxIn, TxOut, U256,
};

use super::{ChainRead, IndexEntry, Store, StoreError, WriteView};

/// An easy compact target (any hash meets it).
pub(super) const BITS: u32 = 0x207f_ffff;

pub(super) fn owner(n: u16) -> PubkeyHash {
    let mut h = [0u8; 20];
    h[..2].copy_from_slice(&n.to_be_bytes());
    h[19] = 0xaa;
    PubkeyHash(h)
}

pub(super) fn units(n: u64) -> Amount {
    Amount::from_units(n).expect("test amount")
}

pub(super) fn coinbase(height: u32, to: PubkeyHash, value: u64) -> Transaction {
    Transaction::coinbase(height, to, units(value))
}

/// A transaction spending `inputs` (unsigned: the store does not verify) into `outputs`.
pub(super) fn spend(inputs: &[OutPoint], outputs: &[(PubkeyHash, u64)]) -> Transaction {
    Transaction {
        version: Transaction::VERSION,
        inputs: inputs
            .iter()
            .map(|&prevout| TxIn {
                prevout,
                signature: Signature([1; 64]),
                pubkey: PublicKey([2; 33]),
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|&(owner, value)| TxOut {
                value: units(value),
                owner,
            })
            .collect(),
    }
}

pub(super) fn out(tx: &Transaction, vout: u32) -> OutPoint {
    OutPoint {
        txid: tx.compute_txid(),
        vout,
    }
}

/// A block on `prev` with a correct merkle root.
pub(super) fn block(prev: BlockHash, time: u32, txs: Vec<Transaction>) -> Block {
    let mut block = Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev,
            merkle_root: MerkleRoot::ZERO,
            time,
            bits: BITS,
            nonce: 0,
        },
        txs,
    };
    block.header.merkle_root = block.compute_merkle_root();
    block
}

pub(super) fn block_work() -> U256 {
    Target::from_compact(BITS).unwrap().work()
}

/// The coins `block` spends, looked up as a validator would: in the UTXO set, or among the
/// outputs of earlier transactions of the same block.
pub(super) fn spent_coins(w: &WriteView<'_>, block: &Block, height: u32) -> Vec<Coin> {
    let mut created = BTreeMap::new();
    let mut spent = Vec::new();
    for tx in &block.txs {
        if !tx.is_coinbase() {
            for input in &tx.inputs {
                let coin = match created.remove(&input.prevout) {
                    Some(coin) => coin,
                    None => w.coin(&input.prevout).unwrap().unwrap_or(Coin {
                        output: TxOut {
                            value: Amount::ZERO,
                            owner: PubkeyHash::ZERO,
                        },
                        height: 0,
                        is_coinbase: false,
                    }),
                };
                spent.push(coin);
            }
        }
        for (vout, output) in tx.outputs.iter().enumerate() {
            let coin = Coin {
                output: *output,
                height,
                is_coinbase: tx.is_coinbase(),
            };
            created.insert(out(tx, vout as u32), coin);
        }
    }
    spent
}

/// Stores `block` and connects it on the tip, inside an existing write.
pub(super) fn connect_in(w: &mut WriteView<'_>, block: &Block) -> Result<(), StoreError> {
    let (height, work) = match w.tip()? {
        None => (0, U256::ZERO),
        Some(tip) => (tip.height + 1, tip.chain_work),
    };
    let entry = IndexEntry {
        header: block.header,
        height,
        chain_work: work.saturating_add(block_work()),
    };
    w.put_block(block, entry)?;
    let spent = spent_coins(w, block, height);
    w.connect_block(block, height, &spent)
}

/// Stores and connects `block` in its own write transaction.
pub(super) fn connect(store: &Store, block: &Block) -> Result<(), StoreError> {
    store.write(|w| connect_in(w, block))
}

/// The three-block chain most tests use, with its expected balances.
///
/// - 0: coinbase 50 → A
/// - 1: coinbase 50 → B; A's 50 → 30 C + 20 A
/// - 2: coinbase 50 → A; C's 30 → 10 B + 20 C; that 10 B → 10 D (spent in its own block)
///
/// Final balances: A 70, B 50, C 20, D 10 (5 coins).
pub(super) fn three_blocks() -> Vec<Block> {
    let (a, b, c, d) = (owner(1), owner(2), owner(3), owner(4));
    let cb0 = coinbase(0, a, 50);
    let b0 = block(BlockHash::ZERO, 1_000, vec![cb0.clone()]);
    let tx1 = spend(&[out(&cb0, 0)], &[(c, 30), (a, 20)]);
    let b1 = block(
        b0.block_hash(),
        1_010,
        vec![coinbase(1, b, 50), tx1.clone()],
    );
    let tx2 = spend(&[out(&tx1, 0)], &[(b, 10), (c, 20)]);
    let tx3 = spend(&[out(&tx2, 0)], &[(d, 10)]);
    let b2 = block(b1.block_hash(), 1_020, vec![coinbase(2, a, 50), tx2, tx3]);
    vec![b0, b1, b2]
}

/// A fresh store in a temporary directory.
pub(super) fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("chain")).unwrap();
    (dir, store)
}

/// A store holding [`three_blocks`].
pub(super) fn store_with_three_blocks() -> (tempfile::TempDir, Store, Vec<Block>) {
    let (dir, store) = new_store();
    let blocks = three_blocks();
    for b in &blocks {
        connect(&store, b).unwrap();
    }
    (dir, store, blocks)
}

/// Everything observable about the chain state, for before/after comparisons.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dump {
    tip: Option<super::Tip>,
    genesis: Option<BlockHash>,
    heights: Vec<BlockHash>,
    utxos: Vec<(OutPoint, Coin)>,
    by_owner: Vec<Vec<(OutPoint, Amount)>>,
    undo: Vec<Option<Vec<Coin>>>,
}

pub(super) fn dump(v: &impl ChainRead) -> Dump {
    let tip = v.tip().unwrap();
    let heights: Vec<BlockHash> = match tip {
        None => vec![],
        Some(t) => (0..=t.height)
            .map(|h| v.hash_at(h).unwrap().unwrap())
            .collect(),
    };
    assert!(v.hash_at(heights.len() as u32).unwrap().is_none());
    Dump {
        tip,
        genesis: v.genesis_hash().unwrap(),
        undo: heights.iter().map(|h| v.undo(h).unwrap()).collect(),
        heights,
        utxos: v.utxo_set().unwrap(),
        by_owner: (0..8).map(|n| v.utxos_of(&owner(n)).unwrap()).collect(),
    }
}
