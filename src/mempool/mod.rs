//! The mempool: valid transactions waiting for a block, and the policy that keeps a flood of
//! valid but cheap transactions from taking it over (Bitcoin Core's `CTxMemPool` and its
//! policy, in miniature).
//!
//! A pure, synchronous data structure: no I/O, no async, no store, no clock. The caller passes
//! a UTXO lookup (the set at its current tip) and the height of the next block, and tells the
//! pool the time with [`Mempool::tick`]; the pool validates against that set plus its own
//! transactions, with the consensus rules of [`crate::consensus`], and adds its policy
//! ([`MempoolLimits`], in `policy.rs`):
//!
//! - **a fee floor**: a fee rate (units/vB, see [`FeeRate`]) below the minimum relay rate, or
//!   below the rolling minimum a full pool raised ([`Mempool::min_fee_rate`]), is refused;
//!   outputs below the dust threshold are refused;
//! - **a memory bound** ([`MempoolLimits::max_bytes`], counted with [`policy::memory_of`]):
//!   past it the package with the lowest *descendant* fee rate (a transaction with everything
//!   in the pool that spends it) is evicted, and the rolling minimum rises above its rate; the
//!   rolling minimum halves every half-life once a block came (Core's `GetMinFee`), so a payment
//!   paying more than what was evicted always gets in;
//! - **chain limits**: at most 25 in-pool ancestors or descendants (itself included) and
//!   101 kvB of either (`packages.rs`);
//! - **full replace-by-fee**: a transaction spending an input of pool transactions replaces
//!   them and their descendants when it pays a higher fee rate than each and more fees than all
//!   of them by the incremental rate on its own size (`replace.rs`); otherwise it is refused as
//!   a [`MempoolError::Conflict`]. The pool remembers recent replacements, so the old one is
//!   answered [`MempoolError::Replaced`];
//! - **expiry**: a transaction unconfirmed after [`MempoolLimits::expiry_secs`] leaves with its
//!   descendants.
//!
//! Indexes: by txid, outpoint → spending pool transaction, ancestor and descendant fee-rate
//! ordered trees (block assembly and eviction) and arrival order. Each entry carries the sums
//! of its ancestry and descendants, kept exact on every insertion and removal by walking them
//! (bounded by the chain limits), so insertion and eviction cost O(log n + limits²).
//!
//! Keeping the pool in step with the chain is [`Mempool::remove_for_block`] and
//! [`Mempool::readd_disconnected`] (in `block.rs`), which also documents the order of calls
//! after a reorganisation; `block.rs` also builds block templates by ancestor fee rate.

mod block;
#[cfg(test)]
mod block_tests;
mod error;
mod fees;
mod packages;
pub mod policy;
#[cfg(test)]
mod policy_tests;
mod replace;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use gossipcoin_proto::{Amount, Coin, OutPoint, Transaction, Txid};
use tracing::debug;

use crate::consensus::{self, ValidationError};
use crate::params::ChainParams;

pub use error::MempoolError;
pub use fees::{FeeEstimate, MAX_ESTIMATE_BLOCKS, fit_fee};
pub use packages::Package;
pub use policy::{FeeRate, MempoolLimits};
use replace::Replacements;

/// A transaction in the pool and what validating it established.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    tx: Transaction,
    txid: Txid,
    size: usize,
    /// Memory the entry takes with its share of the indexes.
    memory: usize,
    fee: Amount,
    /// When it arrived, seconds since 1970 (the pool's clock).
    time: u64,
    /// The height of the block it was first checked for (to count the blocks it waited).
    height: u32,
    /// Arrival order, to break fee-rate ties.
    seq: u64,
    /// Itself and its in-pool ancestors.
    ancestors: Package,
    /// Itself and its in-pool descendants.
    descendants: Package,
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

    /// Its encoded size in bytes (= virtual bytes).
    pub fn size(&self) -> usize {
        self.size
    }

    /// What it takes in memory in the pool, bytes.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Inputs minus outputs.
    pub fn fee(&self) -> Amount {
        self.fee
    }

    /// Its own fee rate.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::of(self.fee, self.size)
    }

    /// When it arrived, seconds since 1970.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Itself with its in-pool ancestors: what a miner must take to take it.
    pub fn ancestors(&self) -> Package {
        self.ancestors
    }

    /// Itself with its in-pool descendants: what leaves the pool if it is evicted.
    pub fn descendants(&self) -> Package {
        self.descendants
    }

    fn anc_key(&self) -> RateKey {
        RateKey::new(self.ancestors.fee_rate(), self.seq)
    }

    fn desc_key(&self) -> RateKey {
        RateKey::new(self.descendants.fee_rate(), self.seq)
    }
}

