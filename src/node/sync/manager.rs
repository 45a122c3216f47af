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

    // ---- headers -------------------------------------------------------------------------

    /// A claim: believed only as far as headers prove it.
    async fn on_status(&mut self, peer: PeerId, status: Status) {
        debug!(target: "sync", %peer, height = status.height, tip = %status.tip, "peer status");
        let entry = self.peers.entry(peer).or_default();
        entry.claimed = Some(status);
        if self.distrusts(&peer) {
            debug!(target: "sync", %peer, "peer withheld blocks lately: its status is not followed");
            return;
        }
        // A tip we already verified proves itself, if the claimed work is what it has.
        if let Ok(Some(known)) = self.reads.header(status.tip).await {
            let known = Known {
                hash: status.tip,
                height: known.0,
                work: known.1,
            };
            let entry = self.peers.entry(peer).or_default();
            if known.work != status.chain_work {
                self.net.report_peer(
                    peer,
                    Misbehaviour::High,
                    "its Status claims more work for its tip than the tip's headers have",
                );
                entry.claimed = None;
            }
            entry.raise_best(known);
            // Headers we verified earlier (another peer's, or before a restart) may lead
            // further than the branch we follow.
            let honest = entry.claimed.is_some();
            if honest && known.work > self.best.work {
                self.new_best(known).await;
            }
            return;
        }
        if status.chain_work > self.best.work.max(self.tip.work) {
            self.ask_headers(peer, None).await;
        }
    }

    /// Asks `peer` for headers after `from` (when continuing) or after our best chain.
    async fn ask_headers(&mut self, peer: PeerId, from: Option<BlockHash>) {
        let entry = self.peers.entry(peer).or_default();
        if entry.asking_headers {
            return;
        }
        entry.asking_headers = true;
        entry.asked_claim = entry.claimed.map(|c| c.chain_work);
        let mut locator: Vec<BlockHash> = from.into_iter().collect();
        if self.best.hash != self.tip.hash {
            locator.push(self.best.hash);
        }
        locator.extend(self.reads.locator().await.unwrap_or_default());
        locator.dedup();
        locator.truncate(MAX_LOCATOR_HASHES);
        let request = Request::GetHeaders {
            locator,
            max: MAX_HEADERS_PER_RESPONSE as u32,
        };
        let (net, events) = (self.net.clone(), self.events.clone());
        tokio::spawn(async move {
            let result = net.request(peer, request).await.map_err(|e| e.to_string());
            let _ = events.send(Event::Headers { peer, result }).await;
        });
    }

    async fn on_headers(&mut self, peer: PeerId, result: Result<Response, String>) {
        let headers = match result {
            Ok(Response::Headers(headers)) => headers,
            Ok(Response::Error(e)) => {
                // No answer: nothing to judge the claim by (a busy or rate-limiting peer is
                // not a liar). Asked again after a rest.
                debug!(target: "sync", %peer, "headers refused: {e}");
                if !is_busy(&e) {
                    self.net
                        .report_peer(peer, Misbehaviour::Low, "refused GetHeaders");
                }
                return self.headers_unanswered(peer);
            }
            Ok(other) => {
                self.net.report_peer(
                    peer,
                    Misbehaviour::Mid,
                    "answered GetHeaders with something else",
                );
                debug!(target: "sync", %peer, "unexpected answer to GetHeaders: {other:?}");
                return self.headers_finished(peer).await;
            }
            Err(e) => {
                debug!(target: "sync", %peer, "headers request failed: {e}");
                return self.headers_unanswered(peer);
            }
        };
        if headers.len() > MAX_HEADERS_PER_RESPONSE {
            self.net
                .report_peer(peer, Misbehaviour::Fatal, "sent more headers than allowed");
            return self.headers_finished(peer).await;
        }
        if headers.is_empty() {
            return self.headers_finished(peer).await;
        }
        let full = headers.len() == MAX_HEADERS_PER_RESPONSE;
        let (chain, events) = (self.chain.clone(), self.events.clone());
        tokio::spawn(async move {
            let Ok(outcome) = chain.submit_headers(headers, peer.to_string()).await else {
                return;
            };
            let _ = events
                .send(Event::HeadersDone {
                    peer,
                    outcome,
                    full,
                })
                .await;
        });
    }

    async fn on_headers_done(&mut self, peer: PeerId, outcome: HeadersOutcome, full: bool) {
        match outcome {
            HeadersOutcome::Accepted {
                last,
                height,
                chain_work,
                new,
            } => {
                let known = Known {
                    hash: last,
                    height,
                    work: chain_work,
                };
                debug!(target: "sync", %peer, height, %last, new, "headers accepted");
                self.credit(peer, known).await;
                if full {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.asking_headers = false;
                    }
                    return self.ask_headers(peer, Some(last)).await;
                }
            }
            HeadersOutcome::Unconnected { prev } => {
                debug!(target: "sync", %peer, %prev, "headers that do not connect to ours");
                self.net.report_peer(
                    peer,
                    Misbehaviour::Low,
                    "sent headers that do not connect to ours",
                );
            }
            HeadersOutcome::Invalid { reason, blame } => {
                if blame {
                    self.net.report_peer(
                        peer,
                        Misbehaviour::Fatal,
                        &format!("invalid headers: {reason}"),
                    );
                }
            }
        }
        self.headers_finished(peer).await;
    }

    /// `peer` has no more headers for us: the claim it made when we asked must be backed by
    /// what it showed. A newer claim (a Status that crossed the answer: a peer mining fast
    /// announces blocks while its headers are on the way) is asked about again, not judged.
    async fn headers_finished(&mut self, peer: PeerId) {
        let distrusted = self.distrusts(&peer);
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        entry.asking_headers = false;
        let asked = entry.asked_claim.take();
        if distrusted {
            return;
        }
        let shown = entry.verified_work();
        if let Some(asked) = asked
            && asked > shown
            && asked > self.tip.work
        {
            warn!(target: "sync", %peer, claimed_height = entry.claimed.map(|c| c.height), shown_height = entry.best.map(|b| b.height),
                  "peer claims more work than its headers show");
            entry.claimed = None;
            return self.net.report_peer(
                peer,
                Misbehaviour::High,
                "its headers do not back the chain work it claims",
            );
        }
        if let Some(newer) = entry.claimed
            && newer.chain_work > shown
            && newer.chain_work > self.best.work.max(self.tip.work)
        {
            debug!(target: "sync", %peer, height = newer.height, "a newer claim arrived meanwhile: asking again");
            self.ask_headers(peer, None).await;
        }
    }

    /// Our `GetHeaders` got no answer (refused, failed): the claim stands unjudged and is
    /// asked about again after [`HEADERS_RETRY`].
    fn headers_unanswered(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asking_headers = false;
            p.asked_claim = None;
            p.headers_retry_at = Some(Instant::now() + HEADERS_RETRY);
        }
    }

    /// Peers whose claim leads further than anything we verified and whose last `GetHeaders`
    /// went unanswered are asked again.
    async fn retry_headers(&mut self, now: Instant) {
        let bar = self.best.work.max(self.tip.work);
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.asking_headers && p.headers_retry_at.is_some_and(|t| now >= t))
            .filter(|(_, p)| p.claimed.is_some_and(|c| c.chain_work > bar))
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.headers_retry_at = None;
            }
            if !self.distrusts(&peer) {
                self.ask_headers(peer, None).await;
            }
        }
    }

    /// Whether `peer` was caught withholding lately (its headers count for nothing).
    fn distrusts(&self, peer: &PeerId) -> bool {
        self.distrusted
            .get(peer)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// `peer` showed `known` by headers: it can serve up to there, and the download follows
    /// it if it is the best we know. A peer caught withholding is not believed.
    async fn credit(&mut self, peer: PeerId, known: Known) {
        if self.distrusts(&peer) {
            return;
        }
        self.peers.entry(peer).or_default().raise_best(known);
        if known.work > self.best.work {
            self.new_best(known).await;
        }
    }

    /// `peer` showed headers and did not deliver their blocks: its headers no longer count
    /// (so its branch stops holding us in `syncing` and the miner mines), it is charged and
    /// disconnected, and it is not believed again for [`WITHHELD_DISTRUST`].
    async fn withdraw_claim(&mut self, peer: PeerId, offence: Misbehaviour, why: &str) {
        let now = Instant::now();
        let shown = self.peers.get(&peer).and_then(|p| p.best).map(|b| b.height);
        warn!(target: "sync", %peer, shown_height = shown, height = self.tip.height,
              "peer withholds blocks its headers announced: {why}; its headers no longer count");
        self.distrusted.retain(|_, until| now < *until);
        if self.distrusted.len() >= MAX_DISTRUSTED
            && let Some(soonest) = self
                .distrusted
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(p, _)| *p)
        {
            self.distrusted.remove(&soonest);
        }
        self.distrusted.insert(peer, now + WITHHELD_DISTRUST);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.best = None;
            p.claimed = None;
            p.undelivered_since = None;
        }
        self.window.release_peer(&peer);
        self.net.report_peer(peer, offence, why);
        let net = self.net.clone();
        tokio::spawn(async move {
            net.disconnect(peer).await;
        });
        self.recompute_best().await;
    }

    /// The download target from scratch: the best header shown by a connected peer we
    /// believe, or our own tip when none leads further.
    async fn recompute_best(&mut self) {
        let mut best: Option<Known> = None;
        for (id, p) in &self.peers {
            let Some(b) = p.best else { continue };
            if b.work > self.tip.work && best.is_none_or(|x| b.work > x.work) && !self.distrusts(id)
            {
                best = Some(b);
            }
        }
        match best {
            Some(b) if b == self.best => {}
            Some(b) => {
                info!(target: "sync", height = b.height, hash = %b.hash, "following another peer's headers");
                self.best = b;
                self.rebuild_window().await;
            }
            None => {
                if self.best != self.tip {
                    info!(target: "sync", headers = self.best.height, height = self.tip.height,
                          "no connected peer can deliver the better headers: not syncing");
                }
                self.best = self.tip;
                self.window.reset(self.tip.height, &[]);
            }
        }
    }

    /// A better verified header: the window now follows the branch to it.
    async fn new_best(&mut self, known: Known) {
        let extends = self
            .window
            .top()
            .map_or(self.best.hash == self.tip.hash, |(_, h)| {
                h == self.best.hash
            });
        let old = self.best;
        self.best = known;
        if extends && known.height > old.height {
            // The usual case: the new headers continue the branch; only they are read.
            if let Ok(Some(hashes)) = self.reads.branch_between(old.hash, known.hash).await {
                if self.window.is_empty() {
                    // `old` is our tip: the branch starts right above it.
                    self.window.reset(old.height, &hashes);
                } else {
                    self.window.extend(old.height + 1, &hashes);
                }
                return;
            }
        }
        self.rebuild_window().await;
    }

    /// The window from scratch: the branch from the main chain up to the best header.
    async fn rebuild_window(&mut self) {
        match self.reads.branch_to(self.best.hash).await {
            Ok(Some((fork, hashes))) => self.window.reset(fork, &hashes),
            Ok(None) => self.window.reset(self.tip.height, &[]),
            Err(e) => warn!(target: "sync", "cannot read the header branch: {e}"),
        }
    }

    // ---- blocks --------------------------------------------------------------------------

    /// How far up the branch `peer` can serve blocks, by the headers it has shown.
    fn serves_to(&self, p: &PeerSync) -> u32 {
        match p.best {
            Some(b) if b.hash == self.best.hash => b.height,
            Some(b) if self.window.hash_at(b.height) == Some(b.hash) => b.height,
            _ => 0,
        }
    }

    /// Asks every useful peer for blocks of the window.
    fn schedule(&mut self) {
        if self.window.is_empty() {
            return;
        }
        let now = Instant::now();
        let peers: Vec<(PeerId, u32)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.rest_until.is_none_or(|t| now >= t))
            .map(|(id, p)| (*id, self.serves_to(p)))
            .filter(|(_, to)| *to > 0)
            .collect();
        for (peer, serves_to) in peers {
            while let Some((id, hashes)) = self.window.assign(peer, serves_to, now) {
                debug_assert!(hashes.len() <= BLOCKS_PER_REQUEST);
                let (net, events) = (self.net.clone(), self.events.clone());
                tokio::spawn(async move {
                    let request = Request::GetBlocksByHash { hashes };
                    let result = net.request(peer, request).await.map_err(|e| e.to_string());
                    let _ = events.send(Event::Blocks { peer, id, result }).await;
                });
            }
        }
    }

    async fn on_blocks(&mut self, peer: PeerId, id: u64, result: Result<Response, String>) {
        let rest = |m: &mut Self, d: Duration| {
            if let Some(p) = m.peers.get_mut(&peer) {
                let now = Instant::now();
                p.rest_until = Some(now + d);
                p.undelivered(now, d == BUSY_REST);
            }
        };
        let blocks = match result {
            Ok(Response::Blocks(blocks)) => blocks,
            Ok(Response::Error(e)) => {
                debug!(target: "sync", %peer, "block request refused: {e}");
                self.window.on_failed(id);
                return rest(self, if is_busy(&e) { BUSY_REST } else { EMPTY_REST });
            }
            Ok(_) => {
                self.window.on_failed(id);
                self.net.report_peer(
                    peer,
                    Misbehaviour::Mid,
                    "answered GetBlocksByHash with something else",
                );
                return rest(self, STALLER_REST);
            }
            Err(e) => {
                debug!(target: "sync", %peer, "block request failed: {e}");
                self.window.on_failed(id);
                return rest(self, EMPTY_REST);
            }
        };
        let sized = blocks
            .into_iter()
            .map(|b| {
                let bytes = approx_size(&b);
                (b, bytes)
            })
            .collect();
        match self.window.on_answer(id, peer, sized) {
            Err(violation) => {
                warn!(target: "sync", %peer, "block answer broke the protocol: {violation}");
                self.net.report_peer(
                    peer,
                    Misbehaviour::High,
                    &format!("block answer broke the protocol: {violation}"),
                );
                rest(self, STALLER_REST);
            }
            Ok(answered) if answered.useful == 0 && answered.missing > 0 => {
                // It showed us headers for these blocks, then sent none of them: withholding.
                self.withdraw_claim(
                    peer,
                    Misbehaviour::High,
                    "sent none of the blocks its headers announced",
                )
                .await;
            }
            Ok(answered) => {
                if answered.useful > 0
                    && let Some(p) = self.peers.get_mut(&peer)
                {
                    p.undelivered_since = None;
                }
            }
        }
    }

    /// Hands the blocks that continue our chain to the chain actor, one batch at a time.
    fn feed(&mut self) {
        if self.feeding {
            return;
        }
        let ready = self.window.take_ready(MAX_BATCH, MAX_BATCH_BYTES);
        if ready.is_empty() {
            return;
        }
        self.feeding = true;
        let senders: Vec<(BlockHash, PeerId)> = ready
            .iter()
            .map(|a| (a.block.block_hash(), a.from))
            .collect();
        let blocks: Vec<Block> = ready.into_iter().map(|a| a.block).collect();
        let (chain, events) = (self.chain.clone(), self.events.clone());
        tokio::spawn(async move {
            let outcome = chain.submit_batch(blocks, "sync".into()).await.ok();
            let _ = events.send(Event::Batch { outcome, senders }).await;
        });
    }

    async fn on_batch(&mut self, outcome: Option<BatchOutcome>, senders: Vec<(BlockHash, PeerId)>) {
        self.feeding = false;
        let Some(outcome) = outcome else {
            return; // the chain actor stopped: the node is stopping
        };
        if outcome.connected > 0 {
            self.stall_timeout = (self.stall_timeout / 2).max(STALL_TIMEOUT);
        }
        self.refresh_tip().await;
        let Some((hash, stopped)) = outcome.stopped else {
            if let Some(sync) = self.sync.upgrade() {
                sync.connect_orphans_of(self.tip.hash).await;
            }
            return;
        };
        let from = senders.iter().find(|(h, _)| *h == hash).map(|(_, p)| *p);
        match &stopped {
            BlockOutcome::Invalid { reason, blame, .. } => {
                warn!(target: "sync", %hash, peer = ?from, "a downloaded block is invalid: {reason}");
                if let (true, Some(peer)) = (*blame, from) {
                    self.net.report_peer(peer, Misbehaviour::Fatal, reason);
                }
                // The branch is dead; start over from our tip with what peers show next.
                self.best = self.tip;
                self.window.reset(self.tip.height, &[]);
                let claimants: Vec<PeerId> = self
                    .peers
                    .iter_mut()
                    .map(|(id, p)| {
                        p.best = None;
                        *id
                    })
                    .collect();
                for peer in claimants {
                    if let Some(status) = self.peers.get(&peer).and_then(|p| p.claimed) {
                        self.on_status(peer, status).await;
                    }
                }
            }
            other => {
                debug!(target: "sync", %hash, "batch stopped: {other:?}");
                self.window.handed_back();
                self.rebuild_window().await;
            }
        }
    }

    // ---- orphans ---------------------------------------------------------------------------

    /// A gossiped block whose parent we lack: ask its sender for the parent (unless the header
    /// branch we are downloading already has it).
    async fn on_orphan(&mut self, peer: PeerId, prev: BlockHash) {
        if matches!(self.reads.header(prev).await, Ok(Some(_))) {
            return; // a header we have: the window fetches it (or it is stored already)
        }
        // One fetch per missing parent, and a few at a time: a flood of orphans costs one
        // request each at most, never one task per orphan.
        if self.fetching_parents.contains(&prev) {
            return;
        }
        if self.fetching_parents.len() >= MAX_PARENT_FETCHES {
            return self.ask_headers(peer, None).await; // one at a time per peer
        }
        self.fetching_parents.insert(prev);
        let (net, events) = (self.net.clone(), self.events.clone());
        tokio::spawn(async move {
            let result = net
                .request(peer, Request::GetBlock { hash: prev })
                .await
                .map_err(|e| e.to_string());
            let _ = events.send(Event::Parent { peer, prev, result }).await;
        });
    }

    async fn on_parent(&mut self, peer: PeerId, prev: BlockHash, result: Result<Response, String>) {
        self.fetching_parents.remove(&prev);
        let block = match result {
            Ok(Response::Block(Some(block))) => block,
            Ok(Response::Block(None)) | Err(_) | Ok(Response::Error(_)) => {
                // It could not give the parent: find the gap by headers.
                return self.ask_headers(peer, None).await;
            }
            Ok(_) => {
                return self.net.report_peer(
                    peer,
                    Misbehaviour::Mid,
                    "answered GetBlock with something else",
                );
            }
        };
        if block.block_hash() != prev {
            return self.net.report_peer(
                peer,
                Misbehaviour::High,
                "answered GetBlock with a block that was not asked for",
            );
        }
        let Some(sync) = self.sync.upgrade() else {
            return;
        };
        if sync.deliver_parent(block, peer).await {
            // Its own parent is missing too: more than one block is missing, ask for headers.
            self.ask_headers(peer, None).await;
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
