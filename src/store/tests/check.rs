//! The consistency check passes on good stores and names what is wrong in broken ones.

use super::super::tables::{Db, Tables, addr_key, status_value, tx_location_value};
use super::*;
use crate::store::BlockStatus::{self, *};

/// Breaks a store holding [`three_blocks`] with `damage` and returns the check's problems.
fn problems_after(damage: impl Fn(&mut WriteView<'_>) -> Result<(), StoreError>) -> Vec<String> {
    let (_dir, store, _) = store_with_three_blocks();
    store.check_consistency().unwrap();
    store.write(|w| damage(w)).unwrap();
    match store.check_consistency() {
        Err(StoreError::Inconsistent(problems)) => problems,
        other => panic!("expected Inconsistent, got {other:?}"),
    }
}

fn mentions(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

fn delete(w: &mut WriteView<'_>, table: fn(&Tables) -> Db, key: &[u8]) -> Result<(), StoreError> {
    assert!(w.raw_delete(table, key)?, "nothing to delete");
    Ok(())
}

#[test]
fn good_stores_pass_with_counts() {
    let (_dir, store) = new_store();
    let report = store.check_consistency().unwrap();
    assert_eq!(report.tip, None);
    assert_eq!((report.main_chain_blocks, report.utxos), (0, 0));

    let (_dir, store, blocks) = store_with_three_blocks();
    let report = store.check_consistency().unwrap();
    assert_eq!(report.tip.unwrap().hash, blocks[2].block_hash());
    assert_eq!(report.main_chain_blocks, 3);
    assert_eq!(report.index_entries, 3);
    assert_eq!(report.stored_blocks, 3);
    assert_eq!(report.utxos, 5);
    assert_eq!(report.total_value, 150);
    assert_eq!(report.main_chain_txs, 6);
    assert_eq!(report.indexed_txs, Some(6));
    assert!(
        report
            .to_string()
            .contains("6 on the main chain, 6 indexed")
    );
}

#[test]
fn a_missing_address_index_entry_is_found() {
    let tx2 = three_blocks()[2].txs[1].clone();
    let problems =
        problems_after(|w| delete(w, |t| t.addr_utxo, &addr_key(&owner(3), &out(&tx2, 1))));
    assert!(
        mentions(&problems, "missing from addr_utxo"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn a_missing_or_extra_coin_is_found() {
    let tx2 = three_blocks()[2].txs[1].clone();
    let problems = problems_after(|w| delete(w, |t| t.utxo, &out(&tx2, 1).to_key()));
    assert!(mentions(&problems, "missing from utxo"), "{problems:?}");
    assert!(mentions(&problems, "is not unspent"), "{problems:?}");

    // a spent coin put back, with its address entry: only the replay can tell
    let tx1 = three_blocks()[1].txs[1].clone();
    let problems = problems_after(|w| {
        let coin = Coin {
            output: tx1.outputs[0],
            height: 1,
            is_coinbase: false,
        };
        let op = out(&tx1, 0);
        w.raw_put(
            |t| t.utxo,
            &op.to_key(),
            &gossipcoin_proto::encode::to_bytes(&coin),
        )?;
        w.raw_put(
            |t| t.addr_utxo,
            &addr_key(&owner(3), &op),
            &30u64.to_be_bytes(),
        )
    });
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        mentions(&problems, "not unspent in a replay"),
        "{problems:?}"
    );
}

#[test]
fn a_wrong_amount_or_owner_in_the_address_index_is_found() {
    let cb = three_blocks()[2].txs[0].clone();
    let op = out(&cb, 0);
    let problems = problems_after(|w| {
        w.raw_put(
            |t| t.addr_utxo,
            &addr_key(&owner(1), &op),
            &1u64.to_be_bytes(),
        )
    });
    assert!(mentions(&problems, "another amount"), "{problems:?}");

    let problems = problems_after(|w| {
        delete(w, |t| t.addr_utxo, &addr_key(&owner(1), &op))?;
        w.raw_put(
            |t| t.addr_utxo,
            &addr_key(&owner(2), &op),
            &50u64.to_be_bytes(),
        )
    });
    assert!(mentions(&problems, "its owner is"), "{problems:?}");
}

#[test]
fn a_missing_extra_or_misplaced_transaction_index_entry_is_found() {
    let blocks = three_blocks();
    let (h1, h2) = (blocks[1].block_hash(), blocks[2].block_hash());
    let tx1 = blocks[1].txs[1].compute_txid();
    let tx_index = |t: &Tables| t.tx_index.unwrap();

    let problems = problems_after(|w| delete(w, tx_index, &tx1.0));
    assert!(mentions(&problems, "missing from tx_index"), "{problems:?}");
    assert!(mentions(&problems, &tx1.to_string()), "{problems:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");

    // the last txid in key order too (found after the walk over tx_index ends)
    let last = blocks
        .iter()
        .flat_map(|b| &b.txs)
        .map(|tx| tx.compute_txid())
        .max()
        .unwrap();
    let problems = problems_after(|w| delete(w, tx_index, &last.0));
    assert!(mentions(&problems, "missing from tx_index"), "{problems:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");

    let extra = gossipcoin_proto::Txid([0xee; 32]);
    let problems = problems_after(|w| w.raw_put(tx_index, &extra.0, &tx_location_value(&h2, 3)));
    assert!(mentions(&problems, "not on the main chain"), "{problems:?}");
    assert!(mentions(&problems, &extra.to_string()), "{problems:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");

    let problems = problems_after(|w| w.raw_put(tx_index, &tx1.0, &tx_location_value(&h1, 0)));
    assert!(
        mentions(&problems, "tx_index places transaction"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");

    // a main-chain block lost: its transactions cannot be listed, so extra entries are not
    // claimed (they may be that block's)
    let problems = problems_after(|w| delete(w, |t| t.blocks, &h1.0));
    assert!(
        mentions(&problems, "not checked for extra entries"),
        "{problems:?}"
    );
    assert!(
        !mentions(&problems, "not on the main chain"),
        "{problems:?}"
    );
}

#[test]
fn a_broken_main_chain_is_found() {
    let blocks = three_blocks();
    let (h1, h2) = (blocks[1].block_hash(), blocks[2].block_hash());
    let problems = problems_after(|w| w.raw_put(|t| t.meta, b"tip", &h1.0));
    assert!(mentions(&problems, "meta tip is"), "{problems:?}");

    let problems = problems_after(|w| delete(w, |t| t.height_hash, &1u32.to_be_bytes()));
    assert!(
        mentions(&problems, "skips from height 1 to 2"),
        "{problems:?}"
    );

    let problems = problems_after(|w| w.raw_put(|t| t.height_hash, &1u32.to_be_bytes(), &h2.0));
    assert!(mentions(&problems, "does not link"), "{problems:?}");

    let problems = problems_after(|w| delete(w, |t| t.undo, &h2.0));
    assert!(mentions(&problems, "no undo data"), "{problems:?}");

    let problems = problems_after(|w| delete(w, |t| t.blocks, &h1.0));
    assert!(mentions(&problems, "is not stored"), "{problems:?}");
}

#[test]
fn undecodable_bytes_are_corruption_not_a_panic() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let op = out(&blocks[2].txs[0], 0);
    store
        .write(|w| w.raw_put(|t| t.utxo, &op.to_key(), &[0xff; 3]))
        .unwrap();
    let err = store.read().unwrap().coin(&op).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("utxo[")),
        "{err}"
    );
    assert!(matches!(
        store.check_consistency(),
        Err(StoreError::Corrupt(_))
    ));
}

/// The `block_status` table.
fn status_table(t: &Tables) -> Db {
    t.block_status.unwrap()
}

fn set_status(w: &mut WriteView<'_>, b: &Block, status: BlockStatus) -> Result<(), StoreError> {
    w.raw_put(status_table, &b.block_hash().0, &status_value(status))
}

/// Stores `b` off the main chain, on its indexed parent.
fn put_side(w: &mut WriteView<'_>, b: &Block) -> Result<(), StoreError> {
    let parent = w.index(&b.header.prev)?.unwrap();
    let entry = IndexEntry {
        header: b.header,
        height: parent.height + 1,
        chain_work: parent.chain_work.saturating_add(block_work()),
    };
    w.put_block(b, entry)
}

#[test]
fn broken_block_statuses_are_found() {
    let blocks = three_blocks();
    let h1 = blocks[1].block_hash();
    let side = block(h1, 4_000, vec![coinbase(2, owner(6), 50)]);
    let side_child = block(side.block_hash(), 4_001, vec![coinbase(3, owner(6), 50)]);

    // a main-chain block without a status, or not fully valid
    let problems = problems_after(|w| delete(w, status_table, &h1.0));
    assert!(
        mentions(&problems, "is indexed but has no status"),
        "{problems:?}"
    );
    assert!(
        mentions(&problems, "has status None, not FullyValid"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    let problems = problems_after(|w| set_status(w, &blocks[1], DataStored));
    assert!(
        mentions(&problems, "has status Some(DataStored), not FullyValid"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");

    // a stored side block said to be a header only, a header said to have data
    let problems = problems_after(|w| {
        put_side(w, &side)?;
        set_status(w, &side, HeaderValid)
    });
    assert!(
        mentions(&problems, "is HeaderValid but its data is stored"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problems = problems_after(|w| {
        put_side(w, &side)?;
        w.mark_failed(&side.block_hash())?;
        set_status(w, &side, DataStored)
    });
    assert!(
        mentions(&problems, "is DataStored but its data is not stored"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");

    // the child of a failed block not marked as its descendant
    let problems = problems_after(|w| {
        put_side(w, &side)?;
        put_side(w, &side_child)?;
        w.mark_failed(&side.block_hash())?;
        set_status(w, &side_child, Failed)
    });
    assert!(
        mentions(
            &problems,
            &format!(
                "block {} is Some(Failed) but its parent {} is Failed",
                side_child.block_hash(),
                side.block_hash()
            )
        ),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");

    // a status, or data, for a block the index does not know
    let problems = problems_after(|w| w.raw_put(status_table, &[7; 32], &status_value(FullyValid)));
    assert!(
        mentions(&problems, "block_status has 4 entries for 3 indexed blocks"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problems = problems_after(|w| {
        let bytes = gossipcoin_proto::encode::to_bytes(&side);
        w.raw_put(|t| t.blocks, &side.block_hash().0, &bytes)
    });
    assert!(
        mentions(
            &problems,
            "blocks has 4 entries but only 3 indexed blocks are stored"
        ),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn an_undecodable_status_is_corruption() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let h1 = blocks[1].block_hash();
    store
        .write(|w| w.raw_put(status_table, &h1.0, &[9]))
        .unwrap();
    let err = store.read().unwrap().status(&h1).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("block_status[")),
        "{err}"
    );
    assert!(matches!(
        store.check_consistency(),
        Err(StoreError::Corrupt(_))
    ));
    // an indexed block whose status is missing is corruption to a reader too
    store.write(|w| delete(w, status_table, &h1.0)).unwrap();
    let err = store.read().unwrap().status(&h1).unwrap_err();
    assert!(
        err.to_string().contains("indexed block has no status"),
        "{err}"
    );
}
