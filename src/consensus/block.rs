//! Context-free block rules: everything a block must satisfy on its own, before the UTXO set is
//! consulted.
//!
//! Order matters for what an error means. The header's own proof of work comes first (cheap, and
//! it makes a flood of junk blocks expensive). Then the merkle root and the repeated-txid check:
//! once they pass, the header commits to every byte of the transactions, so any later error
//! condemns the block hash itself, not just this copy of the block.

use std::collections::HashSet;

use gossipcoin_proto::{Block, Txid, encode, merkle_root, sha256d};
use rayon::prelude::*;

use super::error::ValidationError;
use super::header::check_header;
use super::transaction::check_transaction_sized;
use crate::params::ChainParams;

/// The smallest encoded transaction that can pass [`super::check_transaction`]: one input
/// (outpoint, 64-byte signature, 33-byte key) and one output (amount, 20-byte owner). A block
/// cannot hold more transactions than its size limit divided by this, so a longer list is
/// refused before any transaction is encoded or hashed.
pub const MIN_TX_BYTES: usize = 1 + 1 + 32 + 1 + 64 + 33 + 1 + 1 + 20;

/// Checks the rules a block must satisfy whatever chain it extends, cheapest first:
/// - the header's bits are usable for this chain, and the block hash meets their target
///   ([`super::check_header`]);
/// - structure, before any hashing: at most `max_block_size / MIN_TX_BYTES` transactions, none
///   without inputs or outputs, and an encoded size of at most `params.max_block_size`;
/// - the merkle root matches the transactions, and no txid repeats (CVE-2012-2459);
/// - exactly one coinbase, first, with an all-zero signature and public key;
/// - every transaction passes [`super::check_transaction`].
///
/// Everything before the merkle check is about this copy of the block (the header does not yet
/// commit to it): those errors are mutations ([`ValidationError::is_mutation`]). Each
/// transaction is encoded once (in parallel): the encoding gives its size, then its txid; the
/// size limit is checked before anything is hashed.
pub fn check_block(block: &Block, params: &ChainParams) -> Result<(), ValidationError> {
    let header = &block.header;
    check_header(header, params)?;
    check_structure(block, params)?;
    // Each transaction is encoded once: its size, then its txid, come from those bytes.
    let bytes: Vec<Vec<u8>> = block.txs.par_iter().map(encode::to_bytes).collect();
    let size = encoded_block_size(block.txs.len(), bytes.iter().map(Vec::len).sum());
    if size > params.max_block_size {
        return Err(ValidationError::BlockTooLarge {
            size,
            max: params.max_block_size,
        });
    }
    let encoded: Vec<(Txid, usize)> = bytes
        .par_iter()
        .map(|b| (Txid(sha256d(b)), b.len()))
        .collect();
    drop(bytes);
    let txids: Vec<Txid> = encoded.iter().map(|&(txid, _)| txid).collect();
    let computed = parallel_merkle_root(&txids);
    if computed != header.merkle_root {
        return Err(ValidationError::BadMerkleRoot {
            header: header.merkle_root,
            computed,
        });
    }
    let mut seen = HashSet::with_capacity(txids.len());
    if let Some(&txid) = txids.iter().find(|txid| !seen.insert(**txid)) {
        return Err(ValidationError::DuplicateTxid { txid });
    }

    check_coinbase_position(block)?;
    let coinbase_input = &block.txs[0].inputs[0];
    if coinbase_input.signature.0 != [0; 64] || coinbase_input.pubkey.0 != [0; 33] {
        return Err(ValidationError::BadCoinbaseInput);
    }

    for (tx, &(txid, size)) in block.txs.iter().zip(&encoded) {
        check_transaction_sized(tx, txid, size)?;
    }
    Ok(())
}

/// The checks that need neither encoding nor hashing: transaction count, empty transactions.
fn check_structure(block: &Block, params: &ChainParams) -> Result<(), ValidationError> {
    let max = params.max_block_size / MIN_TX_BYTES;
    if block.txs.len() > max {
        return Err(ValidationError::TooManyTransactions {
            count: block.txs.len(),
            max,
        });
    }
    if let Some(index) = block
        .txs
        .iter()
        .position(|tx| tx.inputs.is_empty() || tx.outputs.is_empty())
    {
        return Err(ValidationError::EmptyTransaction { index });
    }
    Ok(())
}

/// Exactly one coinbase, and it is the first transaction.
fn check_coinbase_position(block: &Block) -> Result<(), ValidationError> {
    let later = block
        .txs
        .iter()
        .skip(1)
        .position(|tx| tx.is_coinbase())
        .map(|i| i + 1);
    match (block.txs.first(), later) {
        (Some(first), None) if first.is_coinbase() => Ok(()),
        (Some(first), Some(index)) if first.is_coinbase() => {
            Err(ValidationError::MultipleCoinbase { index })
        }
        (_, Some(index)) => Err(ValidationError::CoinbaseNotFirst { index }),
        (_, None) => Err(ValidationError::NoCoinbase),
    }
}

