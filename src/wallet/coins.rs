//! Which coins a wallet may spend: one rule for the daemon's wallet, `send` without a daemon
//! and `wallet.pending`, built on consensus's maturity rule ([`consensus::spendable_at`]).

use std::collections::HashSet;

use gossipcoin_proto::{Coin, OutPoint, TxOut};

use crate::consensus;
use crate::params::ChainParams;

/// The coins a transaction in the block at `next_height` may spend:
///
/// - `confirmed`: the owner's coins in the UTXO set, kept when mature at `next_height` and not
///   `spent` by an unconfirmed transaction;
/// - `unconfirmed`: outputs to the owner of the wallet's own unconfirmed payments (their
///   change), kept when not `spent` and not already confirmed, as non-coinbase coins of
///   `next_height`.
///
/// Confirmed coins come first, in the order given; no outpoint appears twice.
pub fn spendable(
    confirmed: impl IntoIterator<Item = (OutPoint, Coin)>,
    unconfirmed: impl IntoIterator<Item = (OutPoint, TxOut)>,
    spent: impl Fn(&OutPoint) -> bool,
    next_height: u32,
    params: &ChainParams,
) -> Vec<(OutPoint, Coin)> {
    let mut seen = HashSet::new();
    let mut coins: Vec<(OutPoint, Coin)> = confirmed
        .into_iter()
        .filter(|(op, coin)| {
            consensus::spendable_at(coin, params) <= next_height && !spent(op) && seen.insert(*op)
        })
        .collect();
    coins.extend(
        unconfirmed
            .into_iter()
            .filter(|(op, _)| !spent(op) && seen.insert(*op))
            .map(|(op, output)| {
                (
                    op,
                    Coin {
                        output,
                        height: next_height,
                        is_coinbase: false,
                    },
                )
            }),
    );
    coins
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, PubkeyHash, Txid};

    use super::*;

    fn op(n: u8) -> OutPoint {
        OutPoint {
            txid: Txid([n; 32]),
            vout: 0,
        }
    }

    fn out(value: u64) -> TxOut {
        TxOut {
            value: Amount::from_units(value).unwrap(),
            owner: PubkeyHash([1; 20]),
        }
    }

    fn coin(value: u64, height: u32, is_coinbase: bool) -> Coin {
        Coin {
            output: out(value),
            height,
            is_coinbase,
        }
    }

    fn params(maturity: u32) -> ChainParams {
        ChainParams {
            coinbase_maturity: maturity,
            ..ChainParams::devnet()
        }
    }

    fn ops(coins: &[(OutPoint, Coin)]) -> Vec<OutPoint> {
        coins.iter().map(|(o, _)| *o).collect()
    }

    #[test]
    fn maturity_follows_consensus() {
        let confirmed = || {
            vec![
                (op(1), coin(50, 10, true)),
                (op(2), coin(5, 10, false)),
                (op(3), coin(50, 1, true)),
            ]
        };
        let none = || std::iter::empty::<(OutPoint, TxOut)>();
        // Maturity 0 (devnet): a coinbase is never spendable in its own block, but from the next.
        let at = |h, m| ops(&spendable(confirmed(), none(), |_| false, h, &params(m)));
        assert_eq!(at(10, 0), vec![op(2), op(3)]);
        assert_eq!(at(11, 0), vec![op(1), op(2), op(3)]);
        // Bitcoin's 100: 100 blocks later (op 3 from height 101, op 1 from 110).
        assert_eq!(at(100, 100), vec![op(2)]);
        assert_eq!(at(109, 100), vec![op(2), op(3)]);
        assert_eq!(at(110, 100), vec![op(1), op(2), op(3)]);
    }

    #[test]
    fn unconfirmed_spends_are_excluded_and_change_is_added_once() {
        let spent = |o: &OutPoint| *o == op(1) || *o == op(8);
        let coins = spendable(
            vec![(op(1), coin(9, 1, false)), (op(2), coin(3, 1, false))],
            vec![(op(7), out(4)), (op(8), out(2)), (op(2), out(3))],
            spent,
            6,
            &params(0),
        );
        // op(1) spent, op(8) change already spent by a later payment, op(2) confirmed already.
        assert_eq!(ops(&coins), vec![op(2), op(7)]);
        assert_eq!(coins[1].1, coin(4, 6, false));
    }
}
