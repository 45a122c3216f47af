//! Hostile peers against real in-process nodes (issue 9): each test plays one attack the issue
//! measured and checks the node's state afterwards — who is banned, what is stored, what was
//! relayed — through the node's own `Control`, never its logs.
//!
//! `RUST_LOG=net=debug,sync=debug,chain=debug cargo test --test hostile` shows the nodes' logs.

mod flood;
mod harness;
mod peers;
mod sync;
mod txrelay;

use gossipcoin_proto::Amount;
use harness::{Attacker, TestNode, child, genesis, wait_for};

fn coins(n: u64) -> Amount {
    Amount::from_coins(n).unwrap()
}

/// Issue 9, "read in the code": an invalid child sent to V by attacker X, whose valid parent
/// then reaches V through honest H. The child's invalidity is charged to X, who sent it — not
/// to H, who only delivered its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_orphan_is_charged_to_its_sender_not_to_the_parents() {
    let g = genesis();
    let h = TestNode::start(&g, &[]).await;
    let v = TestNode::start(&g, &[]).await;
    // H has block 1; V does not know it yet.
    let p = child(&g, 1, coins(10), vec![]);
    let c = child(&p, 2, coins(1000), vec![]); // pays itself 1,000 coins: invalid
    h.control.submit_block(p.clone()).await.unwrap();

    let mut x = Attacker::connect(&v.addr, g.block_hash()).await;
    x.gossip_block(&c);
    // V pooled the orphan and asks X for its ancestors, which X never sends.
    x.wait_for_request().await;

    // Now V meets H, which has more work: V downloads P from H, then connects the orphan.
    v.control.register(&h.addr, &h.addr).await.unwrap();
    wait_for("V to adopt H's block", || async {
        v.tip().await == p.block_hash()
    })
    .await;
    wait_for("X to be banned by V", || async {
        v.peer_score(x.id).await.is_none()
    })
    .await;
    assert!(!x.connected_to(v.id).await, "X is still connected to V");
    let score = v.peer_score(h.id).await;
    assert!(
        score.is_some_and(|s| s >= 0.0),
        "H was charged for X's orphan: {score:?}"
    );
    assert!(!v.has_block(c.block_hash()).await);
    v.stop().await.unwrap();
    h.stop().await.unwrap();
}

/// Issue 9, attack 4: a sibling of the tip with a 1,000-coin coinbase (valid proof of work,
/// equal work) is stored by the victim as a side branch, but never relayed: a block is relayed
/// only once it is fully valid on the main chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_side_block_is_not_relayed() {
    let g = genesis();
    let v = TestNode::start(&g, &[]).await;
    let h = TestNode::start(&g, &[&v.addr]).await;
    wait_for("H and V to connect", || async {
        v.peer_score(h.id).await.is_some()
    })
    .await;
    let a1 = child(&g, 1, coins(10), vec![]);
    v.control.submit_block(a1.clone()).await.unwrap();
    wait_for("H to get a1", || async { h.tip().await == a1.block_hash() }).await;

    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let side = child(&g, 1, coins(1000), vec![]);
    x.gossip_block(&side);
    wait_for("V to store the side block", || async {
        v.has_block(side.block_hash()).await
    })
    .await;
    // A valid block after it, through the same relay path: once H has it, H would have had
    // the side block too, had V relayed it.
    let a2 = child(&a1, 2, coins(10), vec![]);
    v.control.submit_block(a2.clone()).await.unwrap();
    wait_for("H to get a2", || async { h.tip().await == a2.block_hash() }).await;
    assert!(
        !h.has_block(side.block_hash()).await,
        "V relayed a side block it had not validated"
    );
    assert_eq!(v.tip().await, a2.block_hash());
    h.stop().await.unwrap();
    v.stop().await.unwrap();
}

