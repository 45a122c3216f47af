//! The pool and blocks: choosing transactions for a block, and following the chain as blocks
//! are connected and disconnected.
//!
//! # Keeping the pool in step with the chain
//!
//! After `Chain::accept_block` returns `Accepted::NewTip { tip, disconnected }`, with the store
//! already at the new tip:
//!
//! 1. for each block the chain **connected**, oldest first, call [`Mempool::remove_for_block`]:
//!    when the tip was simply extended that is the accepted block; after a reorganisation it is
//!    every block of the new branch, from the one above the fork point (the fork point is at the
//!    old tip's height minus `disconnected.len()`) up to the tip; the chain reports only the
//!    tip, so read the branch from the store;
//! 2. then, if `disconnected` is not empty, call [`Mempool::readd_disconnected`] with it as the
//!    chain reports it (tip first), a lookup into the UTXO set **at the new tip**, and
//!    `tip.height + 1`.
//!
//! Step 1 first, so that a disconnected transaction is not refused as conflicting with a pool
//! transaction the new branch confirmed (and which step 1 removes).

use std::collections::{BinaryHeap, HashMap, HashSet};

use gossipcoin_proto::{Amount, Block, Coin, OutPoint, Transaction, Txid};
use tracing::debug;

use super::{Mempool, MempoolEntry, Package, RateKey};
use crate::consensus;
use crate::params::ChainParams;

impl Mempool {
    /// Follows a block connected to the main chain: removes its transactions from the pool, and
    /// every pool transaction spending an outpoint the block spends (a conflict the block
    /// settled), with its descendants. Pool children of the confirmed transactions stay: they
    /// now spend the UTXO set.
    pub fn remove_for_block(&mut self, block: &Block) {
        if let Some(height) = block.coinbase_height() {
            self.record_confirmed(block, height);
        }
        let (mut confirmed, mut conflicts) = (0, 0);
        for tx in &block.txs {
            if self.remove_one(&tx.compute_txid()) {
                confirmed += 1;
            }
            for input in &tx.inputs {
                if let Some(spender) = self.spends(&input.prevout) {
                    conflicts += self.remove_with_descendants(&spender);
                }
            }
        }
        self.rolling.block_since_bump = true;
        debug!(target: "mempool", block = %block.block_hash(), confirmed, conflicts,
               pool = self.len(), "removed the transactions of a connected block");
    }

    /// Follows a reorganisation (see the module docs for the order of calls): re-inserts the
    /// non-coinbase transactions of the `disconnected` blocks (tip first, as the chain reports
    /// them), oldest block first and in block order, validating each against `utxo` (the set at
    /// the new tip) plus the pool, as for the block at `next_height`. Those that now conflict,
    /// miss inputs, or are otherwise refused are dropped silently. Pool transactions that spent
    /// outputs of disconnected transactions which neither came back nor are unspent at the new
    /// tip (a disconnected coinbase, a dropped transaction) are removed with their descendants.
    ///
    /// Returns how many of the disconnected transactions are in the pool afterwards.
    pub fn readd_disconnected(
        &mut self,
        disconnected: &[Block],
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
        params: &ChainParams,
    ) -> usize {
        // (txid, number of outputs) of every disconnected transaction, the coinbases included.
        let mut created = Vec::new();
        for block in disconnected.iter().rev() {
            for tx in &block.txs {
                let (txid, size) = consensus::txid_and_size(tx);
                created.push((txid, tx.outputs.len() as u32));
                if tx.is_coinbase() {
                    continue;
                }
                if let Err(error) =
                    self.insert_sized(tx.clone(), txid, size, utxo, next_height, params)
                {
                    debug!(target: "mempool", %txid, %error,
                           "dropped a transaction of a disconnected block");
                }
            }
        }
        let mut orphaned = 0;
        for &(txid, outputs) in &created {
            if self.contains(&txid) {
                continue;
            }
            for vout in 0..outputs {
                let outpoint = OutPoint { txid, vout };
                if let Some(spender) = self.spends(&outpoint)
                    && utxo(&outpoint).is_none()
                {
                    orphaned += self.remove_with_descendants(&spender);
                }
            }
        }
        let back = created.iter().filter(|(t, _)| self.contains(t)).count();
        debug!(target: "mempool", blocks = disconnected.len(), back, orphaned, pool = self.len(),
               "returned the transactions of disconnected blocks");
        back
    }

