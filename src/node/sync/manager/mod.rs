//! The sync manager: one task that owns every decision of headers-first sync (Bitcoin Core's
//! net_processing since 0.10).
//!
//! 1. A peer's `Status` is only a claim. If it claims more work than the best header we have
//!    verified, we ask it for headers (`GetHeaders` with a locator, 2,000 at a time). The chain
//!    actor checks each header's proof of work, link and time and indexes it; the peer's claim is
//!    believed only as far as its headers go. A peer whose headers do not add up to the work it
//!    claimed is penalised through the peer manager.
//! 2. Blocks are then asked for by hash along the best verified header branch, from every peer
//!    whose headers show it has them, in the moving window of [`super::window`]. A peer that
//!    holds the window's lowest block too long loses its requests to others and is penalised;
//!    a block nobody asked for in an answer is a protocol violation.
//! 3. Blocks are handed to the chain actor in height order, many at a time
//!    ([`ChainHandle::submit_batch`]): it verifies signatures on all cores while connecting and
//!    commits several blocks per write transaction. Downloading goes on meanwhile.
//!
//! Requests run in their own short tasks and report back on the manager's channel, so the
//! manager never waits on a peer. Only verified work drives anything: the `syncing` state of
//! `/status`, `/mine`'s refusal and the miner role read [`SyncProgress`].

mod blocks;
mod headers;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gossipcoin_proto::message::{
    MAX_HEADERS_PER_RESPONSE, MAX_LOCATOR_HASHES, Request, Response, Status,
};
use gossipcoin_proto::{Block, BlockHash, BlockHeader, U256};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::window::{BLOCKS_PER_REQUEST, Window};
use super::{Sync, SyncProgress};
use crate::net::{Misbehaviour, NetHandle, PeerId};
use crate::node::chain_handle::{BatchOutcome, HeadersOutcome};
use crate::node::chain_handle::{BlockOutcome, ChainHandle};
use crate::node::reads::Reads;

/// Most blocks handed to the chain at once (it commits them in several transactions anyway),
/// and about the most bytes.
const MAX_BATCH: usize = 512;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A peer holding the window's lowest block longer than this stalls the download (Core's
/// `BLOCK_STALLING_TIMEOUT`); it doubles each time a staller is found, up to
/// [`MAX_STALL_TIMEOUT`], and shrinks back as blocks connect.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(64);
/// A peer that stalled, answered "busy" or sent nothing it had announced is not asked for
/// blocks for this long.
const STALLER_REST: Duration = Duration::from_secs(30);
const BUSY_REST: Duration = Duration::from_millis(250);
const EMPTY_REST: Duration = Duration::from_secs(5);
/// A peer that answered "busy" (and nothing else) for this long is treated as withholding.
const BUSY_GRACE: Duration = Duration::from_secs(30);
/// An unanswered `GetHeaders` (refused, failed) is asked again after this long.
const HEADERS_RETRY: Duration = Duration::from_secs(1);
/// A peer caught withholding blocks its headers announced is not believed for this long, even
/// if it reconnects (Core disconnects stallers; here the claim is also forgotten). A block it
/// delivers that becomes our tip lifts it at once.
const WITHHELD_DISTRUST: Duration = Duration::from_secs(600);
/// Most peers remembered as withholding (the soonest to expire makes room).
const MAX_DISTRUSTED: usize = 1024;
/// Orphan parents fetched at once: more orphans than this at a time are left to headers sync.
const MAX_PARENT_FETCHES: usize = 8;
/// How often the manager looks for stallers and publishes progress.
const TICK: Duration = Duration::from_millis(250);
/// How often the progress line is logged while syncing.
const PROGRESS_LOG: Duration = Duration::from_secs(5);

/// What the manager hears about.
pub(super) enum Event {
    /// A peer's Status (from the exchange on connect, or sent again).
    Status { peer: PeerId, status: Status },
    /// A block from `peer` became our tip: it has that chain.
    Delivered { peer: PeerId, tip: Status },
    /// The answer to our `GetHeaders`.
    Headers {
        peer: PeerId,
        result: Result<Response, String>,
    },
    /// What the chain made of headers `peer` sent; `full` when the answer was as long as asked.
    HeadersDone {
        peer: PeerId,
        outcome: HeadersOutcome,
        full: bool,
    },
    /// The answer to our `GetBlocksByHash` request `id`.
    Blocks {
        peer: PeerId,
        id: u64,
        result: Result<Response, String>,
    },
    /// The chain is done with a batch; `senders` are the blocks' hashes and who sent each.
    Batch {
        outcome: Option<BatchOutcome>,
        senders: Vec<(BlockHash, PeerId)>,
    },
    /// A gossiped block's parent is missing: fetch it from the sender.
    Orphan { peer: PeerId, prev: BlockHash },
    /// The answer to our `GetBlock` for an orphan's parent.
    Parent {
        peer: PeerId,
        prev: BlockHash,
        result: Result<Response, String>,
    },
    /// The peer left or was banned.
    Gone { peer: PeerId },
    /// Tell `done` once we have what `peer` has shown us (headers asked, blocks connected).
    Resolve {
        peer: PeerId,
        done: oneshot::Sender<()>,
    },
}

