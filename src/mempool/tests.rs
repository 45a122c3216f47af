//! Tests of admission, selection and eviction, with transactions signed for real; shared helpers
//! for the block tests in `block_tests.rs`.

use std::collections::{HashMap, HashSet};

use gossipcoin_proto::{COIN, Coin, OutPoint, Transaction, Txid};

use super::*;
use crate::consensus::testutil::*;
use crate::keys::SigError;

/// A pool with no minimum fee and no dust threshold, Core's other limits, and `max_bytes` of
/// memory.
pub(super) fn pool(max_bytes: usize) -> Mempool {
    Mempool::new(free(max_bytes))
}

/// Core's limits without a fee floor or dust threshold.
pub(super) fn free(max_bytes: usize) -> MempoolLimits {
    MempoolLimits {
        min_fee_rate: FeeRate::ZERO,
        dust_fee_rate: FeeRate::ZERO,
        ..MempoolLimits::core(max_bytes)
    }
}

/// Inserts `tx` against `set` as for the block at [`HEIGHT`].
pub(super) fn add(
    pool: &mut Mempool,
    set: &HashMap<OutPoint, Coin>,
    tx: &Transaction,
) -> Result<Txid, MempoolError> {
    pool.insert(tx.clone(), &|op| set.get(op).copied(), HEIGHT, &params())
        .map(|added| added.txid)
}

/// Key 1 owns one coin at each of `n:0` for n in 1..=count.
pub(super) fn one_coin_each(count: u8) -> HashMap<OutPoint, Coin> {
    let k = key(1);
    utxos(&(1..=count).map(|n| (n, &k, 1)).collect::<Vec<_>>())
}

/// Key 1 spends the one coin at `n:0` of [`one_coin_each`], paying `fee` units.
pub(super) fn pay_fee(set: &HashMap<OutPoint, Coin>, n: u8, fee: u64) -> Transaction {
    spend_from(
        set,
        &[(outpoint(n, 0), &key(1))],
        vec![pay(&key(2), units(COIN - fee))],
    )
}

/// Key 2 spends output 0 of `parent` (which pays key 2), paying `fee` units more.
pub(super) fn child_of(parent: &Transaction, fee: u64) -> Transaction {
    let value = parent.outputs[0].value.units() - fee;
    signed_tx(
        &[(out_of(parent, 0), parent.outputs[0], &key(2))],
        vec![pay(&key(3), units(value))],
    )
}

/// Asserts a selection could form a block: no outpoint spent twice, and every transaction
/// after any selected transaction it spends.
pub(super) fn assert_block_order(txs: &[Transaction]) {
    let mut seen_txids = HashSet::new();
    let mut spent = HashSet::new();
    let all: HashSet<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    for tx in txs {
        for input in &tx.inputs {
            assert!(spent.insert(input.prevout), "{} spent twice", input.prevout);
            let parent = input.prevout.txid;
            assert!(
                !all.contains(&parent) || seen_txids.contains(&parent),
                "a child before its parent {parent}"
            );
        }
        seen_txids.insert(tx.compute_txid());
    }
}

fn txids(txs: &[Transaction]) -> Vec<Txid> {
    txs.iter().map(Transaction::compute_txid).collect()
}

#[test]
fn accepts_a_valid_transaction() {
    let set = one_coin_each(1);
    let tx = pay_fee(&set, 1, 1000);
    let mut pool = pool(1 << 20);
    let txid = add(&mut pool, &set, &tx).unwrap();
    assert_eq!(txid, tx.compute_txid());
    assert!(pool.contains(&txid));
    assert_eq!(pool.get(&txid), Some(&tx));
    assert_eq!((pool.len(), pool.bytes()), (1, tx.encoded_len()));
    assert_eq!(pool.spends(&outpoint(1, 0)), Some(txid));
    assert_eq!(pool.txids().collect::<Vec<_>>(), vec![txid]);
    let entry = pool.entry(&txid).unwrap();
    assert_eq!(entry.fee(), units(1000));
    assert_eq!(entry.fee_rate(), FeeRate::of_units(1000, tx.encoded_len()));
    assert!(entry.memory() > entry.size());
    assert_eq!(pool.memory(), entry.memory());
}

#[test]
fn the_second_of_two_conflicting_transactions_is_refused_unless_it_pays_more() {
    let set = one_coin_each(1);
    // the same fee: no replacement (see policy_tests for replacements)
    let first = pay_fee(&set, 1, 1000);
    let second = spend_from(
        &set,
        &[(outpoint(1, 0), &key(1))],
        vec![pay(&key(3), units(COIN - 1000))],
    );
    let mut pool = pool(1 << 20);
    let with = add(&mut pool, &set, &first).unwrap();
    let err = add(&mut pool, &set, &second).unwrap_err();
    assert_eq!(
        err,
        MempoolError::Conflict {
            txid: second.compute_txid(),
            outpoint: outpoint(1, 0),
            with
        }
    );
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&with));
    assert_eq!(pool.spends(&outpoint(1, 0)), Some(with));
}

