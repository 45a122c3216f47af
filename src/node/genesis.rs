//! A fresh node's first step: with an empty store, adopt the genesis block of the peer it
//! bootstraps from (DESIGN §5) — only a peer we dialled as one of `--bootstrap`, never a peer
//! that happened to connect to us first, which could put us on its own network.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use gossipcoin_proto::message::{Request, Response};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::chain::Chain;
use crate::net::{Misbehaviour, NetHandle, NetworkEvent};
use crate::params::ChainParams;

/// Waits for a bootstrap peer, fetches its genesis block, checks it against `pinned`, creates
/// the store with it and joins its network.
pub async fn adopt(
    net: &NetHandle,
    events: &mut mpsc::Receiver<NetworkEvent>,
    chain_dir: &Path,
    params: &ChainParams,
    pinned: Option<BlockHash>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Chain> {
    info!(target: "sync", "empty store: waiting for a bootstrap peer to adopt its genesis block");
    loop {
        let event = tokio::select! {
            e = events.recv() => e.ok_or_else(|| anyhow!("the network stopped"))?,
            _ = shutdown.changed() => bail!("stopped before a genesis block was found"),
        };
        let peer = match event {
            NetworkEvent::PeerConnected {
                peer,
                bootstrap: true,
                ..
            } => peer,
            NetworkEvent::PeerConnected { peer, .. } => {
                info!(target: "sync", %peer, "not a bootstrap peer: not adopting its genesis");
                continue;
            }
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
            net.report_peer(peer, Misbehaviour::Fatal, "genesis differs from --genesis");
            continue;
        }
        match Chain::create(chain_dir, params.clone(), &genesis) {
            Ok(chain) => {
                info!(target: "sync", %peer, %hash, "adopted genesis block");
                match net.join(hash).await {
                    // Stopping at this moment stops the network too: the chain is complete,
                    // and the node goes on to stop as usual.
                    Err(_) if *shutdown.borrow() => {}
                    joined => joined?,
                }
                return Ok(chain);
            }
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                warn!(target: "sync", %peer, "peer's genesis block is invalid: {e}");
                net.report_peer(peer, Misbehaviour::Fatal, "invalid genesis");
            }
        }
    }
}
