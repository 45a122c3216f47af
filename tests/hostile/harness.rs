//! The in-process harness: real nodes (`gossipcoin::node`, with their LMDB stores in temp dirs
//! and libp2p on 127.0.0.1 port 0) in this test process, and an attacker that is a bare
//! `gossipcoin::net` service speaking the protocol with whatever bytes a test gives it.

use std::future::Future;
use std::time::Duration;

use gossipcoin::chain::Chain;
use gossipcoin::config::{NodeConfig, Overrides};
use gossipcoin::keys::PrivateKey;
use gossipcoin::net::{self, NetConfig, NetHandle, NetworkEvent, PeerId};
use gossipcoin::node::{Control, OrphanTxs};
use gossipcoin::params::ChainParams;
use gossipcoin::store::ChainRead;
use gossipcoin_proto::message::{Request, Response, Role, Status};
use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, OutPoint, Signature, Transaction, TxIn, TxOut, Txid,
};
use tokio::sync::{mpsc, watch};

/// How long any one condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Chain parameters with a trivial proof of work, so tests mine in microseconds.
pub fn params() -> ChainParams {
    ChainParams {
        pow_bits: 0x207f_ffff,
        retarget: gossipcoin::params::Retarget::Fixed,
        ..ChainParams::devnet()
    }
}

/// Finds a nonce meeting `params`' target (the merkle root is left as it is).
pub fn mine(block: &mut Block, params: &ChainParams) {
    let target = params.target();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// A block on `parent` (at `height`) paying `value` to a fresh key, with `txs`, mined.
pub fn child(parent: &Block, height: u32, value: Amount, txs: Vec<Transaction>) -> Block {
    let mut all = vec![Transaction::coinbase(
        height,
        PrivateKey::generate().pubkey_hash(),
        value,
    )];
    all.extend(txs);
    let mut block = Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev: parent.block_hash(),
            merkle_root: Default::default(),
            time: parent.header.time + 1,
            bits: params().pow_bits,
            nonce: 0,
        },
        txs: all,
    };
    block.header.merkle_root = block.compute_merkle_root();
    mine(&mut block, &params());
    block
}

/// A genesis block paying 10 coins to a fresh key.
pub fn genesis() -> Block {
    let now = gossipcoin::node::unix_now() - 1000;
    let mut g = Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: now,
            bits: params().pow_bits,
            nonce: 0,
        },
        txs: vec![Transaction::coinbase(
            0,
            PrivateKey::generate().pubkey_hash(),
            Amount::from_coins(10).unwrap(),
        )],
    };
    g.header.merkle_root = g.compute_merkle_root();
    mine(&mut g, &params());
    g
}

/// A node running in this process.
pub struct TestNode {
    pub control: Control,
    /// Its orphan-transaction pool.
    pub orphans: OrphanTxs,
    pub id: PeerId,
    /// Its p2p address, ending in `/p2p/<peer id>`.
    pub addr: String,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// Starts a node whose store holds `genesis`, bootstrapping from `bootstrap`.
    pub async fn start(genesis: &Block, bootstrap: &[&str]) -> TestNode {
        Self::start_with(genesis, &[], bootstrap).await
    }

    /// Starts a node whose store already holds `genesis` and `blocks` (connected before the
    /// node starts, so nothing of them is gossiped).
    pub async fn start_with(genesis: &Block, blocks: &[Block], bootstrap: &[&str]) -> TestNode {
        Self::start_configured(genesis, blocks, bootstrap, |_| {}).await
    }

    /// [`Self::start_with`], with `tweak` applied to the node's configuration.
    pub async fn start_configured(
        genesis: &Block,
        blocks: &[Block],
        bootstrap: &[&str],
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        Self::start_full(genesis, blocks, bootstrap, params(), tweak).await
    }

    /// [`Self::start_with`] on other chain parameters.
    pub async fn start_with_params(
        genesis: &Block,
        blocks: &[Block],
        bootstrap: &[&str],
        params: ChainParams,
    ) -> TestNode {
        Self::start_full(genesis, blocks, bootstrap, params, |_| {}).await
    }

