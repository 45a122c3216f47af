//! Connection slots: a node whose inbound slots are full keeps a newcomer and closes an old,
//! unprotected inbound connection instead (Core's eviction); its outbound connection, counted
//! apart, is never the one to go.

use std::time::{Duration, Instant};

use gossipcoin::net::PeerId;

use crate::{Node, start_with, within};

/// Inbound slots of the victim.
const MAX_PEERS: u32 = 4;

async fn quiet_node() -> Node {
    start_with(&[], |c| {
        c.max_peers = MAX_PEERS;
        c.discovery = false;
    })
    .await
}

async fn connected(node: &Node) -> Vec<PeerId> {
    node.handle
        .peers()
        .await
        .into_iter()
        .map(|p| p.peer)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_to_full_inbound_slots_evicts_an_old_inbound_peer() {
    let mut victim = quiet_node().await;
    // one outbound connection, which no inbound newcomer may take
    let outbound = quiet_node().await;
    victim.handle.dial(&outbound.addr).await.unwrap();
    victim.wait_connected(outbound.id).await;

    // the inbound slots fill up, one peer after the other (so their ages are known)
    let mut old = Vec::new();
    for _ in 0..MAX_PEERS {
        let peer = quiet_node().await;
        peer.handle.dial(&victim.addr).await.unwrap();
        victim.wait_connected(peer.id).await;
        old.push(peer);
    }
    assert_eq!(connected(&victim).await.len(), MAX_PEERS as usize + 1);

    let newcomer = quiet_node().await;
    let t0 = Instant::now();
    newcomer.handle.dial(&victim.addr).await.unwrap();
    let peers = within("the newcomer to take an evicted peer's slot", async {
        loop {
            let peers = connected(&victim).await;
            let gone = old.iter().filter(|p| !peers.contains(&p.id)).count();
            if peers.contains(&newcomer.id) && gone == 1 {
                return peers;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eprintln!(
        "measured: the newcomer got an inbound slot in {:?}",
        t0.elapsed()
    );

    assert!(
        peers.contains(&outbound.id),
        "the outbound peer was evicted"
    );
    assert_eq!(peers.len(), MAX_PEERS as usize + 1, "{peers:?}");
    // The oldest inbound peer is protected (by uptime, or by ping when it is the fastest),
    // so the one that went is a younger one.
    assert!(
        peers.contains(&old[0].id),
        "the oldest inbound peer was evicted"
    );
    let evicted = old.iter().position(|p| !peers.contains(&p.id)).unwrap();
    assert!(evicted > 0);

    // The evicted peer is told: its side of the connection is gone too.
    within("the evicted peer to see the disconnection", async {
        while connected(&old[evicted]).await.contains(&victim.id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for node in old.iter().chain([&victim, &outbound, &newcomer]) {
        node.stop();
    }
}
