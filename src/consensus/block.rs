//! Context-free block rules: everything a block must satisfy on its own, before the UTXO set is
//! consulted.
//!
//! Order matters for what an error means. The header's own proof of work comes first (cheap, and
//! it makes a flood of junk blocks expensive). Then the merkle root and the repeated-txid check:
//! once they pass, the header commits to every byte of the transactions, so any later error
//! condemns the block hash itself, not just this copy of the block.

use std::collections::HashSet;

use gossipcoin_proto::{Block, Txid, merkle_root, sha256d};
use rayon::prelude::*;

use super::error::ValidationError;
use super::transaction::{check_transaction_sized, txid_and_size};
use crate::params::ChainParams;

/// Checks the rules a block must satisfy whatever chain it extends:
/// - `header.bits == params.pow_bits`, and the block hash meets that target;
/// - the merkle root matches the transactions, and no txid repeats (CVE-2012-2459);
/// - the encoded size is at most `params.max_block_size`;
/// - exactly one coinbase, first, with an all-zero signature and public key;
/// - every transaction passes [`super::check_transaction`].
///
/// Each transaction is encoded once (in parallel): that one encoding gives its txid, used for
/// the merkle root and the duplicate check, and its size, used for both size limits.
pub fn check_block(block: &Block, params: &ChainParams) -> Result<(), ValidationError> {
    let header = &block.header;
    if header.bits != params.pow_bits {
        return Err(ValidationError::WrongBits {
            got: header.bits,
            expected: params.pow_bits,
        });
    }
    let hash = header.block_hash();
    if !params.target().is_met_by(&hash) {
        return Err(ValidationError::HighHash { hash });
    }

    let encoded: Vec<(Txid, usize)> = block.txs.par_iter().map(txid_and_size).collect();
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

    let size = encoded_block_size(block.txs.len(), encoded.iter().map(|&(_, s)| s).sum());
    if size > params.max_block_size {
        return Err(ValidationError::BlockTooLarge {
            size,
            max: params.max_block_size,
        });
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
    use gossipcoin_proto::{Signature, Transaction, encode};

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
        assert_eq!(
            check_block(&block, &p),
            Err(ValidationError::EmptyOutputs {
                txid: block.txs[0].compute_txid()
            })
        );
    }
}
