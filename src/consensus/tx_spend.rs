//! The spending rules of one transaction whose input coins are known: coinbase maturity,
//! amounts and fee, ownership and signatures.
//!
//! [`check_tx_spends`] applies them to a loose transaction (mempool, wallet); the block path
//! ([`super::check_block_spends`]) resolves coins for a whole block and calls the same functions,
//! so the rules exist once.

use gossipcoin_proto::{Amount, Coin, PubkeyHash, Transaction, Txid};
use rayon::prelude::*;

use super::error::ValidationError;
use crate::keys;
use crate::params::ChainParams;

/// Checks a non-coinbase transaction against the coins its inputs spend (`coins[i]` for input
/// `i`, resolved by the caller from the UTXO set or the mempool) as if it were included in a
/// block at `height`, and returns its fee (inputs − outputs).
///
/// Rules: every spent coinbase is mature, input and output totals are within `MAX_MONEY`,
/// outputs do not exceed inputs, and every input's public key owns its coin and signs the
/// transaction (checked in parallel). Call [`super::check_transaction`] first: that it has
/// inputs and outputs, no duplicate input and a sane size is not re-checked here.
///
/// # Panics
/// If `coins` does not have one coin per input: resolving them is the caller's job, and a
/// missing one is [`ValidationError::MissingInput`] (or an orphan) there.
pub fn check_tx_spends(
    tx: &Transaction,
    coins: &[Coin],
    height: u32,
    params: &ChainParams,
) -> Result<Amount, ValidationError> {
    // The txid is only needed to describe an error: compute it then, not on the happy path.
    let txid = || tx.compute_txid();
    if tx.is_coinbase() {
        return Err(ValidationError::UnexpectedCoinbase { txid: txid() });
    }
    assert_eq!(coins.len(), tx.inputs.len(), "one resolved coin per input");
    let fee = check_coins(tx, coins, height, params, &txid)?;
    let commitment = tx.sighash_commitment();
    let failure = coins
        .par_iter()
        .enumerate()
        .find_map_first(|(i, coin)| verify_input(tx, &commitment, i, coin, &txid).err());
    match failure {
        Some(e) => Err(e),
        None => Ok(fee),
    }
}

/// The first block height at which `coin` may be spent.
///
/// A coinbase output created at height `h` is spendable from `h + max(coinbase_maturity, 1)`:
/// as in Bitcoin for a maturity of 100, and never in its own block, even with maturity 0 (the
/// devnet), where it is spendable from the next block. Other coins are spendable at once, even
/// by a later transaction of the block that created them.
pub fn spendable_at(coin: &Coin, params: &ChainParams) -> u32 {
    if coin.is_coinbase {
        coin.height.saturating_add(params.coinbase_maturity.max(1))
    } else {
        coin.height
    }
}

/// The rules that need the coins but no cryptography: maturity of each coin, checked totals,
/// and outputs ≤ inputs. Returns the fee. `txid` is called only to describe an error.
pub(crate) fn check_coins(
    tx: &Transaction,
    coins: &[Coin],
    height: u32,
    params: &ChainParams,
    txid: &dyn Fn() -> Txid,
) -> Result<Amount, ValidationError> {
    for (input, coin) in tx.inputs.iter().zip(coins) {
        let spendable_at = spendable_at(coin, params);
        if height < spendable_at {
            return Err(ValidationError::ImmatureCoinbase {
                txid: txid(),
                outpoint: input.prevout,
                coin_height: coin.height,
                height,
                spendable_at,
            });
        }
    }
    let overflow = || ValidationError::AmountOverflow { txid: txid() };
    let inputs = Amount::checked_sum(coins.iter().map(|c| c.output.value)).ok_or_else(overflow)?;
    let outputs = tx.output_total().ok_or_else(overflow)?;
    inputs
        .checked_sub(outputs)
        .ok_or_else(|| ValidationError::OutputsExceedInputs {
            txid: txid(),
            inputs,
            outputs,
        })
}

