//! Tests of the chain: single blocks, reorgs, side branches, headers and batches.

use gossipcoin_proto::{Amount, Transaction};

use super::*;
use crate::consensus::testutil::{T0, coins, key, out_of, params, pay, signed_tx};
use crate::keys::PrivateKey;

const NOW: u32 = T0 + 1_000_000;

/// A block on `parent` at `height` paying 10 coins (+ `fees`) to `miner`, with `txs`, mined.
fn child(
    parent: &Block,
    height: u32,
    miner: &PrivateKey,
    txs: Vec<Transaction>,
    fees: u64,
) -> Block {
    let value = coins(10)
        .checked_add(Amount::from_units(fees).unwrap())
        .unwrap();
    let mut all = vec![Transaction::coinbase(height, miner.pubkey_hash(), value)];
    all.extend(txs);
    let mut block = Block {
        header: gossipcoin_proto::BlockHeader {
            version: 1,
            prev: parent.block_hash(),
            merkle_root: Default::default(),
            time: parent.header.time + 1,
            bits: params().pow_bits,
            nonce: 0,
        },
        txs: all,
    };
    crate::consensus::testutil::remine(&mut block, &params());
    block
}

fn genesis() -> Block {
    let mut g = Block {
        header: gossipcoin_proto::BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: T0,
            bits: params().pow_bits,
            nonce: 0,
        },
        txs: vec![Transaction::coinbase(0, key(1).pubkey_hash(), coins(10))],
    };
    crate::consensus::testutil::remine(&mut g, &params());
    g
}

fn new_chain() -> (tempfile::TempDir, Chain, Block) {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let chain = Chain::create(&dir.path().join("chain"), params(), &g).unwrap();
    (dir, chain, g)
}

fn balance(chain: &Chain, k: &PrivateKey) -> Amount {
    chain
        .store()
        .read()
        .unwrap()
        .balance(&k.pubkey_hash())
        .unwrap()
}

/// Key 1 pays 4 of its genesis coins to key 2.
fn payment(g: &Block) -> Transaction {
    let (k1, k2) = (key(1), key(2));
    signed_tx(
        &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
        vec![pay(&k2, coins(4)), pay(&k1, coins(6))],
    )
}

#[test]
fn extends_the_tip_and_refuses_duplicates_and_orphans() {
    let (_d, chain, g) = new_chain();
    let b1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
    let accepted = chain.accept_block(&b1, NOW, Origin::Requested).unwrap();
    assert!(
        matches!(accepted, Accepted::NewTip { ref tip, ref disconnected } if tip.height == 1 && disconnected.is_empty())
    );
    assert_eq!(balance(&chain, &key(2)), coins(4));
    assert!(matches!(
        chain.accept_block(&b1, NOW, Origin::Requested),
        Err(ChainError::Duplicate { .. })
    ));
    let mut orphan = child(&b1, 2, &key(3), vec![], 0);
    orphan.header.prev = BlockHash([9; 32]);
    crate::consensus::testutil::remine(&mut orphan, &params());
    assert!(matches!(
        chain.accept_block(&orphan, NOW, Origin::Requested),
        Err(ChainError::Orphan { .. })
    ));
    assert_eq!(chain.tip().unwrap().height, 1);
}

#[test]
fn invalid_blocks_change_nothing() {
    let (_d, chain, g) = new_chain();
    // Coinbase paying one unit more than subsidy + fees.
    let mut greedy = child(&g, 1, &key(3), vec![], 0);
    greedy.txs[0].outputs[0].value = Amount::from_units(coins(10).units() + 1).unwrap();
    crate::consensus::testutil::remine(&mut greedy, &params());
    let err = chain
        .accept_block(&greedy, NOW, Origin::Requested)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::CoinbaseTooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    // A block too far in the future is refused, but not as misbehaviour.
    let mut early = child(&g, 1, &key(3), vec![], 0);
    early.header.time = NOW + params().max_future_block_time + 1;
    crate::consensus::testutil::remine(&mut early, &params());
    let err = chain
        .accept_block(&early, NOW, Origin::Requested)
        .unwrap_err();
    assert!(!err.is_peer_misbehaviour(), "{err}");
    assert_eq!(chain.tip().unwrap().hash, g.block_hash());
    chain.store().check_consistency().unwrap();
}