/// A position in a fee-rate order. Ascending is eviction order (lowest rate, newest first);
/// descending is block order (highest rate, oldest first). `seq` is unique, so keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RateKey {
    fee_rate: FeeRate,
    newest_first: Reverse<u64>,
}

impl RateKey {
    fn new(fee_rate: FeeRate, seq: u64) -> Self {
        Self {
            fee_rate,
            newest_first: Reverse(seq),
        }
    }
}

/// The inputs of a transaction other pool transactions spend: (input, spender).
type Conflicts = Vec<(OutPoint, Txid)>;

/// What an accepted transaction did to the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub txid: Txid,
    /// Pool transactions it replaced (conflicts and their descendants).
    pub replaced: Vec<Txid>,
    /// Pool transactions evicted to keep within the memory bound.
    pub evicted: usize,
}

/// The rolling minimum fee rate of a pool that was full (Core's `rollingMinimumFeeRate`).
#[derive(Debug, Clone, Copy, Default)]
struct RollingFee {
    /// Thousandths of a unit per vB (fractional while it decays).
    milli: f64,
    /// When it was last decayed or raised.
    updated: u64,
    /// Whether a block arrived since it was last raised: it decays only then.
    block_since_bump: bool,
}

/// Valid unconfirmed transactions, indexed for relay and block assembly.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    entries: HashMap<Txid, MempoolEntry>,
    /// Every outpoint a pool transaction spends → that transaction.
    spenders: HashMap<OutPoint, Txid>,
    /// By ancestor fee rate: block assembly.
    by_ancestor_rate: BTreeMap<RateKey, Txid>,
    /// By descendant fee rate: eviction, lowest first.
    by_descendant_rate: BTreeMap<RateKey, Txid>,
    /// Arrival order (`seq` → txid): expiry, oldest first.
    by_arrival: BTreeMap<u64, Txid>,
    /// Sum of the entries' encoded sizes.
    bytes: usize,
    /// Sum of the entries' memory.
    memory: usize,
    next_seq: u64,
    /// The pool's clock: seconds since 1970, as the last [`Mempool::tick`] said.
    now: u64,
    rolling: RollingFee,
    replaced: Replacements,
    history: fees::FeeHistory,
}