/// A header we verified: where a chain ends, and its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    hash: BlockHash,
    height: u32,
    work: U256,
}

impl Known {
    fn of(status: &Status) -> Self {
        Self {
            hash: status.tip,
            height: status.height,
            work: status.chain_work,
        }
    }
}

/// What we know of one peer.
#[derive(Debug, Default)]
struct PeerSync {
    /// The work its last Status claimed.
    claimed: Option<Status>,
    /// The best header it has shown us (by headers, or a block that became our tip).
    best: Option<Known>,
    /// A `GetHeaders` to it is in flight.
    asking_headers: bool,
    /// The work its Status claimed when that `GetHeaders` was sent: what the answer must back.
    /// A Status that arrives meanwhile is judged by the next answer, never by this one.
    asked_claim: Option<U256>,
    /// Since when its block requests have brought nothing (failed, refused, empty): a peer
    /// that cannot deliver what its headers announced loses its claim.
    undelivered_since: Option<Instant>,
    /// Its requests failed only with "busy" since `undelivered_since`.
    only_busy: bool,
    /// Its last `GetHeaders` went unanswered: asked again from then.
    headers_retry_at: Option<Instant>,
    /// Not asked for blocks until then.
    rest_until: Option<Instant>,
}

impl PeerSync {
    fn verified_work(&self) -> U256 {
        self.best.map_or(U256::ZERO, |b| b.work)
    }

    fn raise_best(&mut self, known: Known) {
        if self.best.is_none_or(|b| known.work > b.work) {
            self.best = Some(known);
        }
    }

    /// A block request brought nothing; `busy` when the peer only said it was busy.
    fn undelivered(&mut self, now: Instant, busy: bool) {
        if self.undelivered_since.is_none() {
            self.undelivered_since = Some(now);
            self.only_busy = busy;
        } else if !busy {
            self.only_busy = false;
        }
    }
}

pub(super) struct Manager {
    net: NetHandle,
    chain: ChainHandle,
    reads: Reads,
    sync: std::sync::Weak<Sync>,
    events: mpsc::Sender<Event>,
    peers: HashMap<PeerId, PeerSync>,
    /// Peers caught withholding, until when their headers count for nothing. Kept across
    /// reconnects (bounded by [`MAX_DISTRUSTED`]).
    distrusted: HashMap<PeerId, Instant>,
    /// Our chain's tip.
    tip: Known,
    /// The best header we verified (our tip when no better is known).
    best: Known,
    window: Window,
    /// A batch is at the chain actor.
    feeding: bool,
    stall_timeout: Duration,
    resolves: Vec<(PeerId, oneshot::Sender<()>)>,
    /// Orphan parents being fetched with `GetBlock` (at most [`MAX_PARENT_FETCHES`]).
    fetching_parents: HashSet<BlockHash>,
    progress: watch::Sender<SyncProgress>,
    /// (when, height) at the last progress line, for the rate.
    rate_mark: (Instant, u32),
    rate: f64,
    last_log: Instant,
}

