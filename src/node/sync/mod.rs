//! Chain sync over `/gossipcoin/sync/1`, headers first: the Status exchange on connect, headers
//! that must back every claim, blocks downloaded by hash from several peers at once, and the
//! orphans waiting for their ancestors.
//!
//! - [`manager`]: the task that owns every sync decision (which peer to ask for headers, which
//!   blocks to ask whom for, who stalls, when to hand blocks to the chain);
//! - [`window`]: the moving download window it keeps (pure bookkeeping, unit-tested);
//! - [`announce`]: our new tips told to the peers that do not know them (Core's tip `headers`);
//! - this file: [`Sync`], the handle the router, the ingest workers and the API use, and the
//!   orphan pool's glue.
//!
//! Accountability: every block is charged to the peer that sent it. A downloaded block is
//! charged to the peer that answered with it; a pooled orphan keeps its own sender
//! ([`super::orphans`]). Sync never decides a penalty itself: it reports to the peer manager
//! through [`NetHandle::report_peer`].

mod announce;
mod manager;
mod window;

use std::sync::Arc;
use std::time::Duration;

use gossipcoin_proto::message::{Request, Response, Status};
use gossipcoin_proto::{Block, BlockHash};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tracing::{debug, warn};

use super::chain_handle::{BlockOutcome, ChainHandle};
use super::orphans::Orphans;
use super::reads::Reads;
use crate::chain::Origin;
use crate::metrics::{Source, metrics};
use crate::net::{Misbehaviour, NetHandle, PeerId};
use manager::{Event, Manager};

/// Events waiting for the sync manager.
const EVENT_QUEUE: usize = 1024;
/// `download_now` gives up after this long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where sync stands, from verified headers only (a peer's claim never shows here).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SyncProgress {
    /// A verified header chain has more work than our tip.
    pub syncing: bool,
    /// Height of the best verified header.
    pub headers_height: u32,
    /// Our tip's height over `headers_height`, 0..=1.
    pub progress: f64,
    /// Blocks connected per second lately (0 when not syncing).
    pub blocks_per_sec: f64,
}

/// The handle to sync. Cheap to share (`Arc`).
pub struct Sync {
    net: NetHandle,
    chain: ChainHandle,
    reads: Reads,
    events: mpsc::Sender<Event>,
    progress: watch::Receiver<SyncProgress>,
    orphans: Mutex<Orphans>,
    /// Our peers' clocks against ours.
    clocks: std::sync::Mutex<super::clock::PeerClocks>,
}

impl Sync {
    /// Starts the sync manager.
    pub fn new(net: NetHandle, chain: ChainHandle, reads: Reads) -> Arc<Self> {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let (progress_tx, progress) = watch::channel(SyncProgress::default());
        let sync = Arc::new(Self {
            net: net.clone(),
            chain: chain.clone(),
            reads: reads.clone(),
            events: events.clone(),
            progress,
            orphans: Mutex::default(),
            clocks: std::sync::Mutex::default(),
        });
        let weak = Arc::downgrade(&sync);
        tokio::spawn(announce::run(weak.clone(), chain.state()));
        tokio::spawn(async move {
            if let Some(manager) =
                Manager::start(net, chain, reads, weak, events, progress_tx).await
            {
                manager.run(rx).await;
            }
        });
        sync
    }

    /// Where sync stands; `changed()` wakes on every update.
    pub fn progress(&self) -> watch::Receiver<SyncProgress> {
        self.progress.clone()
    }