/// Issue 18, item 6, measured: an invalid side block (a 1,000-coin coinbase, stored unchecked
/// as a sibling of the tip) and then a child on it from another identity. The child makes its
/// branch the heavier one, the reorg finds the side block invalid — and that used to cost
/// nobody. Now the side block's sender pays for it, and the child's sender for building on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_side_block_costs_its_sender_once_a_child_reveals_it() {
    let g = genesis();
    let a1 = child(&g, 1, coins(10), vec![]);
    let v = TestNode::start_with(&g, std::slice::from_ref(&a1), &[]).await;
    let x1 = Attacker::connect(&v.addr, g.block_hash()).await;
    let x2 = Attacker::connect(&v.addr, g.block_hash()).await;
    let side = child(&g, 1, coins(1000), vec![]);
    x1.gossip_block(&side);
    wait_for("V to store the side block", || async {
        v.has_block(side.block_hash()).await
    })
    .await;
    let on_side = child(&side, 2, coins(10), vec![]);
    x2.gossip_block(&on_side);
    wait_for("V to charge the side block's sender", || async {
        v.peer_score(x1.id).await.is_none_or(|s| s <= -40.0)
    })
    .await;
    wait_for("V to charge the child's sender", || async {
        v.peer_score(x2.id).await.is_none_or(|s| s < 0.0)
    })
    .await;
    assert_eq!(v.tip().await, a1.block_hash(), "V kept its valid chain");
    v.stop().await.unwrap();
}

/// Issue 9, attack 1: blocks above the chain's size limit, with a valid header, are refused
/// before they are decoded and cost the sender its connection; the victim's chain is as it was
/// and an honest block still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fat_blocks_get_the_sender_banned_and_leave_the_chain_alone() {
    let g = genesis();
    let v = TestNode::start(&g, &[]).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let max = harness::params().max_block_size;
    for n in 0..5u32 {
        // ~1.5 MB of empty transactions under a header with valid proof of work
        let mut fat = child(&g, 1, coins(10), vec![]);
        let empty = gossipcoin_proto::Transaction {
            version: n,
            inputs: vec![],
            outputs: vec![],
        };
        fat.txs.extend(std::iter::repeat_n(empty, max / 2));
        harness::mine(&mut fat, &harness::params());
        x.gossip_block(&fat);
    }
    wait_for("X to be banned", || async { !x.connected_to(v.id).await }).await;
    assert_eq!(v.tip().await, g.block_hash());
    let a1 = child(&g, 1, coins(10), vec![]);
    v.control.submit_block(a1.clone()).await.unwrap();
    assert_eq!(v.tip().await, a1.block_hash());
    v.stop().await.unwrap();
}

/// Issue 20: on an ASERT chain, a block whose bits are not the ones its parent requires is
/// refused and charged to its sender like bad proof of work — here a block claiming a harder
/// target than due (more work than it may count), with valid proof of work for it. The same
/// block with the required bits is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_the_wrong_bits_is_refused_and_charged_on_an_asert_chain() {
    let params = gossipcoin::params::ChainParams {
        retarget: gossipcoin::params::Retarget::Asert,
        ..harness::params()
    };
    let g = genesis();
    let v = TestNode::start_with_params(&g, &[], &[], params.clone()).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let due = child(&g, 1, coins(10), vec![]);
    assert_eq!(
        due.header.bits, params.pow_bits,
        "block 1 on schedule: the limit"
    );
    let mut harder = due.clone();
    harder.header.bits = 0x2000_ffff;
    let target = gossipcoin_proto::Target::from_compact(harder.header.bits).unwrap();
    while !target.is_met_by(&harder.block_hash()) {
        harder.header.nonce += 1;
    }
    x.gossip_block(&harder);
    wait_for("V to charge the sender", || async {
        v.peer_score(x.id).await.is_some_and(|s| s < 0.0)
    })
    .await;
    assert_eq!(v.tip().await, g.block_hash());
    assert!(!v.has_block(harder.block_hash()).await);
    v.control.submit_block(due.clone()).await.unwrap();
    assert_eq!(v.tip().await, due.block_hash(), "the due bits are accepted");
    v.stop().await.unwrap();
}
