//! The mempool: valid transactions waiting for a block, ordered by fee rate.
//!
//! A pure, synchronous data structure: no I/O, no async, no store. The caller passes a UTXO
//! lookup (the set at its current tip) and the height of the next block; the pool validates
//! against that set plus its own transactions, with the consensus rules of [`crate::consensus`]
//! ([`check_transaction`](crate::consensus::check_transaction),
//! [`check_tx_spends`](crate::consensus::check_tx_spends)); it adds only policy of its own:
//!
//! - **first seen wins**: a transaction spending an outpoint another pool transaction already
//!   spends is refused ([`MempoolError::Conflict`]); there is no replacement;
//! - **unconfirmed chains**: a child may spend outputs of a parent in the pool; such coins count
//!   as created at the next height, and never as coinbase outputs;
//! - **minimum fee rate** ([`MempoolLimits::min_fee_rate`]) and a **byte bound**
//!   ([`MempoolLimits::max_bytes`]): past it the lowest fee rates are evicted with their in-pool
//!   descendants, and a new transaction that would itself be evicted is refused.
//!
//! Fee rate = fee × 1000 / encoded size, in base units per 1000 bytes. Ties are broken by
//! arrival: block assembly prefers the older transaction, eviction the newer one.
//!
//! Indexes: by txid, outpoint → spending pool transaction, and a fee-rate ordered tree, so every
//! operation costs O(log n) or O(transaction size), apart from walking descendants and
//! [`Mempool::select_for_block`], which visits the pool once.
//!
//! Keeping the pool in step with the chain is [`Mempool::remove_for_block`] and
//! [`Mempool::readd_disconnected`] (in `block.rs`), which also documents the order of calls after
//! a reorganisation.

mod block;
#[cfg(test)]
mod block_tests;
mod error;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use gossipcoin_proto::{Amount, Coin, OutPoint, Transaction, Txid};
use tracing::debug;

use crate::consensus::{self, ValidationError};
use crate::params::ChainParams;

pub use error::MempoolError;

/// The pool's policy bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// The most the pool holds, as the sum of its transactions' encoded sizes (not the memory
    /// the process uses for them, which is a small multiple of it).
    pub max_bytes: usize,
    /// The lowest fee rate accepted, in base units per 1000 encoded bytes (0 on the devnet, so
    /// free transactions are relayed and mined).
    pub min_fee_rate: u64,
}

/// A transaction in the pool and what validating it established.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    tx: Transaction,
    txid: Txid,
    size: usize,
    fee: Amount,
    fee_rate: u64,
    /// Arrival order, to break fee-rate ties.
    seq: u64,
}

impl MempoolEntry {
    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.tx
    }

    /// Its txid.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// Its encoded size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Inputs minus outputs.
    pub fn fee(&self) -> Amount {
        self.fee
    }

    /// Fee in base units per 1000 encoded bytes.
    pub fn fee_rate(&self) -> u64 {
        self.fee_rate
    }

    fn key(&self) -> RateKey {
        RateKey {
            fee_rate: self.fee_rate,
            newest_first: Reverse(self.seq),
        }
    }
}

/// A position in the fee-rate order. Ascending is eviction order (lowest rate, newest first);
/// descending is block order (highest rate, oldest first). `seq` is unique, so keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RateKey {
    fee_rate: u64,
    newest_first: Reverse<u64>,
}

/// Fee in base units per 1000 bytes of `size`, rounded down.
pub fn fee_rate(fee: Amount, size: usize) -> u64 {
    // fee ≤ MAX_MONEY < 2^51, so fee × 1000 < 2^61: the multiplication cannot saturate.
    fee.units().saturating_mul(1000) / size.max(1) as u64
}

/// Valid unconfirmed transactions, indexed for relay and block assembly.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    entries: HashMap<Txid, MempoolEntry>,
    /// Every outpoint a pool transaction spends → that transaction.
    spenders: HashMap<OutPoint, Txid>,
    by_rate: BTreeMap<RateKey, Txid>,
    /// Arrival order (`seq` → txid): what peers are told we hold, oldest first.
    by_arrival: BTreeMap<u64, Txid>,
    /// Sum of the entries' encoded sizes.
    bytes: usize,
    next_seq: u64,
}

