//! What a node believes about its peers' chains (issue 12: `/peers` heights were stale).

use crate::coins;
use crate::harness::{TestNode, child, genesis, wait_for};

/// Issue 12, item 9: central reported the miner at 5 and the wallet at 4 while all were at 6.
/// A block made at A reaches C by gossip, which never sends it back; only C's announcement of
/// its new tip tells A that C has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_took_our_block_is_shown_at_its_new_height() {
    let g = genesis();
    let a = TestNode::start(&g, &[]).await;
    let c = TestNode::start(&g, &[&a.addr]).await;
    let height_of_c = || async {
        a.control
            .peers()
            .await
            .into_iter()
            .find(|p| p.peer == c.id)
            .and_then(|p| p.status)
            .map(|s| s.height)
    };
    wait_for("A to know C's status", || async {
        height_of_c().await == Some(0)
    })
    .await;
    let mut parent = g.clone();
    for height in 1..=3 {
        let block = child(&parent, height, coins(10), vec![]);
        a.control.submit_block(block.clone()).await.unwrap();
        wait_for("C to take A's block", || async {
            c.tip().await == block.block_hash()
        })
        .await;
        parent = block;
    }
    wait_for("A to show C at height 3", || async {
        height_of_c().await == Some(3)
    })
    .await;
    c.stop().await.unwrap();
    a.stop().await.unwrap();
}
