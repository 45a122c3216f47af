//! Contextual block rules: a block's spends against the UTXO set as it was before the block.
//!
//! Two passes. The sequential pass ([`check_block_coins`]) resolves every input to its coin (from
//! the UTXO set, or from an earlier transaction of the same block), rejects missing and
//! double-spent outpoints, and checks maturity, amounts, fees and the coinbase payout. The
//! parallel pass ([`SignatureChecks::verify`]) then verifies every signature across all cores,
//! and reports the failing input with the lowest (transaction, input) index, so the error does
//! not depend on thread timing. [`check_block_spends`] runs both; a batch of blocks may verify
//! one block's signatures while it checks the next block's coins.

use std::collections::{HashMap, HashSet};

use gossipcoin_proto::{Amount, Block, Coin, OutPoint, Transaction, Txid};
use rayon::prelude::*;

use super::error::ValidationError;
use super::tx_spend::{check_coins, verify_input};
use crate::params::ChainParams;

/// What a valid block spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpends {
    /// The coin spent by every non-coinbase input, in block order (transaction 1.., input 0..):
    /// the undo data that restores the UTXO set if the block is disconnected.
    pub spent: Vec<Coin>,
    /// Sum of the fees of the block's non-coinbase transactions.
    pub fees: Amount,
}

/// Checks the spends of a block at `height` that already passed [`super::check_block`].
///
/// `utxos` holds the coins of the UTXO set before this block for those of the block's input
/// outpoints that exist; an outpoint absent from it is not in the set. A transaction may spend
/// outputs of an *earlier* transaction of the same block (not its own, nor a later one's); such
/// coins carry `height` and are coinbase coins if they come from the coinbase, which therefore
/// cannot be spent in its own block (see "Coinbase maturity" in [`super`]).
///
/// Rules: the coinbase outpoint's vout is `height`; every input's coin exists and no outpoint
/// is spent twice in the block; then, per transaction, the rules of [`super::check_tx_spends`];
/// the coinbase pays at most `params.subsidy(height)` plus the fees. Returns the spent coins and
/// the fees.
///
/// It is [`check_block_coins`] then [`SignatureChecks::verify`], back to back: every rule but
/// the signatures is reported first, then the signature failure with the lowest (transaction,
/// input) index.
pub fn check_block_spends(
    block: &Block,
    height: u32,
    utxos: &HashMap<OutPoint, Coin>,
    params: &ChainParams,
) -> Result<BlockSpends, ValidationError> {
    let commitments = sighash_commitments(block);
    let (spends, signatures) = check_block_coins(block, height, utxos, params, &commitments)?;
    signatures.verify()?;
    Ok(spends)
}

/// The signature-hash commitment of each of `block`'s transactions (computed in parallel), as
/// [`check_block_coins`] takes them.
pub fn sighash_commitments(block: &Block) -> Vec<[u8; 32]> {
    block
        .txs
        .par_iter()
        .map(Transaction::sighash_commitment)
        .collect()
}

/// The signatures of a block whose other spending rules passed ([`check_block_coins`]): each
/// input's key owns its coin and signs the input. [`Self::verify`] may run later, on any
/// thread, while the caller goes on (the sync connects the next block meanwhile).
#[derive(Debug, Clone)]
pub struct SignatureChecks<'a> {
    block: &'a Block,
    commitments: &'a [[u8; 32]],
    /// The coin of every non-coinbase input, in block order.
    spent: Vec<Coin>,
    /// (transaction, input) of each entry of `spent`.
    owners: Vec<(usize, usize)>,
}

impl SignatureChecks<'_> {
    /// Verifies every input (in parallel, on all cores); the failure with the lowest
    /// (transaction, input) index is reported, whatever the thread timing.
    pub fn verify(&self) -> Result<(), ValidationError> {
        let failure = self
            .spent
            .par_iter()
            .zip(self.owners.par_iter())
            .find_map_first(|(coin, &(t, i))| {
                let tx = &self.block.txs[t];
                verify_input(tx, &self.commitments[t], i, coin, &|| tx.compute_txid()).err()
            });
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// How many inputs there are to verify.
    pub fn len(&self) -> usize {
        self.spent.len()
    }

    /// Whether there is nothing to verify (a block of a coinbase alone).
    pub fn is_empty(&self) -> bool {
        self.spent.is_empty()
    }
}