impl Mempool {
    /// An empty pool with these bounds.
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            spenders: HashMap::new(),
            by_rate: BTreeMap::new(),
            by_arrival: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Validates `tx` against the UTXO set (`utxo`, at the current tip) plus the pool, as if it
    /// were included in the block at `next_height`, and adds it. Returns its txid.
    ///
    /// In order: already in the pool → [`MempoolError::AlreadyKnown`]; a coinbase, or a
    /// transaction failing [`consensus::check_transaction`] → [`MempoolError::Invalid`]; an
    /// input another pool transaction spends → [`MempoolError::Conflict`]; inputs neither in
    /// `utxo` nor created by a pool transaction → [`MempoolError::MissingInputs`] (an orphan);
    /// [`consensus::check_tx_spends`] (maturity, amounts, keys, signatures) →
    /// [`MempoolError::Invalid`]; fee rate below the minimum → [`MempoolError::FeeTooLow`].
    /// Then, if the pool exceeds its byte bound, the lowest fee rates are evicted with their
    /// descendants until it fits; if that would evict `tx` itself, the pool is left as it was
    /// and `tx` is refused with [`MempoolError::PoolFull`].
    pub fn insert(
        &mut self,
        tx: Transaction,
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
        params: &ChainParams,
    ) -> Result<Txid, MempoolError> {
        let (txid, size) = consensus::txid_and_size(&tx);
        self.insert_sized(tx, txid, size, utxo, next_height, params)
    }

