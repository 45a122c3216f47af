//! The pool's policy, apart from the pool: fee rates in units per virtual byte, the bounds a
//! node configures ([`MempoolLimits`]), the dust threshold, and what a transaction costs in
//! memory. Policy, not consensus: a block may hold what the pool refuses.
//!
//! A **virtual byte** (vB) is one byte of a transaction's canonical encoding here (there is no
//! witness discount), so "units/vB" is base units (1 coin = 10^8 units) per encoded byte, as
//! Bitcoin's "sat/vB".

use std::fmt;
use std::mem::size_of;

use gossipcoin_proto::{Amount, OutPoint, Transaction, TxIn, TxOut, Txid};

/// A fee rate, kept in thousandths of a unit per virtual byte (units per 1000 vB, Bitcoin
/// Core's sat/kvB) so that fractional rates compare exactly. Shown as `1.234 units/vB`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeeRate(u64);

impl FeeRate {
    /// No fee at all.
    pub const ZERO: Self = Self(0);

    /// `milli` thousandths of a unit per vB.
    pub const fn from_milli_units_per_vb(milli: u64) -> Self {
        Self(milli)
    }

    /// Whole units per vB.
    pub const fn from_units_per_vb(units: u64) -> Self {
        Self(units.saturating_mul(1000))
    }

    /// `fee` paid for `size` bytes, rounded down.
    pub fn of(fee: Amount, size: usize) -> Self {
        Self::of_units(fee.units(), size)
    }

    /// `fee` units paid for `size` bytes, rounded down.
    pub fn of_units(fee: u64, size: usize) -> Self {
        // fee ≤ MAX_MONEY < 2^51 per transaction (and a package's sum stays far below 2^64 /
        // 1000 for any pool that fits in memory); saturating in any case.
        Self(fee.saturating_mul(1000) / size.max(1) as u64)
    }

    /// Thousandths of a unit per vB.
    pub const fn milli_units_per_vb(self) -> u64 {
        self.0
    }

    /// Units per vB, as a float for display and JSON.
    pub fn units_per_vb(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The fee this rate asks of `size` bytes, rounded up (so paying it meets the rate).
    pub fn fee_for(self, size: usize) -> u64 {
        self.0.saturating_mul(size as u64).div_ceil(1000)
    }

    /// Parses a configured rate in units/vB (`1`, `0.5`); at most 3 decimals count.
    pub fn from_config(units_per_vb: f64) -> Option<Self> {
        (units_per_vb.is_finite() && (0.0..=MAX_CONFIG_RATE).contains(&units_per_vb))
            .then(|| Self((units_per_vb * 1000.0).round() as u64))
    }
}

/// The highest rate a configuration may name, units/vB (a full coin per byte).
const MAX_CONFIG_RATE: f64 = 100_000_000.0;

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} units/vB", self.0 / 1000, self.0 % 1000)
    }
}

/// Encoded bytes of a typical output plus the input that will spend it: what an output costs
/// the network over its life, for the dust threshold (Bitcoin Core's 34 + 148 for P2PKH). An
/// output is an amount (up to 8 bytes) and a 20-byte owner; an input an outpoint (32 + up to 5),
/// a 64-byte signature and a 33-byte key.
pub const OUTPUT_LIFE_BYTES: usize = 28 + 134;

/// Policy bounds of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// The most memory the pool's transactions may take ([`memory_of`]), bytes.
    pub max_bytes: usize,
    /// The lowest fee rate accepted and relayed (Core's `-minrelaytxfee`).
    pub min_fee_rate: FeeRate,
    /// What a replacement must add per byte of its own over the fees it replaces, and the step
    /// the rolling minimum rises by above an evicted package (Core's `-incrementalrelayfee`).
    pub incremental_fee_rate: FeeRate,
    /// An output worth less than spending it costs at this rate is dust (Core's
    /// `-dustrelayfee`); see [`MempoolLimits::dust_threshold`].
    pub dust_fee_rate: FeeRate,
    /// Most transactions in a transaction's in-pool ancestry, itself included (Core: 25).
    pub max_ancestors: usize,
    /// Most bytes of that ancestry (Core: 101 kvB).
    pub max_ancestor_bytes: usize,
    /// Most in-pool descendants of a transaction, itself included (Core: 25).
    pub max_descendants: usize,
    /// Most bytes of those descendants (Core: 101 kvB).
    pub max_descendant_bytes: usize,
    /// A transaction still unconfirmed this long after it arrived leaves the pool, seconds.
    pub expiry_secs: u64,
    /// Half-life of the rolling minimum fee rate once a block arrived, seconds (Core: 12 h).
    pub rolling_fee_halflife_secs: u64,
}