    async fn start_full(
        genesis: &Block,
        blocks: &[Block],
        bootstrap: &[&str],
        params: ChainParams,
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::create(&dir.path().join("chain"), params.clone(), genesis).unwrap();
        for b in blocks {
            chain
                .accept_block(b, u32::MAX, gossipcoin::chain::Origin::Requested)
                .unwrap();
        }
        drop(chain);
        let overrides = Overrides {
            role: Some(Role::Wallet),
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: if bootstrap.is_empty() {
                vec!["/ip4/127.0.0.1/tcp/1".into()] // nobody: a node on its own
            } else {
                bootstrap.iter().map(|s| s.to_string()).collect()
            },
            api_listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let mut config = NodeConfig::load(dir.path(), overrides).unwrap();
        config.net.request_timeout_secs = 5;
        tweak(&mut config);
        let (shutdown, rx) = watch::channel(false);
        let node = gossipcoin::node::start(config, params, rx).await.unwrap();
        let control = node.control();
        let orphans = node.orphan_txs();
        let status = control.status().await.unwrap();
        let addr = status.listen[0].clone();
        let id = status.peer_id.parse().unwrap();
        let task = tokio::spawn(node.run());
        TestNode {
            control,
            orphans,
            id,
            addr,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// Whether the store holds block `hash` (data, on any branch).
    pub async fn has_block(&self, hash: BlockHash) -> bool {
        self.control
            .read(move |r| Ok(r.has_block(&hash)?))
            .await
            .unwrap()
    }

    /// The main chain's tip.
    pub async fn tip(&self) -> BlockHash {
        self.control.status().await.unwrap().tip
    }

    /// Whether `peer` is connected, and its score.
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        self.control
            .peers()
            .await
            .into_iter()
            .find(|p| p.peer == peer)
            .map(|p| p.score)
    }

    /// The txids in its mempool.
    pub async fn mempool(&self) -> Vec<Txid> {
        let entries = self.control.mempool().await.unwrap();
        entries.iter().map(|e| e.txid()).collect()
    }

    /// Its Status, as it would send it to a peer.
    pub async fn status(&self) -> Status {
        let s = self.control.status().await.unwrap();
        Status {
            genesis: s.genesis,
            tip: s.tip,
            height: s.height,
            chain_work: s.chain_work,
            role: s.role,
            time: gossipcoin::node::unix_now(),
        }
    }

    /// Stops the node and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.take().unwrap().await.unwrap()
    }
}

/// An attacker: a bare network service on the nodes' network, sending whatever bytes a test
/// gives it and never validating anything.
pub struct Attacker {
    pub net: NetHandle,
    pub events: mpsc::Receiver<NetworkEvent>,
    pub id: PeerId,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Attacker {
    /// Connects to `victim` (an address ending in `/p2p/<id>`) on the network of `genesis`.
    pub async fn connect(victim: &str, genesis: BlockHash) -> Attacker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NetConfig::new(dir.path().join("attacker.key"));
        config.bootstrap = vec![victim.to_string()];
        config.genesis = Some(genesis);
        config.discovery = false;
        let (shutdown, rx) = watch::channel(false);
        let (net, events) = net::spawn(config, rx).await.unwrap();
        let attacker = Attacker {
            id: net.local_peer_id(),
            net,
            events,
            _shutdown: shutdown,
            _dir: dir,
        };
        // Gossip reaches the victim once it has seen our subscription.
        let net = attacker.net.clone();
        wait_for("the victim to subscribe", || {
            let net = net.clone();
            async move { net.peers().await.iter().any(|p| p.subscribed) }
        })
        .await;
        attacker
    }

    /// Gossips `block` as it is (no validation on our side).
    pub fn gossip_block(&self, block: &Block) {
        self.net
            .publish_raw(true, gossipcoin_proto::encode::to_bytes(block));
    }

    /// Gossips `tx` as it is.
    pub fn gossip_tx(&self, tx: &Transaction) {
        self.net
            .publish_raw(false, gossipcoin_proto::encode::to_bytes(tx));
    }

    /// Waits until the transactions gossiped to us include every one of `txids`, answering
    /// nothing else (requests get an error, gossip no verdict).
    pub async fn wait_for_gossip_txs(&mut self, txids: &[Txid]) {
        let mut missing: std::collections::HashSet<Txid> = txids.iter().copied().collect();
        tokio::time::timeout(DEADLINE, async {
            while !missing.is_empty() {
                match self.events.recv().await {
                    Some(NetworkEvent::GossipTx { tx, .. }) => {
                        missing.remove(&tx.compute_txid());
                    }
                    Some(_) => {}
                    None => panic!("the attacker's network stopped"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} transactions never gossiped to us", missing.len()));
    }

    /// Waits for the victim to ask us something, answering nothing.
    pub async fn wait_for_request(&mut self) -> gossipcoin_proto::message::Request {
        tokio::time::timeout(DEADLINE, async {
            loop {
                match self.events.recv().await {
                    Some(NetworkEvent::InboundRequest { request, .. }) => return request,
                    Some(_) => {}
                    None => panic!("the attacker's network stopped"),
                }
            }
        })
        .await
        .expect("the victim never asked the attacker anything")
    }

    /// Answers the victim's requests in a task from now on: `answer` gives the response, or
    /// `None` to hold the request unanswered (a staller) until the attacker is dropped.
    pub fn serve<F>(&mut self, answer: F)
    where
        F: Fn(&Request) -> Option<Response> + Send + 'static,
    {
        let mut events = std::mem::replace(&mut self.events, mpsc::channel(1).1);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(event) = events.recv().await {
                if let NetworkEvent::InboundRequest { request, reply, .. } = event {
                    match answer(&request) {
                        Some(response) => reply.send(response),
                        None => held.push(reply),
                    }
                }
            }
        });
    }

    /// Whether the victim still has a connection to us.
    pub async fn connected_to(&self, victim: PeerId) -> bool {
        self.net.peers().await.iter().any(|p| p.peer == victim)
    }
}

/// A block on `parent` (at `height`) whose coinbase pays 10 coins to `owner`, with `txs`, mined.
pub fn child_paying(
    parent: &Block,
    height: u32,
    owner: &PrivateKey,
    txs: Vec<Transaction>,
) -> Block {
    let mut block = child(parent, height, Amount::from_coins(10).unwrap(), txs);
    block.txs[0].outputs[0].owner = owner.pubkey_hash();
    block.header.merkle_root = block.compute_merkle_root();
    mine(&mut block, &params());
    block
}

/// A transaction spending `prevout` (the output `spent`, owned by `key`) into `outputs`, signed
/// by `key`.
pub fn signed(
    prevout: OutPoint,
    spent: TxOut,
    key: &PrivateKey,
    outputs: Vec<TxOut>,
) -> Transaction {
    let mut tx = Transaction {
        version: Transaction::VERSION,
        inputs: vec![TxIn {
            prevout,
            signature: Signature::ZERO,
            pubkey: key.public_key(),
        }],
        outputs,
    };
    let commitment = tx.sighash_commitment();
    tx.inputs[0].signature = key.sign(&Transaction::sighash(&commitment, 0, &spent));
    tx
}

/// Polls `cond` every 20 ms until it holds, failing the test after [`DEADLINE`].
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}