    /// [`Self::insert`] for a caller that already encoded the transaction.
    fn insert_sized(
        &mut self,
        tx: Transaction,
        txid: Txid,
        size: usize,
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
        params: &ChainParams,
    ) -> Result<Txid, MempoolError> {
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown { txid });
        }
        if tx.is_coinbase() {
            return Err(ValidationError::UnexpectedCoinbase { txid }.into());
        }
        consensus::check_transaction_sized(&tx, txid, size)?;
        let coins = self.resolve_inputs(&tx, txid, utxo, next_height)?;
        let fee = consensus::check_tx_spends(&tx, &coins, next_height, params)?;
        let fee_rate = fee_rate(fee, size);
        if fee_rate < self.limits.min_fee_rate {
            return Err(MempoolError::FeeTooLow {
                txid,
                fee_rate,
                min_fee_rate: self.limits.min_fee_rate,
            });
        }

        let seq = self.next_seq;
        self.next_seq += 1;
        self.add(MempoolEntry {
            tx,
            txid,
            size,
            fee,
            fee_rate,
            seq,
        });
        if self.bytes > self.limits.max_bytes {
            let evict = self.eviction_plan();
            if evict.contains(&txid) {
                // Nothing in the pool can spend the newcomer yet: removing it alone restores
                // the pool exactly.
                self.remove_entry(&txid);
                return Err(MempoolError::PoolFull { txid, fee_rate });
            }
            for t in &evict {
                self.remove_entry(t);
            }
            debug!(target: "mempool", %txid, evicted = evict.len(), bytes = self.bytes,
                   "evicted the lowest fee rates to stay within the byte bound");
        }
        Ok(txid)
    }

    /// The coin each input spends, from the pool or else from `utxo`; or why there is none.
    fn resolve_inputs(
        &self,
        tx: &Transaction,
        txid: Txid,
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
    ) -> Result<Vec<Coin>, MempoolError> {
        let mut coins = Vec::with_capacity(tx.inputs.len());
        let mut missing = Vec::new();
        for input in &tx.inputs {
            let outpoint = input.prevout;
            if let Some(&with) = self.spenders.get(&outpoint) {
                return Err(MempoolError::Conflict {
                    txid,
                    outpoint,
                    with,
                });
            }
            let coin = match self.entries.get(&outpoint.txid) {
                Some(parent) => parent
                    .tx
                    .outputs
                    .get(outpoint.vout as usize)
                    .map(|&output| Coin {
                        output,
                        height: next_height,
                        is_coinbase: false,
                    }),
                None => utxo(&outpoint),
            };
            match coin {
                Some(coin) => coins.push(coin),
                None => missing.push(outpoint),
            }
        }
        if missing.is_empty() {
            Ok(coins)
        } else {
            Err(MempoolError::MissingInputs { txid, missing })
        }
    }

    /// What to evict so the pool fits its byte bound: the lowest fee rates first, each with its
    /// descendants (which cannot stay without it). Closed under descendants.
    fn eviction_plan(&self) -> Vec<Txid> {
        let mut plan = HashSet::new();
        let mut order = Vec::new();
        let mut bytes = self.bytes;
        for txid in self.by_rate.values() {
            if bytes <= self.limits.max_bytes {
                break;
            }
            if plan.contains(txid) {
                continue;
            }
            for t in self.with_descendants(txid) {
                if plan.insert(t) {
                    bytes -= self.entries[&t].size;
                    order.push(t);
                }
            }
        }
        order
    }

    fn add(&mut self, entry: MempoolEntry) {
        for input in &entry.tx.inputs {
            self.spenders.insert(input.prevout, entry.txid);
        }
        self.by_rate.insert(entry.key(), entry.txid);
        self.by_arrival.insert(entry.seq, entry.txid);
        self.bytes += entry.size;
        self.entries.insert(entry.txid, entry);
    }

    /// Removes one transaction from every index (not its descendants).
    fn remove_entry(&mut self, txid: &Txid) -> Option<MempoolEntry> {
        let entry = self.entries.remove(txid)?;
        for input in &entry.tx.inputs {
            self.spenders.remove(&input.prevout);
        }
        self.by_rate.remove(&entry.key());
        self.by_arrival.remove(&entry.seq);
        self.bytes -= entry.size;
        Some(entry)
    }

    /// Removes `txid` and every pool transaction that descends from it; returns how many.
    fn remove_with_descendants(&mut self, txid: &Txid) -> usize {
        let all = self.with_descendants(txid);
        for t in &all {
            self.remove_entry(t);
        }
        all.len()
    }

    /// `txid` (if in the pool) followed by its in-pool descendants, each once.
    fn with_descendants(&self, txid: &Txid) -> Vec<Txid> {
        let mut seen = HashSet::new();
        let mut stack = vec![*txid];
        let mut out = Vec::new();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            let Some(entry) = self.entries.get(&t) else {
                continue;
            };
            out.push(t);
            stack.extend(self.children(entry));
        }
        out
    }

    /// Pool transactions spending an output of `entry` (a child spending two outputs appears
    /// twice).
    fn children<'a>(&'a self, entry: &'a MempoolEntry) -> impl Iterator<Item = Txid> + 'a {
        (0..entry.tx.outputs.len() as u32).filter_map(move |vout| {
            let outpoint = OutPoint {
                txid: entry.txid,
                vout,
            };
            self.spenders.get(&outpoint).copied()
        })
    }

    /// The bounds this pool enforces.
    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the transactions' encoded sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `txid` is in the pool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// The pool transaction `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&Transaction> {
        self.entries.get(txid).map(|e| &e.tx)
    }

    /// The pool entry `txid`, with its size and fee.
    pub fn entry(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.entries.get(txid)
    }

    /// Every txid in the pool, in no particular order.
    pub fn txids(&self) -> impl Iterator<Item = Txid> + '_ {
        self.entries.keys().copied()
    }

    /// At most `max` txids, oldest arrival first: what a peer is told we hold. A transaction
    /// arrives after its in-pool parents, so parents come first (except after a
    /// reorganisation returned a parent to the pool behind a child that stayed).
    pub fn txids_by_arrival(&self, max: usize) -> Vec<Txid> {
        self.by_arrival.values().take(max).copied().collect()
    }

    /// The pool transactions among `txids`, in that order, skipping those not in the pool and
    /// stopping once they add up to `max_bytes` or more (so one may go past it).
    pub fn txs_among(&self, txids: &[Txid], max_bytes: usize) -> Vec<Transaction> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in txids.iter().filter_map(|t| self.entries.get(t)) {
            if bytes >= max_bytes {
                break;
            }
            bytes += entry.size;
            out.push(entry.tx.clone());
        }
        out
    }

    /// The pool transaction that spends `outpoint`, if any.
    pub fn spends(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// Every entry, highest fee rate first (ties: oldest first). A child may come before its
    /// parent: use [`Self::select_for_block`] to build a block.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &MempoolEntry> + '_ {
        self.by_rate.values().rev().map(|t| &self.entries[t])
    }
}