impl MempoolLimits {
    /// Bitcoin Core's defaults, with `max_bytes` of memory.
    pub fn core(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            min_fee_rate: FeeRate::from_units_per_vb(1),
            incremental_fee_rate: FeeRate::from_units_per_vb(1),
            dust_fee_rate: FeeRate::from_units_per_vb(3),
            max_ancestors: 25,
            max_ancestor_bytes: 101_000,
            max_descendants: 25,
            max_descendant_bytes: 101_000,
            expiry_secs: 14 * 24 * 3600,
            rolling_fee_halflife_secs: 12 * 3600,
        }
    }

    /// The smallest output value relayed: what [`OUTPUT_LIFE_BYTES`] cost at the dust rate
    /// (0 when the dust rate is 0).
    pub fn dust_threshold(&self) -> u64 {
        self.dust_fee_rate.fee_for(OUTPUT_LIFE_BYTES)
    }

    /// The first output of `tx` below [`Self::dust_threshold`], as `(vout, value)`.
    pub fn first_dust(&self, tx: &Transaction) -> Option<(u32, Amount)> {
        let threshold = self.dust_threshold();
        tx.outputs
            .iter()
            .enumerate()
            .find(|(_, o)| o.value.units() < threshold)
            .map(|(vout, o)| (vout as u32, o.value))
    }
}

/// The memory one pool entry of `tx` takes, bytes: the entry with its transaction's vectors,
/// and its share of the pool's indexes (by txid, by outpoint spent, and three ordered trees).
/// An estimate in the spirit of Core's `DynamicMemoryUsage`: hash tables are counted at their
/// 7/8 load with a control byte per slot, tree entries with half again for node slack. Always
/// more than the encoded size, since every encoded byte is held at least once.
pub fn memory_of(tx: &Transaction, entry_size: usize) -> usize {
    let table = |slot: usize| (slot + 1) * 8 / 7;
    let tree = |item: usize| item * 3 / 2;
    let heap =
        tx.inputs.capacity() * size_of::<TxIn>() + tx.outputs.capacity() * size_of::<TxOut>();
    // Each heap block carries the allocator's header and rounding (16 bytes on glibc).
    let allocations = 2 * 16;
    let by_txid = table(size_of::<Txid>() + entry_size);
    let spenders = tx.inputs.len() * table(size_of::<OutPoint>() + size_of::<Txid>());
    let trees = 3 * tree(size_of::<(u64, u64, Txid)>());
    by_txid + heap + allocations + spenders + trees
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rates_read_in_units_per_vbyte() {
        assert_eq!(FeeRate::of_units(250, 250), FeeRate::from_units_per_vb(1));
        assert_eq!(FeeRate::of_units(1, 3).to_string(), "0.333 units/vB");
        assert_eq!(FeeRate::from_units_per_vb(2).to_string(), "2.000 units/vB");
        assert_eq!(FeeRate::from_milli_units_per_vb(1500).units_per_vb(), 1.5);
        // Paying fee_for(size) always meets the rate.
        for size in [1, 7, 191, 1000, 99_999] {
            let rate = FeeRate::from_milli_units_per_vb(1234);
            assert!(FeeRate::of_units(rate.fee_for(size), size) >= rate);
        }
    }

    #[test]
    fn configured_rates_are_checked() {
        assert_eq!(
            FeeRate::from_config(1.0),
            Some(FeeRate::from_units_per_vb(1))
        );
        assert_eq!(
            FeeRate::from_config(0.25),
            Some(FeeRate::from_milli_units_per_vb(250))
        );
        assert_eq!(FeeRate::from_config(0.0), Some(FeeRate::ZERO));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert_eq!(FeeRate::from_config(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_dust_threshold_follows_its_rate() {
        let mut limits = MempoolLimits::core(1 << 20);
        assert_eq!(limits.dust_threshold(), 3 * OUTPUT_LIFE_BYTES as u64);
        limits.dust_fee_rate = FeeRate::ZERO;
        assert_eq!(limits.dust_threshold(), 0);
    }
}