    /// Chooses transactions for a block: at most `max_bytes` of them (the caller leaves room for
    /// the header, the coinbase and the length prefix), by ancestor fee rate (Bitcoin Core's
    /// `BlockAssembler`): the best package — a transaction with its ancestors not yet chosen —
    /// goes first, and choosing it lowers what its descendants' packages still need. Every
    /// child comes after its in-pool parents. Returns them in block order and the sum of their
    /// fees.
    ///
    /// The pool holds no two transactions spending the same outpoint, so neither does the
    /// selection. Visits only as much of the pool as fills the block.
    pub fn select_for_block(&self, max_bytes: usize) -> (Vec<Transaction>, Amount) {
        let chosen = self.block_order(max_bytes, usize::MAX);
        let fees = chosen
            .iter()
            .try_fold(Amount::ZERO, |sum, e| sum.checked_add(e.fee))
            .unwrap_or(Amount::MAX); // unreachable: pool transactions spend distinct coins
        (chosen.into_iter().map(|e| e.tx.clone()).collect(), fees)
    }

    /// The entries [`Self::select_for_block`] chooses, in block order; at most `max_count` of
    /// them (a package is cut there).
    pub(super) fn block_order(&self, max_bytes: usize, max_count: usize) -> Vec<&MempoolEntry> {
        let mut out: Vec<&MempoolEntry> = Vec::new();
        let mut in_block: HashSet<Txid> = HashSet::new();
        let mut failed: HashSet<Txid> = HashSet::new();
        // Packages whose ancestors are partly in the block already, and what is left of them.
        let mut modified: HashMap<Txid, Package> = HashMap::new();
        let mut heap: BinaryHeap<(RateKey, Txid)> = BinaryHeap::new();
        let mut by_rate = self.by_ancestor_rate.iter().rev().peekable();
        let mut room = max_bytes;
        let mut failures = 0;
        while out.len() < max_count {
            while let Some((_, t)) = by_rate.peek() {
                if in_block.contains(*t) || failed.contains(*t) || modified.contains_key(*t) {
                    by_rate.next();
                } else {
                    break;
                }
            }
            while let Some((key, t)) = heap.peek() {
                let current = modified
                    .get(t)
                    .map(|p| RateKey::new(p.fee_rate(), self.entries[t].seq));
                if in_block.contains(t) || failed.contains(t) || current != Some(*key) {
                    heap.pop();
                } else {
                    break;
                }
            }
            let from_heap = match (by_rate.peek(), heap.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((k, _)), Some((h, _))) => h > *k,
            };
            let (txid, package) = if from_heap {
                let (_, t) = heap.pop().expect("peeked");
                (t, modified[&t])
            } else {
                let (_, t) = by_rate.next().expect("peeked");
                (*t, self.entries[t].ancestors)
            };
            if package.size > room {
                failed.insert(txid);
                failures += 1;
                // Nearly full and nothing fits: stop looking (Core's heuristic).
                if failures > 1000 && room < 4000 {
                    break;
                }
                continue;
            }
            let entry = &self.entries[&txid];
            let mut package: Vec<&MempoolEntry> = self
                .ancestors_of_tx(&entry.tx)
                .iter()
                .filter(|a| !in_block.contains(*a))
                .map(|a| &self.entries[a])
                .collect();
            package.push(entry);
            // Fewer ancestors first: every parent before its children.
            package.sort_by_key(|e| (e.ancestors.count, e.seq));
            for e in package {
                in_block.insert(e.txid);
                room -= e.size;
                out.push(e);
                modified.remove(&e.txid);
                for d in self.descendants_of(&e.txid) {
                    if in_block.contains(&d) {
                        continue;
                    }
                    let left = modified
                        .entry(d)
                        .or_insert_with(|| self.entries[&d].ancestors);
                    left.count -= 1;
                    left.size -= e.size;
                    left.fee -= e.fee.units();
                    heap.push((RateKey::new(left.fee_rate(), self.entries[&d].seq), d));
                }
            }
        }
        out.truncate(max_count);
        out
    }
}
