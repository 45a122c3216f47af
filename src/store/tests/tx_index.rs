//! The transaction index follows the main chain: connect, disconnect, a reorg, reindex.

use super::super::TxLocation;
use super::*;

/// Asserts that every transaction of `blocks` (the main chain from genesis) is indexed at its
/// block, height and position, and that `transaction` returns it.
pub(super) fn assert_indexed(v: &impl ChainRead, blocks: &[Block]) {
    assert!(v.has_tx_index());
    for (height, b) in blocks.iter().enumerate() {
        for (index, tx) in b.txs.iter().enumerate() {
            let txid = tx.compute_txid();
            let expected = TxLocation {
                block: b.block_hash(),
                height: height as u32,
                index: index as u32,
            };
            assert_eq!(v.tx_location(&txid).unwrap(), Some(expected), "{txid}");
            assert_eq!(v.transaction(&txid).unwrap(), Some((tx.clone(), expected)));
        }
    }
}

/// Asserts that none of `blocks`' transactions is indexed.
fn assert_not_indexed(v: &impl ChainRead, blocks: &[&Block]) {
    for tx in blocks.iter().flat_map(|b| &b.txs) {
        let txid = tx.compute_txid();
        assert_eq!(v.tx_location(&txid).unwrap(), None, "{txid}");
        assert_eq!(v.transaction(&txid).unwrap(), None, "{txid}");
    }
}

#[test]
fn connected_transactions_are_indexed_coinbases_included() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let v = store.read().unwrap();
    assert_indexed(&v, &blocks);
    assert_eq!(
        v.tx_location(&blocks[2].txs[2].compute_txid()).unwrap(),
        Some(TxLocation {
            block: blocks[2].block_hash(),
            height: 2,
            index: 2
        })
    );
    let unknown = gossipcoin_proto::Txid([7; 32]);
    assert_eq!(v.tx_location(&unknown).unwrap(), None);
    assert_eq!(v.transaction(&unknown).unwrap(), None);
    drop(v);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (6, Some(6)));

    // the write transaction sees its own entries before it commits
    let next = block(
        blocks[2].block_hash(),
        1_030,
        vec![coinbase(3, owner(5), 50)],
    );
    let txid = next.txs[0].compute_txid();
    store
        .write(|w| {
            assert_eq!(w.tx_location(&txid)?, None);
            connect_in(w, &next)?;
            assert_eq!(
                w.tx_location(&txid)?.map(|l| (l.height, l.index)),
                Some((3, 0))
            );
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

#[test]
fn a_block_repeating_a_main_chain_transaction_is_refused() {
    let (_dir, store, blocks) = store_with_three_blocks();
    // no inputs and no outputs: the UTXO set cannot tell two copies apart, the index can
    let empty = spend(&[], &[]);
    let b3 = block(
        blocks[2].block_hash(),
        1_030,
        vec![coinbase(3, owner(5), 50), empty.clone()],
    );
    connect(&store, &b3).unwrap();
    let b4 = block(
        b3.block_hash(),
        1_040,
        vec![coinbase(4, owner(5), 50), empty.clone()],
    );
    let err = connect(&store, &b4).unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { hash, reason }
            if *hash == b4.block_hash() && reason.contains("already on the main chain")),
        "{err}"
    );
    let v = store.read().unwrap();
    assert_eq!(v.tip().unwrap().unwrap().hash, b3.block_hash());
    assert_eq!(
        v.tx_location(&empty.compute_txid()).unwrap().unwrap().block,
        b3.block_hash()
    );
    drop(v);
    store.check_consistency().unwrap();
}

#[test]
fn disconnect_removes_the_tip_blocks_transactions() {
    let (_dir, store, blocks) = store_with_three_blocks();
    store.write(|w| w.disconnect_tip()).unwrap();
    let v = store.read().unwrap();
    assert_indexed(&v, &blocks[..2]);
    assert_not_indexed(&v, &[&blocks[2]]);
    drop(v);
    store.check_consistency().unwrap();

    store
        .write(|w| {
            w.disconnect_tip()?;
            w.disconnect_tip()
        })
        .unwrap();
    let v = store.read().unwrap();
    assert_not_indexed(&v, &blocks.iter().collect::<Vec<_>>());
    drop(v);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (0, Some(0)));

    // connecting again indexes them again
    for b in &blocks {
        connect(&store, b).unwrap();
    }
    assert_indexed(&store.read().unwrap(), &blocks);
}