#[test]
fn reorganises_to_the_branch_with_more_work() {
    let (_d, chain, g) = new_chain();
    // Main chain: a1 (key 1 pays key 2), a2.
    let a1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
    let a2 = child(&a1, 2, &key(3), vec![], 0);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    chain.accept_block(&a2, NOW, Origin::Requested).unwrap();
    assert_eq!(balance(&chain, &key(2)), coins(4));
    // Branch: b1, b2 (equal work: stays a side branch), b3 takes over.
    let mut b1 = child(&g, 1, &key(4), vec![], 0);
    b1.header.time += 7; // a different block than a1's sibling
    crate::consensus::testutil::remine(&mut b1, &params());
    let b2 = child(&b1, 2, &key(4), vec![], 0);
    let b3 = child(&b2, 3, &key(4), vec![], 0);
    assert!(matches!(
        chain.accept_block(&b1, NOW, Origin::Requested).unwrap(),
        Accepted::SideBranch { height: 1, .. }
    ));
    assert!(matches!(
        chain.accept_block(&b2, NOW, Origin::Requested).unwrap(),
        Accepted::SideBranch { height: 2, .. }
    ));
    let Accepted::NewTip { tip, disconnected } =
        chain.accept_block(&b3, NOW, Origin::Requested).unwrap()
    else {
        panic!("b3 should be the new tip");
    };
    assert_eq!((tip.hash, tip.height), (b3.block_hash(), 3));
    assert_eq!(disconnected, vec![a2.clone(), a1.clone()]);
    // The payment of a1 is undone; key 4 mined three blocks; key 3's rewards are gone.
    assert_eq!(balance(&chain, &key(2)), Amount::ZERO);
    assert_eq!(balance(&chain, &key(1)), coins(10));
    assert_eq!(balance(&chain, &key(4)), coins(30));
    assert_eq!(balance(&chain, &key(3)), Amount::ZERO);
    chain.store().check_consistency().unwrap();
    // And back again: a3, a4 make the first branch heavier.
    let a3 = child(&a2, 3, &key(3), vec![], 0);
    let a4 = child(&a3, 4, &key(3), vec![], 0);
    chain.accept_block(&a3, NOW, Origin::Requested).unwrap();
    chain.accept_block(&a4, NOW, Origin::Requested).unwrap();
    assert_eq!(chain.tip().unwrap().hash, a4.block_hash());
    assert_eq!(balance(&chain, &key(2)), coins(4));
    assert_eq!(balance(&chain, &key(3)), coins(40));
    chain.store().check_consistency().unwrap();
}

