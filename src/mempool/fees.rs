//! Fee estimation: what fee rate gets a transaction mined within a number of blocks, from the
//! fee rates of recently confirmed pool transactions (how many blocks each waited, Bitcoin
//! Core's `CBlockPolicyEstimator` idea in its simplest form), what the pool holds now (the
//! rate at which `blocks` blocks of it are full), and never below the pool's minimum.
//!
//! Also [`fit_fee`]: the fee a wallet pays for a rate, found by building the payment until its
//! fee covers its own size.

use std::collections::VecDeque;

use gossipcoin_proto::{Amount, Block, Transaction};

use super::{FeeRate, Mempool};

/// Blocks of confirmations remembered.
const BLOCKS_KEPT: usize = 100;
/// Confirmed transactions remembered per block at most (the best paying ones are kept).
const SAMPLES_PER_BLOCK: usize = 1000;
/// Below this many confirmed transactions the history says nothing.
const MIN_SAMPLES: usize = 10;
/// Transactions judged together at least.
const GROUP: usize = 5;
/// The share of transactions at or above a rate that must have been mined in time.
const SUCCESS: f64 = 0.85;
/// The projection from the pool looks this many blocks ahead at most.
const MAX_PROJECTED_BLOCKS: u32 = 10;
/// The most blocks an estimate may be asked for (a week of 10-minute blocks, as Core).
pub const MAX_ESTIMATE_BLOCKS: u32 = 1008;

/// One confirmed pool transaction: its fee rate and how many blocks it waited (1 = the next).
#[derive(Debug, Clone, Copy)]
struct Confirmed {
    rate: FeeRate,
    waited: u32,
}

/// What recent blocks confirmed of the pool.
#[derive(Debug, Default)]
pub(super) struct FeeHistory {
    blocks: VecDeque<Vec<Confirmed>>,
}

impl FeeHistory {
    fn record(&mut self, mut confirmed: Vec<Confirmed>) {
        confirmed.sort_by_key(|c| std::cmp::Reverse(c.rate));
        confirmed.truncate(SAMPLES_PER_BLOCK);
        self.blocks.push_back(confirmed);
        while self.blocks.len() > BLOCKS_KEPT {
            self.blocks.pop_front();
        }
    }

    /// The lowest rate at which at least [`SUCCESS`] of the transactions were mined within
    /// `blocks`, judged in groups of at least [`GROUP`] transactions from the highest rate
    /// down (each group's rates within 10% of its first), stopping at the first group that
    /// failed (Core's bucket scan); `None` without enough history.
    fn estimate(&self, blocks: u32) -> Option<FeeRate> {
        let mut all: Vec<Confirmed> = self.blocks.iter().flatten().copied().collect();
        if all.len() < MIN_SAMPLES {
            return None;
        }
        all.sort_by_key(|c| std::cmp::Reverse(c.rate));
        let mut best = None;
        let (mut seen, mut in_time) = (0usize, 0usize);
        let mut top = all[0].rate.milli_units_per_vb();
        for (i, c) in all.iter().enumerate() {
            seen += 1;
            in_time += usize::from(c.waited <= blocks);
            let next = all.get(i + 1).map(|n| n.rate.milli_units_per_vb());
            // Close the group at the end, or when it is large enough and the next rate is
            // more than 10% lower than the group's first.
            let closes = next.is_none_or(|n| seen >= GROUP && n * 10 < top * 9);
            if closes {
                if (in_time as f64) < SUCCESS * seen as f64 {
                    break;
                }
                best = Some(c.rate);
                (seen, in_time) = (0, 0);
                top = next.unwrap_or(0);
            }
        }
        // Even the best paying ones waited: the best rate seen.
        Some(best.unwrap_or(all[0].rate))
    }
}

/// An estimate and what it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeEstimate {
    /// The rate to pay: the highest of the three below.
    pub fee_rate: FeeRate,
    /// The pool's minimum now.
    pub min_fee_rate: FeeRate,
    /// From recently confirmed transactions, when there were enough.
    pub from_history: Option<FeeRate>,
    /// What the pool holds now: the lowest package rate that still fits in `blocks` blocks
    /// when the pool would fill them, plus the incremental rate.
    pub from_pool: Option<FeeRate>,
}

impl Mempool {
    /// Records the pool transactions `block` (at `height`) confirmed, before they leave.
    pub(super) fn record_confirmed(&mut self, block: &Block, height: u32) {
        let confirmed: Vec<Confirmed> = block
            .txs
            .iter()
            .filter_map(|tx| self.entries.get(&tx.compute_txid()))
            .map(|e| Confirmed {
                rate: e.fee_rate(),
                waited: height.saturating_sub(e.height) + 1,
            })
            .collect();
        if !confirmed.is_empty() {
            self.history.record(confirmed);
        }
    }

