//! Hostile peers: garbage request frames, a peer that does not read its responses, a peer the
//! node reports, and a flood of gossip the node cannot keep up with.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use gossipcoin::net::{Misbehaviour, NetworkEvent};
use gossipcoin_proto::message::{Request, Response};
use gossipcoin_proto::{Amount, Block, PubkeyHash, Transaction, TxOut};
use tokio::sync::mpsc;

use crate::raw_peer::{RawPeer, framed, valid_request};
use crate::{block, start_with, status, within};

/// The value of a metric sample line `name{labels} value` in the process's registry.
fn metric(sample: &str) -> u64 {
    let text = gossipcoin::metrics::metrics().render(Default::default());
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_request_frames_cost_score_until_the_sender_is_banned() {
    let mut a = start_with(&[], |c| c.discovery = false).await;
    let raw = RawPeer::spawn(false);
    raw.dial(&a.addr).await.unwrap();
    a.wait_connected(raw.id).await;

    // undecodable bodies and u32::MAX length prefixes (no body follows)
    let mut answers = Vec::new();
    for n in 0..12u8 {
        let frame = if n % 2 == 0 {
            framed(&[0xff, n, 0xff])
        } else {
            u32::MAX.to_be_bytes().to_vec()
        };
        answers.push(within("an answer", raw.request(a.id, frame)).await);
    }
    // each was answered with an error until the ban closed the connection
    let refused = answers
        .iter()
        .filter(|r| matches!(r, Ok(Response::Error(e)) if e.starts_with("malformed request")))
        .count();
    assert!(refused >= 9, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|r| !matches!(r, Ok(r) if !matches!(r, Response::Error(_))))
    );

    a.wait_for("the ban", |e| match e {
        NetworkEvent::PeerBanned { peer } if peer == raw.id => Some(()),
        NetworkEvent::InboundRequest { peer, .. } if peer == raw.id => {
            panic!("a garbage request reached the node")
        }
        _ => None,
    })
    .await;
    assert!(a.handle.peers().await.iter().all(|p| p.peer != raw.id));
    assert!(metric("gossipcoin_peer_penalties_total{reason=\"malformed_request\"}") >= 10);
    // it cannot come back
    let _ = raw.dial(&a.addr).await;
    assert!(a.handle.peers().await.iter().all(|p| p.peer != raw.id));
}