#[test]
fn locator_and_blocks_after() {
    let (_d, chain, g) = new_chain();
    let mut blocks = vec![g];
    for h in 1..=30 {
        let b = child(blocks.last().unwrap(), h, &key(3), vec![], 0);
        chain.accept_block(&b, NOW, Origin::Requested).unwrap();
        blocks.push(b);
    }
    let loc = chain.locator().unwrap();
    let hash = |h: usize| blocks[h].block_hash();
    assert_eq!(
        &loc[..10],
        &(21..=30).rev().map(hash).collect::<Vec<_>>()[..]
    );
    assert_eq!(loc.last(), Some(&hash(0)));
    assert!(loc.len() < 20);
    // A peer that knows up to height 12 (and a hash we don't know) gets 13.. in order.
    let r = chain.store().read().unwrap();
    let after = blocks_after(&r, &[BlockHash([9; 32]), hash(12), hash(5)], 5, usize::MAX).unwrap();
    assert_eq!(
        after.iter().map(Block::block_hash).collect::<Vec<_>>(),
        (13..18).map(hash).collect::<Vec<_>>()
    );
    // An unknown locator starts from genesis.
    assert_eq!(
        blocks_after(&r, &[], 2, usize::MAX).unwrap()[0].block_hash(),
        hash(0)
    );
    assert!(
        blocks_after(&r, &[hash(30)], 10, usize::MAX)
            .unwrap()
            .is_empty()
    );
    // The byte bound: one block at least, then only what fits.
    let size = r.block_size(&hash(13)).unwrap().unwrap();
    assert_eq!(blocks_after(&r, &[hash(12)], 10, 1).unwrap().len(), 1);
    // Served as stored: the same blocks, byte for byte, as encoding the decoded ones.
    let encoded = encoded_blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap();
    let decoded = blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap();
    let again: Vec<Vec<u8>> = decoded
        .iter()
        .map(gossipcoin_proto::encode::to_bytes)
        .collect();
    assert_eq!(encoded, again);
    assert_eq!(
        blocks_after(&r, &[hash(12)], 10, 3 * size).unwrap().len(),
        3
    );
    // Headers: the same walk, 80 bytes each, capped by `max`.
    let headers = headers_after(&r, &[BlockHash([9; 32]), hash(12)], 5).unwrap();
    assert_eq!(
        headers.iter().map(|h| h.block_hash()).collect::<Vec<_>>(),
        (13..18).map(hash).collect::<Vec<_>>()
    );
    assert_eq!(headers_after(&r, &[], 100).unwrap().len(), 31);
    assert!(headers_after(&r, &[hash(30)], 100).unwrap().is_empty());
    // By hash: in the order asked, unknown ones skipped, the byte bound respected.
    let asked = [hash(20), BlockHash([9; 32]), hash(3), hash(25)];
    let got = encoded_blocks_by_hash(&r, &asked, usize::MAX).unwrap();
    let want: Vec<Vec<u8>> = [20, 3, 25]
        .iter()
        .map(|&h| r.block_bytes(&hash(h)).unwrap().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(encoded_blocks_by_hash(&r, &asked, 1).unwrap().len(), 1);
}

#[test]
fn a_reorg_onto_an_invalid_branch_is_refused_whole() {
    let (_d, chain, g) = new_chain();
    let a1 = child(&g, 1, &key(3), vec![], 0);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    let mut b1 = child(&g, 1, &key(4), vec![payment(&g)], 0);
    b1.header.time += 7;
    crate::consensus::testutil::remine(&mut b1, &params());
    chain.accept_block(&b1, NOW, Origin::Requested).unwrap(); // side branch, spends not yet checked
    // b2 spends the genesis coin again: the branch is invalid once connected.
    let again = {
        let (k1, k5) = (key(1), key(5));
        signed_tx(
            &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
            vec![pay(&k5, coins(10))],
        )
    };
    let b2 = child(&b1, 2, &key(4), vec![again], 0);
    let err = chain.accept_block(&b2, NOW, Origin::Requested).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::MissingInput { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(chain.tip().unwrap().hash, a1.block_hash());
    assert_eq!(balance(&chain, &key(1)), coins(10));
    chain.store().check_consistency().unwrap();
}

/// Core's side-branch rules: an unrequested block on a branch with less work than the tip
/// is not stored; one with equal work only within the sender's allowance; a requested one
/// always.
#[test]
fn unrequested_side_blocks_are_stored_only_with_equal_work_and_allowance() {
    let (_d, chain, g) = new_chain();
    let a1 = child(&g, 1, &key(3), vec![], 0);
    let a2 = child(&a1, 2, &key(3), vec![], 0);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    let mut b1 = child(&g, 1, &key(4), vec![], 0);
    b1.header.time += 7;
    crate::consensus::testutil::remine(&mut b1, &params());
    let gossip = |may_store_side| Origin::Unrequested { may_store_side };
    // equal work, no allowance left: not stored
    assert!(matches!(
        chain.accept_block(&b1, NOW, gossip(false)).unwrap(),
        Accepted::NotStored { height: 1, .. }
    ));
    assert!(
        !chain
            .store()
            .read()
            .unwrap()
            .has_block(&b1.block_hash())
            .unwrap()
    );
    chain.accept_block(&a2, NOW, Origin::Requested).unwrap();
    // less work than the tip now: not stored even with an allowance
    assert!(matches!(
        chain.accept_block(&b1, NOW, gossip(true)).unwrap(),
        Accepted::NotStored { .. }
    ));
    assert!(
        chain
            .store()
            .read()
            .unwrap()
            .status(&b1.block_hash())
            .unwrap()
            .is_none()
    );
    // asked for (sync): stored
    assert!(matches!(
        chain.accept_block(&b1, NOW, Origin::Requested).unwrap(),
        Accepted::SideBranch { height: 1, .. }
    ));
    let a3 = child(&a2, 3, &key(3), vec![], 0);
    let mut b3 = child(&a2, 3, &key(4), vec![], 0);
    b3.header.time += 9;
    crate::consensus::testutil::remine(&mut b3, &params());
    chain.accept_block(&a3, NOW, Origin::Requested).unwrap();
    // equal work with an allowance: stored
    assert!(matches!(
        chain.accept_block(&b3, NOW, gossip(true)).unwrap(),
        Accepted::SideBranch { height: 3, .. }
    ));
    chain.store().check_consistency().unwrap();
}

/// An invalid block stored on a side branch (its spends are not checked there) is found out
/// when its branch gets more work: it is remembered as failed with its descendants, the
/// block that revealed it blames nobody, and from then on the branch is refused from the
/// index alone, as misbehaviour.
#[test]
fn an_invalid_side_branch_is_remembered_and_refused_cheaply() {
    let (_d, chain, g) = new_chain();
    let a1 = child(&g, 1, &key(3), vec![], 0);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    // b1 pays itself 1,000 coins: only the spends check (on connect) sees it
    let mut b1 = child(&g, 1, &key(4), vec![], 0);
    b1.txs[0].outputs[0].value = coins(1000);
    b1.header.time += 7;
    crate::consensus::testutil::remine(&mut b1, &params());
    let side = Origin::Unrequested {
        may_store_side: true,
    };
    assert!(matches!(
        chain.accept_block(&b1, NOW, side).unwrap(),
        Accepted::SideBranch { .. }
    ));
    let b2 = child(&b1, 2, &key(4), vec![], 0);
    let err = chain.accept_block(&b2, NOW, side).unwrap_err();
    assert!(
        matches!(err, ChainError::AncestorFailed { failed, .. } if failed == b1.block_hash()),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour(), "b2's sender could not know");
    let r = chain.store().read().unwrap();
    assert_eq!(
        r.status(&b1.block_hash()).unwrap(),
        Some(BlockStatus::Failed)
    );
    assert_eq!(
        r.status(&b2.block_hash()).unwrap(),
        Some(BlockStatus::DescendantOfFailed)
    );
    assert!(
        !r.has_block(&b2.block_hash()).unwrap(),
        "no data kept for b2"
    );
    drop(r);
    assert_eq!(chain.tip().unwrap().hash, a1.block_hash());
    // again: refused from the index, and now it is misbehaviour
    let err = chain.accept_block(&b2, NOW, side).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid { .. }), "{err}");
    assert!(err.is_peer_misbehaviour());
    let b3 = child(&b2, 3, &key(4), vec![], 0);
    let err = chain.accept_block(&b3, NOW, Origin::Requested).unwrap_err();
    assert!(matches!(err, ChainError::InvalidAncestor { .. }), "{err}");
    assert!(err.is_peer_misbehaviour());
    chain.store().check_consistency().unwrap();
}

