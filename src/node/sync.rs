//! Chain sync over `/gossipcoin/sync/1`: the Status exchange on connect, locator-based catch-up
//! in bounded batches from a peer with more work, and the orphan pool that holds gossiped blocks
//! whose parent is missing until sync has fetched their ancestors.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gossipcoin_proto::message::{MAX_BLOCKS_PER_RESPONSE, Request, Response, Status};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::chain_task::{BlockOutcome, ChainHandle};
use crate::net::{NetHandle, PeerId};

/// How many orphan blocks are kept at most (oldest dropped first).
const MAX_ORPHANS: usize = 100;

/// What the sync side of the node shares between its tasks.
pub struct Sync {
    net: NetHandle,
    chain: ChainHandle,
    /// One catch-up at a time.
    busy: AtomicBool,
    orphans: Mutex<Orphans>,
}

#[derive(Default)]
struct Orphans {
    by_parent: HashMap<BlockHash, Vec<Block>>,
    order: VecDeque<(BlockHash, BlockHash)>, // (parent, hash), oldest first
}

impl Orphans {
    fn add(&mut self, block: Block) {
        let (parent, hash) = (block.header.prev, block.block_hash());
        let siblings = self.by_parent.entry(parent).or_default();
        if siblings.iter().any(|b| b.block_hash() == hash) {
            return;
        }
        siblings.push(block);
        self.order.push_back((parent, hash));
        while self.order.len() > MAX_ORPHANS {
            let Some((p, h)) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.by_parent.get_mut(&p) {
                v.retain(|b| b.block_hash() != h);
                if v.is_empty() {
                    self.by_parent.remove(&p);
                }
            }
        }
    }

    fn children_of(&mut self, parent: &BlockHash) -> Vec<Block> {
        let children = self.by_parent.remove(parent).unwrap_or_default();
        self.order.retain(|(p, _)| p != parent);
        children
    }
}

impl Sync {
    pub fn new(net: NetHandle, chain: ChainHandle) -> Arc<Self> {
        Arc::new(Self {
            net,
            chain,
            busy: AtomicBool::new(false),
            orphans: Mutex::default(),
        })
    }

    /// Compares a peer's status with ours: a different genesis gets the peer banned; more work
    /// starts a catch-up from it. Returns false when the peer was banned.
    pub async fn on_peer_status(self: &Arc<Self>, peer: PeerId, theirs: Status) -> bool {
        let Ok(ours) = self.chain.status().await else {
            return false;
        };
        if theirs.genesis != ours.genesis {
            warn!(target: "sync", %peer, their_genesis = %theirs.genesis, our_genesis = %ours.genesis,
                  "peer is on another network: disconnecting and blocking it");
            self.net.ban(peer, "different genesis").await;
            return false;
        }
        self.net.set_peer_status(peer, theirs);
        if theirs.chain_work > ours.chain_work {
            self.clone().catch_up(peer);
        }
        true
    }

    /// Asks a newly connected peer for its status.
    pub async fn greet(self: Arc<Self>, peer: PeerId) {
        let Ok(ours) = self.chain.status().await else {
            return;
        };
        match self.net.request(peer, Request::Status(ours)).await {
            Ok(Response::Status(theirs)) => {
                self.on_peer_status(peer, theirs).await;
            }
            Ok(other) => debug!(target: "sync", %peer, "unexpected answer to Status: {other:?}"),
            Err(e) => debug!(target: "sync", %peer, "status request failed: {e}"),
        }
    }

