//! In-process network tests: real libp2p services over 127.0.0.1 on free ports, temp dirs for
//! their keys, and every wait bounded by a deadline (never a fixed sleep).
//!
//! Set `RUST_LOG=net=debug` to see the services' logs.

mod discovery;
mod gossip;
mod hostile;
mod identity;
mod liveness;
mod raw_peer;
mod slots;
mod sync;

use std::future::Future;
use std::time::Duration;

use gossipcoin::net::{self, NetConfig, NetHandle, NetworkEvent, PeerId};
use gossipcoin_proto::message::{Response, Role, Status};
use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, MerkleRoot, PubkeyHash, Transaction, U256,
};
use tokio::sync::{mpsc, watch};

/// How long any one condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The genesis every test network shares.
pub const GENESIS: BlockHash = BlockHash([0x5a; 32]);

/// A running network service and what it needs.
pub struct Node {
    pub handle: NetHandle,
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The listen address, ending in `/p2p/<peer id>`.
    pub addr: String,
    /// The listen address without the peer id.
    pub plain_addr: String,
    pub id: PeerId,
    shutdown: watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

/// Settings for quick tests: loopback, fast discovery, joined to [`GENESIS`].
pub fn config(dir: &tempfile::TempDir, bootstrap: &[&str]) -> NetConfig {
    NetConfig {
        bootstrap: bootstrap.iter().map(|s| s.to_string()).collect(),
        genesis: Some(GENESIS),
        discovery_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(10),
        ..NetConfig::new(dir.path().join("node.key"))
    }
}

/// Starts a node in a fresh temp dir, with `tweak` applied to [`config`].
pub async fn start_with(bootstrap: &[&str], tweak: impl FnOnce(&mut NetConfig)) -> Node {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, bootstrap);
    tweak(&mut config);
    let (shutdown, rx) = watch::channel(false);
    let (handle, events) = net::spawn(config, rx).await.expect("the service starts");
    let plain_addr = handle.listen_addrs().await.remove(0);
    let id = handle.local_peer_id();
    Node {
        addr: format!("{plain_addr}/p2p/{id}"),
        plain_addr,
        id,
        handle,
        events,
        shutdown,
        dir,
    }
}

/// Starts a node with the default test settings.
pub async fn start(bootstrap: &[&str]) -> Node {
    start_with(bootstrap, |_| {}).await
}

impl Node {
    /// Waits for the first event for which `pick` returns `Some`, dropping the others.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(NetworkEvent) -> Option<T>,
    ) -> T {
        let events = &mut self.events;
        within(what, async move {
            loop {
                let event = events.recv().await.expect("the service is running");
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        })
        .await
    }

    /// Waits until this node has a connection to `peer`.
    pub async fn wait_connected(&mut self, peer: PeerId) {
        if self.handle.peers().await.iter().any(|p| p.peer == peer) {
            return;
        }
        self.wait_for(&format!("a connection to {peer}"), |e| match e {
            NetworkEvent::PeerConnected { peer: p, .. } if p == peer => Some(()),
            _ => None,
        })
        .await
    }

    /// Waits until this node sees `peer` subscribed to the block topic (so `peer` is in its
    /// mesh and forwarded gossip reaches it). Gossipsub reports no event for that, so this
    /// polls every 20 ms, within the deadline.
    pub async fn wait_subscribed(&self, peer: PeerId) {
        within(&format!("{peer} to subscribe"), async {
            loop {
                let peers = self.handle.peers().await;
                if peers.iter().any(|p| p.peer == peer && p.subscribed) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Takes the event receiver (to hand it to a task); this node's `wait_for` no longer works.
    pub fn take_events(&mut self) -> mpsc::Receiver<NetworkEvent> {
        std::mem::replace(&mut self.events, mpsc::channel(1).1)
    }

    /// Stops the service.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Runs `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// A distinct, decodable block (the network layer does not validate it).
pub fn block(n: u32) -> Block {
    Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev: GENESIS,
            merkle_root: MerkleRoot::ZERO,
            time: 1_700_000_000 + n,
            bits: 0x207f_ffff,
            nonce: n,
        },
        txs: vec![tx(n)],
    }
}

/// A distinct, decodable transaction.
pub fn tx(n: u32) -> Transaction {
    Transaction::coinbase(n, PubkeyHash([7; 20]), Amount::from_coins(10).unwrap())
}

/// A Status for tests.
pub fn status(height: u32) -> Status {
    Status {
        genesis: GENESIS,
        tip: GENESIS,
        height,
        chain_work: U256::from_u64(u64::from(height) + 1),
        role: Role::Central,
        time: gossipcoin::node::unix_now(),
    }
}

/// Answers every inbound request of `node` with its Status, in a task, until it stops.
pub fn serve_status(mut events: mpsc::Receiver<NetworkEvent>, height: u32) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::InboundRequest { reply, .. } = event {
                reply.send(Response::Status(status(height)));
            }
        }
    });
}

fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = gossipcoin::logging::init(Default::default(), None);
    }
}