    fn tell(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            debug!(target: "sync", "sync manager busy: event dropped");
        }
    }

    /// Like [`Self::tell`], but the event is never dropped: a departed peer must leave the
    /// manager (or its headers would hold us in `syncing`), however busy the queue is. Only
    /// a full queue costs a task, one per departure: departures are bounded by the
    /// connection slots, not by what a peer sends.
    fn tell_surely(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events.send(event).await;
            });
        }
    }

    /// Checks a peer's status: a different genesis gets the peer banned; anything else is a
    /// claim for the manager to verify by headers. Returns false when the peer was banned.
    pub async fn on_peer_status(&self, peer: PeerId, theirs: Status) -> bool {
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
        let skew = self.clocks.lock().unwrap_or_else(|e| e.into_inner()).note(
            peer,
            theirs.time,
            super::unix_now(),
            std::time::Instant::now(),
        );
        if let Some(offset) = skew {
            warn!(target: "node", offset_secs = offset,
                  "our clock is {} min {} the median of our peers' clocks: check this computer's date and time (block times are checked against it)",
                  offset.unsigned_abs() / 60, if offset > 0 { "behind" } else { "ahead of" });
        }
        self.net.set_peer_status(peer, theirs);
        self.tell(Event::Status {
            peer,
            status: theirs,
        });
        true
    }

    /// Asks a newly connected peer for its status. True when it answered one of our network.
    pub async fn greet(self: Arc<Self>, peer: PeerId) -> bool {
        let Ok(ours) = self.reads.status().await else {
            return false;
        };
        match self.net.request(peer, Request::Status(ours)).await {
            Ok(Response::Status(theirs)) => self.on_peer_status(peer, theirs).await,
            Ok(other) => {
                debug!(target: "sync", %peer, "unexpected answer to Status: {other:?}");
                false
            }
            Err(e) => {
                debug!(target: "sync", %peer, "status request failed: {e}");
                false
            }
        }
    }

    /// Waits until we have what `peer` has shown us (the API's `/nodes/resolve`): its headers
    /// asked for, and the blocks they announce connected, or until it has nothing more to give.
    pub async fn download_now(&self, peer: PeerId) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.events
            .send(Event::Resolve { peer, done })
            .await
            .map_err(|_| "sync has stopped".to_string())?;
        match tokio::time::timeout(RESOLVE_TIMEOUT, wait).await {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "not caught up with {peer} after {RESOLVE_TIMEOUT:?}"
            )),
        }
    }

    /// A block from `peer` became our tip `tip`: the peer has that chain.
    pub fn delivered(&self, peer: PeerId, tip: Status) {
        self.tell(Event::Delivered { peer, tip });
    }

    /// The peer disconnected.
    pub fn peer_gone(&self, peer: PeerId) {
        self.tell_surely(Event::Gone { peer });
    }

    /// After `parent` was stored (e.g. from gossip): connects the pooled orphans waiting for it.
    pub async fn connect_orphans_of(&self, parent: BlockHash) {
        let children = self.orphan_children(&parent).await;
        if !children.is_empty() {
            self.process(children).await;
        }
    }

    /// The parent of an orphan, fetched from `peer`: connects it and the orphans waiting for
    /// it. True when the parent itself is an orphan (more than one block is missing).
    async fn deliver_parent(&self, block: Block, peer: PeerId) -> bool {
        let prev = block.header.prev;
        self.process(vec![(block, peer, Origin::Requested)]).await;
        matches!(self.reads.header(prev).await, Ok(None))
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

    /// Hands blocks to the chain one by one, each charged to its own sender, then any pooled
    /// orphans that build on them.
    async fn process(&self, mut queue: Vec<(Block, PeerId, Origin)>) {
        queue.reverse(); // popped from the back: keep the order
        while let Some((block, from, origin)) = queue.pop() {
            let hash = block.block_hash();
            metrics().block_received(Source::Sync);
            let Ok(outcome) = self
                .chain
                .submit_block(block, origin, from.to_string())
                .await
            else {
                return;
            };
            match outcome {
                BlockOutcome::NewTip { .. } | BlockOutcome::SideBranch { .. } => {
                    let mut children = self.orphan_children(&hash).await;
                    children.reverse();
                    queue.extend(children);
                }
                BlockOutcome::Invalid { reason, blame, .. } => {
                    if blame {
                        self.net.report_peer(from, Misbehaviour::Fatal, &reason);
                    }
                }
                BlockOutcome::Duplicate | BlockOutcome::Orphan { .. } | BlockOutcome::NotStored => {
                }
            }
        }
    }

    /// A gossiped block whose parent is missing: keep it (charged to `peer`), and fetch its
    /// parent from the peer that sent it.
    pub async fn on_orphan(&self, block: Block, peer: PeerId, bytes: usize) {
        let prev = block.header.prev;
        debug!(target: "sync", %peer, hash = %block.block_hash(), %prev, "orphan block: fetching its parent");
        self.orphans.lock().await.add(block, peer, bytes);
        self.tell(Event::Orphan { peer, prev });
    }

    /// Forgets what a banned peer left in the orphan pool, and its requests.
    pub async fn drop_peer(&self, peer: &PeerId) {
        self.orphans.lock().await.drop_peer(peer);
        self.tell_surely(Event::Gone { peer: *peer });
    }
}