/// CVE-2012-2459: a copy of a valid block with its transactions altered (merkle root no
/// longer matching) is refused but does not condemn the hash; the real block still connects.
#[test]
fn a_mutated_copy_does_not_poison_the_valid_block() {
    let (_d, chain, g) = new_chain();
    let a1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
    let mut mutated = a1.clone();
    mutated.txs.pop();
    let err = chain
        .accept_block(&mutated, NOW, Origin::Requested)
        .unwrap_err();
    assert!(err.is_peer_misbehaviour(), "{err}");
    assert!(
        chain
            .store()
            .read()
            .unwrap()
            .status(&a1.block_hash())
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        chain.accept_block(&a1, NOW, Origin::Requested).unwrap(),
        Accepted::NewTip { .. }
    ));
}

/// A block that breaks a context-free rule after its merkle root was checked is remembered.
#[test]
fn a_block_breaking_a_rule_is_remembered_as_failed() {
    let (_d, chain, g) = new_chain();
    let mut two_coinbases = child(&g, 1, &key(3), vec![], 0);
    two_coinbases
        .txs
        .push(Transaction::coinbase(7, key(3).pubkey_hash(), coins(1)));
    crate::consensus::testutil::remine(&mut two_coinbases, &params());
    let err = chain
        .accept_block(&two_coinbases, NOW, Origin::Requested)
        .unwrap_err();
    assert!(matches!(err, ChainError::Invalid { .. }), "{err}");
    let hash = two_coinbases.block_hash();
    assert_eq!(
        chain.store().read().unwrap().status(&hash).unwrap(),
        Some(BlockStatus::Failed)
    );
    let err = chain
        .accept_block(&two_coinbases, NOW, Origin::Requested)
        .unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid { .. }), "{err}");
}

/// `n` blocks on `parent` (at `height`), each on the one before, mined by key 3.
fn descendants(parent: &Block, height: u32, n: u32) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for h in height + 1..=height + n {
        let b = child(out.last().unwrap_or(parent), h, &key(3), vec![], 0);
        out.push(b);
    }
    out
}

fn headers_of(blocks: &[Block]) -> Vec<BlockHeader> {
    blocks.iter().map(|b| b.header).collect()
}

fn status_of(chain: &Chain, hash: &BlockHash) -> Option<BlockStatus> {
    chain.store().read().unwrap().status(hash).unwrap()
}

#[test]
fn a_run_of_headers_is_indexed_as_header_valid() {
    let (_d, chain, g) = new_chain();
    let blocks = descendants(&g, 0, 35);
    let work = g.header.work();
    let accepted = chain
        .accept_headers(&headers_of(&blocks[..30]), NOW)
        .unwrap();
    assert_eq!(accepted.new, 30);
    assert_eq!(accepted.last.height, 30);
    assert_eq!(accepted.last.header, blocks[29].header);
    let r = chain.store().read().unwrap();
    for (h, b) in blocks[..30].iter().enumerate() {
        let entry = r.index(&b.block_hash()).unwrap().unwrap();
        assert_eq!(entry.height, h as u32 + 1);
        let mut expect = work;
        for _ in 0..=h {
            expect = expect.saturating_add(work);
        }
        assert_eq!(entry.chain_work, expect);
        assert_eq!(
            r.status(&b.block_hash()).unwrap(),
            Some(BlockStatus::HeaderValid)
        );
        assert!(!r.has_block(&b.block_hash()).unwrap());
    }
    drop(r);
    // The tip does not move on headers alone.
    assert_eq!(chain.tip().unwrap().hash, g.block_hash());
    // An overlapping run: known headers are skipped but link; the rest are new.
    let again = chain
        .accept_headers(&headers_of(&blocks[10..35]), NOW)
        .unwrap();
    assert_eq!((again.new, again.last.height), (5, 35));
    // All known: nothing new, the last one's entry.
    let same = chain
        .accept_headers(&headers_of(&blocks[..3]), NOW)
        .unwrap();
    assert_eq!((same.new, same.last.height), (0, 3));
    // The genesis header itself is known.
    assert_eq!(chain.accept_headers(&[g.header], NOW).unwrap().new, 0);
    let report = chain.store().check_consistency().unwrap();
    assert_eq!(report.headers_only, 35);
    assert!(matches!(
        chain.accept_headers(&[], NOW),
        Err(ChainError::NoHeaders)
    ));
}

