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

use std::collections::{HashMap, HashSet};

use gossipcoin_proto::{Amount, Block, Coin, OutPoint, Transaction, Txid};
use tracing::debug;

use super::{Mempool, MempoolEntry};
use crate::consensus;
use crate::params::ChainParams;

impl Mempool {
    /// Follows a block connected to the main chain: removes its transactions from the pool, and
    /// every pool transaction spending an outpoint the block spends (a conflict the block
    /// settled), with its descendants. Pool children of the confirmed transactions stay: they
    /// now spend the UTXO set.
    pub fn remove_for_block(&mut self, block: &Block) {
        let (mut confirmed, mut conflicts) = (0, 0);
        for tx in &block.txs {
            if self.remove_entry(&tx.compute_txid()).is_some() {
                confirmed += 1;
            }
            for input in &tx.inputs {
                if let Some(spender) = self.spends(&input.prevout) {
                    conflicts += self.remove_with_descendants(&spender);
                }
            }
        }
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
    /// the header, the coinbase and the length prefix), highest fee rate first, every child after
    /// all its in-pool parents. A child met before a parent waits until the parent is taken, and
    /// is dropped with it if the parent does not fit. Returns them in block order and the sum of
    /// their fees.
    ///
    /// The pool holds no two transactions spending the same outpoint, so neither does the
    /// selection.
    pub fn select_for_block(&self, max_bytes: usize) -> (Vec<Transaction>, Amount) {
        let mut chosen = Vec::new();
        let mut fees = Amount::ZERO;
        let mut room = max_bytes;
        let mut taken: HashSet<Txid> = HashSet::new();
        // A deferred child → how many of its in-pool parents are not taken yet.
        let mut waiting: HashMap<Txid, usize> = HashMap::new();
        for entry in self.iter() {
            let pending = self
                .parents(entry)
                .into_iter()
                .filter(|p| !taken.contains(p))
                .count();
            if pending > 0 {
                waiting.insert(entry.txid, pending);
                continue;
            }
            let mut ready = vec![entry];
            while let Some(e) = ready.pop() {
                if e.size > room {
                    continue;
                }
                let Some(sum) = fees.checked_add(e.fee) else {
                    continue; // unreachable: pool transactions spend distinct coins
                };
                fees = sum;
                room -= e.size;
                taken.insert(e.txid);
                chosen.push(e.tx.clone());
                let mut children: Vec<Txid> = self.children(e).collect();
                children.sort_unstable();
                children.dedup();
                for child in children {
                    if let Some(n) = waiting.get_mut(&child) {
                        *n -= 1;
                        if *n == 0 {
                            waiting.remove(&child);
                            ready.push(&self.entries[&child]);
                        }
                    }
                }
            }
        }
        (chosen, fees)
    }

    /// The distinct pool transactions `entry` spends outputs of.
    fn parents(&self, entry: &MempoolEntry) -> Vec<Txid> {
        let mut parents: Vec<Txid> = entry
            .tx
            .inputs
            .iter()
            .map(|i| i.prevout.txid)
            .filter(|t| self.entries.contains_key(t))
            .collect();
        parents.sort_unstable();
        parents.dedup();
        parents
    }
}