/// A block of about `bytes` bytes (one coinbase with many outputs), distinct per `n`.
fn fat_block(n: u32, bytes: usize) -> Block {
    let mut block = block(n);
    let out = TxOut {
        value: Amount::from_coins(1).unwrap(),
        owner: PubkeyHash([n as u8; 20]),
    };
    let mut tx = Transaction::coinbase(n, PubkeyHash([1; 20]), Amount::from_coins(1).unwrap());
    tx.outputs = vec![out; bytes / 24];
    block.txs = vec![tx];
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_its_responses_gets_busy() {
    let mut a = start_with(&[], |c| c.discovery = false).await;
    let raw = RawPeer::spawn(true);
    raw.dial(&a.addr).await.unwrap();
    a.wait_connected(raw.id).await;

    // the node answers every request with a 1 MiB block
    let big = Response::Block(Some(fat_block(1, 1 << 20)));
    let (served_tx, mut served) = mpsc::unbounded_channel();
    let mut events = a.take_events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::InboundRequest { reply, .. } = event {
                reply.send(big.clone());
                let _ = served_tx.send(());
            }
        }
    });

    let frame = valid_request(&Request::Status(status(0)));
    let mut pending = FuturesUnordered::new();
    let mut served_count = 0;
    let mut answer = None;
    for _ in 0..10 {
        pending.push(raw.request(a.id, frame.clone()));
        // the next request goes once this one was served (its answer then sits unread), or
        // stops when a (small) answer comes back
        tokio::select! {
            _ = served.recv() => served_count += 1,
            got = pending.next() => { answer = got; break; }
        }
    }
    let answer = match answer {
        Some(answer) => answer,
        None => within("a refusal", pending.next()).await.unwrap(),
    };
    assert_eq!(answer, Ok(Response::Error("busy".to_owned())));
    eprintln!("measured: busy after {served_count} unread responses");
    assert!(
        served_count <= 3,
        "{served_count} responses were served unread"
    );
    assert!(metric("gossipcoin_peer_penalties_total{reason=\"busy\"}") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_report_bans_the_peer_and_says_so() {
    let mut a = start_with(&[], |c| c.discovery = false).await;
    let mut b = start_with(&[&a.addr], |c| c.discovery = false).await;
    a.wait_connected(b.id).await;
    b.wait_connected(a.id).await;
    let connected = a.handle.peers().await;
    assert!(!connected[0].outbound, "B dialled A");

    a.handle
        .report_peer(b.id, Misbehaviour::Fatal, "test: a forged chain");
    a.wait_for("B's ban", |e| match e {
        NetworkEvent::PeerBanned { peer } if peer == b.id => Some(()),
        NetworkEvent::PeerDisconnected { peer } if peer == b.id => {
            panic!("PeerDisconnected after PeerBanned")
        }
        _ => None,
    })
    .await;
    b.wait_for("A to close the connection", |e| match e {
        NetworkEvent::PeerDisconnected { peer } if peer == a.id => Some(()),
        _ => None,
    })
    .await;
    assert!(a.handle.peers().await.is_empty());
    // B cannot come back (its dial may succeed at the TCP level; A closes it at once)
    let _ = b.handle.dial(&a.addr).await;
    assert!(a.handle.peers().await.is_empty());
    // a second report on a banned peer is a no-op
    a.handle
        .report_peer(b.id, Misbehaviour::High, "test: again");
    assert!(a.handle.peers().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_bounded_by_bytes_and_drops_gossip_past_it() {
    // A's node never reads its events while B floods it with 1 MiB blocks
    let mut a = start_with(&[], |c| c.discovery = false).await;
    let mut b = start_with(&[&a.addr], |c| c.discovery = false).await;
    b.wait_connected(a.id).await;
    b.wait_subscribed(a.id).await;
    // 16 events fit in the channel (two are taken by Listening and PeerConnected) and about
    // 31 blocks in the 32 MiB outbox: of 72 blocks some 27 are dropped while the node reads
    // nothing. Waiting for 20 drops leaves room for a few blocks B's gossipsub gave up on; a
    // count-bounded outbox (4,096 events) drops none.
    const BLOCKS: u32 = 72;
    const SIZE: usize = 1 << 20;
    let template = fat_block(0, SIZE);
    for n in 0..BLOCKS {
        let mut block = template.clone();
        block.header.nonce = n;
        b.handle.publish_block(&block).await;
    }
    let dropped = || metric("gossipcoin_net_events_dropped_total{kind=\"gossip\"}") as usize;
    within("gossip to be dropped", async {
        while dropped() < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // the node now reads: it gets what was held (and what arrived since), never more than
    // was sent
    let mut delivered = 0usize;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), a.events.recv()).await
    {
        if let NetworkEvent::GossipBlock { .. } = event {
            delivered += 1;
        }
    }
    let dropped = dropped();
    eprintln!("measured: of {BLOCKS} 1 MiB blocks, {delivered} delivered, {dropped} dropped");
    assert!(delivered + dropped <= BLOCKS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_and_bootstrap_are_reported_on_connect() {
    let mut a = start_with(&[], |c| c.discovery = false).await;
    let c = start_with(&[], |c| c.discovery = false).await;
    // B bootstraps from A by address and id; it dials C on request
    let mut b = start_with(&[&a.addr], |c| c.discovery = false).await;
    let (outbound, bootstrap) = b
        .wait_for("A", |e| match e {
            NetworkEvent::PeerConnected {
                peer,
                outbound,
                bootstrap,
                ..
            } if peer == a.id => Some((outbound, bootstrap)),
            _ => None,
        })
        .await;
    assert!(outbound && bootstrap);
    let seen = a
        .wait_for("B", |e| match e {
            NetworkEvent::PeerConnected {
                peer,
                outbound,
                bootstrap,
                ..
            } if peer == b.id => Some((outbound, bootstrap)),
            _ => None,
        })
        .await;
    assert_eq!(seen, (false, false));
    b.handle.dial(&c.addr).await.unwrap();
    let seen = b
        .wait_for("C", |e| match e {
            NetworkEvent::PeerConnected {
                peer,
                outbound,
                bootstrap,
                ..
            } if peer == c.id => Some((outbound, bootstrap)),
            _ => None,
        })
        .await;
    assert_eq!(seen, (true, false));
}
