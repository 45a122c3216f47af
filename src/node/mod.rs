//! The daemon (`startnode`): wiring in one place.
//!
//! ```text
//!   net (owns the swarm, the peer manager) ──events──▶ router ──▶ ingest queues (bounded, fair)
//!        ▲                                                           │ blocks │ txs │ requests
//!        │ publish / request / report_peer                            ▼        ▼       ▼
//!        └──────────── sync (status, catch-up, orphans) ◀── chain actor (the only writer)
//!                                                                     reads (store snapshots)
//!                           miner role ──template / mined block──▶ chain actor
//! ```
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`start`] and [`Node::run`]: channels, tasks, shutdown order |
//! | `genesis.rs` | adopting the network's genesis (by hash from any peer, or a bootstrap peer's) into an empty store |
//! | `router.rs` | the switchboard: network events → ingest, sync |
//! | `queue.rs` | [`queue::FairQueue`]: bounded, per-peer, round-robin |
//! | `ingest.rs` | the queues between network and chain, and their workers |
//! | `tx_relay.rs`, `tx_orphans.rs` | the transaction worker: ordered relay, the orphan-transaction pool |
//! | `tx_exchange.rs` | mempool exchange with a newly connected peer |
//! | `sync.rs`, `orphans.rs` | Status exchange, catch-up, the orphan pool (with senders) |
//! | `chain_actor.rs`, `chain_handle.rs` | the chain's thread (writes only) and its handle |
//! | `reads.rs` | snapshot reads for peers and the API, off the chain's thread |
//! | `control.rs` | what an operator may ask (the API's only way in) |
//! | `arrivals.rs` | when each recent main-chain block arrived here (ms since the epoch) |
//! | `mining.rs` | the miner role |
//! | `wallet.rs` | the node's wallet: keys in memory, payments, their resend task |
//! | `mempool_file.rs` | `mempool.dat`: its format, loading it at start, saving it periodically and at shutdown |
//!
//! Shutdown flows from one `watch` channel. The node also stops — with an error — when the
//! chain actor ends on its own (a fatal store error or a panic): a node that cannot write
//! its chain must not keep answering as if it could.
//!
//! The mempool is saved to `mempool.dat` (`mempool_file.rs`) before the chain actor stops.

mod arrivals;
mod chain_actor;
mod chain_handle;
mod clock;
mod control;
mod genesis;
mod ingest;
mod mempool_file;
mod mining;
mod orphans;
mod queue;
mod reads;
mod router;
mod sync;
mod tx_exchange;
mod tx_orphans;
mod tx_relay;
mod wallet;
mod wallet_history;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gossipcoin_proto::Block;
use gossipcoin_proto::message::Role;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

pub use arrivals::{Arrivals, now_ms};
pub use chain_actor::unix_now;
pub use chain_handle::{BlockOutcome, ChainGone, ChainHandle, ChainState};
pub use control::{Control, ControlError, NodeStatus, PaymentRequest, SyncState};
pub use reads::{ReadError, Reads};
pub use sync::SyncProgress;
pub use tx_orphans::{MAX_ORPHAN_BYTES, MAX_ORPHAN_TXS, ORPHAN_EXPIRY, SharedTxOrphans};
pub use tx_relay::OrphanTxs;
pub use wallet::{NodeWallet, Paid, PayError};
pub use wallet_history::{HistoryError, Rescanned};

use crate::chain::Chain;
use crate::config::NodeConfig;
pub use crate::datadir::{ADDR_FILE, LOCK_FILE, is_running};
use crate::net::{self, NetConfig, NetHandle, NetworkEvent};
use crate::params::ChainParams;
use crate::store::Store;

/// A started node: its network is up and its chain open; [`Node::run`] routes until shutdown.
pub struct Node {
    config: NodeConfig,
    events: mpsc::Receiver<NetworkEvent>,
    chain_stopped: oneshot::Receiver<chain_actor::Stopped>,
    /// Network, chain, reads and sync: what the ingest workers share.
    parts: ingest::Workers,
    control: Control,
    shutdown: watch::Receiver<bool>,
    _lock: std::fs::File,
}

