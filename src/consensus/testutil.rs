//! Test helpers: deterministic keys, funded coins, signed transactions and mined blocks.
//!
//! Blocks are mined for real against an easy target (`0x207fffff`, about two hashes per block),
//! and transactions are signed for real, so tests exercise the same code paths as the node.

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, OutPoint, Signature, Transaction, TxIn, TxOut, Txid,
    merkle_root,
};

use crate::keys::PrivateKey;
use crate::params::ChainParams;

/// The easiest regtest-style target: about half of all hashes meet it.
pub const EASY_BITS: u32 = 0x207fffff;
/// A block time used by the tests.
pub const T0: u32 = 1_700_000_000;

/// Devnet parameters with an easy proof-of-work target.
pub fn params() -> ChainParams {
    ChainParams {
        pow_bits: EASY_BITS,
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

/// A block at `height` paying `cb` coins in its coinbase, followed by `txs`, mined.
pub fn block_at(height: u32, cb: Amount, txs: Vec<Transaction>, params: &ChainParams) -> Block {
    let mut all = vec![coinbase(height, cb)];
    all.extend(txs);
    mine(all, params)
}