#[test]
fn headers_with_bad_proof_of_work_stop_the_run_after_the_good_ones() {
    let (_d, chain, g) = new_chain();
    let blocks = descendants(&g, 0, 4);
    let mut headers = headers_of(&blocks);
    while params().target().is_met_by(&headers[2].block_hash()) {
        headers[2].nonce += 1;
    }
    headers[3].prev = headers[2].block_hash();
    let err = chain.accept_headers(&headers, NOW).unwrap_err();
    let bad = headers[2].block_hash();
    assert!(
        matches!(err, ChainError::Invalid { hash, source: ValidationError::HighHash { .. } } if hash == bad),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    // The two before it are kept; it is not stored (without proof of work a header is free
    // to make, an index entry is not); the one after was not looked at.
    assert_eq!(
        status_of(&chain, &blocks[1].block_hash()),
        Some(BlockStatus::HeaderValid)
    );
    assert_eq!(status_of(&chain, &bad), None);
    assert_eq!(status_of(&chain, &headers[3].block_hash()), None);
    let err = chain.accept_headers(&headers[2..], NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::HighHash { .. },
                ..
            }
        ),
        "{err}"
    );
    // Wrong bits, likewise.
    let mut easy = blocks[2].header;
    easy.bits = 0x2100ffff;
    let err = chain.accept_headers(&[easy], NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::WrongBits { .. },
                ..
            }
        ),
        "{err}"
    );
    chain.store().check_consistency().unwrap();
}

#[test]
fn discontinuous_and_unconnected_runs() {
    let (_d, chain, g) = new_chain();
    let blocks = descendants(&g, 0, 3);
    let err = chain
        .accept_headers(&[blocks[0].header, blocks[2].header], NOW)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::DiscontinuousHeaders { at: 1 }),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    assert_eq!(status_of(&chain, &blocks[0].block_hash()), None);
    let err = chain
        .accept_headers(&headers_of(&blocks[1..]), NOW)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::UnconnectedHeaders { prev } if prev == blocks[0].block_hash()),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(status_of(&chain, &blocks[1].block_hash()), None);
}

#[test]
fn a_header_on_a_failed_block_is_an_invalid_ancestor() {
    let (_d, chain, g) = new_chain();
    let mut two_coinbases = child(&g, 1, &key(3), vec![], 0);
    two_coinbases
        .txs
        .push(Transaction::coinbase(7, key(3).pubkey_hash(), coins(1)));
    crate::consensus::testutil::remine(&mut two_coinbases, &params());
    chain
        .accept_block(&two_coinbases, NOW, Origin::Requested)
        .unwrap_err();
    let next = descendants(&two_coinbases, 1, 2);
    let err = chain.accept_headers(&headers_of(&next), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::InvalidAncestor { hash, failed }
            if hash == next[0].block_hash() && failed == two_coinbases.block_hash()),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    assert_eq!(
        status_of(&chain, &next[0].block_hash()),
        Some(BlockStatus::DescendantOfFailed)
    );
    assert_eq!(status_of(&chain, &next[1].block_hash()), None);
    // A header on the failed block without proof of work is refused and not written.
    let mut free = descendants(&two_coinbases, 1, 1)[0].header;
    free.time += 1;
    while params().target().is_met_by(&free.block_hash()) {
        free.nonce += 1;
    }
    let err = chain.accept_headers(&[free], NOW).unwrap_err();
    assert!(matches!(err, ChainError::InvalidAncestor { .. }), "{err}");
    assert_eq!(status_of(&chain, &free.block_hash()), None);
    chain.store().check_consistency().unwrap();
}

