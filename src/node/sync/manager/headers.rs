//! Headers: claims asked about and judged, the peers we believe, and the download target.
//! A peer's Status is a claim; its headers, checked by the chain, are what we believe, and only
//! while it delivers the blocks they announce.

use super::*;

impl Manager {
    // ---- headers -------------------------------------------------------------------------

    /// A claim: believed only as far as headers prove it.
    pub(super) async fn on_status(&mut self, peer: PeerId, status: Status) {
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
    pub(super) async fn ask_headers(&mut self, peer: PeerId, from: Option<BlockHash>) {
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

    pub(super) async fn on_headers(&mut self, peer: PeerId, result: Result<Response, String>) {
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

    pub(super) async fn on_headers_done(
        &mut self,
        peer: PeerId,
        outcome: HeadersOutcome,
        full: bool,
    ) {
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
            HeadersOutcome::LowWork => {
                // A stale fork far below our tip: its claim is not followed, nor judged.
                debug!(target: "sync", %peer, "headers of a branch with too little work: not followed");
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.claimed = None;
                    p.asking_headers = false;
                    p.asked_claim = None;
                }
                return;
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
    pub(super) async fn headers_finished(&mut self, peer: PeerId) {
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
    pub(super) fn headers_unanswered(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asking_headers = false;
            p.asked_claim = None;
            p.headers_retry_at = Some(Instant::now() + HEADERS_RETRY);
        }
    }

    /// Peers whose claim leads further than anything we verified and whose last `GetHeaders`
    /// went unanswered are asked again.
    pub(super) async fn retry_headers(&mut self, now: Instant) {
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
    pub(super) fn distrusts(&self, peer: &PeerId) -> bool {
        self.distrusted
            .get(peer)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// `peer` showed `known` by headers: it can serve up to there, and the download follows
    /// it if it is the best we know. A peer caught withholding is not believed.
    pub(super) async fn credit(&mut self, peer: PeerId, known: Known) {
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
    pub(super) async fn withdraw_claim(&mut self, peer: PeerId, offence: Misbehaviour, why: &str) {
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
        self.net.disconnect_soon(peer);
        self.recompute_best().await;
    }

    /// The download target from scratch: the best header shown by a connected peer we
    /// believe, or our own tip when none leads further.
    pub(super) async fn recompute_best(&mut self) {
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
    pub(super) async fn new_best(&mut self, known: Known) {
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
    pub(super) async fn rebuild_window(&mut self) {
        match self.reads.branch_to(self.best.hash).await {
            Ok(Some((fork, hashes))) => self.window.reset(fork, &hashes),
            Ok(None) => self.window.reset(self.tip.height, &[]),
            Err(e) => warn!(target: "sync", "cannot read the header branch: {e}"),
        }
    }
}