/// [`merkle_root`], with the wide lower levels of the tree hashed in parallel: for a block of
/// thousands of transactions the tree is thousands of hashes, too many to leave on one core.
fn parallel_merkle_root(txids: &[Txid]) -> gossipcoin_proto::MerkleRoot {
    const SEQUENTIAL_BELOW: usize = 256;
    if txids.len() < SEQUENTIAL_BELOW {
        return merkle_root(txids);
    }
    // One level up, pairing as `merkle_root` does (an odd last node with itself); the tree over
    // this level has the same root.
    let level: Vec<Txid> = txids
        .par_chunks(2)
        .map(|pair| {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&pair[0].0);
            buf[32..].copy_from_slice(&pair.get(1).unwrap_or(&pair[0]).0);
            Txid(sha256d(&buf))
        })
        .collect();
    parallel_merkle_root(&level)
}

/// The canonical encoded size of a block from its transactions' sizes: the 80-byte header, the
/// transaction count as a postcard varint, then the transactions.
fn encoded_block_size(tx_count: usize, txs_size: usize) -> usize {
    let varint_len = (usize::BITS - (tx_count | 1).leading_zeros()).div_ceil(7) as usize;
    gossipcoin_proto::BlockHeader::SIZE + varint_len + txs_size
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, Signature, Transaction, encode};

    use super::super::testutil::*;
    use super::*;

    /// A valid block at height 5: coinbase and two payments.
    fn good_block() -> Block {
        let (a, b) = (key(1), key(2));
        let t1 = signed_tx(
            &[(outpoint(1, 0), pay(&a, coins(5)), &a)],
            vec![pay(&b, coins(5))],
        );
        let t2 = signed_tx(
            &[(outpoint(2, 0), pay(&b, coins(3)), &b)],
            vec![pay(&a, coins(2))],
        );
        block_at(5, coins(11), vec![t1, t2], &params())
    }

    #[test]
    fn a_good_block_passes() {
        assert_eq!(check_block(&good_block(), &params()), Ok(()));
    }

    #[test]
    fn size_is_computed_like_the_encoding() {
        let block = good_block();
        let txs: usize = block.txs.iter().map(Transaction::encoded_len).sum();
        assert_eq!(
            encoded_block_size(block.txs.len(), txs),
            encode::to_bytes(&block).len()
        );
        for n in [0usize, 1, 127, 128, 16_383, 16_384, 1 << 21] {
            let mut expect = encode::to_bytes(&n).len();
            expect += gossipcoin_proto::BlockHeader::SIZE;
            assert_eq!(encoded_block_size(n, 0), expect, "{n}");
        }
    }

    #[test]
    fn parallel_merkle_root_equals_the_sequential_one() {
        let txids: Vec<Txid> = (0..3000u32)
            .map(|n| Txid(gossipcoin_proto::sha256d(&n.to_le_bytes())))
            .collect();
        for n in [0, 1, 2, 3, 255, 256, 257, 511, 512, 513, 1001, 2000, 3000] {
            assert_eq!(
                parallel_merkle_root(&txids[..n]),
                merkle_root(&txids[..n]),
                "{n}"
            );
        }
    }

    #[test]
    fn too_large() {
        let block = good_block();
        let size = encode::to_bytes(&block).len();
        let mut p = params();
        p.max_block_size = size;
        assert_eq!(check_block(&block, &p), Ok(()));
        p.max_block_size = size - 1;
        assert_eq!(
            check_block(&block, &p),
            Err(ValidationError::BlockTooLarge {
                size,
                max: size - 1
            })
        );
    }

    /// The fat-block attack: a header with valid proof of work over a long list of empty
    /// 3-byte transactions. It is refused on its structure, before any transaction is hashed
    /// (its merkle root is wrong too, and that is not what is reported), and as a mutation, so
    /// the header's hash is not condemned.
    #[test]
    fn fat_blocks_are_refused_on_structure_before_hashing() {
        let empty = Transaction {
            version: 1,
            inputs: vec![],
            outputs: vec![],
        };
        assert_eq!(encode::to_bytes(&empty).len(), 3);
        let p = params();
        let max = p.max_block_size / MIN_TX_BYTES;
        let mut fat = good_block();
        fat.txs.extend(std::iter::repeat_n(empty.clone(), max));
        fat.header.merkle_root = Default::default();
        remine_header_only(&mut fat, &p);
        let err = check_block(&fat, &p).unwrap_err();
        assert_eq!(
            err,
            ValidationError::TooManyTransactions {
                count: max + 3,
                max
            }
        );
        assert!(err.is_mutation() && err.is_block_misbehaviour());

        let mut one_empty = good_block();
        one_empty.txs.push(empty);
        one_empty.header.merkle_root = Default::default();
        remine_header_only(&mut one_empty, &p);
        let err = check_block(&one_empty, &p).unwrap_err();
        assert_eq!(err, ValidationError::EmptyTransaction { index: 3 });
        assert!(err.is_mutation());
    }

    #[test]
    fn the_smallest_valid_transaction_is_min_tx_bytes() {
        let k = key(1);
        let tx = signed_tx(
            &[(outpoint(1, 0), pay(&k, coins(0)), &k)],
            vec![pay(&key(2), Amount::ZERO)],
        );
        assert_eq!(
            check_transaction_sized(&tx, tx.compute_txid(), tx.encoded_len()),
            Ok(())
        );
        assert_eq!(tx.encoded_len(), MIN_TX_BYTES);
    }

    #[test]
    fn wrong_bits() {
        let easy = ChainParams {
            pow_bits: 0x2100ffff,
            ..params()
        };
        let block = block_at(5, coins(10), vec![], &easy);
        assert_eq!(
            check_block(&block, &params()),
            Err(ValidationError::WrongBits {
                got: 0x2100ffff,
                expected: EASY_BITS
            })
        );
    }

    #[test]
    fn hash_above_target() {
        let p = params();
        let mut block = good_block();
        while p.target().is_met_by(&block.block_hash()) {
            block.header.nonce += 1;
        }
        assert_eq!(
            check_block(&block, &p),
            Err(ValidationError::HighHash {
                hash: block.block_hash()
            })
        );
    }

    #[test]
    fn merkle_root_mismatch() {
        let mut block = good_block();
        block.txs[2].outputs[0].value = coins(1);
        let err = check_block(&block, &params()).unwrap_err();
        assert_eq!(
            err,
            ValidationError::BadMerkleRoot {
                header: block.header.merkle_root,
                computed: block.compute_merkle_root()
            }
        );
        assert!(err.is_mutation());
    }

    #[test]
    fn repeated_txid_with_the_same_merkle_root() {
        let mut block = good_block();
        let root = block.header.merkle_root;
        // [cb, t1, t2] and [cb, t1, t2, t2] share a merkle root: the header stays valid
        block.txs.push(block.txs[2].clone());
        assert_eq!(block.compute_merkle_root(), root);
        assert_eq!(
            check_block(&block, &params()),
            Err(ValidationError::DuplicateTxid {
                txid: block.txs[2].compute_txid()
            })
        );
    }

    #[test]
    fn no_transactions_or_no_coinbase() {
        let p = params();
        assert_eq!(
            check_block(&mine(vec![], &p), &p),
            Err(ValidationError::NoCoinbase)
        );
        let mut txs = good_block().txs;
        txs.remove(0);
        assert_eq!(
            check_block(&mine(txs, &p), &p),
            Err(ValidationError::NoCoinbase)
        );
    }

    #[test]
    fn coinbase_not_first() {
        let p = params();
        let mut txs = good_block().txs;
        txs.swap(0, 1);
        assert_eq!(
            check_block(&mine(txs, &p), &p),
            Err(ValidationError::CoinbaseNotFirst { index: 1 })
        );
    }

    #[test]
    fn two_coinbases() {
        let p = params();
        let mut txs = good_block().txs;
        txs.push(coinbase(6, coins(1)));
        assert_eq!(
            check_block(&mine(txs, &p), &p),
            Err(ValidationError::MultipleCoinbase { index: 3 })
        );
    }

    #[test]
    fn coinbase_with_a_signature_or_key() {
        let p = params();
        for (sig, key_byte) in [(Signature([1; 64]), 0), (Signature::ZERO, 2)] {
            let mut block = good_block();
            block.txs[0].inputs[0].signature = sig;
            block.txs[0].inputs[0].pubkey.0[0] = key_byte;
            remine(&mut block, &p);
            assert_eq!(
                check_block(&block, &p),
                Err(ValidationError::BadCoinbaseInput)
            );
        }
    }

    #[test]
    fn every_transaction_is_checked() {
        let p = params();
        let mut block = good_block();
        let input = block.txs[1].inputs[0];
        block.txs[1].inputs.push(input);
        remine(&mut block, &p);
        assert_eq!(
            check_block(&block, &p),
            Err(ValidationError::DuplicateInput {
                txid: block.txs[1].compute_txid(),
                outpoint: input.prevout
            })
        );
        let mut block = good_block();
        block.txs[0].outputs.clear();
        remine(&mut block, &p);
        // found by the structural checks, before any hashing
        assert_eq!(
            check_block(&block, &p),
            Err(ValidationError::EmptyTransaction { index: 0 })
        );
    }
}