    /// The fee rate to pay to be mined within `blocks` blocks (1 to
    /// [`MAX_ESTIMATE_BLOCKS`]) of `block_bytes` each.
    pub fn estimate_fee(&mut self, blocks: u32, block_bytes: usize) -> FeeEstimate {
        let blocks = blocks.clamp(1, MAX_ESTIMATE_BLOCKS);
        let min_fee_rate = self.min_fee_rate();
        let from_history = self.history.estimate(blocks);
        let room = block_bytes.saturating_mul(blocks.min(MAX_PROJECTED_BLOCKS) as usize);
        let from_pool = (self.bytes > room).then(|| {
            let chosen = self.block_order(room, usize::MAX);
            let lowest = chosen
                .iter()
                .map(|e| e.ancestors.fee_rate().min(e.fee_rate()))
                .min()
                .unwrap_or_default();
            FeeRate::from_milli_units_per_vb(
                lowest.milli_units_per_vb() + self.limits.incremental_fee_rate.milli_units_per_vb(),
            )
        });
        let fee_rate = min_fee_rate
            .max(from_history.unwrap_or_default())
            .max(from_pool.unwrap_or_default());
        FeeEstimate {
            fee_rate,
            min_fee_rate,
            from_history,
            from_pool,
        }
    }
}

/// Builds a payment paying `rate`: `build(fee)` makes the transaction for a fee, and the fee is
/// raised to what the transaction's size asks at `rate` until it covers it (more inputs make
/// it larger). Returns the transaction and its fee.
///
/// # Errors
/// What `build` returns (insufficient funds for amount plus fee, most likely).
pub fn fit_fee<E>(
    rate: FeeRate,
    mut build: impl FnMut(Amount) -> Result<Transaction, E>,
) -> Result<(Transaction, Amount), E> {
    // A one-input, two-output payment is about 230 bytes: start there.
    let mut fee = Amount::from_units(rate.fee_for(230)).unwrap_or(Amount::MAX);
    loop {
        let tx = build(fee)?;
        let needed = Amount::from_units(rate.fee_for(tx.encoded_len())).unwrap_or(Amount::MAX);
        if fee >= needed {
            return Ok((tx, fee));
        }
        fee = needed;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use gossipcoin_proto::{COIN, Coin, OutPoint};

    use super::super::tests::{free, one_coin_each, pay_fee};
    use super::*;
    use crate::consensus::testutil::*;

    fn add(pool: &mut Mempool, set: &HashMap<OutPoint, Coin>, tx: &Transaction, height: u32) {
        pool.insert(tx.clone(), &|op| set.get(op).copied(), height, &params())
            .unwrap();
    }

    #[test]
    fn estimates_follow_what_waited_and_what_waits() {
        let set = one_coin_each(60);
        let mut pool = Mempool::new(free(1 << 24));
        let size = pay_fee(&set, 1, 0).encoded_len() as u64;
        // Nothing known: the pool's minimum.
        assert_eq!(pool.estimate_fee(1, 1 << 20).fee_rate, pool.min_fee_rate());
        // 20 payments at 1 unit/vB waited 5 blocks; 20 at 3 units/vB were mined at once.
        let slow: Vec<Transaction> = (1..=20).map(|n| pay_fee(&set, n, size)).collect();
        for tx in &slow {
            add(&mut pool, &set, tx, 10);
        }
        let fast: Vec<Transaction> = (21..=40).map(|n| pay_fee(&set, n, 3 * size)).collect();
        for tx in &fast {
            add(&mut pool, &set, tx, 14);
        }
        let mut block = block_at(14, coins(10), slow.clone(), &params());
        block.txs.extend(fast.iter().cloned());
        pool.record_confirmed(&block, 14);
        let next = pool.estimate_fee(1, 1 << 20);
        assert_eq!(next.from_history, Some(FeeRate::from_units_per_vb(3)));
        assert_eq!(next.fee_rate, FeeRate::from_units_per_vb(3));
        let later = pool.estimate_fee(5, 1 << 20);
        assert_eq!(later.from_history, Some(FeeRate::from_units_per_vb(1)));

        // A pool holding more than the next block: its rate there, plus the increment.
        let waiting: Vec<Transaction> = (41..=60).map(|n| pay_fee(&set, n, 7 * size)).collect();
        for tx in &waiting {
            add(&mut pool, &set, tx, 20);
        }
        let two_txs = 2 * size as usize;
        let full = pool.estimate_fee(1, two_txs);
        assert_eq!(full.from_pool, Some(FeeRate::from_units_per_vb(8)));
        assert_eq!(full.fee_rate, FeeRate::from_units_per_vb(8));
    }

    #[test]
    fn fit_fee_pays_the_rate_for_the_size_it_builds() {
        let set = one_coin_each(3);
        let rate = FeeRate::from_milli_units_per_vb(2500);
        let (tx, fee) = fit_fee(rate, |fee| -> Result<Transaction, ()> {
            Ok(spend_from(
                &set,
                &[(outpoint(1, 0), &key(1)), (outpoint(2, 0), &key(1))],
                vec![pay(&key(2), units(2 * COIN - fee.units()))],
            ))
        })
        .unwrap();
        assert!(FeeRate::of(fee, tx.encoded_len()) >= rate);
        assert_eq!(fee.units(), rate.fee_for(tx.encoded_len()));
    }
}