/// The median time past of a header is taken over the headers before it in the same run,
/// not yet committed; a time ahead of the clock is refused without being remembered.
#[test]
fn header_times_are_judged_against_the_run_before_them() {
    let (_d, chain, g) = new_chain();
    let mut headers = headers_of(&descendants(&g, 0, 13));
    // 12 headers 100 s apart, then one older than their median but newer than genesis.
    let mut prev = g.block_hash();
    for (i, h) in headers.iter_mut().enumerate() {
        h.prev = prev;
        h.time = if i < 12 {
            T0 + 100 * (i as u32 + 1)
        } else {
            T0 + 50
        };
        h.nonce = 0;
        while !params().target().is_met_by(&h.block_hash()) {
            h.nonce += 1;
        }
        prev = h.block_hash();
    }
    let err = chain.accept_headers(&headers, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::TimeTooOld { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    assert_eq!(
        status_of(&chain, &headers[11].block_hash()),
        Some(BlockStatus::HeaderValid)
    );
    assert_eq!(
        status_of(&chain, &headers[12].block_hash()),
        Some(BlockStatus::Failed)
    );
    // Too new for our clock: refused, not remembered, not misbehaviour.
    let mut early = headers[11];
    early.prev = headers[11].block_hash();
    early.time = NOW + params().max_future_block_time + 1;
    while !params().target().is_met_by(&early.block_hash()) {
        early.nonce += 1;
    }
    let err = chain.accept_headers(&[early], NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::TimeTooNew { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(status_of(&chain, &early.block_hash()), None);
    chain.store().check_consistency().unwrap();
}

/// A block whose parent is indexed by its header alone is an orphan (not a store failure);
/// once the parent's block comes, both connect.
#[test]
fn a_block_on_a_header_only_parent_is_an_orphan() {
    let (_d, chain, g) = new_chain();
    let blocks = descendants(&g, 0, 2);
    chain.accept_headers(&headers_of(&blocks), NOW).unwrap();
    let err = chain
        .accept_block(&blocks[1], NOW, Origin::Requested)
        .unwrap_err();
    assert!(
        matches!(err, ChainError::Orphan { prev, .. } if prev == blocks[0].block_hash()),
        "{err}"
    );
    assert!(!err.is_fatal() && !err.is_peer_misbehaviour());
    for b in &blocks {
        assert!(matches!(
            chain.accept_block(b, NOW, Origin::Requested).unwrap(),
            Accepted::NewTip { .. }
        ));
    }
    assert_eq!(
        status_of(&chain, &blocks[1].block_hash()),
        Some(BlockStatus::FullyValid)
    );
    chain.store().check_consistency().unwrap();
}

/// Six blocks on genesis whose transactions spend coins created by earlier blocks of the same
/// run, and earlier transactions of the same block: b1 pays key 2 from genesis, b2 spends that
/// and b1's coinbase, b3 spends b2's outputs in a chain of two transactions, b4–b6 are empty.
fn spending_run(g: &Block) -> Vec<Block> {
    let (k1, k2, k3, k4) = (key(1), key(2), key(3), key(4));
    let b1 = child(g, 1, &k3, vec![payment(g)], 0);
    let pay_k2 = &b1.txs[1];
    let t2 = signed_tx(
        &[
            (out_of(pay_k2, 0), pay_k2.outputs[0], &k2),
            (out_of(&b1.txs[0], 0), b1.txs[0].outputs[0], &k3),
        ],
        vec![pay(&k4, coins(13)), pay(&k2, coins(1))],
    );
    let b2 = child(&b1, 2, &k3, vec![t2.clone()], 0);
    let t3 = signed_tx(
        &[(out_of(&t2, 0), t2.outputs[0], &k4)],
        vec![pay(&k1, coins(12))],
    );
    let t3b = signed_tx(
        &[(out_of(&t3, 0), t3.outputs[0], &k1)],
        vec![pay(&k2, coins(11))],
    );
    let b3 = child(&b2, 3, &k3, vec![t3, t3b], 2 * 100_000_000);
    let mut run = vec![b1, b2, b3];
    run.extend(descendants(&run[2].clone(), 3, 3));
    run
}

fn utxos(chain: &Chain) -> Vec<(OutPoint, gossipcoin_proto::Coin)> {
    chain.store().read().unwrap().utxo_set().unwrap()
}

#[test]
fn a_batch_ends_exactly_where_one_block_at_a_time_does() {
    let (_d1, one, g) = new_chain();
    let (_d2, batched, _) = new_chain();
    let run = spending_run(&g);
    let mut tips = Vec::new();
    for b in &run {
        match one.accept_block(b, NOW, Origin::Requested).unwrap() {
            Accepted::NewTip { tip, .. } => tips.push(tip),
            other => panic!("{other:?}"),
        }
    }
    let mut commits = Vec::new();
    let accepted = batched
        .accept_batch_with(&run, NOW, |c| {
            commits.push(c.connected.iter().map(|&(k, _)| k).collect::<Vec<_>>())
        })
        .unwrap();
    assert!(accepted.stopped.is_none(), "{:?}", accepted.stopped);
    assert_eq!(accepted.connected, tips);
    assert_eq!(commits, vec![(0..6).collect::<Vec<_>>()], "one write");
    assert_eq!(batched.tip().unwrap(), one.tip().unwrap());
    assert_eq!(utxos(&batched), utxos(&one));
    for k in 1..=4 {
        assert_eq!(
            balance(&batched, &key(k)),
            balance(&one, &key(k)),
            "key {k}"
        );
    }
    assert_eq!(balance(&batched, &key(2)), coins(12));
    let report = batched.store().check_consistency().unwrap();
    assert_eq!(report, one.store().check_consistency().unwrap());
    // Again: every block is a duplicate, skipped; nothing connected, nothing stopped.
    let again = batched.accept_batch(&run, NOW).unwrap();
    assert!(again.connected.is_empty() && again.stopped.is_none());
    // Overlapping: the known ones skipped, the new ones connected.
    let more = descendants(run.last().unwrap(), 6, 2);
    let overlap: Vec<Block> = run[4..].iter().chain(&more).cloned().collect();
    let accepted = batched.accept_batch(&overlap, NOW).unwrap();
    assert_eq!(
        accepted
            .connected
            .iter()
            .map(|t| t.height)
            .collect::<Vec<_>>(),
        vec![7, 8]
    );
}

#[test]
fn a_long_batch_is_committed_in_several_writes() {
    let (_d, chain, g) = new_chain();
    let run = descendants(&g, 0, BATCH_MAX_BLOCKS as u32 + 10);
    let mut sizes = Vec::new();
    let accepted = chain
        .accept_batch_with(&run, NOW, |c| sizes.push(c.connected.len()))
        .unwrap();
    assert!(accepted.stopped.is_none());
    assert_eq!(accepted.connected.len(), run.len());
    assert!(sizes.len() >= 2, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= BATCH_MAX_BLOCKS), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), run.len());
    assert_eq!(chain.tip().unwrap().hash, run.last().unwrap().block_hash());
    chain.store().check_consistency().unwrap();
}

/// The first bad block of a batch is found as `accept_block` would find it: the blocks
/// before it connected, it remembered as failed, the ones after it not looked at.
#[test]
fn a_bad_signature_in_a_batch_stops_it_at_that_block() {
    let (_d, chain, g) = new_chain();
    let mut run = spending_run(&g);
    // b3's second transaction gets a bad signature; b4.. are rebuilt on the new b3.
    run[2].txs[2].inputs[0].signature.0[9] ^= 1;
    crate::consensus::testutil::remine(&mut run[2], &params());
    let after = descendants(&run[2], 3, 3);
    run.truncate(3);
    run.extend(after);
    let accepted = chain.accept_batch(&run, NOW).unwrap();
    assert_eq!(accepted.connected.len(), 2);
    let (at, err) = accepted.stopped.expect("stopped at b3");
    assert_eq!(at, 2);
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                hash,
                source: ValidationError::BadSignature { input: 0, .. }
            } if hash == run[2].block_hash()
        ),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour());
    assert_eq!(chain.tip().unwrap().hash, run[1].block_hash());
    assert_eq!(
        status_of(&chain, &run[2].block_hash()),
        Some(BlockStatus::Failed)
    );
    assert_eq!(status_of(&chain, &run[3].block_hash()), None);
    chain.store().check_consistency().unwrap();
    // The rest of the branch is refused from the index alone.
    let rest = chain.accept_batch(&run[3..], NOW).unwrap();
    assert!(rest.connected.is_empty());
    assert!(matches!(
        rest.stopped,
        Some((0, ChainError::InvalidAncestor { .. }))
    ));
}

