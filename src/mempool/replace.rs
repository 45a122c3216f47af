//! Full replace-by-fee (Bitcoin Core's full RBF, BIP125 rules 3, 4 and 5 and the fee-rate rule):
//! a transaction spending inputs that pool transactions already spend replaces them, with all
//! their descendants, when
//!
//! - it pays a higher fee rate than each transaction it conflicts with directly,
//! - it pays at least the fees of everything it replaces plus the incremental relay rate on its
//!   own size (so relaying it again is paid for),
//! - it replaces at most [`MAX_REPLACED`] transactions,
//! - and it spends no output of a transaction it replaces.
//!
//! The pool remembers the last [`REMEMBERED`] replacements (replaced → replacing), so the
//! replaced transaction offered again (a wallet's resend) is answered
//! [`MempoolError::Replaced`] and its wallet learns what happened.

use std::collections::{HashMap, HashSet, VecDeque};

use gossipcoin_proto::{Amount, OutPoint, Transaction, Txid};

use super::{FeeRate, Mempool, MempoolError};

/// The most transactions one replacement may evict (Core: 100).
pub const MAX_REPLACED: usize = 100;
/// Replacements remembered.
const REMEMBERED: usize = 10_000;

/// Why a replacement was refused other than by its fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacementError {
    /// It would evict more than [`MAX_REPLACED`] transactions.
    TooManyReplaced { count: usize },
    /// It spends an output of a transaction it would replace.
    SpendsReplaced,
}

impl std::fmt::Display for ReplacementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooManyReplaced { count } => write!(
                f,
                "it would replace {count} transactions, more than {MAX_REPLACED}"
            ),
            Self::SpendsReplaced => f.write_str("it spends an output of a transaction it replaces"),
        }
    }
}

/// Recent replacements, bounded, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct Replacements {
    by: HashMap<Txid, Txid>,
    order: VecDeque<Txid>,
}

impl Replacements {
    pub(super) fn remember(&mut self, replaced: Txid, by: Txid) {
        if self.by.insert(replaced, by).is_none() {
            self.order.push_back(replaced);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.by.remove(&old);
            }
        }
    }

    pub(super) fn by(&self, replaced: &Txid) -> Option<Txid> {
        self.by.get(replaced).copied()
    }
}

impl Mempool {
    /// Checks that `tx` (`fee`, `size` bytes) may replace the pool transactions it conflicts
    /// with (`conflicts`: an input and the pool transaction spending it); returns everything it
    /// would replace (those with their descendants).
    pub(super) fn check_replacement(
        &self,
        tx: &Transaction,
        txid: Txid,
        fee: Amount,
        size: usize,
        conflicts: &[(OutPoint, Txid)],
    ) -> Result<Vec<Txid>, MempoolError> {
        let rate = FeeRate::of(fee, size);
        for &(outpoint, with) in conflicts {
            if rate <= self.entries[&with].fee_rate() {
                return Err(MempoolError::Conflict {
                    txid,
                    outpoint,
                    with,
                });
            }
        }
        let mut all: Vec<Txid> = Vec::new();
        let mut seen = HashSet::new();
        for &(_, with) in conflicts {
            for t in self.with_descendants(&with) {
                if seen.insert(t) {
                    all.push(t);
                }
            }
            if all.len() > MAX_REPLACED {
                break;
            }
        }
        if all.len() > MAX_REPLACED {
            let reason = ReplacementError::TooManyReplaced { count: all.len() };
            return Err(MempoolError::ReplacementRefused { txid, reason });
        }
        if tx.inputs.iter().any(|i| seen.contains(&i.prevout.txid)) {
            let reason = ReplacementError::SpendsReplaced;
            return Err(MempoolError::ReplacementRefused { txid, reason });
        }
        let replaced_fees: u64 = all.iter().map(|t| self.entries[t].fee.units()).sum();
        let needed = replaced_fees.saturating_add(self.limits.incremental_fee_rate.fee_for(size));
        if fee.units() < needed {
            let (outpoint, with) = conflicts[0];
            return Err(MempoolError::Conflict {
                txid,
                outpoint,
                with,
            });
        }
        Ok(all)
    }
}
