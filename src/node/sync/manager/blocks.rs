//! Blocks: the window's requests, answers, batches handed to the chain, and orphan parents.

use super::*;

impl Manager {
    // ---- blocks --------------------------------------------------------------------------

    /// How far up the branch `peer` can serve blocks, by the headers it has shown.
    pub(super) fn serves_to(&self, p: &PeerSync) -> u32 {
        match p.best {
            Some(b) if b.hash == self.best.hash => b.height,
            Some(b) if self.window.hash_at(b.height) == Some(b.hash) => b.height,
            _ => 0,
        }
    }

    /// Asks every useful peer for blocks of the window.
    pub(super) fn schedule(&mut self) {
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

    pub(super) async fn on_blocks(
        &mut self,
        peer: PeerId,
        id: u64,
        result: Result<Response, String>,
    ) {
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
    pub(super) fn feed(&mut self) {
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

    pub(super) async fn on_batch(
        &mut self,
        outcome: Option<BatchOutcome>,
        senders: Vec<(BlockHash, PeerId)>,
    ) {
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
    pub(super) async fn on_orphan(&mut self, peer: PeerId, prev: BlockHash) {
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

    pub(super) async fn on_parent(
        &mut self,
        peer: PeerId,
        prev: BlockHash,
        result: Result<Response, String>,
    ) {
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
}