#[test]
fn a_child_of_a_pool_transaction_is_accepted_and_selected_after_it() {
    let set = one_coin_each(2);
    let parent = pay_fee(&set, 1, 0);
    let child = child_of(&parent, 50_000); // a far higher fee rate than its parent
    let other = pay_fee(&set, 2, 10_000);
    let mut pool = pool(1 << 20);
    for tx in [&parent, &child, &other] {
        add(&mut pool, &set, tx).unwrap();
    }
    assert_eq!(pool.spends(&out_of(&parent, 0)), Some(child.compute_txid()));
    let by_rate: Vec<Txid> = pool.iter().map(MempoolEntry::txid).collect();
    assert_eq!(
        by_rate,
        txids(&[child.clone(), other.clone(), parent.clone()])
    );

    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_block_order(&txs);
    // the child pays for its parent: their package's rate beats the other transaction's
    assert_eq!(txs, vec![parent.clone(), child.clone(), other.clone()]);
    assert_eq!(fees, units(60_000));

    // room for one: the child cannot go without its parent
    assert_eq!(parent.encoded_len(), child.encoded_len());
    let (txs, fees) = pool.select_for_block(child.encoded_len());
    assert_eq!((txs, fees), (vec![other.clone()], units(10_000)));
    // room for two: the package
    let (txs, fees) = pool.select_for_block(other.encoded_len() + parent.encoded_len());
    assert_eq!((txs, fees), (vec![parent, child], units(50_000)));
}

#[test]
fn a_bad_signature_is_misbehaviour() {
    let set = one_coin_each(1);
    let mut tx = pay_fee(&set, 1, 1000);
    tx.inputs[0].signature.0[9] ^= 1;
    let mut pool = pool(1 << 20);
    let err = add(&mut pool, &set, &tx).unwrap_err();
    assert_eq!(
        err,
        MempoolError::Invalid(ValidationError::BadSignature {
            txid: tx.compute_txid(),
            input: 0,
            reason: SigError::Mismatch
        })
    );
    assert!(err.is_peer_misbehaviour());
    assert!(pool.is_empty());
    assert_eq!((pool.bytes(), pool.spends(&outpoint(1, 0))), (0, None));
}

