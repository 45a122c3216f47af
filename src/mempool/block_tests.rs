//! Tests of the pool following the chain: blocks connected, and a reorganisation that returns
//! the transactions of disconnected blocks. Blocks are mined and checked for real.

use std::collections::HashMap;

use gossipcoin_proto::{Block, Coin, OutPoint, Transaction, Txid};

use super::tests::{add, assert_block_order, child_of, one_coin_each, pay_fee, pool};
use super::*;
use crate::consensus::testutil::*;

/// Checks `block`'s spends at `height` against `set`, then applies it, as the chain does.
fn connect(set: &mut HashMap<OutPoint, Coin>, block: &Block, height: u32) {
    consensus::check_block_spends(block, height, set, &params()).expect("a valid block");
    for (i, tx) in block.txs.iter().enumerate() {
        if i > 0 {
            for input in &tx.inputs {
                set.remove(&input.prevout);
            }
        }
        for (vout, &output) in tx.outputs.iter().enumerate() {
            let coin = Coin {
                output,
                height,
                is_coinbase: i == 0,
            };
            set.insert(out_of(tx, vout as u32), coin);
        }
    }
}

fn add_at(
    pool: &mut Mempool,
    set: &HashMap<OutPoint, Coin>,
    tx: &Transaction,
    next_height: u32,
) -> Txid {
    pool.insert(
        tx.clone(),
        &|op| set.get(op).copied(),
        next_height,
        &params(),
    )
    .unwrap()
    .txid
}

fn sorted(mut txids: Vec<Txid>) -> Vec<Txid> {
    txids.sort();
    txids
}

#[test]
fn a_block_removes_its_transactions_and_their_conflicts() {
    let set = one_coin_each(3);
    let t1 = pay_fee(&set, 1, 1000);
    let t1_child = child_of(&t1, 1000);
    let t2 = pay_fee(&set, 2, 1000);
    let t3 = pay_fee(&set, 3, 1000);
    let t3_child = child_of(&t3, 1000);
    let t3_rival = pay_fee(&set, 3, 2000); // spends what t3 spends
    let mut pool = pool(1 << 20);
    for tx in [&t1, &t1_child, &t2, &t3, &t3_child] {
        add(&mut pool, &set, tx).unwrap();
    }

    let block = block_at(HEIGHT, coins(10), vec![t1.clone(), t3_rival], &params());
    pool.remove_for_block(&block);
    let left = sorted(pool.txids().collect());
    assert_eq!(
        left,
        sorted(vec![t1_child.compute_txid(), t2.compute_txid()])
    );
    assert_eq!(pool.bytes(), t1_child.encoded_len() + t2.encoded_len());
    assert_eq!(pool.spends(&outpoint(1, 0)), None);
    assert_eq!(pool.spends(&outpoint(3, 0)), None);
    assert_eq!(pool.spends(&out_of(&t3, 0)), None);
    assert_eq!(pool.spends(&out_of(&t1, 0)), Some(t1_child.compute_txid()));
    // the child of the confirmed transaction is now a parentless candidate
    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_block_order(&txs);
    assert_eq!((txs.len(), fees), (2, units(2000)));

    // a block with none of the pool's transactions changes nothing
    pool.remove_for_block(&block_at(HEIGHT + 1, coins(10), vec![], &params()));
    assert_eq!(pool.len(), 2);
}

#[test]
fn a_reorganisation_returns_the_transactions_that_are_still_valid() {
    let mut old = one_coin_each(5);
    let mut new = old.clone();
    let t1 = pay_fee(&old, 1, 1000);
    let t2 = child_of(&t1, 1000); // in the next block
    let t3 = pay_fee(&old, 2, 1000); // the new branch confirms a rival
    let t3_rival = pay_fee(&old, 2, 3000);
    let t4 = pay_fee(&old, 3, 1000); // in both branches

    // the old branch: two blocks
    let b1 = block_at(
        HEIGHT,
        coins(10),
        vec![t1.clone(), t3.clone(), t4.clone()],
        &params(),
    );
    let b2 = block_at(HEIGHT + 1, coins(10), vec![t2.clone()], &params());
    connect(&mut old, &b1, HEIGHT);
    connect(&mut old, &b2, HEIGHT + 1);

    // the pool at the old tip
    let cb = b1.txs[0].clone();
    let spends_t3 = child_of(&t3, 500);
    let spends_coinbase = signed_tx(
        &[(out_of(&cb, 0), cb.outputs[0], &key(99))],
        vec![pay(&key(1), coins(10))],
    );
    let unrelated = pay_fee(&old, 5, 1000);
    let spends_t4 = child_of(&t4, 500);
    let mut pool = pool(1 << 20);
    for tx in [&spends_t3, &spends_coinbase, &unrelated, &spends_t4] {
        add_at(&mut pool, &old, tx, HEIGHT + 2);
    }

    // the new branch: three blocks with different coinbases
    let n1 = block_at(HEIGHT, coins(9), vec![t4.clone(), t3_rival], &params());
    let n2 = block_at(HEIGHT + 1, coins(9), vec![], &params());
    let n3 = block_at(HEIGHT + 2, coins(9), vec![], &params());
    for (block, height) in [(&n1, HEIGHT), (&n2, HEIGHT + 1), (&n3, HEIGHT + 2)] {
        connect(&mut new, block, height);
    }

    // the documented order: connected blocks first, then the disconnected ones, tip first
    for block in [&n1, &n2, &n3] {
        pool.remove_for_block(block);
    }
    let lookup = |op: &OutPoint| new.get(op).copied();
    let back = pool.readd_disconnected(&[b2, b1], &lookup, HEIGHT + 3, &params());

    assert_eq!(back, 2);
    let expect = vec![
        t1.compute_txid(),
        t2.compute_txid(),
        unrelated.compute_txid(),
        spends_t4.compute_txid(),
    ];
    assert_eq!(sorted(pool.txids().collect()), sorted(expect));
    // t3 lost to its rival, and what spent t3 or the old coinbase is gone with them
    assert_eq!(pool.spends(&outpoint(2, 0)), None);
    assert_eq!(pool.spends(&out_of(&t3, 0)), None);
    assert_eq!(pool.spends(&out_of(&cb, 0)), None);
    let sizes: usize = [&t1, &t2, &unrelated, &spends_t4]
        .iter()
        .map(|t| t.encoded_len())
        .sum();
    assert_eq!(pool.bytes(), sizes);

    // what remains forms a valid block on the new tip
    let (txs, fees) = pool.select_for_block(1 << 20);
    assert_block_order(&txs);
    assert_eq!(fees, units(3500));
    let block = block_at(HEIGHT + 3, coins(10), txs, &params());
    assert!(consensus::check_block_spends(&block, HEIGHT + 3, &new, &params()).is_ok());
}