/// A coin spent by an earlier block of the batch is gone for the later ones (the write view
/// sees the batch's own changes): spending it again is a missing input at that block.
#[test]
fn a_double_spend_across_blocks_of_a_batch_is_found() {
    let (_d, chain, g) = new_chain();
    let b1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
    let b2 = child(&b1, 2, &key(3), vec![], 0);
    let again = {
        let (k1, k5) = (key(1), key(5));
        signed_tx(
            &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &k1)],
            vec![pay(&k5, coins(10))],
        )
    };
    let b3 = child(&b2, 3, &key(3), vec![again], 0);
    let b4 = child(&b3, 4, &key(3), vec![], 0);
    let accepted = chain
        .accept_batch(&[b1, b2.clone(), b3.clone(), b4], NOW)
        .unwrap();
    assert_eq!(accepted.connected.len(), 2);
    assert!(
        matches!(
            accepted.stopped,
            Some((2, ChainError::Invalid { hash, source: ValidationError::MissingInput { .. } }))
                if hash == b3.block_hash()
        ),
        "{:?}",
        accepted.stopped
    );
    assert_eq!(chain.tip().unwrap().hash, b2.block_hash());
    assert_eq!(balance(&chain, &key(2)), coins(4));
    chain.store().check_consistency().unwrap();
}

