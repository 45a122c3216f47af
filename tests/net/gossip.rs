//! Gossip: delivery, queueing before peers subscribe, validation before forwarding, bans.

use std::time::Instant;

use gossipcoin::net::{NetError, NetworkEvent, Verdict};
use gossipcoin_proto::{Block, BlockHash};

use crate::{GENESIS, Node, block, start, start_with, tx};

/// Waits for the next gossip block at `node`, returning it with its id and sender.
async fn next_block(
    node: &mut Node,
) -> (gossipcoin::net::MessageId, gossipcoin::net::PeerId, Block) {
    node.wait_for("a gossip block", |e| match e {
        NetworkEvent::GossipBlock {
            id, peer, block, ..
        } => Some((id, peer, block)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_published_before_any_peer_is_queued_and_delivered_once_b_subscribes() {
    let mut a = start(&[]).await;
    let first = block(1);
    // nobody is subscribed yet: the block waits in A's queue
    a.handle.publish_block(&first).await;

    let t0 = Instant::now();
    // a fresh node: it connects first and joins once it knows the genesis
    let mut b = start_with(&[&a.plain_addr], |c| c.genesis = None).await;
    b.wait_connected(a.id).await;
    let connected = t0.elapsed();
    // B publishes before it has joined: queued until it knows its network
    b.handle.publish_tx(&tx(4)).await;
    b.handle.join(GENESIS).await.unwrap();
    let (id, peer, got) = next_block(&mut b).await;
    let delivered = t0.elapsed();
    assert_eq!(got, first);
    assert_eq!(peer, a.id);
    b.handle.report(id, peer, Verdict::Accept);
    eprintln!(
        "measured: B connected to A in {connected:?}; A's queued block reached B {delivered:?} after B started"
    );

    // once subscribed, blocks and transactions flow at once
    let t1 = Instant::now();
    a.handle.publish_block(&block(2)).await;
    let (id, peer, got) = next_block(&mut b).await;
    assert_eq!(got, block(2));
    b.handle.report(id, peer, Verdict::Accept);
    eprintln!(
        "measured: a block published on a formed network arrived in {:?}",
        t1.elapsed()
    );
    a.handle.publish_tx(&tx(3)).await;
    let got = b
        .wait_for("a gossip transaction", |e| match e {
            NetworkEvent::GossipTx { tx, .. } => Some(tx),
            _ => None,
        })
        .await;
    assert_eq!(got, tx(3));
    let got = a
        .wait_for("B's early transaction", |e| match e {
            NetworkEvent::GossipTx { tx, .. } => Some(tx),
            _ => None,
        })
        .await;
    assert_eq!(got, tx(4));
    // publishing the same block again is harmless
    a.handle.publish_block(&block(2)).await;

    // joining is idempotent for the same network and refused for another
    b.handle.join(GENESIS).await.unwrap();
    let other = b.handle.join(BlockHash([1; 32])).await.unwrap_err();
    assert!(matches!(other, NetError::AlreadyJoined { .. }), "{other}");

    let peers = a.handle.peers().await;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer, b.id);
    assert_eq!(peers[0].score, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_block_is_not_forwarded_and_repeated_rejects_ban_the_sender() {
    // the line A — B — C, with discovery off so it stays a line
    let line = |c: &mut gossipcoin::net::NetConfig| c.discovery = false;
    let a = start_with(&[], line).await;
    let mut b = start_with(&[&a.addr], line).await;
    let mut c = start_with(&[&b.addr], line).await;
    b.wait_connected(a.id).await;
    b.wait_connected(c.id).await;
    // B forwards only to its mesh, which C joins when B learns C's subscription
    b.wait_subscribed(c.id).await;

    // a block from A goes through B to C
    a.handle.publish_block(&block(10)).await;
    let (id, peer, _) = next_block(&mut b).await;
    assert_eq!(peer, a.id);
    b.handle.report(id, peer, Verdict::Accept);
    let (_, via, got) = next_block(&mut c).await;
    assert_eq!((via, got), (b.id, block(10)));

    // B rejects the next block, then accepts one more: C gets only the accepted one
    a.handle.publish_block(&block(11)).await;
    let (id, peer, got) = next_block(&mut b).await;
    assert_eq!(got, block(11));
    b.handle.report(id, peer, Verdict::Reject);
    a.handle.publish_block(&block(12)).await;
    let (id, peer, got) = next_block(&mut b).await;
    assert_eq!(got, block(12));
    b.handle.report(id, peer, Verdict::Accept);
    let (_, _, got) = next_block(&mut c).await;
    assert_eq!(got, block(12), "C saw the rejected block");
    let score = b
        .handle
        .peers()
        .await
        .into_iter()
        .find(|p| p.peer == a.id)
        .unwrap()
        .score;
    assert!(score < 0.0, "A was not penalised: {score}");

    // two more rejects and B bans A
    for n in [13, 14] {
        a.handle.publish_block(&block(n)).await;
        let (id, peer, got) = next_block(&mut b).await;
        assert_eq!(got, block(n));
        b.handle.report(id, peer, Verdict::Reject);
    }
    b.wait_for("A's ban", |e| match e {
        NetworkEvent::PeerBanned { peer } if peer == a.id => Some(()),
        _ => None,
    })
    .await;
    assert!(b.handle.peers().await.iter().all(|p| p.peer != a.id));

    // A cannot come back: B's block list refuses the connection
    let _ = a.handle.dial(&b.addr).await;
    assert!(b.handle.peers().await.iter().all(|p| p.peer != a.id));
    // C still hears from B
    b.handle.publish_block(&block(15)).await;
    let (_, _, got) = next_block(&mut c).await;
    assert_eq!(got, block(15));
}
