//! Issue 18, item 3, measured: 320 silent sockets from 40 loopback addresses (8 each, within
//! the per-address limit) filled a real `gossipcoin startnode` victim's handshake table (128)
//! from 16 of them, and 5 of 5 honest probes were refused. A full table now makes room: the
//! oldest handshake of the biggest address group gives up its place, so each honest probe from
//! another address connects. (Linux routes all of 127/8 to `lo`: each 127.0.1.x is an address
//! of its own here.)

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Node, addr, free_port, http_get, wait_until};
use gossipcoin::net::{self, NetConfig};
use gossipcoin_proto::BlockHash;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

const ADDRESSES: u8 = 40;
const PER_ADDRESS: usize = 8;
const PROBES: usize = 5;
/// The target for an honest peer is under 5 s; this leaves room for a loaded machine.
const HONEST_DEADLINE: u64 = 10;

/// A socket from `from` that connects to `to` and never speaks, reopened whenever closed.
fn silent_socket(from: IpAddr, to: SocketAddr, opened: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        loop {
            let socket = TcpSocket::new_v4().and_then(|s| {
                s.bind(SocketAddr::new(from, 0))?;
                Ok(s)
            });
            if let Ok(socket) = socket
                && let Ok(mut stream) = socket.connect(to).await
            {
                opened.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 256];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// The peer ids the victim lists in `/peers`.
fn peer_ids(api: &str) -> Vec<String> {
    let peers = http_get(&format!("{api}/peers"), None).body;
    peers["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_peers_connect_while_forty_addresses_hold_silent_sockets() {
    let victim = Node::new();
    let owner = victim.new_address();
    victim.ok(&["createblockchain", "--address", &owner]);
    let p_victim = free_port();
    let victim_node = victim.start(&["--role", "central", "--listen", &addr(p_victim)]);
    let (api, status) = tokio::task::block_in_place(|| {
        let api = victim_node.api();
        let status = http_get(&format!("{api}/status"), None).body;
        (api, status)
    });
    let victim_id = status["peer_id"].as_str().unwrap().to_owned();
    let genesis: BlockHash = status["genesis"].as_str().unwrap().parse().unwrap();
    let victim_addr = SocketAddr::from(([127, 0, 0, 1], p_victim));

    let opened = Arc::new(AtomicUsize::new(0));
    for a in 0..ADDRESSES {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 10 + a));
        for _ in 0..PER_ADDRESS {
            silent_socket(from, victim_addr, opened.clone());
        }
    }
    let all = usize::from(ADDRESSES) * PER_ADDRESS;
    tokio::task::block_in_place(|| {
        wait_until(30, "the silent sockets to open", || {
            opened.load(Ordering::Relaxed) >= all
        })
    });

    // Honest probes: libp2p identities dialling the victim from 127.0.0.1.
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let t0 = Instant::now();
    let mut probes = Vec::new();
    for _ in 0..PROBES {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NetConfig::new(dir.path().join("node.key"));
        config.bootstrap = vec![format!("/ip4/127.0.0.1/tcp/{p_victim}/p2p/{victim_id}")];
        config.genesis = Some(genesis);
        config.discovery = false;
        let (handle, mut events) = net::spawn(config, stop.clone()).await.unwrap();
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        probes.push((dir, handle));
    }
    tokio::task::block_in_place(|| {
        wait_until(HONEST_DEADLINE, "every honest probe to connect", || {
            let connected = peer_ids(&api);
            probes
                .iter()
                .all(|(_, h)| connected.contains(&h.local_peer_id().to_string()))
        });
    });
    eprintln!(
        "measured: {PROBES}/{PROBES} honest probes connected within {:?} while {} silent sockets \
         from {ADDRESSES} addresses were open",
        t0.elapsed(),
        opened.load(Ordering::Relaxed)
    );
}
