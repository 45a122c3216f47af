//! Unconfirmed spends: the transactions this wallet sent that no block has confirmed yet, kept
//! in `<data-dir>/wallet.pending` so that two `send`s in a row never spend the same coin, and a
//! second send can spend the change of the first.

use std::collections::HashSet;
use std::path::Path;

use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{Coin, OutPoint, PubkeyHash, Transaction};

use super::WalletError;

/// The pending file's name in the data directory.
pub const PENDING_FILE: &str = "wallet.pending";
/// Bytes the file may have; more is treated as corrupt.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// The wallet's unconfirmed transactions, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    txs: Vec<Transaction>,
}

impl Pending {
    /// Loads the pending list (empty when there is no file).
    pub fn load(dir: &Path) -> Result<Self, WalletError> {
        let path = dir.join(PENDING_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(WalletError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let txs = from_bytes(&bytes, MAX_PENDING_BYTES).map_err(|e| WalletError::Corrupt {
            path,
            reason: e.to_string(),
        })?;
        Ok(Self { txs })
    }

    /// Writes the list atomically (temp file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), WalletError> {
        super::file::write_atomically(&dir.join(PENDING_FILE), &to_bytes(&self.txs))
    }

    /// Keeps only transactions still waiting: each input is either unspent in the UTXO set or
    /// an output of another kept pending transaction. Confirmed or conflicted ones drop out.
    pub fn prune(&mut self, unspent: impl Fn(&OutPoint) -> bool) {
        loop {
            let created: HashSet<OutPoint> = self.outputs().map(|(op, _)| op).collect();
            let before = self.txs.len();
            self.txs.retain(|tx| {
                tx.inputs
                    .iter()
                    .all(|i| unspent(&i.prevout) || created.contains(&i.prevout))
            });
            if self.txs.len() == before {
                return;
            }
        }
    }

    /// Records a transaction that a node accepted.
    pub fn push(&mut self, tx: Transaction) {
        self.txs.push(tx);
    }

    /// How many are waiting.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    fn outputs(&self) -> impl Iterator<Item = (OutPoint, gossipcoin_proto::TxOut)> + '_ {
        self.txs.iter().flat_map(|tx| {
            let txid = tx.compute_txid();
            tx.outputs.iter().enumerate().map(move |(i, o)| {
                (
                    OutPoint {
                        txid,
                        vout: i as u32,
                    },
                    *o,
                )
            })
        })
    }

    /// `confirmed` (the owner's coins in the UTXO set) minus what pending txs spend, plus the
    /// pending txs' unspent outputs to `owner` (as coins of `next_height`).
    pub fn spendable(
        &self,
        owner: &PubkeyHash,
        confirmed: Vec<(OutPoint, Coin)>,
        next_height: u32,
    ) -> Vec<(OutPoint, Coin)> {
        let spent: HashSet<OutPoint> = self
            .txs
            .iter()
            .flat_map(|tx| tx.inputs.iter().map(|i| i.prevout))
            .collect();
        let mut coins: Vec<(OutPoint, Coin)> = confirmed
            .into_iter()
            .filter(|(op, _)| !spent.contains(op))
            .collect();
        coins.extend(
            self.outputs()
                .filter(|(op, out)| out.owner == *owner && !spent.contains(op))
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
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, PublicKey, Signature, TxIn, TxOut, Txid};

    use super::*;

    fn tx(inputs: &[OutPoint], owner: PubkeyHash, value: u64) -> Transaction {
        Transaction {
            version: 1,
            inputs: inputs
                .iter()
                .map(|&prevout| TxIn {
                    prevout,
                    signature: Signature::ZERO,
                    pubkey: PublicKey::ZERO,
                })
                .collect(),
            outputs: vec![TxOut {
                value: Amount::from_units(value).unwrap(),
                owner,
            }],
        }
    }

    fn coin(owner: PubkeyHash, value: u64) -> Coin {
        Coin {
            output: TxOut {
                value: Amount::from_units(value).unwrap(),
                owner,
            },
            height: 1,
            is_coinbase: false,
        }
    }

    #[test]
    fn spends_are_excluded_and_change_is_spendable() {
        let me = PubkeyHash([1; 20]);
        let (a, b) = (
            OutPoint {
                txid: Txid([5; 32]),
                vout: 0,
            },
            OutPoint {
                txid: Txid([6; 32]),
                vout: 0,
            },
        );
        let mut p = Pending::default();
        let t1 = tx(&[a], me, 70);
        p.push(t1.clone());
        let coins = p.spendable(&me, vec![(a, coin(me, 100)), (b, coin(me, 5))], 9);
        let ops: Vec<OutPoint> = coins.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            ops,
            vec![
                b,
                OutPoint {
                    txid: t1.compute_txid(),
                    vout: 0
                }
            ]
        );
        assert_eq!(coins[1].1.height, 9);
    }

    #[test]
    fn prune_drops_confirmed_but_keeps_chains() {
        let me = PubkeyHash([1; 20]);
        let a = OutPoint {
            txid: Txid([5; 32]),
            vout: 0,
        };
        let t1 = tx(&[a], me, 70);
        let t1_out = OutPoint {
            txid: t1.compute_txid(),
            vout: 0,
        };
        let t2 = tx(&[t1_out], me, 60);
        let mut p = Pending::default();
        p.push(t1);
        p.push(t2.clone());
        p.prune(|op| *op == a);
        assert_eq!(p.len(), 2);
        // t1 confirmed: `a` is spent, t1's output is in the UTXO set.
        p.prune(|op| *op == t1_out);
        assert_eq!(p.txs, vec![t2]);
        // t2 conflicted away: nothing of it is left.
        p.prune(|_| false);
        assert!(p.is_empty());
    }

    #[test]
    fn round_trip_and_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::default();
        p.push(tx(
            &[OutPoint {
                txid: Txid([5; 32]),
                vout: 0,
            }],
            PubkeyHash([1; 20]),
            7,
        ));
        p.save(dir.path()).unwrap();
        assert_eq!(Pending::load(dir.path()).unwrap(), p);
        std::fs::write(dir.path().join(PENDING_FILE), b"junk").unwrap();
        assert!(matches!(
            Pending::load(dir.path()),
            Err(WalletError::Corrupt { .. })
        ));
        assert_eq!(
            std::fs::read(dir.path().join(PENDING_FILE)).unwrap(),
            b"junk"
        );
    }
}