/// Checks input `index` of `tx` against the coin it spends: the public key hashes to the coin's
/// owner, and the signature signs the input's signature hash under that key. `commitment` is
/// `tx.sighash_commitment()`, computed once per transaction.
pub(crate) fn verify_input(
    tx: &Transaction,
    commitment: &[u8; 32],
    index: usize,
    coin: &Coin,
    txid: &(dyn Fn() -> Txid + Sync),
) -> Result<(), ValidationError> {
    let input = &tx.inputs[index];
    let index = index as u32;
    if PubkeyHash::of_pubkey(&input.pubkey) != coin.output.owner {
        return Err(ValidationError::PubkeyMismatch {
            txid: txid(),
            input: index,
        });
    }
    let sighash = Transaction::sighash(commitment, index, &coin.output);
    keys::verify(&sighash, &input.signature, &input.pubkey).map_err(|reason| {
        ValidationError::BadSignature {
            txid: txid(),
            input: index,
            reason,
        }
    })
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, OutPoint, TxOut};

    use super::super::testutil::*;
    use super::*;
    use crate::keys::SigError;

    /// A coin of `c` coins owned by `k`, created at height 10.
    fn coin(k: &crate::keys::PrivateKey, c: u64, is_coinbase: bool) -> Coin {
        Coin {
            output: pay(k, coins(c)),
            height: 10,
            is_coinbase,
        }
    }

    /// Spends `coins_` (all owned by key 1) into one output of `out` coins.
    fn spend(coins_: &[Coin], out: Amount) -> Transaction {
        let k = key(1);
        let inputs: Vec<(OutPoint, TxOut, &_)> = coins_
            .iter()
            .enumerate()
            .map(|(n, c)| (outpoint(n as u8 + 1, 0), c.output, &k))
            .collect();
        signed_tx(&inputs, vec![pay(&key(2), out)])
    }

    #[test]
    fn fee_is_inputs_minus_outputs() {
        let cs = [coin(&key(1), 5, false), coin(&key(1), 3, true)];
        let tx = spend(&cs, units(7 * 100_000_000 + 1));
        let fee = check_tx_spends(&tx, &cs, 11, &params());
        assert_eq!(fee, Ok(units(100_000_000 - 1)));
        let tx = spend(&cs, coins(8));
        assert_eq!(check_tx_spends(&tx, &cs, 11, &params()), Ok(Amount::ZERO));
    }

    #[test]
    fn outputs_exceed_inputs() {
        let cs = [coin(&key(1), 5, false)];
        let tx = spend(&cs, units(5 * 100_000_000 + 1));
        assert_eq!(
            check_tx_spends(&tx, &cs, 11, &params()),
            Err(ValidationError::OutputsExceedInputs {
                txid: tx.compute_txid(),
                inputs: coins(5),
                outputs: units(5 * 100_000_000 + 1)
            })
        );
    }

    #[test]
    fn inputs_summing_past_max_money() {
        let mut cs = [coin(&key(1), 1, false); 2];
        cs[0].output.value = Amount::MAX;
        let tx = spend(&cs, coins(1));
        assert_eq!(
            check_tx_spends(&tx, &cs, 11, &params()),
            Err(ValidationError::AmountOverflow {
                txid: tx.compute_txid()
            })
        );
    }

    #[test]
    fn coinbase_maturity() {
        let cs = [coin(&key(1), 5, true)];
        let tx = spend(&cs, coins(5));
        let immature = |height, spendable_at| {
            Err(ValidationError::ImmatureCoinbase {
                txid: tx.compute_txid(),
                outpoint: outpoint(1, 0),
                coin_height: 10,
                height,
                spendable_at,
            })
        };
        // maturity 0 (devnet): spendable from the next block, never in its own
        let p0 = params();
        assert_eq!(p0.coinbase_maturity, 0);
        assert_eq!(check_tx_spends(&tx, &cs, 10, &p0), immature(10, 11));
        assert_eq!(check_tx_spends(&tx, &cs, 11, &p0), Ok(Amount::ZERO));
        // maturity 1 behaves the same; Bitcoin's 100 means 100 blocks later
        let p1 = ChainParams {
            coinbase_maturity: 1,
            ..params()
        };
        assert_eq!(check_tx_spends(&tx, &cs, 10, &p1), immature(10, 11));
        assert_eq!(check_tx_spends(&tx, &cs, 11, &p1), Ok(Amount::ZERO));
        let p100 = ChainParams {
            coinbase_maturity: 100,
            ..params()
        };
        assert_eq!(check_tx_spends(&tx, &cs, 109, &p100), immature(109, 110));
        assert_eq!(check_tx_spends(&tx, &cs, 110, &p100), Ok(Amount::ZERO));
        // a non-coinbase coin needs no maturity
        let plain = [coin(&key(1), 5, false)];
        assert_eq!(check_tx_spends(&tx, &plain, 10, &p100), Ok(Amount::ZERO));
    }

    #[test]
    fn key_not_owning_the_coin() {
        let cs = [coin(&key(1), 5, false), coin(&key(3), 5, false)];
        // key 1 signs for a coin owned by key 3: a valid signature, the wrong key
        let tx = spend(&cs, coins(10));
        assert_eq!(
            check_tx_spends(&tx, &cs, 11, &params()),
            Err(ValidationError::PubkeyMismatch {
                txid: tx.compute_txid(),
                input: 1
            })
        );
    }

    #[test]
    fn bad_signatures() {
        let cs = [coin(&key(1), 5, false), coin(&key(1), 5, false)];
        let good = spend(&cs, coins(10));
        // a signature over other outputs
        let mut tx = good.clone();
        tx.inputs[1].signature = spend(&cs, coins(9)).inputs[1].signature;
        let bad = |tx: &Transaction, input, reason| {
            Err(ValidationError::BadSignature {
                txid: tx.compute_txid(),
                input,
                reason,
            })
        };
        let p = params();
        assert_eq!(
            check_tx_spends(&tx, &cs, 11, &p),
            bad(&tx, 1, SigError::Mismatch)
        );
        // a signature that is not an (r, s) pair
        let mut tx = good.clone();
        tx.inputs[0].signature.0 = [0; 64];
        assert_eq!(
            check_tx_spends(&tx, &cs, 11, &p),
            bad(&tx, 0, SigError::BadEncoding)
        );
        // the signature commits to the spent coin's amount
        let mut richer = cs;
        richer[0].output.value = coins(6);
        assert_eq!(
            check_tx_spends(&good, &richer, 11, &p),
            bad(&good, 0, SigError::Mismatch)
        );
        assert_eq!(check_tx_spends(&good, &cs, 11, &p), Ok(Amount::ZERO));
    }

    #[test]
    fn first_bad_input_is_reported() {
        let cs = vec![coin(&key(1), 1, false); 40];
        let mut tx = spend(&cs, coins(40));
        for i in [39, 17, 25] {
            tx.inputs[i].signature.0[5] ^= 1;
        }
        let err = check_tx_spends(&tx, &cs, 11, &params()).unwrap_err();
        assert!(
            matches!(err, ValidationError::BadSignature { input: 17, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_loose_coinbase_is_refused() {
        let cb = coinbase(4, coins(10));
        assert_eq!(
            check_tx_spends(&cb, &[], 5, &params()),
            Err(ValidationError::UnexpectedCoinbase {
                txid: cb.compute_txid()
            })
        );
    }
}