/// [`check_block_spends`] without the signatures, which are returned to be verified later:
/// every other rule is checked here, in the same order, with the same errors. `commitments`
/// are the block's [`sighash_commitments`].
///
/// # Panics
/// If `commitments` does not have one entry per transaction.
pub fn check_block_coins<'a>(
    block: &'a Block,
    height: u32,
    utxos: &HashMap<OutPoint, Coin>,
    params: &ChainParams,
    commitments: &'a [[u8; 32]],
) -> Result<(BlockSpends, SignatureChecks<'a>), ValidationError> {
    assert_eq!(
        commitments.len(),
        block.txs.len(),
        "one sighash commitment per transaction"
    );
    let Some(coinbase) = block.txs.first().filter(|tx| tx.is_coinbase()) else {
        return Err(ValidationError::NoCoinbase);
    };
    let got = coinbase.inputs[0].prevout.vout;
    if got != height {
        return Err(ValidationError::BadCoinbaseHeight {
            got,
            expected: height,
        });
    }

    // Txids are only needed to describe an error or to find an output created earlier in this
    // block, so they are computed only then.
    let mut positions: Option<HashMap<Txid, usize>> = None;

    let input_count = block.txs[1..].iter().map(|tx| tx.inputs.len()).sum();
    let mut spent: Vec<Coin> = Vec::with_capacity(input_count);
    // (transaction, input) of each entry of `spent`, for the signature pass.
    let mut owners: Vec<(usize, usize)> = Vec::with_capacity(input_count);
    let mut spent_outpoints: HashSet<OutPoint> = HashSet::with_capacity(input_count);
    let mut fees = Amount::ZERO;

    for (t, tx) in block.txs.iter().enumerate().skip(1) {
        let txid = || tx.compute_txid();
        let first = spent.len();
        for (i, input) in tx.inputs.iter().enumerate() {
            let outpoint = input.prevout;
            if !spent_outpoints.insert(outpoint) {
                return Err(ValidationError::DoubleSpend {
                    txid: txid(),
                    outpoint,
                });
            }
            let coin = match utxos.get(&outpoint) {
                Some(coin) => *coin,
                None => {
                    let positions = positions.get_or_insert_with(|| txid_positions(&block.txs));
                    created_earlier(&block.txs, positions, t, &outpoint, height).ok_or_else(
                        || ValidationError::MissingInput {
                            txid: txid(),
                            outpoint,
                        },
                    )?
                }
            };
            spent.push(coin);
            owners.push((t, i));
        }
        let fee = check_coins(tx, &spent[first..], height, params, &txid)?;
        fees = fees
            .checked_add(fee)
            .ok_or_else(|| ValidationError::AmountOverflow { txid: txid() })?;
    }

    let paid = coinbase
        .output_total()
        .ok_or_else(|| ValidationError::AmountOverflow {
            txid: coinbase.compute_txid(),
        })?;
    // Both terms are within MAX_MONEY and so is what the coinbase pays: cap rather than fail.
    let allowed = params
        .subsidy(height)
        .checked_add(fees)
        .unwrap_or(Amount::MAX);
    if paid > allowed {
        return Err(ValidationError::CoinbaseTooLarge { paid, allowed });
    }

    let signatures = SignatureChecks {
        block,
        commitments,
        spent: spent.clone(),
        owners,
    };
    Ok((BlockSpends { spent, fees }, signatures))
}

/// Each transaction's position in the block, by txid (computed in parallel).
fn txid_positions(txs: &[Transaction]) -> HashMap<Txid, usize> {
    let txids: Vec<Txid> = txs.par_iter().map(Transaction::compute_txid).collect();
    txids.into_iter().zip(0..).collect()
}

