//! Lock-out (issue 9): one address, 127.0.0.2, holds 40 TCP sockets that never start a
//! handshake (reopened as soon as the victim drops them) and 50 libp2p identities, every one of
//! a real `gossipcoin startnode` victim's 50 inbound slots. An honest node from 127.0.0.1 must
//! still connect within seconds: per-address limits on handshakes, a short handshake timeout
//! and inbound eviction make room for it.
//!
//! libp2p-tcp binds a dial to `0.0.0.0:<listen port>` (port reuse), never to the listen IP, so
//! the identities (gossipcoin's own `net` services in this process) reach the victim through a
//! relay here that connects from 127.0.0.2: the victim sees that address, and Noise still runs
//! end to end.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Node, addr, free_port, http_get, wait_until};
use gossipcoin::net::{self, NetConfig, NetworkEvent};
use gossipcoin_proto::message::{Response, Role, Status};
use gossipcoin_proto::{BlockHash, U256};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HALF_OPEN: usize = 40;
const IDENTITIES: usize = 50;
/// The target for an honest peer during the lock-out attacks is under 5 s; this
/// deadline leaves room for a loaded test machine.
const HONEST_DEADLINE: u64 = 10;

/// A TCP connection from the attacker's address to `to`.
async fn connect_from_attacker(to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ATTACKER, 0))?;
    socket.connect(to).await
}

/// Forwards every connection to its listening port to `to`, from the attacker's address.
async fn relay(to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = connect_from_attacker(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    at
}

/// A socket that connects and never speaks, reopened whenever the victim closes it; counts
/// the sockets opened and keeps the longest time the victim held one before closing it.
fn half_open(to: SocketAddr, opened: Arc<AtomicUsize>, longest_ms: Arc<AtomicU64>) {
    tokio::spawn(async move {
        loop {
            if let Ok(mut stream) = connect_from_attacker(to).await {
                let since = Instant::now();
                opened.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 256];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                longest_ms.fetch_max(since.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// A libp2p identity that keeps one connection to `victim` (redialing, one dial at a time,
/// whenever it has none) and answers Status like a well-behaved empty wallet; returns what
/// must stay alive.
async fn identity(
    victim: String,
    genesis: BlockHash,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (tempfile::TempDir, net::NetHandle) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NetConfig::new(dir.path().join("node.key"));
    config.genesis = Some(genesis);
    config.discovery = false;
    let (handle, mut events) = net::spawn(config, stop).await.unwrap();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::InboundRequest { reply, .. } = event {
                reply.send(Response::Status(Status {
                    genesis,
                    tip: genesis,
                    height: 0,
                    chain_work: U256::from_u64(1),
                    role: Role::Wallet,
                    time: gossipcoin::node::unix_now(),
                }));
            }
        }
    });
    let dialer = handle.clone();
    tokio::spawn(async move {
        loop {
            if dialer.peers().await.is_empty() {
                // bounded: a dial refused mid-handshake was seen to never answer
                let _ = tokio::time::timeout(Duration::from_secs(2), dialer.dial(&victim)).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    (dir, handle)
}

fn status(api: &str) -> serde_json::Value {
    http_get(&format!("{api}/status"), None).body
}

fn peer_ids(api: &str) -> Vec<String> {
    let peers = http_get(&format!("{api}/peers"), None).body;
    peers["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_node_connects_while_one_address_holds_every_slot() {
    let (victim, honest) = (Node::new(), Node::new());
    let owner = victim.new_address();
    victim.ok(&["createblockchain", "--address", &owner]);
    honest.copy_chain_from(&victim);
    let (p_victim, p_honest) = (free_port(), free_port());
    let victim_node = victim.start(&["--role", "central", "--listen", &addr(p_victim)]);
    let (api, victim_status) = tokio::task::block_in_place(|| {
        let api = victim_node.api();
        let status = status(&api);
        (api, status)
    });
    let victim_id = victim_status["peer_id"].as_str().unwrap().to_owned();
    let genesis: BlockHash = victim_status["genesis"].as_str().unwrap().parse().unwrap();
    let victim_addr = SocketAddr::from(([127, 0, 0, 1], p_victim));

    // 50 identities from 127.0.0.2 take every inbound slot.
    let relay_addr = relay(victim_addr).await;
    let via_relay = format!("/ip4/127.0.0.1/tcp/{}/p2p/{victim_id}", relay_addr.port());
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut identities = Vec::new();
    for _ in 0..IDENTITIES {
        identities.push(identity(via_relay.clone(), genesis, stop.clone()).await);
    }
    let t0 = Instant::now();
    tokio::task::block_in_place(|| {
        // (full: 50 peers, or a reconnecting identity already evicted another)
        wait_until(30, "the identities to fill the victim's slots", || {
            status(&api)["peers"].as_u64() >= Some(IDENTITIES as u64)
                || victim_node.log_text().contains("inbound slots full")
        })
    });
    eprintln!(
        "measured: {IDENTITIES} identities connected in {:?}",
        t0.elapsed()
    );

    // 40 silent sockets from the same address, reopened whenever dropped.
    let opened = Arc::new(AtomicUsize::new(0));
    let longest_ms = Arc::new(AtomicU64::new(0));
    for _ in 0..HALF_OPEN {
        half_open(victim_addr, opened.clone(), longest_ms.clone());
    }
    tokio::task::block_in_place(|| {
        wait_until(30, "the silent sockets to open", || {
            opened.load(Ordering::Relaxed) >= HALF_OPEN
        })
    });

    // The honest node, from 127.0.0.1.
    let t1 = Instant::now();
    let honest_node = honest.start(&[
        "--role",
        "wallet",
        "--listen",
        &addr(p_honest),
        "--bootstrap",
        &addr(p_victim),
    ]);
    tokio::task::block_in_place(|| {
        let honest_api = honest_node.api();
        let honest_id = status(&honest_api)["peer_id"].as_str().unwrap().to_owned();
        wait_until(
            HONEST_DEADLINE,
            "the victim to accept the honest node during the attack",
            || peer_ids(&api).contains(&honest_id),
        );
        eprintln!(
            "measured: the honest node connected {:?} after its start, during the attack",
            t1.elapsed()
        );
        // The silent sockets the victim took into its handshake slots are dropped after the
        // short handshake timeout (libp2p's default was 10 s), and the honest node keeps its
        // slot meanwhile.
        wait_until(15, "the victim to drop a silent socket", || {
            longest_ms.load(Ordering::Relaxed) >= 4_000
        });
        let held = Duration::from_millis(longest_ms.load(Ordering::Relaxed));
        eprintln!("measured: the victim dropped silent sockets after {held:?}");
        assert!(held < Duration::from_secs(8), "held {held:?}");
        assert!(
            peer_ids(&api).contains(&honest_id),
            "the honest node lost its slot"
        );
    });
    drop(identities);
}
