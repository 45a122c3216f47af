//! Test helpers: deterministic keys, funded coins, signed transactions and mined blocks.
//!
//! Blocks are mined for real against an easy target (`0x207fffff`, about two hashes per block),
//! and transactions are signed for real, so tests exercise the same code paths as the node.

use std::collections::HashMap;

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, COIN, Coin, OutPoint, Signature, Transaction, TxIn,
    TxOut, Txid, merkle_root,
};

use crate::keys::PrivateKey;
use crate::params::ChainParams;

/// The easiest regtest-style target: about half of all hashes meet it.
pub const EASY_BITS: u32 = 0x207fffff;
/// A block time used by the tests.
pub const T0: u32 = 1_700_000_000;

/// Devnet parameters with an easy, fixed proof-of-work target.
pub fn params() -> ChainParams {
    ChainParams {
        pow_bits: EASY_BITS,
        retarget: crate::params::Retarget::Fixed,
        ..ChainParams::devnet()
    }
}

/// The key whose scalar is 32 bytes of `n` (any `n` in 1..=254).
pub fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).expect("a small repeated byte is a valid scalar")
}

/// An amount of whole coins.
pub fn coins(n: u64) -> Amount {
    Amount::from_coins(n).expect("test amount within MAX_MONEY")
}

/// An amount of base units.
pub fn units(n: u64) -> Amount {
    Amount::from_units(n).expect("test amount within MAX_MONEY")
}

/// An output paying `value` to `key`.
pub fn pay(key: &PrivateKey, value: Amount) -> TxOut {
    TxOut {
        value,
        owner: key.pubkey_hash(),
    }
}

/// A made-up outpoint `n:vout` of an earlier block.
pub fn outpoint(n: u8, vout: u32) -> OutPoint {
    OutPoint {
        txid: Txid([n; 32]),
        vout,
    }
}

/// Output `vout` of `tx`.
pub fn out_of(tx: &Transaction, vout: u32) -> OutPoint {
    OutPoint {
        txid: tx.compute_txid(),
        vout,
    }
}

/// A UTXO set with one non-coinbase coin per `(outpoint n, owner, coins)`, all from height 1.
pub fn utxos(coins_: &[(u8, &PrivateKey, u64)]) -> HashMap<OutPoint, Coin> {
    coins_
        .iter()
        .map(|&(n, k, c)| {
            let coin = Coin {
                output: pay(k, coins(c)),
                height: 1,
                is_coinbase: false,
            };
            (outpoint(n, 0), coin)
        })
        .collect()
}

/// A transaction spending each `(outpoint, spent output, owner key)` into `outputs`, signed.
pub fn signed_tx(inputs: &[(OutPoint, TxOut, &PrivateKey)], outputs: Vec<TxOut>) -> Transaction {
    let mut tx = Transaction {
        version: Transaction::VERSION,
        inputs: inputs
            .iter()
            .map(|(prevout, _, k)| TxIn {
                prevout: *prevout,
                signature: Signature::ZERO,
                pubkey: k.public_key(),
            })
            .collect(),
        outputs,
    };
    let spent: Vec<(TxOut, &PrivateKey)> = inputs.iter().map(|(_, o, k)| (*o, *k)).collect();
    sign(&mut tx, &spent);
    tx
}

/// (Re-)signs every input of `tx`; `spent[i]` is the output input `i` spends and its key.
pub fn sign(tx: &mut Transaction, spent: &[(TxOut, &PrivateKey)]) {
    let commitment = tx.sighash_commitment();
    for (i, (input, (out, k))) in tx.inputs.iter_mut().zip(spent).enumerate() {
        input.signature = k.sign(&Transaction::sighash(&commitment, i as u32, out));
    }
}

/// The coinbase at `height` paying `value` coins to key 99.
pub fn coinbase(height: u32, value: Amount) -> Transaction {
    Transaction::coinbase(height, key(99).pubkey_hash(), value)
}

/// A block of `txs` at time `t0`, with its merkle root set and mined against `params`.
pub fn mine(txs: Vec<Transaction>, params: &ChainParams) -> Block {
    let mut block = Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev: BlockHash([7; 32]),
            merkle_root: merkle_root(&[]),
            time: T0,
            bits: params.pow_bits,
            nonce: 0,
        },
        txs,
    };
    remine(&mut block, params);
    block
}

/// Recomputes the merkle root of an edited block and finds a nonce meeting the target.
pub fn remine(block: &mut Block, params: &ChainParams) {
    block.header.merkle_root = block.compute_merkle_root();
    let target = params.target();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// Finds a nonce meeting the target without touching the merkle root (for blocks whose
/// header must not commit to their transactions).
pub fn remine_header_only(block: &mut Block, params: &ChainParams) {
    let target = params.target();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// A block at `height` paying `cb` coins in its coinbase, followed by `txs`, mined.
pub fn block_at(height: u32, cb: Amount, txs: Vec<Transaction>, params: &ChainParams) -> Block {
    let mut all = vec![coinbase(height, cb)];
    all.extend(txs);
    mine(all, params)
}

/// The height of the blocks built on [`world`].
pub const HEIGHT: u32 = 5;

/// Key 1 owns 5 coins at 1:0, key 2 owns 3 coins at 2:0, key 3 owns a 10-coin coinbase
/// output of height 1 at 3:0.
pub fn world() -> HashMap<OutPoint, Coin> {
    let mut set = utxos(&[(1, &key(1), 5), (2, &key(2), 3), (3, &key(3), 10)]);
    set.get_mut(&outpoint(3, 0)).unwrap().is_coinbase = true;
    set
}

/// A signed transaction spending coins of `set`, each with the given key.
pub fn spend_from(
    set: &HashMap<OutPoint, Coin>,
    inputs: &[(OutPoint, &PrivateKey)],
    outputs: Vec<TxOut>,
) -> Transaction {
    let inputs: Vec<_> = inputs
        .iter()
        .map(|&(op, k)| (op, set[&op].output, k))
        .collect();
    signed_tx(&inputs, outputs)
}

/// Three payments, the second spending the first's output: fees 0.5 + 0.1 + 0.
pub fn payments() -> Vec<Transaction> {
    let set = world();
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let t1 = spend_from(
        &set,
        &[(outpoint(1, 0), &k1)],
        vec![pay(&k2, coins(4)), pay(&k1, units(COIN / 2))],
    );
    let t2 = signed_tx(
        &[
            (out_of(&t1, 0), t1.outputs[0], &k2),
            (outpoint(2, 0), set[&outpoint(2, 0)].output, &k2),
        ],
        vec![pay(&k3, units(69 * COIN / 10))],
    );
    let t3 = spend_from(&set, &[(outpoint(3, 0), &k3)], vec![pay(&k1, coins(10))]);
    vec![t1, t2, t3]
}
