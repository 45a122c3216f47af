//! Each policy rule on its own: the fee floor, dust, the rolling minimum after eviction, the
//! chain limits, replacement by fee, expiry, and block templates by ancestor fee rate (a flood
//! of cheap transactions leaves the honest payment first).

use std::collections::HashMap;

use gossipcoin_proto::{COIN, Coin, OutPoint, Transaction, Txid};

use super::tests::{add, free, one_coin_each, pay_fee, pool};
use super::*;
use crate::consensus::testutil::*;

/// Key 2 spends output 0 of `parent` back to key 2, paying `fee` units.
fn next_in_chain(parent: &Transaction, fee: u64) -> Transaction {
    let value = parent.outputs[0].value.units() - fee;
    signed_tx(
        &[(out_of(parent, 0), parent.outputs[0], &key(2))],
        vec![pay(&key(2), units(value))],
    )
}

/// Key 1 spends coin `n` to `to`, paying `fee`.
fn pay_to(set: &HashMap<OutPoint, Coin>, n: u8, fee: u64, to: u8) -> Transaction {
    spend_from(
        set,
        &[(outpoint(n, 0), &key(1))],
        vec![pay(&key(to), units(COIN - fee))],
    )
}

fn insert(
    pool: &mut Mempool,
    set: &HashMap<OutPoint, Coin>,
    tx: &Transaction,
) -> Result<Added, MempoolError> {
    pool.insert(tx.clone(), &|op| set.get(op).copied(), HEIGHT, &params())
}

#[test]
fn below_one_unit_per_vbyte_is_refused_at_it_accepted() {
    let set = one_coin_each(2);
    let size = pay_fee(&set, 1, 0).encoded_len() as u64; // the fee does not change the size
    let mut pool = Mempool::new(MempoolLimits::core(1 << 20));
    let cheap = pay_fee(&set, 1, size - 1);
    let err = add(&mut pool, &set, &cheap).unwrap_err();
    assert!(
        matches!(err, MempoolError::FeeTooLow { min_fee_rate, .. } if min_fee_rate == FeeRate::from_units_per_vb(1)),
        "{err}"
    );
    assert!(err.to_string().contains("units/vB"), "{err}");
    assert!(!err.is_peer_misbehaviour());
    assert!(pool.is_empty());
    add(&mut pool, &set, &pay_fee(&set, 2, size)).unwrap();
}

#[test]
fn dust_outputs_are_refused() {
    let set = one_coin_each(1);
    let mut pool = Mempool::new(MempoolLimits::core(1 << 20));
    let threshold = pool.limits().dust_threshold();
    let dusty = spend_from(
        &set,
        &[(outpoint(1, 0), &key(1))],
        vec![
            pay(&key(2), units(COIN / 2)),
            pay(&key(3), units(threshold - 1)),
        ],
    );
    let err = add(&mut pool, &set, &dusty).unwrap_err();
    assert!(matches!(err, MempoolError::Dust { vout: 1, .. }), "{err}");
    assert!(!err.is_peer_misbehaviour());
    let fine = spend_from(
        &set,
        &[(outpoint(1, 0), &key(1))],
        vec![
            pay(&key(2), units(COIN / 2)),
            pay(&key(3), units(threshold)),
        ],
    );
    add(&mut pool, &set, &fine).unwrap();
}

#[test]
fn eviction_raises_a_rolling_minimum_that_decays_after_blocks() {
    let set = one_coin_each(8);
    let txs: Vec<Transaction> = (1..=4)
        .map(|n| pay_fee(&set, n, 1000 * u64::from(n)))
        .collect();
    let mem = policy::memory_of(&txs[0], std::mem::size_of::<MempoolEntry>());
    let mut limits = free(3 * mem + mem / 2);
    limits.rolling_fee_halflife_secs = 1000;
    let mut pool = Mempool::new(limits);
    pool.tick(10_000);
    for tx in &txs {
        add(&mut pool, &set, tx).unwrap();
    }
    // The lowest (1000 units) went; the minimum is now its rate plus the incremental rate.
    assert!(!pool.contains(&txs[0].compute_txid()));
    let evicted = FeeRate::of_units(1000, txs[0].encoded_len());
    let rolling = FeeRate::from_milli_units_per_vb(evicted.milli_units_per_vb() + 1000);
    assert_eq!(pool.min_fee_rate(), rolling);
    // Below it: refused although the pool has room now; above it: accepted.
    let under = pay_fee(&set, 5, 1100);
    assert!(matches!(
        add(&mut pool, &set, &under),
        Err(MempoolError::FeeTooLow { .. })
    ));
    // No decay without a block.
    pool.tick(10_000 + 400);
    assert_eq!(pool.min_fee_rate(), rolling);
    // After a block, it halves every half-life (faster while the pool is under half full).
    pool.remove_for_block(&block_at(
        HEIGHT,
        coins(10),
        vec![txs[3].clone()],
        &params(),
    ));
    pool.remove_for_block(&block_at(
        HEIGHT,
        coins(10),
        vec![txs[2].clone()],
        &params(),
    ));
    assert!(pool.memory() < pool.limits().max_bytes / 2);
    pool.tick(10_000 + 1000 / 2); // one half-life (at half its length) since the rise
    let halved = pool.min_fee_rate().milli_units_per_vb();
    assert!(
        halved.abs_diff(rolling.milli_units_per_vb() / 2) <= 1,
        "{halved} vs {rolling}"
    );
    // Under half the incremental rate it is gone, and the configured floor (0) applies.
    pool.tick(10_000 + 100_000);
    assert_eq!(pool.min_fee_rate(), FeeRate::ZERO);
    add(&mut pool, &set, &under).unwrap();
}

