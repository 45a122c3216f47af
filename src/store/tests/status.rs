//! Block statuses: a block's way from header to main chain, headers alone, failed blocks and
//! their descendants, and what the store refuses once a block failed.

use gossipcoin_proto::U256;

use super::*;
use crate::store::BlockStatus::{self, *};

/// The index entry of `b` on its indexed parent.
fn entry_on(w: &WriteView<'_>, b: &Block) -> IndexEntry {
    let parent = w.index(&b.header.prev).unwrap().expect("parent indexed");
    IndexEntry {
        header: b.header,
        height: parent.height + 1,
        chain_work: parent.chain_work.saturating_add(block_work()),
    }
}

/// A block on `prev` with only a coinbase; `time` tells siblings apart.
fn child(prev: &Block, height: u32, time: u32) -> Block {
    block(
        prev.block_hash(),
        time,
        vec![coinbase(height, owner(7), 50)],
    )
}

fn status_of(store: &Store, b: &Block) -> Option<BlockStatus> {
    store.read().unwrap().status(&b.block_hash()).unwrap()
}

fn statuses(store: &Store, blocks: &[&Block]) -> Vec<Option<BlockStatus>> {
    blocks.iter().map(|b| status_of(store, b)).collect()
}

fn stored(store: &Store, b: &Block) -> bool {
    store.read().unwrap().has_block(&b.block_hash()).unwrap()
}

#[test]
fn is_failed_and_has_data() {
    let all = [
        HeaderValid,
        DataStored,
        FullyValid,
        Failed,
        DescendantOfFailed,
    ];
    let failed: Vec<bool> = all.iter().map(|s| s.is_failed()).collect();
    let data: Vec<bool> = all.iter().map(|s| s.has_data()).collect();
    assert_eq!(failed, [false, false, false, true, true]);
    assert_eq!(data, [false, true, true, false, false]);
}

#[test]
fn a_block_goes_from_header_to_data_to_fully_valid() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let main: Vec<&Block> = blocks.iter().collect();
    assert_eq!(statuses(&store, &main), [Some(FullyValid); 3]);
    let next = child(&blocks[2], 3, 1_030);
    assert_eq!(status_of(&store, &next), None);

    // the header alone
    store
        .write(|w| w.put_header(entry_on(w, &next), HeaderValid))
        .unwrap();
    assert_eq!(status_of(&store, &next), Some(HeaderValid));
    assert!(!stored(&store, &next));
    assert_eq!(
        store.read().unwrap().index(&next.block_hash()).unwrap(),
        Some(
            store
                .write(|w| Ok::<_, StoreError>(entry_on(w, &next)))
                .unwrap()
        )
    );
    let report = store.check_consistency().unwrap();
    assert_eq!((report.index_entries, report.stored_blocks), (4, 3));
    assert_eq!((report.headers_only, report.failed_blocks), (1, 0));
    // the tip and the median-time input do not need the data
    let v = store.read().unwrap();
    assert_eq!(v.tip().unwrap().unwrap().height, 2);
    assert_eq!(
        v.recent_times(&next.block_hash(), 2).unwrap(),
        [1_030, 1_020]
    );
    drop(v);

    // then its data
    store
        .write(|w| w.put_block(&next, entry_on(w, &next)))
        .unwrap();
    assert_eq!(status_of(&store, &next), Some(DataStored));
    assert!(stored(&store, &next));
    store.check_consistency().unwrap();

    // then the main chain
    store.write(|w| connect_in(w, &next)).unwrap();
    assert_eq!(status_of(&store, &next), Some(FullyValid));
    store.check_consistency().unwrap();

    // it stays fully valid once disconnected, and storing it again changes nothing
    store.write(|w| w.disconnect_tip().map(drop)).unwrap();
    assert_eq!(status_of(&store, &next), Some(FullyValid));
    store
        .write(|w| w.put_block(&next, entry_on(w, &next)))
        .unwrap();
    store
        .write(|w| w.put_header(entry_on(w, &next), HeaderValid))
        .unwrap();
    assert_eq!(status_of(&store, &next), Some(FullyValid));
    assert!(stored(&store, &next));
    store.check_consistency().unwrap();
}