/// A batch that starts on a fork with more work than the tip reorganises to it (blocks with
/// no more work than the tip are stored on the side, not counted), then goes on fast.
#[test]
fn a_batch_on_a_heavier_fork_ends_on_its_tip() {
    let (_d, chain, g) = new_chain();
    let a1 = child(&g, 1, &key(3), vec![payment(&g)], 0);
    let a2 = child(&a1, 2, &key(3), vec![], 0);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    chain.accept_block(&a2, NOW, Origin::Requested).unwrap();
    let mut b1 = child(&g, 1, &key(4), vec![], 0);
    b1.header.time += 7;
    crate::consensus::testutil::remine(&mut b1, &params());
    let mut fork = vec![b1.clone()];
    fork.extend(descendants(&b1, 1, 4));
    let mut disconnected = Vec::new();
    let accepted = chain
        .accept_batch_with(&fork, NOW, |c| {
            disconnected.extend(c.disconnected.iter().map(Block::block_hash))
        })
        .unwrap();
    assert!(accepted.stopped.is_none(), "{:?}", accepted.stopped);
    assert_eq!(
        accepted
            .connected
            .iter()
            .map(|t| t.height)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(disconnected, vec![a2.block_hash(), a1.block_hash()]);
    assert_eq!(chain.tip().unwrap().hash, fork[4].block_hash());
    assert_eq!(balance(&chain, &key(2)), Amount::ZERO);
    assert_eq!(balance(&chain, &key(1)), coins(10));
    chain.store().check_consistency().unwrap();
}

/// Headers first, then their blocks in a batch: everything connects and no header is left
/// without its block.
#[test]
fn headers_then_a_batch_of_their_blocks() {
    let (_d, chain, g) = new_chain();
    let run = spending_run(&g);
    chain.accept_headers(&headers_of(&run), NOW).unwrap();
    assert_eq!(chain.store().check_consistency().unwrap().headers_only, 6);
    let accepted = chain.accept_batch(&run, NOW).unwrap();
    assert!(accepted.stopped.is_none(), "{:?}", accepted.stopped);
    assert_eq!(accepted.connected.len(), 6);
    for b in &run {
        assert_eq!(
            status_of(&chain, &b.block_hash()),
            Some(BlockStatus::FullyValid)
        );
    }
    let report = chain.store().check_consistency().unwrap();
    assert_eq!(report.headers_only, 0);
    assert_eq!(report.main_chain_blocks, 7);
}

/// Core's anti-DoS work threshold: a run of headers whose branch ends more than
/// `ANTI_DOS_BLOCKS` blocks' work below our tip is neither stored nor held against its sender;
/// one within it is stored.
#[test]
fn headers_of_a_branch_far_below_our_tip_are_not_stored() {
    let (_d, chain, g) = new_chain();
    let main = descendants(&g, 0, 200);
    for b in &main {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    // A branch from genesis, 10 headers long: ends 190 blocks below our tip.
    let fork = child(&g, 1, &key(4), vec![], 0);
    let mut deep = vec![fork.clone()];
    deep.extend(descendants(&fork, 1, 9));
    let err = chain.accept_headers(&headers_of(&deep), NOW).unwrap_err();
    assert!(matches!(err, ChainError::LowWorkHeaders { .. }), "{err}");
    assert!(!err.is_peer_misbehaviour());
    assert_eq!(status_of(&chain, &fork.block_hash()), None);
    // A branch from height 100, 10 headers long: ends 90 blocks below, within the threshold.
    let at_100 = &main[99];
    let near_fork = child(at_100, 101, &key(4), vec![], 0);
    let mut near = vec![near_fork.clone()];
    near.extend(descendants(&near_fork, 101, 9));
    let accepted = chain.accept_headers(&headers_of(&near), NOW).unwrap();
    assert_eq!((accepted.new, accepted.last.height), (10, 110));
    chain.store().check_consistency().unwrap();
}

/// A side block left on a losing branch gives back its disk once the tip is
/// `SIDE_PRUNE_DEPTH` blocks past it: its data goes, its header stays; a recent side block and
/// the main chain are untouched.
#[test]
fn side_blocks_far_below_the_tip_are_pruned_to_their_headers() {
    let (_d, chain, g) = new_chain();
    let main = descendants(&g, 0, 120);
    let old_side = child(&main[3], 5, &key(4), vec![], 0);
    let new_side = child(&main[113], 115, &key(4), vec![], 0);
    for (i, b) in main.iter().enumerate() {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
        if i == 4 {
            let side = chain
                .accept_block(&old_side, NOW, Origin::Requested)
                .unwrap();
            assert!(matches!(side, Accepted::SideBranch { .. }), "{side:?}");
        }
        if i == 114 {
            chain
                .accept_block(&new_side, NOW, Origin::Requested)
                .unwrap();
        }
    }
    assert_eq!(chain.prune_side_blocks().unwrap(), 1);
    assert_eq!(
        status_of(&chain, &old_side.block_hash()),
        Some(BlockStatus::HeaderValid)
    );
    assert_eq!(
        status_of(&chain, &new_side.block_hash()),
        Some(BlockStatus::DataStored)
    );
    assert_eq!(
        status_of(&chain, &main[4].block_hash()),
        Some(BlockStatus::FullyValid)
    );
    assert_eq!(
        chain.prune_side_blocks().unwrap(),
        0,
        "nothing left to prune"
    );
    chain.store().check_consistency().unwrap();
    // The pruned block can be stored again, should its branch ever come back.
    chain
        .accept_block(&old_side, NOW, Origin::Requested)
        .unwrap();
    assert_eq!(
        status_of(&chain, &old_side.block_hash()),
        Some(BlockStatus::DataStored)
    );
}
