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

/// Polls `node`'s peers (every 20 ms, within the deadline) until `want` holds for them.
async fn wait_peers(
    handle: &gossipcoin::net::NetHandle,
    what: &str,
    want: impl Fn(&[gossipcoin::net::PeerInfo]) -> bool,
) {
    crate::within(what, async {
        loop {
            if want(&handle.peers().await) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_targets_are_kept_and_block_relay_peers_are_redialled_first_after_a_restart() {
    use gossipcoin::net::PeerKind;

    let a = start(&[]).await;
    let c = start(&[&a.addr]).await;
    let d = start(&[&a.addr]).await;
    // B keeps one full-relay peer (its bootstrap, A) and one block-relay peer, found via A
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("anchors.json");
    let settings = |bootstrap: &[&str]| gossipcoin::net::NetConfig {
        outbound_full_relay: 1,
        outbound_block_relay: 1,
        anchors_file: Some(anchors.clone()),
        ..crate::config(&dir, bootstrap)
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (b, _events) = gossipcoin::net::spawn(settings(&[&a.addr]), rx)
        .await
        .unwrap();
    let kind_of = |peers: &[gossipcoin::net::PeerInfo], id| {
        peers.iter().find(|p| p.peer == id).map(|p| p.kind)
    };
    wait_peers(&b, "B's block-relay peer", |peers| {
        kind_of(peers, a.id) == Some(PeerKind::FullRelay)
            && peers.iter().any(|p| p.kind == PeerKind::BlockRelay)
    })
    .await;
    let peers = b.peers().await;
    let relay = peers
        .iter()
        .find(|p| p.kind == PeerKind::BlockRelay)
        .unwrap()
        .peer;
    assert!(
        relay == c.id || relay == d.id,
        "the block-relay peer is C or D"
    );
    let count = |k| peers.iter().filter(|p| p.kind == k).count();
    assert_eq!(
        (count(PeerKind::FullRelay), count(PeerKind::BlockRelay)),
        (1, 1)
    );
    let saved = std::fs::read_to_string(&anchors).expect("anchors.json written");
    assert!(saved.contains(&relay.to_string()), "{saved}");

    // restart B with no bootstrap peer at all: it finds its block-relay peer again by itself
    stop.send(true).unwrap();
    drop(b);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (b, _events) = gossipcoin::net::spawn(settings(&[]), rx).await.unwrap();
    wait_peers(&b, "B's anchor", |peers| {
        kind_of(peers, relay) == Some(PeerKind::BlockRelay)
    })
    .await;
    let saved = std::fs::read_to_string(&anchors).expect("anchors.json written again");
    assert!(saved.contains(&relay.to_string()), "{saved}");
    drop(stop);
}