#[test]
fn put_header_refuses_statuses_with_data_and_other_entries() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let next = child(&blocks[2], 3, 1_030);
    for status in [DataStored, FullyValid] {
        let err = store
            .write(|w| w.put_header(entry_on(w, &next), status))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Rejected { reason, .. } if reason.contains("store the block")),
            "{err}"
        );
    }
    assert_eq!(status_of(&store, &next), None);
    assert_eq!(
        store.read().unwrap().index(&next.block_hash()).unwrap(),
        None
    );

    // a known hash: no-op with the same entry, refused with another one
    let entry = IndexEntry {
        header: blocks[1].header,
        height: 1,
        chain_work: block_work().saturating_add(block_work()),
    };
    store.write(|w| w.put_header(entry, Failed)).unwrap();
    assert_eq!(status_of(&store, &blocks[1]), Some(FullyValid));
    let other = IndexEntry { height: 5, ..entry };
    let err = store.write(|w| w.put_header(other, Failed)).unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    assert_eq!(
        store
            .read()
            .unwrap()
            .index(&blocks[1].block_hash())
            .unwrap(),
        Some(entry)
    );
    store.check_consistency().unwrap();
}

#[test]
fn put_header_remembers_failed_headers_and_their_descendants() {
    let (_dir, store, blocks) = store_with_three_blocks();
    let bad = child(&blocks[1], 2, 2_000);
    let after_bad = child(&bad, 3, 2_001);
    let after_after = child(&after_bad, 4, 2_002);
    store
        .write(|w| w.put_header(entry_on(w, &bad), Failed))
        .unwrap();
    // whatever status is asked for, a failed block's child descends from a failed block
    store
        .write(|w| w.put_header(entry_on(w, &after_bad), HeaderValid))
        .unwrap();
    store
        .write(|w| w.put_header(entry_on(w, &after_after), Failed))
        .unwrap();
    assert_eq!(
        statuses(&store, &[&bad, &after_bad, &after_after]),
        [
            Some(Failed),
            Some(DescendantOfFailed),
            Some(DescendantOfFailed)
        ]
    );
    let report = store.check_consistency().unwrap();
    assert_eq!((report.headers_only, report.failed_blocks), (3, 3));
}

/// A store with [`three_blocks`] and side branches off block 1:
///
/// ```text
/// b0 - b1 - b2                      main chain
///        \- s2 - s3 - s4a (header)  the branch that fails at s2
///        |         \- s4b
///        \- t2                      a sibling that does not descend from s2
/// ```
struct Branches {
    _dir: tempfile::TempDir,
    store: Store,
    main: Vec<Block>,
    s2: Block,
    s3: Block,
    s4a: Block,
    s4b: Block,
    t2: Block,
}

fn branches() -> Branches {
    let (dir, store, main) = store_with_three_blocks();
    let s2 = child(&main[1], 2, 3_000);
    let s3 = child(&s2, 3, 3_001);
    let s4a = child(&s3, 4, 3_002);
    let s4b = child(&s3, 4, 3_003);
    let t2 = child(&main[1], 2, 3_004);
    store
        .write(|w| {
            for b in [&s2, &s3, &s4b, &t2] {
                w.put_block(b, entry_on(w, b))?;
            }
            w.put_header(entry_on(w, &s4a), HeaderValid)
        })
        .unwrap();
    store.check_consistency().unwrap();
    Branches {
        _dir: dir,
        store,
        main,
        s2,
        s3,
        s4a,
        s4b,
        t2,
    }
}

#[test]
fn mark_failed_marks_every_descendant_and_drops_their_data() {
    let b = branches();
    let store = &b.store;
    assert_eq!(
        statuses(store, &[&b.s2, &b.s3, &b.s4a, &b.s4b, &b.t2]),
        [
            Some(DataStored),
            Some(DataStored),
            Some(HeaderValid),
            Some(DataStored),
            Some(DataStored)
        ]
    );
    let changed = store.write(|w| w.mark_failed(&b.s2.block_hash())).unwrap();
    assert_eq!(changed, 4);
    assert_eq!(
        statuses(store, &[&b.s2, &b.s3, &b.s4a, &b.s4b, &b.t2]),
        [
            Some(Failed),
            Some(DescendantOfFailed),
            Some(DescendantOfFailed),
            Some(DescendantOfFailed),
            Some(DataStored)
        ]
    );
    let main: Vec<&Block> = b.main.iter().collect();
    assert_eq!(statuses(store, &main), [Some(FullyValid); 3]);
    // the failed branch's data is gone, its index entries stay; the sibling is untouched
    for blk in [&b.s2, &b.s3, &b.s4b] {
        assert!(!stored(store, blk));
        assert!(
            store
                .read()
                .unwrap()
                .index(&blk.block_hash())
                .unwrap()
                .is_some()
        );
    }
    assert!(stored(store, &b.t2));
    let report = store.check_consistency().unwrap();
    assert_eq!(
        (
            report.stored_blocks,
            report.headers_only,
            report.failed_blocks
        ),
        (4, 4, 4)
    );

    // again, or below: nothing changes (a descendant of a failed block stays one)
    assert_eq!(
        store.write(|w| w.mark_failed(&b.s2.block_hash())).unwrap(),
        0
    );
    assert_eq!(
        store.write(|w| w.mark_failed(&b.s3.block_hash())).unwrap(),
        0
    );
    assert_eq!(status_of(store, &b.s3), Some(DescendantOfFailed));
    // the sibling on its own
    assert_eq!(
        store.write(|w| w.mark_failed(&b.t2.block_hash())).unwrap(),
        1
    );
    assert_eq!(status_of(store, &b.t2), Some(Failed));
    store.check_consistency().unwrap();
}