#[test]
fn a_loose_coinbase_and_a_broken_transaction_are_misbehaviour() {
    let mut pool = pool(1 << 20);
    let cb = coinbase(HEIGHT, coins(10));
    let err = add(&mut pool, &HashMap::new(), &cb).unwrap_err();
    assert_eq!(
        err,
        ValidationError::UnexpectedCoinbase {
            txid: cb.compute_txid()
        }
        .into()
    );
    assert!(err.is_peer_misbehaviour());

    let set = one_coin_each(1);
    let mut tx = pay_fee(&set, 1, 1000);
    tx.inputs.push(tx.inputs[0]);
    let err = add(&mut pool, &set, &tx).unwrap_err();
    assert!(
        matches!(
            err,
            MempoolError::Invalid(ValidationError::DuplicateInput { .. })
        ),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    assert!(pool.is_empty());
}

#[test]
fn missing_inputs_are_not_misbehaviour() {
    let set = one_coin_each(1);
    let parent = pay_fee(&set, 1, 0);
    let orphan = child_of(&parent, 1000);
    let mut pool = pool(1 << 20);
    let err = add(&mut pool, &set, &orphan).unwrap_err();
    assert_eq!(
        err,
        MempoolError::MissingInputs {
            txid: orphan.compute_txid(),
            missing: vec![out_of(&parent, 0)]
        }
    );
    assert!(!err.is_peer_misbehaviour());
    assert!(pool.is_empty());
    // once the parent arrives, the orphan is accepted
    add(&mut pool, &set, &parent).unwrap();
    add(&mut pool, &set, &orphan).unwrap();
    assert_eq!(pool.len(), 2);
}

#[test]
fn a_duplicate_is_already_known() {
    let set = one_coin_each(1);
    let tx = pay_fee(&set, 1, 1000);
    let mut pool = pool(1 << 20);
    let txid = add(&mut pool, &set, &tx).unwrap();
    let err = add(&mut pool, &set, &tx).unwrap_err();
    assert_eq!(err, MempoolError::AlreadyKnown { txid });
    assert!(!err.is_peer_misbehaviour());
    assert_eq!((pool.len(), pool.bytes()), (1, tx.encoded_len()));
}

#[test]
fn an_immature_coinbase_spend_is_not_misbehaviour() {
    let set = world(); // 3:0 is a coinbase output of height 1
    let tx = spend_from(
        &set,
        &[(outpoint(3, 0), &key(3))],
        vec![pay(&key(1), coins(10))],
    );
    let p = ChainParams {
        coinbase_maturity: 100,
        ..params()
    };
    let mut pool = pool(1 << 20);
    let err = pool
        .insert(tx.clone(), &|op| set.get(op).copied(), HEIGHT, &p)
        .unwrap_err();
    assert!(
        matches!(
            err,
            MempoolError::Invalid(ValidationError::ImmatureCoinbase { .. })
        ),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour());
    assert!(add(&mut pool, &set, &tx).is_ok()); // mature under the devnet's rule
}

#[test]
fn a_fee_rate_below_the_minimum_is_refused() {
    let set = one_coin_each(2);
    let cheap = pay_fee(&set, 1, 100);
    let rate = FeeRate::of_units(100, cheap.encoded_len());
    let floor = FeeRate::from_milli_units_per_vb(rate.milli_units_per_vb() + 1);
    let mut pool = Mempool::new(MempoolLimits {
        min_fee_rate: floor,
        ..free(1 << 20)
    });
    let err = add(&mut pool, &set, &cheap).unwrap_err();
    assert_eq!(
        err,
        MempoolError::FeeTooLow {
            txid: cheap.compute_txid(),
            fee_rate: rate,
            min_fee_rate: floor
        }
    );
    assert!(!err.is_peer_misbehaviour());
    assert!(pool.is_empty());
    assert!(add(&mut pool, &set, &pay_fee(&set, 2, 200)).is_ok());
}

#[test]
fn selection_follows_fee_rate_within_the_byte_budget() {
    let set = one_coin_each(4);
    let txs: Vec<Transaction> = [(1, 1000), (2, 3000), (3, 2000), (4, 3000)]
        .iter()
        .map(|&(n, fee)| pay_fee(&set, n, fee))
        .collect();
    let mut pool = pool(1 << 20);
    for tx in &txs {
        add(&mut pool, &set, tx).unwrap();
    }
    // equal fee rates: the older first
    let expect = vec![
        txs[1].clone(),
        txs[3].clone(),
        txs[2].clone(),
        txs[0].clone(),
    ];
    let (all, fees) = pool.select_for_block(1 << 20);
    assert_block_order(&all);
    assert_eq!((&all, fees), (&expect, units(9000)));
    assert_eq!(
        pool.iter().map(|e| e.tx().clone()).collect::<Vec<_>>(),
        expect
    );

    let two = expect[0].encoded_len() + expect[1].encoded_len();
    let (some, fees) = pool.select_for_block(two);
    assert_eq!((some, fees), (expect[..2].to_vec(), units(6000)));
    assert_eq!(pool.select_for_block(0), (vec![], units(0)));
}

#[test]
fn a_full_pool_evicts_the_lowest_descendant_fee_rate_with_its_descendants() {
    let set = one_coin_each(6);
    let parent = pay_fee(&set, 1, 100); // the lowest fee rate
    let child = child_of(&parent, 2000); // its package stays the lowest
    let a = pay_fee(&set, 2, 3000);
    let b = pay_fee(&set, 3, 4000);
    let mem = |tx: &Transaction| policy::memory_of(tx, std::mem::size_of::<MempoolEntry>());
    let size = |txs: &[&Transaction]| txs.iter().map(|t| t.encoded_len()).sum::<usize>();
    // room for three transactions of this shape, not four
    let max = mem(&parent) + mem(&child) + mem(&a) + mem(&a) / 2;
    let mut pool = pool(max);
    for tx in [&parent, &child, &a] {
        add(&mut pool, &set, tx).unwrap();
    }
    add(&mut pool, &set, &b).unwrap();
    let mut left: Vec<Txid> = pool.txids().collect();
    left.sort();
    let mut expect = txids(&[a.clone(), b.clone()]);
    expect.sort();
    assert_eq!(left, expect);
    assert_eq!(pool.bytes(), size(&[&a, &b]));
    assert_eq!(pool.memory(), mem(&a) + mem(&b));
    assert_eq!(pool.spends(&outpoint(1, 0)), None);
    assert_eq!(pool.spends(&out_of(&parent, 0)), None);

    // full again; a lower fee rate than what was evicted is refused (the rolling minimum rose
    // above the evicted package), and nothing moves
    let e = pay_fee(&set, 4, 5000);
    add(&mut pool, &set, &e).unwrap();
    let before: Vec<Txid> = pool.txids_by_arrival(10);
    let low = pay_fee(&set, 5, 1000);
    let err = add(&mut pool, &set, &low).unwrap_err();
    assert!(
        matches!(err, MempoolError::FeeTooLow { fee_rate, .. } if fee_rate == FeeRate::of_units(1000, low.encoded_len())),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(pool.txids_by_arrival(10), before);
    assert_eq!(pool.spends(&outpoint(5, 0)), None);

    // a child paying for its parent lifts the parent's package: b, now the lowest, goes
    let rich_child = child_of(&a, 80_000);
    add(&mut pool, &set, &rich_child).unwrap();
    assert!(pool.contains(&a.compute_txid()));
    assert!(!pool.contains(&b.compute_txid()));
    assert_eq!(pool.spends(&out_of(&a, 0)), Some(rich_child.compute_txid()));

    // larger than the whole pool
    let big = pay_fee(&set, 6, 90_000);
    let mut tiny = Mempool::new(free(mem(&big) - 1));
    let err = add(&mut tiny, &set, &big).unwrap_err();
    assert!(matches!(err, MempoolError::PoolFull { .. }), "{err}");
    assert!(tiny.is_empty());
}

#[test]
fn only_invalid_transactions_are_misbehaviour() {
    let (txid, outpoint) = (Txid([1; 32]), outpoint(1, 0));
    for e in [
        MempoolError::AlreadyKnown { txid },
        MempoolError::Conflict {
            txid,
            outpoint,
            with: txid,
        },
        MempoolError::MissingInputs {
            txid,
            missing: vec![outpoint],
        },
        MempoolError::FeeTooLow {
            txid,
            fee_rate: FeeRate::ZERO,
            min_fee_rate: FeeRate::from_units_per_vb(1),
        },
        MempoolError::PoolFull {
            txid,
            fee_rate: FeeRate::ZERO,
        },
        MempoolError::Replaced { txid, by: txid },
    ] {
        assert!(!e.is_peer_misbehaviour(), "{e}");
    }
    let e = MempoolError::Invalid(ValidationError::EmptyInputs { txid });
    assert!(e.is_peer_misbehaviour());
}

#[test]
fn txids_by_arrival_list_the_oldest_first_and_forget_removed_ones() {
    let set = one_coin_each(4);
    let mut pool = pool(1 << 20);
    // Fee rates out of arrival order: arrival, not rate, decides the listing.
    let txs: Vec<_> = [(3, 10), (1, 500), (4, 0), (2, 90)]
        .iter()
        .map(|&(n, fee)| pay_fee(&set, n, fee))
        .collect();
    let ids: Vec<Txid> = txs
        .iter()
        .map(|t| add(&mut pool, &set, t).unwrap())
        .collect();
    assert_eq!(pool.txids_by_arrival(usize::MAX), ids);
    assert_eq!(pool.txids_by_arrival(2), ids[..2]);
    // A child comes after its parent.
    let parent = &txs[0];
    let child = signed_tx(
        &[(out_of(parent, 0), parent.outputs[0], &key(2))],
        vec![pay(&key(3), units(COIN / 2))],
    );
    let child_id = add(&mut pool, &set, &child).unwrap();
    pool.remove_with_descendants(&ids[1]);
    assert_eq!(
        pool.txids_by_arrival(10),
        vec![ids[0], ids[2], ids[3], child_id]
    );
}

#[test]
fn txs_among_keeps_the_asked_order_skips_unknown_and_stops_at_the_byte_bound() {
    let set = one_coin_each(3);
    let mut pool = pool(1 << 20);
    let txs: Vec<_> = (1..=3).map(|n| pay_fee(&set, n, 0)).collect();
    let ids: Vec<Txid> = txs
        .iter()
        .map(|t| add(&mut pool, &set, t).unwrap())
        .collect();
    let unknown = Txid([9; 32]);
    let asked = [ids[2], unknown, ids[0], ids[1]];
    assert_eq!(
        pool.txs_among(&asked, usize::MAX),
        vec![txs[2].clone(), txs[0].clone(), txs[1].clone()]
    );
    // The byte bound is soft: the transaction that reaches it is still sent.
    let size = pool.entry(&ids[0]).unwrap().size();
    assert_eq!(pool.txs_among(&asked, size + 1).len(), 2);
    assert_eq!(pool.txs_among(&asked, 1).len(), 1);
    assert!(pool.txs_among(&asked, 0).is_empty());
}
