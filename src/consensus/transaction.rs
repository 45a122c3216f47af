//! Context-free transaction rules: what a transaction must satisfy whatever the chain holds.
//!
//! Used for every transaction of a block (by [`super::check_block`]) and by the mempool for
//! loose transactions. Nothing here looks at the UTXO set or verifies signatures: see
//! [`super::spend`] for that.

use std::collections::HashSet;

use gossipcoin_proto::{MAX_TX_BYTES, Transaction, Txid, encode, sha256d};

use super::error::ValidationError;

/// A transaction's txid and encoded size, from one encoding.
pub(crate) fn txid_and_size(tx: &Transaction) -> (Txid, usize) {
    let bytes = encode::to_bytes(tx);
    (Txid(sha256d(&bytes)), bytes.len())
}

/// Checks the context-free rules of one transaction:
/// - at least one input and one output;
/// - encoded size at most [`MAX_TX_BYTES`];
/// - the outputs' checked sum at most `MAX_MONEY` (each output is below it by construction of
///   `Amount`, which no decoder can break);
/// - no outpoint spent by two of its inputs;
/// - a transaction that is not a coinbase has no coinbase-shaped (zero-txid) input.
///
/// A coinbase passes: whether it may appear, and where, is a block rule.
pub fn check_transaction(tx: &Transaction) -> Result<(), ValidationError> {
    let (txid, size) = txid_and_size(tx);
    check_transaction_sized(tx, txid, size)
}

/// [`check_transaction`] for a caller that already encoded the transaction.
pub(crate) fn check_transaction_sized(
    tx: &Transaction,
    txid: Txid,
    size: usize,
) -> Result<(), ValidationError> {
    if tx.inputs.is_empty() {
        return Err(ValidationError::EmptyInputs { txid });
    }
    if tx.outputs.is_empty() {
        return Err(ValidationError::EmptyOutputs { txid });
    }
    if size > MAX_TX_BYTES {
        return Err(ValidationError::TxTooLarge {
            txid,
            size,
            max: MAX_TX_BYTES,
        });
    }
    if tx.output_total().is_none() {
        return Err(ValidationError::AmountOverflow { txid });
    }
    if tx.inputs.len() > 1 {
        let mut seen = HashSet::with_capacity(tx.inputs.len());
        for input in &tx.inputs {
            if !seen.insert(input.prevout) {
                return Err(ValidationError::DuplicateInput {
                    txid,
                    outpoint: input.prevout,
                });
            }
        }
    }
    if !tx.is_coinbase()
        && let Some(i) = tx.inputs.iter().position(|i| i.prevout.is_coinbase())
    {
        return Err(ValidationError::NullPrevout {
            txid,
            input: i as u32,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, OutPoint};

    use super::super::testutil::*;
    use super::*;

    fn one_in_one_out() -> Transaction {
        let k = key(1);
        signed_tx(
            &[(outpoint(1, 0), pay(&k, coins(5)), &k)],
            vec![pay(&key(2), coins(5))],
        )
    }

    #[test]
    fn a_plain_transaction_and_a_coinbase_pass() {
        assert_eq!(check_transaction(&one_in_one_out()), Ok(()));
        assert_eq!(check_transaction(&coinbase(7, coins(10))), Ok(()));
        let tx = one_in_one_out();
        assert_eq!(txid_and_size(&tx), (tx.compute_txid(), tx.encoded_len()));
    }

    #[test]
    fn no_inputs() {
        let mut tx = one_in_one_out();
        tx.inputs.clear();
        let txid = tx.compute_txid();
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::EmptyInputs { txid })
        );
    }

    #[test]
    fn no_outputs() {
        let mut tx = one_in_one_out();
        tx.outputs.clear();
        let txid = tx.compute_txid();
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::EmptyOutputs { txid })
        );
    }

    #[test]
    fn too_large() {
        let mut tx = one_in_one_out();
        let template = tx.inputs[0];
        tx.inputs = (0..800u32)
            .map(|vout| {
                let mut input = template;
                input.prevout.vout = vout;
                input
            })
            .collect();
        let (txid, size) = (tx.compute_txid(), tx.encoded_len());
        assert!(size > MAX_TX_BYTES);
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::TxTooLarge {
                txid,
                size,
                max: MAX_TX_BYTES
            })
        );
        // the same transaction with fewer inputs fits
        tx.inputs.truncate(MAX_TX_BYTES / 140);
        assert!(tx.encoded_len() <= MAX_TX_BYTES);
        assert_eq!(check_transaction(&tx), Ok(()));
    }

    #[test]
    fn outputs_summing_past_max_money() {
        let mut tx = one_in_one_out();
        tx.outputs = vec![pay(&key(2), Amount::MAX), pay(&key(2), units(1))];
        let txid = tx.compute_txid();
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::AmountOverflow { txid })
        );
        tx.outputs.pop();
        assert_eq!(check_transaction(&tx), Ok(()));
    }

    #[test]
    fn same_outpoint_twice_in_one_transaction() {
        let k = key(1);
        let coin = pay(&k, coins(5));
        let tx = signed_tx(
            &[
                (outpoint(1, 0), coin, &k),
                (outpoint(1, 1), coin, &k),
                (outpoint(1, 0), coin, &k),
            ],
            vec![pay(&key(2), coins(15))],
        );
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::DuplicateInput {
                txid: tx.compute_txid(),
                outpoint: outpoint(1, 0)
            })
        );
    }

    #[test]
    fn null_outpoint_outside_a_coinbase() {
        let k = key(1);
        let coin = pay(&k, coins(5));
        let tx = signed_tx(
            &[
                (outpoint(1, 0), coin, &k),
                (OutPoint::coinbase(3), coin, &k),
            ],
            vec![pay(&key(2), coins(10))],
        );
        assert_eq!(
            check_transaction(&tx),
            Err(ValidationError::NullPrevout {
                txid: tx.compute_txid(),
                input: 1
            })
        );
    }
}