#[test]
fn a_higher_fee_payment_always_gets_into_a_full_pool() {
    let set = one_coin_each(40);
    let probe = pay_fee(&set, 1, 0);
    let mem = policy::memory_of(&probe, std::mem::size_of::<MempoolEntry>());
    let mut pool = Mempool::new(MempoolLimits::core(20 * mem));
    let size = probe.encoded_len() as u64;
    // A flood at the floor fills the pool and goes on.
    for n in 1..=30 {
        let _ = add(&mut pool, &set, &pay_fee(&set, n, size));
    }
    assert!(pool.memory() <= pool.limits().max_bytes);
    let honest = pay_fee(&set, 40, 2 * size + 2);
    add(&mut pool, &set, &honest).unwrap();
    let (txs, _) = pool.select_for_block(1 << 20);
    assert_eq!(txs[0], honest);
}

#[test]
fn chains_of_unconfirmed_transactions_are_limited() {
    let set = one_coin_each(1);
    let mut pool = pool(1 << 24);
    let mut last = spend_from(
        &set,
        &[(outpoint(1, 0), &key(1))],
        vec![pay(&key(2), units(COIN - 1000))],
    );
    add(&mut pool, &set, &last).unwrap();
    for _ in 1..25 {
        last = next_in_chain(&last, 1000);
        add(&mut pool, &set, &last).unwrap();
    }
    let too_far = next_in_chain(&last, 1000);
    let err = add(&mut pool, &set, &too_far).unwrap_err();
    assert_eq!(
        err,
        MempoolError::TooLongChain {
            txid: too_far.compute_txid(),
            limit: packages::ChainLimit::Ancestors
        }
    );
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(pool.len(), 25);
    // Every entry knows its relatives.
    let first = pool.iter().map(|e| e.ancestors().count).min().unwrap();
    let top = pool.entry(&last.compute_txid()).unwrap();
    assert_eq!(
        (first, top.ancestors().count, top.descendants().count),
        (1, 25, 1)
    );
}

#[test]
fn descendants_are_limited_too() {
    let set = one_coin_each(1);
    let mut limits = free(1 << 24);
    limits.max_descendants = 3;
    let mut pool = Mempool::new(limits);
    let parent = spend_from(
        &set,
        &[(outpoint(1, 0), &key(1))],
        (0..4).map(|_| pay(&key(2), units(COIN / 5))).collect(),
    );
    add(&mut pool, &set, &parent).unwrap();
    let child = |vout: u32| {
        signed_tx(
            &[(
                out_of(&parent, vout),
                parent.outputs[vout as usize],
                &key(2),
            )],
            vec![pay(&key(3), units(COIN / 5 - 1000))],
        )
    };
    add(&mut pool, &set, &child(0)).unwrap();
    add(&mut pool, &set, &child(1)).unwrap();
    let err = add(&mut pool, &set, &child(2)).unwrap_err();
    assert!(
        matches!(
            err,
            MempoolError::TooLongChain {
                limit: packages::ChainLimit::Descendants,
                ..
            }
        ),
        "{err}"
    );
    let p = pool.entry(&parent.compute_txid()).unwrap().descendants();
    assert_eq!(p.count, 3);
}

