//! The chain with ASERT difficulty: every block's bits checked against its parent (blocks,
//! headers, batches), wrong bits refused and charged, the target following the block rate, and
//! the same targets recomputed from the stored headers after a restart.

use gossipcoin_proto::{Block, BlockHeader, Target, Transaction};

use super::*;
use crate::consensus::testutil::{EASY_BITS, T0, coins, key};
use crate::consensus::{Anchor, asert_anchor, required_bits};
use crate::params::Retarget;
use crate::store::BlockStatus;

const NOW: u32 = T0 + 1_000_000;

/// The devnet's ASERT (2 s spacing, 60 s half-life) with an easy limit, so tests mine at once.
fn asert_params() -> ChainParams {
    ChainParams {
        pow_bits: EASY_BITS,
        retarget: Retarget::Asert,
        ..ChainParams::devnet()
    }
}

/// Finds a nonce meeting the target of the header's own bits.
fn mine(block: &mut Block) {
    block.header.merkle_root = block.compute_merkle_root();
    let target = Target::from_compact(block.header.bits).unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

fn block(prev: BlockHash, height: u32, time: u32, bits: u32) -> Block {
    let mut b = Block {
        header: BlockHeader {
            version: 1,
            prev,
            merkle_root: Default::default(),
            time,
            bits,
            nonce: 0,
        },
        txs: vec![Transaction::coinbase(
            height,
            key(3).pubkey_hash(),
            coins(10),
        )],
    };
    mine(&mut b);
    b
}

fn new_chain() -> (tempfile::TempDir, Chain, Block, Anchor) {
    let dir = tempfile::tempdir().unwrap();
    let g = block(BlockHash::ZERO, 0, T0, EASY_BITS);
    let p = asert_params();
    let anchor = asert_anchor(&p, &g.header).unwrap();
    let chain = Chain::create(&dir.path().join("chain"), p, &g).unwrap();
    (dir, chain, g, anchor)
}

/// `gaps.len()` blocks on `parent` (at `height`), each `gap` seconds after the one before, each
/// with the bits ASERT requires.
fn run(parent: &Block, height: u32, gaps: &[u32], anchor: &Anchor) -> Vec<Block> {
    let p = asert_params();
    let mut out: Vec<Block> = Vec::new();
    for (i, gap) in gaps.iter().enumerate() {
        let prev = out.last().unwrap_or(parent);
        let prev_height = height + i as u32;
        let bits = required_bits(&p, Some(anchor), prev_height, &prev.header);
        out.push(block(
            prev.block_hash(),
            prev_height + 1,
            prev.header.time + gap,
            bits,
        ));
    }
    out
}

fn target_of(bits: u32) -> Target {
    Target::from_compact(bits).unwrap()
}

#[test]
fn blocks_faster_than_the_spacing_get_a_smaller_target() {
    let (_d, chain, g, anchor) = new_chain();
    // On schedule (2 s) the target stays at the limit.
    let steady = run(&g, 0, &[2; 40], &anchor);
    for b in &steady {
        assert_eq!(b.header.bits, EASY_BITS);
    }
    // Twice the hash rate (1 s apart): smaller and smaller targets, each one accepted.
    let fast = run(&g, 0, &[1; 40], &anchor);
    for b in &fast {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    let tip = chain.tip().unwrap();
    assert_eq!(tip.hash, fast[39].block_hash());
    let next = chain.next_bits(&tip.hash).unwrap();
    assert!(target_of(next) < target_of(EASY_BITS));
    assert!(target_of(fast[39].header.bits) < target_of(fast[10].header.bits));
    // 40 s ahead of a 60 s half-life: about 2^(-41/60) of the limit.
    let ratio = target_of(EASY_BITS).0.to_f64() / target_of(next).0.to_f64();
    assert!((1.55..1.65).contains(&ratio), "{ratio}");
    // Harder blocks weigh more: 40 fast blocks are more work than 40 steady ones would be.
    assert!(tip.chain_work > g.header.work().saturating_add(steady_work(&steady)));
    chain.store().check_consistency().unwrap();
}

fn steady_work(blocks: &[Block]) -> gossipcoin_proto::U256 {
    blocks.iter().fold(gossipcoin_proto::U256::ZERO, |w, b| {
        w.saturating_add(b.header.work())
    })
}

#[test]
fn a_block_with_the_wrong_bits_is_refused_and_charged() {
    let (_d, chain, g, anchor) = new_chain();
    let fast = run(&g, 0, &[1; 20], &anchor);
    for b in &fast[..19] {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    // The last block claims the limit (easier than required), with valid proof of work for it.
    let mut easy = fast[19].clone();
    easy.header.bits = EASY_BITS;
    mine(&mut easy);
    assert_ne!(fast[19].header.bits, EASY_BITS);
    let err = chain
        .accept_block(&easy, NOW, Origin::Requested)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Invalid {
                source: ValidationError::WrongBits { got: EASY_BITS, expected },
                ..
            } if expected == fast[19].header.bits
        ),
        "{err}"
    );
    assert!(err.is_peer_misbehaviour(), "charged like bad proof of work");
    let r = chain.store().read().unwrap();
    assert_eq!(
        r.status(&easy.block_hash()).unwrap(),
        Some(BlockStatus::Failed)
    );
    drop(r);
    // Refused from the index the next time, and the right block still connects.
    assert!(matches!(
        chain.accept_block(&easy, NOW, Origin::Requested),
        Err(ChainError::KnownInvalid { .. })
    ));
    chain
        .accept_block(&fast[19], NOW, Origin::Requested)
        .unwrap();
    assert_eq!(chain.tip().unwrap().hash, fast[19].block_hash());
}

#[test]
fn headers_are_checked_header_by_header() {
    let (_d, chain, g, anchor) = new_chain();
    let fast = run(&g, 0, &[1; 30], &anchor);
    let mut headers: Vec<BlockHeader> = fast.iter().map(|b| b.header).collect();
    // Header 20 claims the bits of header 10 (a valid target, not the required one).
    let mut wrong = fast[20].clone();
    wrong.header.bits = fast[10].header.bits;
    mine(&mut wrong);
    headers[20] = wrong.header;
    headers.truncate(21);
    let err = chain.accept_headers(&headers, NOW).unwrap_err();
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
    assert!(err.is_peer_misbehaviour());
    let r = chain.store().read().unwrap();
    assert_eq!(
        r.status(&fast[19].block_hash()).unwrap(),
        Some(BlockStatus::HeaderValid),
        "the headers before it stay indexed"
    );
    assert_eq!(
        r.status(&wrong.block_hash()).unwrap(),
        None,
        "proof of work for other bits than due is no work: not stored"
    );
    drop(r);
    // The honest run is indexed with each header's own work, then its blocks connect in a
    // batch with the same result.
    let honest: Vec<BlockHeader> = fast.iter().map(|b| b.header).collect();
    let accepted = chain.accept_headers(&honest, NOW).unwrap();
    assert_eq!(accepted.last.height, 30);
    let batch = chain.accept_batch(&fast, NOW).unwrap();
    assert_eq!(batch.connected.len(), 30);
    assert!(batch.stopped.is_none());
    let tip = chain.tip().unwrap();
    assert_eq!(tip.chain_work, accepted.last.chain_work);
    assert_eq!(
        tip.chain_work,
        g.header.work().saturating_add(steady_work(&fast))
    );
    // A batch block with wrong bits stops the batch with the same error as alone.
    let more = run(&fast[29], 30, &[1; 3], &anchor);
    let mut bad = more[1].clone();
    bad.header.bits = EASY_BITS;
    mine(&mut bad);
    let stopped = chain.accept_batch(&[more[0].clone(), bad], NOW).unwrap();
    assert_eq!(stopped.connected.len(), 1);
    let (at, err) = stopped.stopped.unwrap();
    assert_eq!(at, 1);
    assert!(err.is_peer_misbehaviour(), "{err}");
}

#[test]
fn a_restarted_chain_recomputes_the_same_targets() {
    let dir = tempfile::tempdir().unwrap();
    let g = block(BlockHash::ZERO, 0, T0, EASY_BITS);
    let anchor = asert_anchor(&asert_params(), &g.header).unwrap();
    let blocks = run(&g, 0, &[1, 1, 3, 1, 1, 1, 5, 1, 1, 1, 1, 1], &anchor);
    let path = dir.path().join("chain");
    let before: Vec<u32> = {
        let chain = Chain::create(&path, asert_params(), &g).unwrap();
        chain.accept_batch(&blocks, NOW).unwrap();
        blocks
            .iter()
            .map(|b| chain.next_bits(&b.block_hash()).unwrap())
            .collect()
    };
    let chain = Chain::open(&path, asert_params()).unwrap();
    let after: Vec<u32> = blocks
        .iter()
        .map(|b| chain.next_bits(&b.block_hash()).unwrap())
        .collect();
    assert_eq!(before, after);
    // And they are the bits the next blocks carry: a restarted node accepts them.
    assert_eq!(
        &after[..11],
        &blocks[1..]
            .iter()
            .map(|b| b.header.bits)
            .collect::<Vec<_>>()[..]
    );
    let next = run(&blocks[11], 12, &[2], &anchor);
    assert_eq!(next[0].header.bits, after[11]);
    chain
        .accept_block(&next[0], NOW, Origin::Requested)
        .unwrap();
    chain.store().check_consistency().unwrap();
}

#[test]
fn a_block_dated_too_far_ahead_is_refused_without_blame_and_accepted_later() {
    let (_d, chain, g, anchor) = new_chain();
    let gap = asert_params().max_future_block_time + 10;
    let early = run(&g, 0, &[gap], &anchor);
    let now = T0 + 5;
    let err = chain
        .accept_block(&early[0], now, Origin::Requested)
        .unwrap_err();
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
    let r = chain.store().read().unwrap();
    assert_eq!(
        r.status(&early[0].block_hash()).unwrap(),
        None,
        "not marked failed"
    );
    drop(r);
    // The clock moves on: the same block is valid.
    chain
        .accept_block(&early[0], now + gap, Origin::Requested)
        .unwrap();
    assert_eq!(chain.tip().unwrap().hash, early[0].block_hash());
}

#[test]
fn a_genesis_block_must_carry_pow_bits() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = block(BlockHash::ZERO, 0, T0, 0x2000ffff);
    mine(&mut g);
    let err = Chain::create(&dir.path().join("chain"), asert_params(), &g)
        .err()
        .expect("refused");
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
}