impl Mempool {
    /// An empty pool with these bounds.
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            spenders: HashMap::new(),
            by_ancestor_rate: BTreeMap::new(),
            by_descendant_rate: BTreeMap::new(),
            by_arrival: BTreeMap::new(),
            bytes: 0,
            memory: 0,
            next_seq: 0,
            now: 0,
            rolling: RollingFee::default(),
            replaced: Replacements::default(),
            history: fees::FeeHistory::default(),
        }
    }

    /// Sets the pool's clock to `now` (seconds since 1970; a clock going back is ignored) and
    /// expires what has waited longer than [`MempoolLimits::expiry_secs`], with its
    /// descendants. Returns how many transactions expired.
    pub fn tick(&mut self, now: u64) -> usize {
        self.now = self.now.max(now);
        let cutoff = self.now.saturating_sub(self.limits.expiry_secs);
        let expired: Vec<Txid> = self
            .by_arrival
            .values()
            .take_while(|t| self.entries[*t].time < cutoff)
            .copied()
            .collect();
        let mut gone = 0;
        for txid in expired {
            if self.contains(&txid) {
                gone += self.remove_with_descendants(&txid);
            }
        }
        if gone > 0 {
            debug!(target: "mempool", expired = gone, pool = self.len(),
                   "expired transactions unconfirmed for too long");
        }
        gone
    }

    /// The lowest fee rate accepted now: the configured minimum, or the rolling minimum a
    /// full pool raised, decayed by the time since (Core's `GetMinFee`). Decays only once a
    /// block arrived after the last rise, faster when the pool is under half (×2) or a quarter
    /// (×4) full, and drops to nothing under half the incremental rate.
    pub fn min_fee_rate(&mut self) -> FeeRate {
        let floor = self.limits.min_fee_rate;
        let r = &mut self.rolling;
        if r.milli == 0.0 {
            return floor;
        }
        if r.block_since_bump && self.now > r.updated + 10 {
            let mut halflife = self.limits.rolling_fee_halflife_secs.max(1) as f64;
            if self.memory < self.limits.max_bytes / 4 {
                halflife /= 4.0;
            } else if self.memory < self.limits.max_bytes / 2 {
                halflife /= 2.0;
            }
            r.milli /= 2f64.powf((self.now - r.updated) as f64 / halflife);
            r.updated = self.now;
            if r.milli < self.limits.incremental_fee_rate.milli_units_per_vb() as f64 / 2.0 {
                r.milli = 0.0;
                return floor;
            }
        }
        let rolling = FeeRate::from_milli_units_per_vb(r.milli.ceil() as u64);
        floor.max(rolling).max(self.limits.incremental_fee_rate)
    }

    /// Raises the rolling minimum above a package that was evicted.
    fn bump_rolling(&mut self, evicted: FeeRate) {
        let rate =
            evicted.milli_units_per_vb() + self.limits.incremental_fee_rate.milli_units_per_vb();
        if rate as f64 > self.rolling.milli {
            self.rolling = RollingFee {
                milli: rate as f64,
                updated: self.now,
                block_since_bump: false,
            };
        }
    }

    /// Validates `tx` against the UTXO set (`utxo`, at the current tip) plus the pool, as if it
    /// were included in the block at `next_height`, and adds it.
    ///
    /// In order: already in the pool → [`MempoolError::AlreadyKnown`]; a coinbase, or a
    /// transaction failing [`consensus::check_transaction`] → [`MempoolError::Invalid`]; an
    /// output below the dust threshold → [`MempoolError::Dust`]; replaced here recently →
    /// [`MempoolError::Replaced`]; inputs neither in `utxo` nor created by a pool transaction →
    /// [`MempoolError::MissingInputs`] (an orphan); [`consensus::check_tx_spends`] (maturity,
    /// amounts, keys, signatures) → [`MempoolError::Invalid`]; a fee rate below
    /// [`Self::min_fee_rate`] → [`MempoolError::FeeTooLow`]; inputs other pool transactions
    /// spend → a replacement, or [`MempoolError::Conflict`] / [`MempoolError::ReplacementRefused`];
    /// past the chain limits → [`MempoolError::TooLongChain`]. Then, past the memory bound,
    /// the lowest descendant fee rates are evicted; if that evicts `tx` itself it is refused
    /// with [`MempoolError::PoolFull`].
    pub fn insert(
        &mut self,
        tx: Transaction,
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
        params: &ChainParams,
    ) -> Result<Added, MempoolError> {
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
    ) -> Result<Added, MempoolError> {
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown { txid });
        }
        if tx.is_coinbase() {
            return Err(ValidationError::UnexpectedCoinbase { txid }.into());
        }
        consensus::check_transaction_sized(&tx, txid, size)?;
        if let Some((vout, value)) = self.limits.first_dust(&tx) {
            return Err(MempoolError::Dust {
                txid,
                vout,
                value,
                threshold: Amount::from_units(self.limits.dust_threshold()).unwrap_or(Amount::ZERO),
            });
        }
        if let Some(by) = self.replaced.by(&txid) {
            return Err(MempoolError::Replaced { txid, by });
        }
        let (coins, conflicts) = self.resolve_inputs(&tx, txid, utxo, next_height)?;
        let fee = consensus::check_tx_spends(&tx, &coins, next_height, params)?;
        let fee_rate = FeeRate::of(fee, size);
        let min_fee_rate = self.min_fee_rate();
        if fee_rate < min_fee_rate {
            return Err(MempoolError::FeeTooLow {
                txid,
                fee_rate,
                min_fee_rate,
            });
        }
        let replaced = if conflicts.is_empty() {
            Vec::new()
        } else {
            self.check_replacement(&tx, txid, fee, size, &conflicts)?
        };
        let ancestors = self.check_chain_limits(&tx, txid, size)?;

        for t in &replaced {
            self.replaced.remember(*t, txid);
        }
        self.remove_set(&replaced);
        let seq = self.next_seq;
        self.next_seq += 1;
        let own = Package {
            count: 1,
            size,
            fee: fee.units(),
        };
        let mut anc = own;
        for a in &ancestors {
            anc.add(&self.entries[a].own());
        }
        let memory = policy::memory_of(&tx, std::mem::size_of::<MempoolEntry>());
        self.add(MempoolEntry {
            tx,
            txid,
            size,
            memory,
            fee,
            time: self.now,
            height: next_height,
            seq,
            ancestors: anc,
            descendants: own,
        });
        if self.children_of(&txid).is_empty() {
            for a in &ancestors {
                self.update_descendants(a, |p| p.add(&own));
            }
        } else {
            // Children already here: a parent a reorganisation returned.
            self.recompute_around(&txid);
        }
        if !replaced.is_empty() {
            debug!(target: "mempool", %txid, replaced = replaced.len(), %fee_rate,
                   "replaced pool transactions by one paying more");
        }
        let evicted = self.trim();
        if !self.contains(&txid) {
            return Err(MempoolError::PoolFull { txid, fee_rate });
        }
        Ok(Added {
            txid,
            replaced,
            evicted,
        })
    }

    /// The coin each input spends, from the pool or else from `utxo`, and the pool
    /// transactions that already spend one of its inputs; or why some input has no coin.
    fn resolve_inputs(
        &self,
        tx: &Transaction,
        txid: Txid,
        utxo: &impl Fn(&OutPoint) -> Option<Coin>,
        next_height: u32,
    ) -> Result<(Vec<Coin>, Conflicts), MempoolError> {
        let mut coins = Vec::with_capacity(tx.inputs.len());
        let mut missing = Vec::new();
        let mut conflicts = Vec::new();
        for input in &tx.inputs {
            let outpoint = input.prevout;
            if let Some(&with) = self.spenders.get(&outpoint) {
                conflicts.push((outpoint, with));
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
            Ok((coins, conflicts))
        } else {
            Err(MempoolError::MissingInputs { txid, missing })
        }
    }

    /// Evicts the packages with the lowest descendant fee rate until the pool fits its memory
    /// bound, raising the rolling minimum above each. Returns how many transactions left.
    fn trim(&mut self) -> usize {
        let mut evicted = 0;
        while self.memory > self.limits.max_bytes {
            let Some((_, &worst)) = self.by_descendant_rate.iter().next() else {
                break;
            };
            let package = self.entries[&worst].descendants;
            self.bump_rolling(package.fee_rate());
            evicted += self.remove_with_descendants(&worst);
        }
        if evicted > 0 {
            debug!(target: "mempool", evicted, memory = self.memory, min_fee_rate = %FeeRate::from_milli_units_per_vb(self.rolling.milli as u64),
                   "evicted the lowest descendant fee rates to stay within the memory bound");
        }
        evicted
    }

    fn add(&mut self, entry: MempoolEntry) {
        for input in &entry.tx.inputs {
            self.spenders.insert(input.prevout, entry.txid);
        }
        self.by_ancestor_rate.insert(entry.anc_key(), entry.txid);
        self.by_descendant_rate.insert(entry.desc_key(), entry.txid);
        self.by_arrival.insert(entry.seq, entry.txid);
        self.bytes += entry.size;
        self.memory += entry.memory;
        self.entries.insert(entry.txid, entry);
    }

    /// Removes one transaction from every index, without touching its relatives' sums.
    fn unlink(&mut self, txid: &Txid) -> Option<MempoolEntry> {
        let entry = self.entries.remove(txid)?;
        for input in &entry.tx.inputs {
            self.spenders.remove(&input.prevout);
        }
        self.by_ancestor_rate.remove(&entry.anc_key());
        self.by_descendant_rate.remove(&entry.desc_key());
        self.by_arrival.remove(&entry.seq);
        self.bytes -= entry.size;
        self.memory -= entry.memory;
        Some(entry)
    }

    /// Removes `txid` and every pool transaction that descends from it; returns how many.
    fn remove_with_descendants(&mut self, txid: &Txid) -> usize {
        let all = self.with_descendants(txid);
        self.remove_set(&all);
        all.len()
    }

    /// Removes one transaction (a confirmed one: its in-pool children stay); whether it was in.
    fn remove_one(&mut self, txid: &Txid) -> bool {
        let found = self.contains(txid);
        if found {
            self.remove_set(&[*txid]);
        }
        found
    }

    /// `txid` (if in the pool) followed by its in-pool descendants, each once.
    fn with_descendants(&self, txid: &Txid) -> Vec<Txid> {
        if !self.contains(txid) {
            return Vec::new();
        }
        let mut out = vec![*txid];
        out.extend(self.descendants_of(txid));
        out
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

    /// Memory the pool's transactions take, as bounded by [`MempoolLimits::max_bytes`].
    pub fn memory(&self) -> usize {
        self.memory
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

    /// At most `max` txids, oldest arrival first.
    pub fn txids_by_arrival(&self, max: usize) -> Vec<Txid> {
        self.by_arrival.values().take(max).copied().collect()
    }

    /// At most `max` txids, highest ancestor fee rate first and every parent before its
    /// children, adding up to no more than `max_bytes` encoded bytes: what a peer is told we
    /// hold, so a peer that takes only the first ones takes the best paying ones.
    pub fn txids_by_fee_rate(&self, max: usize, max_bytes: usize) -> Vec<Txid> {
        self.block_order(max_bytes, max)
            .into_iter()
            .map(|e| e.txid)
            .collect()
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

    /// Every entry, highest ancestor fee rate first (ties: oldest first). A child may come
    /// before its parent: use [`Self::select_for_block`] to build a block.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &MempoolEntry> + '_ {
        self.by_ancestor_rate
            .values()
            .rev()
            .map(|t| &self.entries[t])
    }
}