/// The coin at `outpoint` if transaction `before`'s predecessors in the block created it.
fn created_earlier(
    txs: &[Transaction],
    position: &HashMap<Txid, usize>,
    before: usize,
    outpoint: &OutPoint,
    height: u32,
) -> Option<Coin> {
    let &t = position.get(&outpoint.txid)?;
    if t >= before {
        return None;
    }
    let output = *txs[t].outputs.get(outpoint.vout as usize)?;
    Some(Coin {
        output,
        height,
        is_coinbase: t == 0,
    })
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::COIN;

    use super::super::testutil::*;
    use super::*;
    use crate::keys::SigError;

    fn check(block: &Block) -> Result<BlockSpends, ValidationError> {
        check_block_spends(block, HEIGHT, &world(), &params())
    }

    #[test]
    fn a_good_block_returns_its_spent_coins_and_fees() {
        let txs = payments();
        let within = Coin {
            output: txs[0].outputs[0],
            height: HEIGHT,
            is_coinbase: false,
        };
        let block = block_at(HEIGHT, units(106 * COIN / 10), txs, &params());
        assert_eq!(super::super::check_block(&block, &params()), Ok(()));
        let set = world();
        let expect = BlockSpends {
            spent: vec![
                set[&outpoint(1, 0)],
                within,
                set[&outpoint(2, 0)],
                set[&outpoint(3, 0)],
            ],
            fees: units(6 * COIN / 10),
        };
        assert_eq!(check(&block), Ok(expect));
        // paying less than allowed is fine too
        let block = block_at(HEIGHT, coins(1), payments(), &params());
        assert!(check(&block).is_ok());
    }

    #[test]
    fn coinbase_paying_more_than_subsidy_and_fees() {
        let block = block_at(HEIGHT, units(106 * COIN / 10 + 1), payments(), &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::CoinbaseTooLarge {
                paid: units(106 * COIN / 10 + 1),
                allowed: units(106 * COIN / 10)
            })
        );
    }

    #[test]
    fn coinbase_height_must_match() {
        let block = block_at(HEIGHT + 1, coins(10), vec![], &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::BadCoinbaseHeight {
                got: HEIGHT + 1,
                expected: HEIGHT
            })
        );
        let mut block = block_at(HEIGHT, coins(10), payments(), &params());
        block.txs.remove(0);
        assert_eq!(check(&block), Err(ValidationError::NoCoinbase));
    }

    #[test]
    fn input_not_in_the_utxo_set() {
        let k = key(1);
        let tx = signed_tx(
            &[(outpoint(9, 0), pay(&k, coins(1)), &k)],
            vec![pay(&k, coins(1))],
        );
        let txid = tx.compute_txid();
        let block = block_at(HEIGHT, coins(10), vec![tx], &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::MissingInput {
                txid,
                outpoint: outpoint(9, 0)
            })
        );
    }

    #[test]
    fn output_of_a_later_transaction_of_the_block() {
        let mut txs = payments();
        txs.swap(0, 1); // t2 now comes before the t1 it spends
        let (txid, outpoint) = (txs[0].compute_txid(), out_of(&txs[1], 0));
        let block = block_at(HEIGHT, coins(10), txs, &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::MissingInput { txid, outpoint })
        );
    }

    #[test]
    fn one_coin_spent_by_two_transactions() {
        let set = world();
        let k1 = key(1);
        let a = spend_from(&set, &[(outpoint(1, 0), &k1)], vec![pay(&key(2), coins(5))]);
        let b = spend_from(&set, &[(outpoint(1, 0), &k1)], vec![pay(&key(3), coins(5))]);
        let txid = b.compute_txid();
        let block = block_at(HEIGHT, coins(10), vec![a, b], &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::DoubleSpend {
                txid,
                outpoint: outpoint(1, 0)
            })
        );
    }

    #[test]
    fn an_output_of_the_block_spent_twice() {
        let mut txs = payments();
        let t1 = txs[0].clone();
        let k2 = key(2);
        let again = signed_tx(
            &[(out_of(&t1, 0), t1.outputs[0], &k2)],
            vec![pay(&k2, coins(4))],
        );
        let txid = again.compute_txid();
        txs.push(again);
        let block = block_at(HEIGHT, coins(10), txs, &params());
        assert_eq!(
            check(&block),
            Err(ValidationError::DoubleSpend {
                txid,
                outpoint: out_of(&t1, 0)
            })
        );
    }

    #[test]
    fn the_blocks_own_coinbase_is_immature() {
        let p = params();
        assert_eq!(p.coinbase_maturity, 0);
        let cb = coinbase(HEIGHT, coins(10));
        let tx = signed_tx(
            &[(out_of(&cb, 0), cb.outputs[0], &key(99))],
            vec![pay(&key(1), coins(10))],
        );
        let txid = tx.compute_txid();
        let block = mine(vec![cb.clone(), tx], &p);
        assert_eq!(
            check(&block),
            Err(ValidationError::ImmatureCoinbase {
                txid,
                outpoint: out_of(&cb, 0),
                coin_height: HEIGHT,
                height: HEIGHT,
                spendable_at: HEIGHT + 1
            })
        );
    }

    #[test]
    fn an_older_coinbase_under_bitcoin_maturity() {
        let p = ChainParams {
            coinbase_maturity: 100,
            ..params()
        };
        let txs = payments();
        let txid = txs[2].compute_txid();
        let block = block_at(HEIGHT, coins(10), txs, &p);
        assert_eq!(
            check_block_spends(&block, HEIGHT, &world(), &p),
            Err(ValidationError::ImmatureCoinbase {
                txid,
                outpoint: outpoint(3, 0),
                coin_height: 1,
                height: HEIGHT,
                spendable_at: 101
            })
        );
    }

    #[test]
    fn per_transaction_rules_apply_in_blocks() {
        let (set, k1) = (world(), key(1));
        let in_block = |tx: Transaction| check(&block_at(HEIGHT, coins(10), vec![tx], &params()));
        let tx = spend_from(&set, &[(outpoint(1, 0), &k1)], vec![pay(&k1, coins(6))]);
        assert_eq!(
            in_block(tx.clone()),
            Err(ValidationError::OutputsExceedInputs {
                txid: tx.compute_txid(),
                inputs: coins(5),
                outputs: coins(6)
            })
        );
        // key 1 signs for key 2's coin
        let tx = spend_from(&set, &[(outpoint(2, 0), &k1)], vec![pay(&k1, coins(3))]);
        assert_eq!(
            in_block(tx.clone()),
            Err(ValidationError::PubkeyMismatch {
                txid: tx.compute_txid(),
                input: 0
            })
        );
    }

    #[test]
    fn the_first_bad_signature_in_block_order_is_reported() {
        // 40 one-input transactions, so the signature pass really runs in parallel
        let k = key(1);
        let set = utxos(&(1..=40).map(|n| (n, &k, 1)).collect::<Vec<_>>());
        let mut txs: Vec<Transaction> = (1..=40)
            .map(|n| spend_from(&set, &[(outpoint(n, 0), &k)], vec![pay(&k, coins(1))]))
            .collect();
        for t in [38, 12, 25] {
            txs[t].inputs[0].signature.0[7] ^= 1;
        }
        let txid = txs[12].compute_txid();
        let block = block_at(HEIGHT, coins(10), txs, &params());
        assert_eq!(
            check_block_spends(&block, HEIGHT, &set, &params()),
            Err(ValidationError::BadSignature {
                txid,
                input: 0,
                reason: SigError::Mismatch
            })
        );
    }

    #[test]
    fn the_signatures_can_be_verified_later_on_another_thread() {
        let mut txs = payments();
        txs[2].inputs[0].signature.0[7] ^= 1;
        let block = block_at(HEIGHT, coins(10), txs, &params());
        let commitments = sighash_commitments(&block);
        let (spends, signatures) =
            check_block_coins(&block, HEIGHT, &world(), &params(), &commitments).unwrap();
        assert_eq!((spends.spent.len(), signatures.len()), (4, 4));
        let verified = std::thread::scope(|s| s.spawn(|| signatures.verify()).join().unwrap());
        assert!(
            matches!(
                verified,
                Err(ValidationError::BadSignature { input: 0, .. })
            ),
            "{verified:?}"
        );
        assert_eq!(verified, check(&block).map(|_| ()));
    }

    #[test]
    fn amount_rules_are_checked_before_signatures() {
        let mut txs = payments();
        txs[0].inputs[0].signature.0[7] ^= 1;
        let k = key(1);
        txs.push(signed_tx(
            &[(outpoint(9, 0), pay(&k, coins(1)), &k)],
            vec![pay(&k, coins(1))],
        ));
        let block = block_at(HEIGHT, coins(10), txs, &params());
        assert!(matches!(
            check(&block),
            Err(ValidationError::MissingInput { .. })
        ));
    }
}
