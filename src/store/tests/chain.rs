//! Connecting, disconnecting and reindexing; refused mutations; atomic writes.

use super::*;

#[test]
fn three_blocks_give_the_expected_balances_utxos_and_index() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let v = store.read().unwrap();
    let tip = v.tip().unwrap().unwrap();
    assert_eq!(tip.hash, blocks[2].block_hash());
    assert_eq!(tip.height, 2);
    let three = block_work()
        .saturating_add(block_work())
        .saturating_add(block_work());
    assert_eq!(tip.chain_work, three);
    assert_eq!(v.genesis_hash().unwrap(), Some(blocks[0].block_hash()));
    for (h, b) in blocks.iter().enumerate() {
        let hash = b.block_hash();
        assert_eq!(v.hash_at(h as u32).unwrap(), Some(hash));
        assert_eq!(v.block(&hash).unwrap().as_ref(), Some(b));
        assert_eq!(v.index(&hash).unwrap().unwrap().height, h as u32);
        assert!(v.has_block(&hash).unwrap());
        assert!(v.is_on_main_chain(&hash).unwrap());
    }
    assert!(!v.is_on_main_chain(&BlockHash([9; 32])).unwrap());
    assert_eq!(v.hash_at(3).unwrap(), None);

    let balances: Vec<u64> = (1..=5)
        .map(|n| v.balance(&owner(n)).unwrap().units())
        .collect();
    assert_eq!(balances, [70, 50, 20, 10, 0]);
    assert_eq!(v.utxo_count().unwrap(), 5);
    assert_eq!(v.utxo_set().unwrap().len(), 5);

    // C's 30 from block 1 is spent; its 20 from block 2 is not, and is no coinbase
    let tx1 = &blocks[1].txs[1];
    assert_eq!(v.coin(&out(tx1, 0)).unwrap(), None);
    let tx2 = &blocks[2].txs[1];
    let coin = v.coin(&out(tx2, 1)).unwrap().unwrap();
    assert_eq!(
        (coin.height, coin.is_coinbase, coin.output.owner),
        (2, false, owner(3))
    );
    let cb = v.coin(&out(&blocks[2].txs[0], 0)).unwrap().unwrap();
    assert!(cb.is_coinbase);
    assert_eq!(
        v.utxos_of(&owner(4)).unwrap(),
        vec![(out(&blocks[2].txs[2], 0), units(10))]
    );

    // undo: block 2 spent C's 30 (block 1) and B's 10 created in block 2 itself
    let undo = v.undo(&blocks[2].block_hash()).unwrap().unwrap();
    let spent: Vec<(u64, u32)> = undo
        .iter()
        .map(|c| (c.output.value.units(), c.height))
        .collect();
    assert_eq!(spent, [(30, 1), (10, 2)]);
    assert_eq!(v.undo(&blocks[0].block_hash()).unwrap(), Some(vec![]));

    assert_eq!(
        v.recent_times(&tip.hash, 11).unwrap(),
        [1_020, 1_010, 1_000]
    );
    assert_eq!(v.recent_times(&tip.hash, 2).unwrap(), [1_020, 1_010]);
    assert!(matches!(
        v.recent_times(&BlockHash([9; 32]), 11),
        Err(StoreError::UnknownBlock(_))
    ));
}

#[test]
fn disconnect_restores_each_previous_state_exactly() {
    let (_dir, store) = new_store();
    let blocks = three_blocks();
    let mut states = vec![dump(&store.read().unwrap())];
    for b in &blocks {
        connect(&store, b).unwrap();
        states.push(dump(&store.read().unwrap()));
    }
    for b in blocks.iter().rev() {
        states.pop();
        let removed = store.write(|w| w.disconnect_tip()).unwrap();
        assert_eq!(&removed, b);
        assert_eq!(&dump(&store.read().unwrap()), states.last().unwrap());
        // the block stays stored and indexed for a later reorg
        assert!(
            store
                .read()
                .unwrap()
                .index(&b.block_hash())
                .unwrap()
                .is_some()
        );
    }
    assert!(matches!(
        store.write(|w| w.disconnect_tip()),
        Err(StoreError::EmptyChain)
    ));
    // and connecting again gives the same state as the first time
    for b in &blocks {
        connect(&store, b).unwrap();
    }
    store.check_consistency().unwrap();
}

#[test]
fn reindex_equals_the_incremental_result() {
    let (_dir, store, _) = store_with_three_blocks();
    let incremental = dump(&store.read().unwrap());
    store.write(|w| w.reindex_utxo()).unwrap();
    assert_eq!(dump(&store.read().unwrap()), incremental);
    store.check_consistency().unwrap();

    // reindex also repairs a damaged UTXO set and address index
    let (a, tx2) = (owner(1), three_blocks()[2].txs[1].clone());
    store
        .write(|w| {
            w.raw_delete(|t| t.utxo, &out(&tx2, 1).to_key())?;
            w.raw_delete(
                |t| t.addr_utxo,
                &super::super::tables::addr_key(&a, &out(&tx2, 1)),
            )
        })
        .unwrap();
    store.check_consistency().unwrap_err();
    store.write(|w| w.reindex_utxo()).unwrap();
    assert_eq!(dump(&store.read().unwrap()), incremental);

    // on an empty chain it empties the set
    let (_dir, empty) = new_store();
    empty.write(|w| w.reindex_utxo()).unwrap();
    assert_eq!(empty.read().unwrap().utxo_count().unwrap(), 0);
}