/// Starts a node: locks the data directory, opens (or adopts) the chain, starts the network
/// and the chain actor. Returns once the node can be asked things ([`Node::control`]).
pub async fn start(
    config: NodeConfig,
    params: ChainParams,
    shutdown: watch::Receiver<bool>,
) -> Result<Node> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let lock = crate::datadir::lock(dir)?;
    let chain_dir = dir.join("chain");
    // What an interrupted start may have left (a staging dir, a store without a chain).
    Store::remove_incomplete(&chain_dir)?;
    let existing = if Store::exists(&chain_dir) {
        Some(Chain::open(&chain_dir, params.clone())?)
    } else {
        None
    };
    let genesis = match &existing {
        Some(chain) => Some(chain.genesis_hash()?),
        None => None,
    };
    let pinned = match (config.genesis, params.genesis) {
        (Some(flag), Some(param)) if flag != param => {
            bail!("--genesis {flag} contradicts the chain parameters, whose genesis is {param}")
        }
        (flag, param) => flag.or(param),
    };
    if let (Some(have), Some(pinned)) = (genesis, pinned)
        && have != pinned
    {
        bail!(
            "this data directory holds the chain of genesis {have}, not {pinned} (the network's \
             genesis in --genesis or the chain parameters)"
        );
    }

    let mut net_config = NetConfig::new(dir.join("node.key"));
    net_config.listen = config.listen.clone();
    net_config.bootstrap = config.bootstrap.clone();
    net_config.genesis = genesis;
    net_config.max_peers = config.net.max_peers;
    net_config.outbound_full_relay = config.net.outbound_full_relay;
    net_config.outbound_block_relay = config.net.outbound_block_relay;
    net_config.anchors_file = Some(dir.join("anchors.json"));
    net_config.request_timeout = Duration::from_secs(config.net.request_timeout_secs);
    net_config.requests_per_second_per_peer = config.net.requests_per_second;
    net_config.max_upload_bytes_per_sec = config.net.max_upload_bytes_per_sec;
    net_config.max_block_bytes = params.max_block_size;
    net_config.ban_file = Some(dir.join("banlist.json"));
    let (net, mut events) = net::spawn(net_config, shutdown.clone()).await?;
    write_addr_file(dir, &net).await?;

    let chain = match existing {
        Some(chain) => chain,
        None => {
            genesis::adopt(
                &net,
                &mut events,
                &chain_dir,
                &params,
                pinned,
                shutdown.clone(),
            )
            .await?
        }
    };
    let tip = chain.tip()?;
    info!(target: "chain", role = %config.role, height = tip.height, hash = %tip.hash,
          peer = %net.local_peer_id(), "node started");
    let reads = Reads::new(chain.store().clone(), config.role);
    let (chain, chain_stopped) = chain_actor::spawn(chain, &config.mempool)?;
    let sync = sync::Sync::new(net.clone(), chain.clone(), reads.clone());
    let wallet = NodeWallet::open(
        dir,
        params.clone(),
        chain.clone(),
        net.clone(),
        reads.clone(),
    )?;
    let control = Control::new(
        chain.clone(),
        net.clone(),
        sync.clone(),
        reads.clone(),
        params,
        config.clone(),
        wallet,
    );
    Ok(Node {
        config,
        events,
        chain_stopped,
        parts: ingest::Workers {
            net,
            chain,
            reads,
            sync,
            orphans: OrphanTxs::default(),
        },
        control,
        shutdown,
        _lock: lock,
    })
}

impl Node {
    /// The node's orphan-transaction pool (to watch its size).
    pub fn orphan_txs(&self) -> OrphanTxs {
        self.parts.orphans.clone()
    }

    /// What an operator may ask of this node (the HTTP API serves it).
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Routes until shutdown, then stops the tasks and the chain actor. An error when the chain
    /// actor stopped on its own (fatal store error, panic).
    pub async fn run(self) -> Result<()> {
        let Node {
            config,
            events,
            chain_stopped,
            parts,
            control,
            shutdown,
            _lock,
        } = self;
        let (net, chain, sync) = (parts.net.clone(), parts.chain.clone(), parts.sync.clone());
        let (stop_keeper, keeper_stop) = oneshot::channel();
        let keeper = tokio::spawn(mempool_file::keep(
            chain.clone(),
            config.data_dir.clone(),
            config.mempool.clone(),
            keeper_stop,
        ));
        let (mined_tx, mined_rx) = mpsc::channel::<Block>(16);
        if config.role == Role::Miner {
            let reward_to = config
                .miner_address
                .ok_or_else(|| anyhow!("a miner needs --miner-address"))?;
            tokio::spawn(mining::run(
                chain.clone(),
                config.mining.clone(),
                reward_to.pubkey_hash(),
                mined_tx,
                sync.progress(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(
            control
                .wallet()
                .clone()
                .run(config.wallet.resend_interval(), shutdown.clone()),
        );
        let ingest = ingest::Ingest::start(parts, control.params().max_block_size);
        let routing = router::run(net, events, ingest, sync, mined_rx, shutdown);
        let result = tokio::select! {
            () = routing => Ok(()),
            stopped = chain_stopped => match stopped {
                Ok(Ok(())) | Err(_) => Err(anyhow!("the chain task stopped unexpectedly")),
                Ok(Err(reason)) => Err(anyhow!(reason)),
            },
        };
        if let Err(e) = &result {
            error!(target: "chain", "stopping the node: {e:#}");
        }
        info!(target: "net", "node stopping");
        let _ = stop_keeper.send(());
        let _ = keeper.await; // the mempool is saved while the chain still answers
        chain.shutdown().await;
        drop(control);
        let _ = std::fs::remove_file(config.data_dir.join(ADDR_FILE));
        result
    }
}

/// Runs a node until `shutdown` turns true (no HTTP API: for tests and embedding; the daemon
/// command serves [`Node::control`] over HTTP between [`start`] and [`Node::run`]).
pub async fn run(
    config: NodeConfig,
    params: ChainParams,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    start(config, params, shutdown).await?.run().await
}

async fn write_addr_file(dir: &Path, net: &NetHandle) -> Result<()> {
    let peer = net.local_peer_id();
    let lines: Vec<String> = net
        .listen_addrs()
        .await
        .into_iter()
        .map(|a| format!("{a}/p2p/{peer}\n"))
        .collect();
    let tmp = dir.join(format!("{ADDR_FILE}.tmp"));
    std::fs::write(&tmp, lines.concat()).context("cannot write node.addr")?;
    std::fs::rename(&tmp, dir.join(ADDR_FILE)).context("cannot write node.addr")?;
    for line in &lines {
        info!(target: "net", addr = line.trim(), "reachable at");
    }
    Ok(())
}
