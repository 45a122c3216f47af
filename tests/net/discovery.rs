//! Discovery: nodes that only know the central node find each other through kad and identify,
//! and keep gossiping after the central node is gone.

use std::time::Instant;

use gossipcoin::net::{NetworkEvent, Verdict};

use crate::{block, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_the_central_node_find_each_other_and_survive_its_loss() {
    let a = start(&[]).await;
    let t0 = Instant::now();
    // one bootstrap address with the peer id, one without
    let mut b = start(&[&a.addr]).await;
    let mut c = start(&[&a.plain_addr]).await;
    b.wait_connected(a.id).await;
    c.wait_connected(a.id).await;

    within("B and C to find each other", async {
        loop {
            if b.handle.peers().await.iter().any(|p| p.peer == c.id) {
                break;
            }
            // wake on B's next event rather than polling on a timer
            let _ = b.events.recv().await;
        }
    })
    .await;
    eprintln!(
        "measured: B and C (bootstrapped only to A) connected after {:?}",
        t0.elapsed()
    );

    a.stop();
    b.wait_for("A's disconnection", |e| match e {
        NetworkEvent::PeerDisconnected { peer } if peer == a.id => Some(()),
        _ => None,
    })
    .await;
    c.wait_for("A's disconnection", |e| match e {
        NetworkEvent::PeerDisconnected { peer } if peer == a.id => Some(()),
        _ => None,
    })
    .await;

    let t1 = Instant::now();
    b.handle.publish_block(&block(20)).await;
    let (id, peer, got) = c
        .wait_for("B's block", |e| match e {
            NetworkEvent::GossipBlock {
                id, peer, block, ..
            } => Some((id, peer, block)),
            _ => None,
        })
        .await;
    assert_eq!((peer, got), (b.id, block(20)));
    c.handle.report(id, peer, Verdict::Accept);
    eprintln!(
        "measured: without A, B's block reached C in {:?}",
        t1.elapsed()
    );
}
