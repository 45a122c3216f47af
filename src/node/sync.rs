//! Chain sync over `/gossipcoin/sync/1`: the Status exchange on connect, locator-based catch-up
//! in bounded batches from a peer with more work, and the orphans waiting for their ancestors.
//!
//! Accountability: every block is charged to the peer that sent it. A batch comes from the peer
//! we asked; a pooled orphan keeps its own sender ([`super::orphans`]). Sync never decides a
//! penalty itself: it reports to the peer manager through [`NetHandle::report_peer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gossipcoin_proto::message::{MAX_BLOCKS_PER_RESPONSE, Request, Response, Status};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::chain_handle::{BlockOutcome, ChainHandle};
use super::orphans::Orphans;
use super::reads::Reads;
use crate::chain::Origin;
use crate::metrics::{Source, metrics};
use crate::net::{Misbehaviour, NetHandle, PeerId};

/// The first wait after a peer answers "busy" (its serving budget for us is spent); it doubles
/// after each further "busy" until [`BUSY_BACKOFF_MAX`], then the catch-up gives up on the peer.
const BUSY_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(250);
/// See [`BUSY_BACKOFF_MIN`].
const BUSY_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(4);

/// What the sync side of the node shares between its tasks.
pub struct Sync {
    net: NetHandle,
    chain: ChainHandle,
    reads: Reads,
    /// One catch-up at a time.
    busy: AtomicBool,
    orphans: Mutex<Orphans>,
}

impl Sync {
    pub fn new(net: NetHandle, chain: ChainHandle, reads: Reads) -> Arc<Self> {
        Arc::new(Self {
            net,
            chain,
            reads,
            busy: AtomicBool::new(false),
            orphans: Mutex::default(),
        })
    }

    /// Compares a peer's status with ours: a different genesis gets the peer banned; more work
    /// starts a catch-up from it. Returns false when the peer was banned.
    pub async fn on_peer_status(self: &Arc<Self>, peer: PeerId, theirs: Status) -> bool {
        let Ok(ours) = self.reads.status().await else {
            return false;
        };
        if theirs.genesis != ours.genesis {
            warn!(target: "sync", %peer, their_genesis = %theirs.genesis, our_genesis = %ours.genesis,
                  "peer is on another network: disconnecting and blocking it");
            self.net
                .report_peer(peer, Misbehaviour::Fatal, "different genesis");
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
        let Ok(ours) = self.reads.status().await else {
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
        let mut busy = BUSY_BACKOFF_MIN;
        loop {
            let locator = self.reads.locator().await.map_err(|e| e.to_string())?;
            let request = Request::GetBlocks {
                locator,
                max: MAX_BLOCKS_PER_RESPONSE as u32,
            };
            let blocks = match self.net.request(peer, request).await {
                Ok(Response::Blocks(blocks)) => {
                    busy = BUSY_BACKOFF_MIN;
                    blocks
                }
                // The peer's serving budget for us is spent: ask again a little later.
                Ok(Response::Error(e)) if e.starts_with("busy") && busy <= BUSY_BACKOFF_MAX => {
                    debug!(target: "sync", %peer, wait_ms = busy.as_millis() as u64, "peer is busy: backing off");
                    tokio::time::sleep(busy).await;
                    busy *= 2;
                    continue;
                }
                Ok(other) => return Err(format!("unexpected answer to GetBlocks: {other:?}")),
                Err(e) => return Err(e.to_string()),
            };
            if blocks.len() > MAX_BLOCKS_PER_RESPONSE {
                self.net
                    .report_peer(peer, Misbehaviour::Fatal, "oversized block batch");
                return Err("oversized batch".into());
            }
            let n = blocks.len();
            let batch = blocks
                .into_iter()
                .map(|b| (b, peer, Origin::Requested))
                .collect();
            let progressed = self.process(batch).await?;
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

    /// After `parent` was stored (e.g. from gossip): connects the pooled orphans waiting for it.
    pub async fn connect_orphans_of(&self, parent: BlockHash) {
        let children = self.orphan_children(&parent).await;
        if !children.is_empty() {
            let _ = self.process(children).await;
        }
    }

    async fn orphan_children(&self, parent: &BlockHash) -> Vec<(Block, PeerId, Origin)> {
        let side = Origin::Unrequested {
            may_store_side: false,
        };
        self.orphans
            .lock()
            .await
            .children_of(parent)
            .into_iter()
            .map(|o| (o.block, o.from, side))
            .collect()
    }

    /// Hands blocks to the chain, each charged to its own sender, then any pooled orphans that
    /// build on them. `Ok(true)` when something new was stored; `Err` when a block of the
    /// batch (not an orphan) was invalid.
    async fn process(&self, mut queue: Vec<(Block, PeerId, Origin)>) -> Result<bool, String> {
        queue.reverse(); // popped from the back: keep the batch's order
        let mut stored = false;
        while let Some((block, from, origin)) = queue.pop() {
            let hash = block.block_hash();
            metrics().block_received(Source::Sync);
            let outcome = self
                .chain
                .submit_block(block, origin, from.to_string())
                .await
                .map_err(|e| e.to_string())?;
            match outcome {
                BlockOutcome::NewTip { .. } | BlockOutcome::SideBranch { .. } => {
                    stored = true;
                    let mut children = self.orphan_children(&hash).await;
                    children.reverse();
                    queue.extend(children);
                }
                BlockOutcome::Duplicate | BlockOutcome::Orphan { .. } | BlockOutcome::NotStored => {
                }
                BlockOutcome::Invalid { reason, blame } => {
                    if blame {
                        self.net.report_peer(from, Misbehaviour::Fatal, &reason);
                    }
                    if origin == Origin::Requested {
                        return Err(format!("peer sent an invalid block: {reason}"));
                    }
                }
            }
        }
        Ok(stored)
    }

    /// A gossiped block whose parent is missing: keep it (charged to `peer`), and fetch its
    /// ancestors from the peer that sent it.
    pub async fn on_orphan(self: &Arc<Self>, block: Block, peer: PeerId, bytes: usize) {
        debug!(target: "sync", %peer, hash = %block.block_hash(), prev = %block.header.prev, "orphan block: fetching its ancestors");
        self.orphans.lock().await.add(block, peer, bytes);
        self.clone().catch_up(peer);
    }

    /// Forgets what a banned peer left in the orphan pool.
    pub async fn drop_peer(&self, peer: &PeerId) {
        self.orphans.lock().await.drop_peer(peer);
    }

    async fn best_peer_except(&self, skip: PeerId) -> Option<PeerId> {
        let ours = self.reads.status().await.ok()?;
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