#[test]
fn a_replacement_must_pay_more_and_takes_the_descendants_with_it() {
    let set = one_coin_each(1);
    let mut pool = Mempool::new(MempoolLimits::core(1 << 20));
    let original = pay_to(&set, 1, 1000, 2);
    let child = next_in_chain(&original, 1000);
    add(&mut pool, &set, &original).unwrap();
    add(&mut pool, &set, &child).unwrap();

    // A higher rate than the original but not more than both fees plus the increment: refused.
    let cheap = pay_to(&set, 1, 1500, 3);
    let err = add(&mut pool, &set, &cheap).unwrap_err();
    assert!(
        matches!(err, MempoolError::Conflict { with, .. } if with == original.compute_txid()),
        "{err}"
    );
    // Same fee, other payee: refused.
    assert!(matches!(
        add(&mut pool, &set, &pay_to(&set, 1, 1000, 4)),
        Err(MempoolError::Conflict { .. })
    ));
    assert_eq!(pool.len(), 2);

    let better = pay_to(&set, 1, 2000 + 1000 + cheap.encoded_len() as u64, 3);
    let added = insert(&mut pool, &set, &better).unwrap();
    let mut replaced = added.replaced.clone();
    replaced.sort();
    let mut expect = vec![original.compute_txid(), child.compute_txid()];
    expect.sort();
    assert_eq!(replaced, expect);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.spends(&outpoint(1, 0)), Some(better.compute_txid()));
    // The replaced one offered again (a wallet's resend) learns what replaced it.
    let err = add(&mut pool, &set, &original).unwrap_err();
    assert_eq!(
        err,
        MempoolError::Replaced {
            txid: original.compute_txid(),
            by: better.compute_txid()
        }
    );
    assert!(!err.is_peer_misbehaviour());
}

#[test]
fn a_replacement_may_not_spend_what_it_replaces() {
    let set = one_coin_each(2);
    let mut pool = pool(1 << 20);
    let parent = pay_to(&set, 1, 1000, 2);
    add(&mut pool, &set, &parent).unwrap();
    // spends coin 1 again and the parent's output: it would replace its own parent
    let tx = signed_tx(
        &[
            (outpoint(1, 0), set[&outpoint(1, 0)].output, &key(1)),
            (out_of(&parent, 0), parent.outputs[0], &key(2)),
        ],
        vec![pay(&key(3), units(COIN))],
    );
    let err = add(&mut pool, &set, &tx).unwrap_err();
    assert!(
        matches!(
            err,
            MempoolError::ReplacementRefused {
                reason: replace::ReplacementError::SpendsReplaced,
                ..
            }
        ),
        "{err}"
    );
    assert!(pool.contains(&parent.compute_txid()));
}

#[test]
fn transactions_expire_with_their_descendants() {
    let set = one_coin_each(2);
    let mut limits = free(1 << 20);
    limits.expiry_secs = 3600;
    let mut pool = Mempool::new(limits);
    pool.tick(1_000_000);
    let old = pay_to(&set, 1, 1000, 2);
    add(&mut pool, &set, &old).unwrap();
    pool.tick(1_000_000 + 1800);
    let young = pay_fee(&set, 2, 1000);
    add(&mut pool, &set, &young).unwrap();
    let child = next_in_chain(&old, 1000);
    add(&mut pool, &set, &child).unwrap();
    assert_eq!(pool.tick(1_000_000 + 3600), 0);
    assert_eq!(pool.tick(1_000_000 + 3601), 2);
    let left: Vec<Txid> = pool.txids().collect();
    assert_eq!(left, vec![young.compute_txid()]);
}

#[test]
fn templates_follow_ancestor_fee_rate() {
    let set = one_coin_each(3);
    let mut pool = pool(1 << 20);
    let parent = pay_to(&set, 1, 100, 2); // poor on its own
    let child = next_in_chain(&parent, 30_000); // pays for both
    let middle = pay_fee(&set, 2, 5_000);
    let low = pay_fee(&set, 3, 1_000);
    for tx in [&low, &parent, &middle, &child] {
        add(&mut pool, &set, tx).unwrap();
    }
    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_eq!(
        txs,
        vec![parent.clone(), child.clone(), middle.clone(), low.clone()]
    );
    assert_eq!(fees, units(100 + 30_000 + 5_000 + 1_000));
    // The exchange lists in that order too, bounded in count.
    assert_eq!(
        pool.txids_by_fee_rate(3, usize::MAX),
        vec![
            parent.compute_txid(),
            child.compute_txid(),
            middle.compute_txid()
        ]
    );
    // Room for one small transaction only: the package does not fit, the best single does.
    let (one, _) = pool.select_for_block(middle.encoded_len());
    assert_eq!(one, vec![middle]);
}
