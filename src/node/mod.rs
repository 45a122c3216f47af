//! The daemon (`startnode`): wiring in one place.
//!
//! ```text
//!   net (owns the libp2p swarm) ──events──▶ router ──▶ chain task (owns Chain + Mempool,
//!        ▲                                    │           the only store writer)
//!        └────────── publish / request ───────┘              ▲
//!                                   miner role ──template / mined block──┘
//! ```
//! `Node::run` creates the channels and tasks, adopts the bootstrap peer's genesis when the
//! store is empty, and on shutdown stops the tasks and lets the chain thread close the store last.

mod chain_task;
mod control;
mod mining;
mod router;
mod sync;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gossipcoin_proto::message::{Request, Response, Role};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use chain_task::{BlockOutcome, ChainHandle, ChainState, unix_now};
pub use control::{Control, ControlError, NodeStatus, PaymentRequest, SyncState};

use crate::chain::Chain;
use crate::config::NodeConfig;
use crate::net::{self, NetConfig, NetHandle, NetworkEvent};
use crate::params::ChainParams;
use crate::store::Store;

/// The file a running daemon writes its addresses to: one multiaddr per line, ending in
/// `/p2p/<peer id>`, so that the CLI and tests can find it.
pub const ADDR_FILE: &str = "node.addr";
/// The lock a running daemon holds, so two daemons never share a data directory.
pub const LOCK_FILE: &str = "node.lock";

/// Runs a node until `shutdown` turns true.
pub async fn run(
    config: NodeConfig,
    params: ChainParams,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let _lock = lock_data_dir(dir)?;
    let chain_dir = dir.join("chain");
    let existing = if Store::exists(&chain_dir) {
        Some(Chain::open(&chain_dir, params.clone())?)
    } else {
        None
    };
    let genesis = match &existing {
        Some(chain) => Some(chain.genesis_hash()?),
        None => None,
    };
    if let (Some(have), Some(pinned)) = (genesis, config.genesis)
        && have != pinned
    {
        bail!("this data directory holds the chain of genesis {have}, not the pinned {pinned}");
    }

    let mut net_config = NetConfig::new(dir.join("node.key"));
    net_config.listen = config.listen.clone();
    net_config.bootstrap = config.bootstrap.clone();
    net_config.genesis = genesis;
    net_config.max_peers = config.net.max_peers;
    net_config.request_timeout = Duration::from_secs(config.net.request_timeout_secs);
    net_config.requests_per_second_per_peer = config.net.requests_per_second;
    let (net, mut events) = net::spawn(net_config, shutdown.clone()).await?;
    write_addr_file(dir, &net).await?;

    let chain = match existing {
        Some(chain) => chain,
        None => {
            adopt_genesis(
                &net,
                &mut events,
                &chain_dir,
                &params,
                config.genesis,
                shutdown.clone(),
            )
            .await?
        }
    };
    let tip = chain.tip()?;
    info!(target: "chain", role = %config.role, height = tip.height, hash = %tip.hash,
          peer = %net.local_peer_id(), "node started");
    let store = chain.store().clone();
    let chain = chain_task::spawn(chain, &config.mempool, config.role)?;
    let sync = sync::Sync::new(net.clone(), chain.clone());
    let control = Control::new(
        chain.clone(),
        net.clone(),
        sync.clone(),
        store,
        params.clone(),
        config.clone(),
    );
    let _api = crate::api::serve(control, config.api, dir, shutdown.clone()).await?;

    let (mined_tx, mined_rx) = mpsc::channel(16);
    if config.role == Role::Miner {
        let reward_to = config
            .miner_address
            .ok_or_else(|| anyhow!("a miner needs --miner-address"))?;
        tokio::spawn(mining::run(
            chain.clone(),
            config.mining.clone(),
            reward_to.pubkey_hash(),
            mined_tx,
            shutdown.clone(),
        ));
    }
    router::run(net, events, chain, sync, mined_rx, shutdown).await;
    info!(target: "net", "node stopping");
    let _ = std::fs::remove_file(dir.join(ADDR_FILE));
    Ok(())
}

/// An empty store: fetch the genesis block (and whatever follows) from the first peer that
/// answers, check it against `--genesis` if pinned, create the store with it and join its network.
async fn adopt_genesis(
    net: &NetHandle,
    events: &mut mpsc::Receiver<NetworkEvent>,
    chain_dir: &Path,
    params: &ChainParams,
    pinned: Option<BlockHash>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Chain> {
    info!(target: "sync", "empty store: waiting for a peer to adopt its genesis block");
    loop {
        let event = tokio::select! {
            e = events.recv() => e.ok_or_else(|| anyhow!("the network stopped"))?,
            _ = shutdown.changed() => bail!("stopped before a genesis block was found"),
        };
        let peer = match event {
            NetworkEvent::PeerConnected { peer, .. } => peer,
            NetworkEvent::InboundRequest { reply, .. } => {
                reply.send(Response::Error("this node has no chain yet".into()));
                continue;
            }
            _ => continue,
        };
        let request = Request::GetBlocks {
            locator: vec![],
            max: 1,
        };
        let genesis: Block = match net.request(peer, request).await {
            Ok(Response::Blocks(mut blocks)) if !blocks.is_empty() => blocks.swap_remove(0),
            other => {
                warn!(target: "sync", %peer, "no genesis from this peer: {other:?}");
                continue;
            }
        };
        let hash = genesis.block_hash();
        if pinned.is_some_and(|p| p != hash) {
            warn!(target: "sync", %peer, %hash, "peer's genesis is not the pinned one: blocking it");
            net.ban(peer, "genesis differs from --genesis").await;
            continue;
        }
        match Chain::create(chain_dir, params.clone(), &genesis) {
            Ok(chain) => {
                info!(target: "sync", %peer, %hash, "adopted genesis block");
                net.join(hash).await?;
                return Ok(chain);
            }
            Err(e) => {
                warn!(target: "sync", %peer, "peer's genesis block is invalid: {e}");
                net.ban(peer, "invalid genesis").await;
            }
        }
    }
}

/// Whether a node is running on `dir` (some process holds its `node.lock`). When the lock is
/// free this takes it for an instant, so a node starting at that moment may find it busy.
pub fn is_running(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another gossipcoin node is already running on {}",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_a_free_one_left_free() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_running(tmp.path()));
        let path = tmp.path().join(LOCK_FILE);
        let held = std::fs::File::create(&path).unwrap();
        assert!(!is_running(tmp.path()));
        held.try_lock().unwrap(); // the probe did not keep it
        assert!(is_running(tmp.path()));
    }
}