impl Manager {
    pub(super) async fn start(
        net: NetHandle,
        chain: ChainHandle,
        reads: Reads,
        sync: std::sync::Weak<Sync>,
        events: mpsc::Sender<Event>,
        progress: watch::Sender<SyncProgress>,
    ) -> Option<Self> {
        let ours = reads.status().await.ok()?;
        let tip = Known::of(&ours);
        Some(Self {
            net,
            chain,
            reads,
            sync,
            events,
            peers: HashMap::new(),
            distrusted: HashMap::new(),
            tip,
            best: tip,
            window: Window::default(),
            feeding: false,
            stall_timeout: STALL_TIMEOUT,
            resolves: Vec::new(),
            fetching_parents: HashSet::new(),
            progress,
            rate_mark: (Instant::now(), tip.height),
            rate: 0.0,
            last_log: Instant::now(),
        })
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut state = self.chain.state();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => break,
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.refresh_tip().await;
                }
                _ = tick.tick() => self.on_tick().await,
            }
            self.schedule();
            self.feed();
            self.check_resolves();
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Status { peer, status } => self.on_status(peer, status).await,
            Event::Delivered { peer, tip } => {
                // It delivered a block that became our tip: whatever it withheld before, it
                // serves now.
                self.distrusted.remove(&peer);
                let entry = self.peers.entry(peer).or_default();
                entry.raise_best(Known::of(&tip));
                entry.undelivered_since = None;
            }
            Event::Headers { peer, result } => self.on_headers(peer, result).await,
            Event::HeadersDone {
                peer,
                outcome,
                full,
            } => self.on_headers_done(peer, outcome, full).await,
            Event::Blocks { peer, id, result } => self.on_blocks(peer, id, result).await,
            Event::Batch { outcome, senders } => self.on_batch(outcome, senders).await,
            Event::Orphan { peer, prev } => self.on_orphan(peer, prev).await,
            Event::Parent { peer, prev, result } => self.on_parent(peer, prev, result).await,
            Event::Gone { peer } => {
                self.peers.remove(&peer);
                self.window.forget_peer(&peer);
                self.resolves.retain(|(p, _)| *p != peer);
                // Its headers no longer hold us in `syncing`: only connected peers can deliver.
                self.recompute_best().await;
            }
            Event::Resolve { peer, done } => self.resolves.push((peer, done)),
        }
    }

    // ---- bookkeeping -----------------------------------------------------------------------

    async fn refresh_tip(&mut self) {
        let Ok(ours) = self.reads.status().await else {
            return;
        };
        self.tip = Known::of(&ours);
        if self.window.hash_at(self.tip.height) == Some(self.tip.hash) {
            self.window.connected_to(self.tip.height);
        }
        if self.tip.work >= self.best.work {
            self.best = self.tip;
            if !self.window.is_empty() {
                self.window.reset(self.tip.height, &[]);
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(peer) = self.window.staller(now, self.stall_timeout) {
            warn!(target: "sync", %peer, timeout_ms = self.stall_timeout.as_millis() as u64,
                  "peer stalls the block download: its blocks go to other peers");
            self.stall_timeout = (self.stall_timeout * 2).min(MAX_STALL_TIMEOUT);
            self.withdraw_claim(peer, Misbehaviour::Mid, "stalled the block download window")
                .await;
        }
        // Peers whose block requests bring nothing for too long (refused, failed; "busy" is
        // given longer) withhold too.
        let (stall, tip) = (self.stall_timeout, self.tip.work);
        let withholding: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.verified_work() > tip)
            .filter(|(_, p)| {
                p.undelivered_since.is_some_and(|since| {
                    // Other failures get one retry after their rest first.
                    let grace = if p.only_busy {
                        BUSY_GRACE
                    } else {
                        stall + EMPTY_REST
                    };
                    now.saturating_duration_since(since) >= grace
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in withholding {
            self.withdraw_claim(
                peer,
                Misbehaviour::Mid,
                "could not deliver the blocks its headers announced",
            )
            .await;
        }
        self.retry_headers(now).await;
        self.publish(now);
    }

    fn publish(&mut self, now: Instant) {
        let syncing = self.best.work > self.tip.work;
        let elapsed = now.saturating_duration_since(self.rate_mark.0);
        if elapsed >= Duration::from_secs(1) {
            let blocks = self.tip.height.saturating_sub(self.rate_mark.1);
            self.rate = f64::from(blocks) / elapsed.as_secs_f64();
            self.rate_mark = (now, self.tip.height);
        }
        let progress = if self.best.height == 0 {
            1.0
        } else {
            (f64::from(self.tip.height) / f64::from(self.best.height)).min(1.0)
        };
        let downloading = self
            .peers
            .values()
            .filter(|p| self.serves_to(p) > self.tip.height)
            .count();
        if syncing && now.saturating_duration_since(self.last_log) >= PROGRESS_LOG {
            self.last_log = now;
            info!(target: "sync", height = self.tip.height, headers = self.best.height,
                  progress = format!("{:.1}%", progress * 100.0), blocks_per_sec = format!("{:.0}", self.rate),
                  peers = downloading, buffered_kib = self.window.buffered_bytes() / 1024, "syncing");
        }
        self.progress.send_replace(SyncProgress {
            syncing,
            headers_height: self.best.height,
            progress,
            blocks_per_sec: if syncing { self.rate } else { 0.0 },
        });
    }

    /// Answers the `Resolve`s whose peer has nothing more to give us.
    fn check_resolves(&mut self) {
        let pending = std::mem::take(&mut self.resolves);
        for (peer, done) in pending {
            let finished = match self.peers.get(&peer) {
                None => true,
                Some(p) => {
                    !p.asking_headers
                        && (p.verified_work() <= self.tip.work || self.serves_to(p) == 0)
                }
            };
            if finished {
                let _ = done.send(());
            } else {
                self.resolves.push((peer, done));
            }
        }
    }
}

/// Whether an error answer only says "not now" (the peer is busy, or we asked too often):
/// never held against it.
fn is_busy(error: &str) -> bool {
    error.starts_with("busy") || error.starts_with("rate limited")
}

/// About the encoded size of `block` (within a few bytes a transaction), without encoding it:
/// what a buffered block costs, for the window's byte bound.
fn approx_size(block: &Block) -> usize {
    const INPUT: usize = 32 + 5 + 64 + 33;
    const OUTPUT: usize = 9 + 20;
    let txs: usize = block
        .txs
        .iter()
        .map(|tx| 4 + tx.inputs.len() * INPUT + tx.outputs.len() * OUTPUT)
        .sum();
    BlockHeader::SIZE + 3 + txs
}