#[test]
fn marking_a_parent_turns_a_failed_descendant_into_a_descendant_of_failed() {
    let b = branches();
    let store = &b.store;
    assert_eq!(
        store.write(|w| w.mark_failed(&b.s3.block_hash())).unwrap(),
        3
    );
    assert_eq!(
        statuses(store, &[&b.s2, &b.s3, &b.s4a, &b.s4b]),
        [
            Some(DataStored),
            Some(Failed),
            Some(DescendantOfFailed),
            Some(DescendantOfFailed)
        ]
    );
    assert_eq!(
        store.write(|w| w.mark_failed(&b.s2.block_hash())).unwrap(),
        2
    );
    assert_eq!(
        statuses(store, &[&b.s2, &b.s3]),
        [Some(Failed), Some(DescendantOfFailed)]
    );
    store.check_consistency().unwrap();
}

#[test]
fn mark_failed_refuses_main_chain_and_unknown_blocks() {
    let b = branches();
    let store = &b.store;
    for blk in &b.main {
        let err = store
            .write(|w| w.mark_failed(&blk.block_hash()))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Rejected { reason, .. } if reason.contains("main chain")),
            "{err}"
        );
    }
    let main: Vec<&Block> = b.main.iter().collect();
    assert_eq!(statuses(store, &main), [Some(FullyValid); 3]);
    assert!(main.iter().all(|blk| stored(store, blk)));
    let unknown = child(&b.main[2], 3, 9_999);
    let err = store
        .write(|w| w.mark_failed(&unknown.block_hash()))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownBlock(h) if h == unknown.block_hash()),
        "{err}"
    );
    store.check_consistency().unwrap();
}

#[test]
fn failed_blocks_and_their_children_are_refused() {
    let b = branches();
    let store = &b.store;
    store.write(|w| w.mark_failed(&b.s2.block_hash())).unwrap();
    let before = dump(&store.read().unwrap());
    let s5 = child(&b.s4b, 5, 3_010);
    // refused before the entry is compared with the index
    let entry_of = |blk: &Block, height: u32| IndexEntry {
        header: blk.header,
        height,
        chain_work: U256::ZERO,
    };
    for (blk, height, why) in [
        (&b.s2, 2, "marked Failed"),
        (&b.s3, 3, "marked DescendantOfFailed"),
        (&b.s4a, 4, "marked DescendantOfFailed"),
        (&s5, 5, "parent"),
    ] {
        let err = store
            .write(|w| w.put_block(blk, entry_of(blk, height)))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Rejected { reason, .. } if reason.contains(why)),
            "{err}"
        );
        assert!(!stored(store, blk));
    }
    assert_eq!(status_of(store, &s5), None);
    // nor can a failed block be connected, even where it would fit
    store.write(|w| w.disconnect_tip().map(drop)).unwrap();
    let err = store.write(|w| w.connect_block(&b.s2, 2, &[])).unwrap_err();
    assert!(err.to_string().contains("marked Failed"), "{err}");
    store.write(|w| connect_in(w, &b.main[2])).unwrap();
    assert_eq!(dump(&store.read().unwrap()), before);
    store.check_consistency().unwrap();
}

#[test]
fn reindex_keeps_statuses() {
    let b = branches();
    let store = &b.store;
    store.write(|w| w.mark_failed(&b.s3.block_hash())).unwrap();
    let all = [
        &b.main[0], &b.main[1], &b.main[2], &b.s2, &b.s3, &b.s4a, &b.s4b, &b.t2,
    ];
    let before = statuses(store, &all);
    store.write(|w| w.reindex_utxo()).unwrap();
    assert_eq!(statuses(store, &all), before);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.headers_only, report.failed_blocks), (3, 3));
}