    /// Starts a catch-up from `peer` unless one is running.
    pub fn catch_up(self: Arc<Self>, peer: PeerId) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            let result = self.download_from(peer).await;
            self.busy.store(false, Ordering::Release);
            if let Err(reason) = result {
                debug!(target: "sync", %peer, "catch-up stopped: {reason}");
                // Timed out or failed: retry with the best other peer.
                if let Some(other) = self.best_peer_except(peer).await {
                    self.catch_up(other);
                }
            }
        });
    }

    /// Downloads from `peer` now and returns when done (the API's `/nodes/resolve`), whether or
    /// not a background catch-up is running: blocks both fetch are simply duplicates.
    pub async fn download_now(&self, peer: PeerId) -> Result<(), String> {
        self.download_from(peer).await
    }

    /// Fetches batches of blocks after our locator from `peer` until it has no more.
    async fn download_from(&self, peer: PeerId) -> Result<(), String> {
        let started = std::time::Instant::now();
        let mut total = 0usize;
        loop {
            let locator = self.chain.locator().await.map_err(|e| e.to_string())?;
            let request = Request::GetBlocks {
                locator,
                max: MAX_BLOCKS_PER_RESPONSE as u32,
            };
            let blocks = match self.net.request(peer, request).await {
                Ok(Response::Blocks(blocks)) => blocks,
                Ok(other) => return Err(format!("unexpected answer to GetBlocks: {other:?}")),
                Err(e) => return Err(e.to_string()),
            };
            if blocks.len() > MAX_BLOCKS_PER_RESPONSE {
                self.net.ban(peer, "oversized block batch").await;
                return Err("oversized batch".into());
            }
            let n = blocks.len();
            let mut progressed = false;
            for block in blocks {
                match self.submit(block, &peer).await {
                    Some(true) => progressed = true,
                    Some(false) => {}
                    None => return Err("peer sent an invalid block".into()),
                }
            }
            total += n;
            if n == 0 || !progressed {
                break;
            }
            info!(target: "sync", %peer, blocks = total, "downloaded blocks");
        }
        if total > 0 {
            let secs = started.elapsed().as_secs_f64();
            info!(target: "sync", %peer, blocks = total, secs = format!("{secs:.2}"), "caught up");
        }
        Ok(())
    }

    /// Hands a block to the chain, then any pooled orphans that build on it. `Some(true)` when
    /// something new was stored, `None` when a block was invalid (the peer is banned).
    pub async fn submit(&self, block: Block, peer: &PeerId) -> Option<bool> {
        self.process(vec![block], peer).await
    }

    /// After `parent` was stored (e.g. from gossip): connects the pooled orphans waiting for it.
    pub async fn connect_orphans_of(&self, parent: BlockHash, peer: &PeerId) {
        let children = self.orphans.lock().await.children_of(&parent);
        if !children.is_empty() {
            self.process(children, peer).await;
        }
    }

    async fn process(&self, mut queue: Vec<Block>, peer: &PeerId) -> Option<bool> {
        let mut stored = false;
        while let Some(block) = queue.pop() {
            let hash = block.block_hash();
            crate::metrics::metrics().block_received(crate::metrics::Source::Sync);
            match self
                .chain
                .submit_block(block, peer.to_string())
                .await
                .ok()?
            {
                BlockOutcome::NewTip { .. } | BlockOutcome::SideBranch { .. } => {
                    stored = true;
                    queue.extend(self.orphans.lock().await.children_of(&hash));
                }
                BlockOutcome::Duplicate | BlockOutcome::Orphan { .. } => {}
                BlockOutcome::Invalid {
                    misbehaviour,
                    reason,
                } => {
                    if misbehaviour {
                        self.net.ban(*peer, &reason).await;
                        return None;
                    }
                }
            }
        }
        Some(stored)
    }

    /// A gossiped block whose parent is missing: keep it, and fetch its ancestors from the
    /// peer that sent it.
    pub async fn on_orphan(self: &Arc<Self>, block: Block, peer: PeerId) {
        debug!(target: "sync", %peer, hash = %block.block_hash(), prev = %block.header.prev, "orphan block: fetching its ancestors");
        self.orphans.lock().await.add(block);
        self.clone().catch_up(peer);
    }

    async fn best_peer_except(&self, skip: PeerId) -> Option<PeerId> {
        let ours = self.chain.status().await.ok()?;
        self.net
            .peers()
            .await
            .into_iter()
            .filter(|p| p.peer != skip)
            .filter_map(|p| p.status.map(|s| (p.peer, s)))
            .filter(|(_, s)| s.chain_work > ours.chain_work)
            .max_by_key(|(_, s)| s.chain_work)
            .map(|(p, _)| p)
    }
}