#[test]
fn a_failed_write_closure_changes_nothing() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let before = dump(&store.read().unwrap());
    let extra = block(
        blocks[2].block_hash(),
        1_030,
        vec![coinbase(3, owner(5), 50)],
    );
    let result: Result<(), StoreError> = store.write(|w| {
        w.disconnect_tip()?;
        w.disconnect_tip()?;
        connect_in(w, &extra).unwrap_err(); // does not extend the tip any more
        Err(StoreError::Corrupt("the caller gives up".into()))
    });
    assert!(result.is_err());
    assert_eq!(dump(&store.read().unwrap()), before);
    assert!(
        !store
            .read()
            .unwrap()
            .has_block(&extra.block_hash())
            .unwrap()
    );
}

#[test]
fn a_failed_mutation_leaves_the_write_transaction_as_it_was() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let before = dump(&store.read().unwrap());
    let missing = OutPoint {
        txid: gossipcoin_proto::Txid([7; 32]),
        vout: 0,
    };
    // the second input is unknown: the first must not stay spent
    let a_coin = out(&blocks[2].txs[0], 0);
    let bad = block(
        blocks[2].block_hash(),
        1_030,
        vec![
            coinbase(3, owner(5), 50),
            spend(&[a_coin, missing], &[(owner(6), 1)]),
        ],
    );
    let err = store
        .write(|w| {
            let err = connect_in(w, &bad).unwrap_err();
            Ok::<_, StoreError>(err) // swallowed: the transaction commits
        })
        .unwrap();
    assert!(
        matches!(err, StoreError::MissingCoin(op) if op == missing),
        "{err}"
    );
    let after = dump(&store.read().unwrap());
    assert_eq!(after, before);
    // put_block succeeded before the failed connect: the block is stored, off the main chain
    let v = store.read().unwrap();
    assert!(v.has_block(&bad.block_hash()).unwrap());
    assert!(!v.is_on_main_chain(&bad.block_hash()).unwrap());
    drop(v);
    store.check_consistency().unwrap();
}

#[test]
fn connect_refuses_what_does_not_fit_the_tip() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let tip = blocks[2].block_hash();
    let entry = |b: &Block, height| IndexEntry {
        header: b.header,
        height,
        chain_work: U256::ZERO,
    };
    // not stored / not indexed
    let next = block(tip, 1_030, vec![coinbase(3, owner(5), 50)]);
    let err = store.write(|w| w.connect_block(&next, 3, &[])).unwrap_err();
    assert!(matches!(err, StoreError::UnknownBlock(_)), "{err}");
    // wrong height, and a block on another parent
    let err = store
        .write(|w| {
            w.put_block(&next, entry(&next, 4))?;
            w.connect_block(&next, 4, &[])
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    let side = block(
        blocks[1].block_hash(),
        1_031,
        vec![coinbase(3, owner(5), 50)],
    );
    let err = store
        .write(|w| {
            w.put_block(&side, entry(&side, 3))?;
            w.connect_block(&side, 3, &[])
        })
        .unwrap_err();
    assert!(err.to_string().contains("does not extend the tip"), "{err}");
    // spent coins that differ from the UTXO set
    let a_coin = out(&blocks[2].txs[0], 0);
    let spender = block(
        tip,
        1_032,
        vec![
            coinbase(3, owner(5), 1),
            spend(&[a_coin], &[(owner(6), 50)]),
        ],
    );
    let err = store
        .write(|w| {
            w.put_block(&spender, entry(&spender, 3))?;
            w.connect_block(&spender, 3, &[])
        })
        .unwrap_err();
    assert!(err.to_string().contains("spent coins"), "{err}");
    // a header that is not the block's
    let err = store
        .write(|w| w.put_block(&next, entry(&side, 3)))
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    assert_eq!(store.read().unwrap().tip().unwrap().unwrap().hash, tip);
}

#[test]
fn a_duplicate_outpoint_is_an_error() {
    let (_dir, store, blocks) = store_with_three_blocks();
    // an input-less transaction has the same txid wherever it appears
    let free = spend(&[], &[(owner(6), 5)]);
    let b3 = block(
        blocks[2].block_hash(),
        1_030,
        vec![coinbase(3, owner(5), 50), free.clone()],
    );
    connect(&store, &b3).unwrap();
    let b4 = block(
        b3.block_hash(),
        1_040,
        vec![coinbase(4, owner(5), 50), free.clone()],
    );
    let err = connect(&store, &b4).unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateCoin(op) if op == out(&free, 0)),
        "{err}"
    );
    assert_eq!(
        store.read().unwrap().tip().unwrap().unwrap().hash,
        b3.block_hash()
    );
}

#[test]
fn disconnect_without_undo_data_fails() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let tip = blocks[2].block_hash();
    store.write(|w| w.raw_delete(|t| t.undo, &tip.0)).unwrap();
    let err = store.write(|w| w.disconnect_tip()).unwrap_err();
    assert!(
        matches!(err, StoreError::MissingUndo(h) if h == tip),
        "{err}"
    );
}
