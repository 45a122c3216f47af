//! A fresh node's first step: with an empty store, adopt its network's genesis block.
//!
//! - **The genesis is known** (the parameters' `genesis`, or `--genesis`): the block of that
//!   hash is fetched by hash from *any* peer (Bitcoin's chainparams: a network is its genesis),
//!   and no other block is ever adopted. Peers are tried in turn; one that does not have it is
//!   tried again later, so a busy bootstrap peer is no bottleneck.
//! - **The genesis is not known** (the seed's scenario): only a peer we dialled as one of
//!   `--bootstrap` may hand it over, never a peer that happened to connect to us first, which
//!   could put us on its own network (DESIGN §5).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use gossipcoin_proto::message::{Request, Response};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::chain::Chain;
use crate::net::{Misbehaviour, NetHandle, NetworkEvent, PeerId};
use crate::params::ChainParams;

/// A peer that could not hand the genesis over is asked again after this long.
const RETRY_PEER: Duration = Duration::from_secs(3);
/// How long one peer may take to hand the genesis over.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the candidates are looked at when no event arrives.
const POLL: Duration = Duration::from_millis(500);
/// At most this many peers are remembered as candidates (connections are bounded anyway).
const MAX_CANDIDATES: usize = 256;

/// Waits for a peer that may hand over the genesis block, fetches it, checks it against
/// `pinned`, creates the store with it and joins its network.
pub async fn adopt(
    net: &NetHandle,
    events: &mut mpsc::Receiver<NetworkEvent>,
    chain_dir: &Path,
    params: &ChainParams,
    pinned: Option<BlockHash>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Chain> {
    match pinned {
        Some(hash) => info!(target: "sync", genesis = %hash,
                            "empty store: fetching the network's genesis block from any peer"),
        None => info!(target: "sync",
                      "empty store: waiting for a bootstrap peer to adopt its genesis block"),
    }
    // peers that may hand it over, and when each was last asked
    let mut candidates: VecDeque<PeerId> = VecDeque::new();
    let mut asked: HashMap<PeerId, Instant> = HashMap::new();
    loop {
        let now = Instant::now();
        let due = candidates.iter().position(|p| {
            asked
                .get(p)
                .is_none_or(|t| now.duration_since(*t) >= RETRY_PEER)
        });
        let Some(i) = due else {
            let event = tokio::select! {
                e = events.recv() => e.ok_or_else(|| anyhow!("the network stopped"))?,
                _ = tokio::time::sleep(POLL) => continue,
                _ = shutdown.changed() => bail!("stopped before a genesis block was found"),
            };
            on_event(event, pinned.is_some(), &mut candidates, &mut asked);
            continue;
        };
        let peer = candidates.remove(i).expect("found above");
        candidates.push_back(peer);
        asked.insert(peer, now);
        // Keep answering while we wait: two fresh nodes asking each other for a genesis would
        // otherwise each wait on the other's answer until the request timed out.
        let fetched = {
            let fetch = tokio::time::timeout(FETCH_TIMEOUT, fetch(net, peer, pinned));
            tokio::pin!(fetch);
            loop {
                tokio::select! {
                    got = &mut fetch => break got.ok().flatten(),
                    e = events.recv() => {
                        let e = e.ok_or_else(|| anyhow!("the network stopped"))?;
                        on_event(e, pinned.is_some(), &mut candidates, &mut asked);
                    }
                    _ = shutdown.changed() => bail!("stopped before a genesis block was found"),
                }
            }
        };
        let Some(genesis) = fetched else {
            continue;
        };
        let hash = genesis.block_hash();
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
                candidates.retain(|p| *p != peer);
            }
        }
    }
}

/// Keeps the candidates up to date; answers requests (we have nothing to serve yet).
fn on_event(
    event: NetworkEvent,
    any_peer: bool,
    candidates: &mut VecDeque<PeerId>,
    asked: &mut HashMap<PeerId, Instant>,
) {
    match event {
        NetworkEvent::PeerConnected {
            peer, bootstrap, ..
        } => {
            if !(any_peer || bootstrap) {
                info!(target: "sync", %peer, "not a bootstrap peer: not adopting its genesis");
            } else if candidates.len() < MAX_CANDIDATES && !candidates.contains(&peer) {
                candidates.push_back(peer);
            }
        }
        NetworkEvent::PeerDisconnected { peer } | NetworkEvent::PeerBanned { peer } => {
            candidates.retain(|p| *p != peer);
            asked.remove(&peer);
        }
        NetworkEvent::InboundRequest { reply, .. } => {
            reply.send(Response::Error("this node has no chain yet".into()));
        }
        _ => {}
    }
}

/// Asks `peer` for the genesis: by hash when it is known (and only that block is taken), else
/// the first block of its chain.
async fn fetch(net: &NetHandle, peer: PeerId, pinned: Option<BlockHash>) -> Option<Block> {
    let request = match pinned {
        Some(hash) => Request::GetBlocksByHash { hashes: vec![hash] },
        None => Request::GetBlocks {
            locator: vec![],
            max: 1,
        },
    };
    let block = match net.request(peer, request).await {
        Ok(Response::Blocks(mut blocks)) if !blocks.is_empty() => blocks.swap_remove(0),
        Ok(Response::Blocks(_)) => {
            debug!(target: "sync", %peer, "peer does not have the genesis block");
            return None;
        }
        other => {
            debug!(target: "sync", %peer, "no genesis from this peer: {other:?}");
            return None;
        }
    };
    let hash = block.block_hash();
    match pinned {
        Some(p) if p != hash => {
            // it answered a request by hash with another block
            warn!(target: "sync", %peer, %hash, expected = %p, "peer sent a block that was not asked for");
            net.report_peer(
                peer,
                Misbehaviour::Fatal,
                "sent another block than the genesis asked for",
            );
            None
        }
        _ => Some(block),
    }
}