#[test]
fn a_reorg_in_one_write_leaves_only_the_new_main_chain_indexed() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let (b0, b1, b2) = (&blocks[0], &blocks[1], &blocks[2]);
    // a branch from genesis that has A's payment to C again, at another position, spends its
    // change in the same block, and leaves block 2's transactions out
    let tx1 = b1.txs[1].clone();
    let free = spend(&[], &[(owner(7), 1)]);
    let pay_e = spend(&[out(&tx1, 1)], &[(owner(5), 20)]);
    let s1 = block(
        b0.block_hash(),
        1_011,
        vec![coinbase(1, owner(5), 50), free, tx1.clone(), pay_e],
    );
    let s2 = block(s1.block_hash(), 1_021, vec![coinbase(2, owner(6), 50)]);
    let s3 = block(s2.block_hash(), 1_031, vec![coinbase(3, owner(6), 50)]);
    store
        .write(|w| {
            w.disconnect_tip()?;
            w.disconnect_tip()?;
            for b in [&s1, &s2, &s3] {
                connect_in(w, b)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let v = store.read().unwrap();
    let new_chain = [b0.clone(), s1.clone(), s2.clone(), s3.clone()];
    assert_indexed(&v, &new_chain);
    // tx1 moved from position 1 of block 1 to position 2 of the branch's block 1
    let moved = v.tx_location(&tx1.compute_txid()).unwrap().unwrap();
    assert_eq!(
        (moved.block, moved.height, moved.index),
        (s1.block_hash(), 1, 2)
    );
    // the old blocks' other transactions are gone
    assert_eq!(v.tx_location(&b1.txs[0].compute_txid()).unwrap(), None);
    assert_not_indexed(&v, &[b2]);
    drop(v);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (7, Some(7)));
}

#[test]
fn reindex_rebuilds_the_transaction_index() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let tx1 = blocks[1].txs[1].compute_txid();
    let h2 = blocks[2].block_hash();
    store
        .write(|w| {
            // one entry missing, one wrong, one extra
            w.raw_delete(|t| t.tx_index.unwrap(), &blocks[2].txs[0].compute_txid().0)?;
            w.raw_put(
                |t| t.tx_index.unwrap(),
                &tx1.0,
                &super::super::tables::tx_location_value(&h2, 1),
            )?;
            w.raw_put(
                |t| t.tx_index.unwrap(),
                &[9; 32],
                &super::super::tables::tx_location_value(&h2, 7),
            )
        })
        .unwrap();
    store.check_consistency().unwrap_err();
    store.write(|w| w.reindex_utxo()).unwrap();
    let v = store.read().unwrap();
    assert_indexed(&v, &blocks);
    assert_eq!(
        v.tx_location(&gossipcoin_proto::Txid([9; 32])).unwrap(),
        None
    );
    drop(v);
    let report = store.check_consistency().unwrap();
    assert_eq!(report.indexed_txs, Some(6));

    // on an empty chain it empties the index
    let (_dir, empty) = new_store();
    empty
        .write(|w| w.raw_put(|t| t.tx_index.unwrap(), &[9; 32], &[0; 36]))
        .unwrap();
    empty.write(|w| w.reindex_utxo()).unwrap();
    assert_eq!(empty.check_consistency().unwrap().indexed_txs, Some(0));
}

#[test]
fn disconnect_refuses_a_tip_whose_transactions_are_not_indexed_there() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let cb = blocks[2].txs[0].compute_txid();
    store
        .write(|w| w.raw_delete(|t| t.tx_index.unwrap(), &cb.0))
        .unwrap();
    let err = store.write(|w| w.disconnect_tip()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("tx_index[")),
        "{err}"
    );
    // reindex repairs it, and the disconnect then works
    store.write(|w| w.reindex_utxo()).unwrap();
    store.write(|w| w.disconnect_tip()).unwrap();
    store.check_consistency().unwrap();
}

#[test]
fn a_bad_index_entry_is_corruption_not_a_panic() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let h1 = blocks[1].block_hash();
    let (cb, tx1) = (
        blocks[2].txs[0].compute_txid(),
        blocks[1].txs[1].compute_txid(),
    );
    store
        .write(|w| {
            // too short; then a position past the block's end
            w.raw_put(|t| t.tx_index.unwrap(), &cb.0, &[1; 5])?;
            w.raw_put(
                |t| t.tx_index.unwrap(),
                &tx1.0,
                &super::super::tables::tx_location_value(&h1, 9),
            )
        })
        .unwrap();
    let v = store.read().unwrap();
    for result in [
        v.tx_location(&cb).map(|_| ()),
        v.transaction(&tx1).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("tx_index[")),
            "{err}"
        );
    }
    drop(v);
    assert!(matches!(
        store.check_consistency(),
        Err(StoreError::Corrupt(_))
    ));
}
