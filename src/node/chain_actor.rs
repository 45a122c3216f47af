//! The chain actor: one OS thread that owns the [`Chain`] and the [`Mempool`] and is the only
//! writer of the store. Everyone else sends it a [`ChainCommand`] through a
//! [`ChainHandle`] and awaits the answer, so blocking LMDB writes and signature checks never run
//! on the async threads. It only writes: reads come from snapshots (`reads.rs`).
//!
//! How it stops is reported on the `stopped` channel [`spawn`] returns: `Ok` after a
//! [`ChainCommand::Shutdown`] or when every handle is gone, `Err` when the store failed (a
//! fatal error: the node must stop, not call the block invalid) or the thread panicked. The
//! node stops on either.

use std::time::Instant;

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, OutPoint, PubkeyHash, Transaction, Txid,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use super::chain_handle::{
    BatchOutcome, BlockOutcome, ChainCommand, ChainHandle, ChainState, HeadersOutcome,
};
use crate::chain::{Accepted, Chain, ChainError, HeadersAccepted, Origin};
use crate::config::MempoolConfig;
use crate::mempool::{Mempool, MempoolError, MempoolLimits};
use crate::metrics::{metrics, reason_code};
use crate::miner;
use crate::store::ChainRead;

/// How the chain actor ended: `Err` with the reason when the node must stop because of it.
pub type Stopped = Result<(), String>;

/// Commands wait here when the actor is busy; the ingest queues in front of it bound the rest.
const COMMAND_QUEUE: usize = 64;

/// Starts the chain thread. It ends on [`ChainHandle::shutdown`], when every handle is
/// dropped, on a fatal store error, or on a panic; the receiver says which.
pub fn spawn(
    chain: Chain,
    mempool: &MempoolConfig,
) -> Result<(ChainHandle, oneshot::Receiver<Stopped>), ChainError> {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let task = ChainTask {
        mempool: Mempool::new(mempool.limits().unwrap_or_else(|e| {
            warn!(target: "mempool", "{e}; using the default policy");
            MempoolLimits::core(mempool.max_bytes)
        })),
        state: watch::channel(initial_state(&chain)?).0,
        chain,
        fatal: None,
    };
    let state = task.state.subscribe();
    let (stopped_tx, stopped) = oneshot::channel();
    std::thread::Builder::new()
        .name("chain".into())
        .spawn(move || {
            let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.run(rx)));
            let result = match ended {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    error!(target: "chain", "the chain thread panicked: {what}; stopping the node");
                    Err(format!("the chain thread panicked: {what}"))
                }
            };
            let _ = stopped_tx.send(result);
        })
        .map_err(|e| {
            ChainError::Store(crate::store::StoreError::io(
                "cannot start the chain thread",
                e,
            ))
        })?;
    Ok((ChainHandle::new(tx, state), stopped))
}

fn initial_state(chain: &Chain) -> Result<ChainState, ChainError> {
    let tip = chain.tip()?;
    Ok(ChainState {
        tip: tip.hash,
        height: tip.height,
        mempool_txs: 0,
        mempool_bytes: 0,
    })
}

struct ChainTask {
    chain: Chain,
    mempool: Mempool,
    state: watch::Sender<ChainState>,
    /// Set by a fatal store error: the loop ends and the node stops.
    fatal: Option<String>,
}

impl ChainTask {
    fn run(mut self, mut rx: mpsc::Receiver<ChainCommand>) -> Stopped {
        let mut closed = None;
        while let Some(cmd) = rx.blocking_recv() {
            // A dropped reply means the asker gave up; nothing to do about it.
            match cmd {
                ChainCommand::SubmitBlock {
                    block,
                    origin,
                    source,
                    reply,
                } => {
                    let _ = reply.send(self.on_block(&block, origin, &source));
                }
                ChainCommand::SubmitHeaders {
                    headers,
                    source,
                    reply,
                } => {
                    let _ = reply.send(self.on_headers(&headers, &source));
                }
                ChainCommand::SubmitBatch {
                    blocks,
                    source,
                    reply,
                } => {
                    let _ = reply.send(self.on_batch(&blocks, &source));
                }
                ChainCommand::SubmitTx { tx, source, reply } => {
                    let _ = reply.send(self.on_tx(tx, &source));
                }
                ChainCommand::Template { reward_to, reply } => {
                    let _ = reply.send(self.template(reward_to));
                }
                ChainCommand::Mempool { reply } => {
                    let _ = reply.send(self.mempool.iter().rev().cloned().collect());
                }
                ChainCommand::MempoolTx { txid, reply } => {
                    let _ = reply.send(self.mempool.entry(&txid).cloned());
                }
                ChainCommand::MempoolTxids { max, reply } => {
                    let _ = reply.send(self.mempool.txids_by_fee_rate(max, usize::MAX));
                }
                ChainCommand::MempoolTxs {
                    txids,
                    max_bytes,
                    reply,
                } => {
                    let _ = reply.send(self.mempool.txs_among(&txids, max_bytes));
                }
                ChainCommand::MempoolMissing { mut txids, reply } => {
                    txids.retain(|t| !self.mempool.contains(t));
                    let _ = reply.send(txids);
                }
                ChainCommand::EstimateFee { blocks, reply } => {
                    self.mempool.tick(u64::from(unix_now()));
                    let block_bytes = self.chain.params().max_block_size.saturating_sub(1000);
                    let _ = reply.send(self.mempool.estimate_fee(blocks, block_bytes));
                }
                ChainCommand::Shutdown { reply } => {
                    closed = Some(reply);
                    break;
                }
            }
            if self.fatal.is_some() {
                break;
            }
        }
        let fatal = self.fatal.take();
        drop(self); // the chain's clone of the store
        info!(target: "chain", "chain task stopped");
        if let Some(reply) = closed {
            let _ = reply.send(());
        }
        match fatal {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn publish_state(&self) {
        if let Ok(tip) = self.chain.tip() {
            self.state.send_replace(ChainState {
                tip: tip.hash,
                height: tip.height,
                mempool_txs: self.mempool.len(),
                mempool_bytes: self.mempool.bytes(),
            });
        }
    }

    /// Side blocks far below the tip give back their disk (their headers stay).
    fn prune_side_blocks(&mut self) {
        match self.chain.prune_side_blocks() {
            Ok(0) => {}
            Ok(pruned) => {
                info!(target: "chain", pruned, depth = crate::chain::SIDE_PRUNE_DEPTH, "pruned side blocks far below the tip");
            }
            Err(e) if e.is_fatal() => {
                error!(target: "chain", "store failure while pruning side blocks: {e}; stopping the node");
                self.fatal = Some(format!("chain store failure: {e}"));
            }
            Err(e) => warn!(target: "chain", "could not prune side blocks: {e}"),
        }
    }

    fn on_block(&mut self, block: &Block, origin: Origin, source: &str) -> BlockOutcome {
        let hash = block.block_hash();
        let started = Instant::now();
        let old_height = self.chain.tip().map(|t| t.height).unwrap_or(0);
        let outcome = match self.chain.accept_block(block, unix_now(), origin) {
            Ok(Accepted::NewTip { tip, disconnected }) => {
                info!(target: "chain", height = tip.height, %hash, txs = block.txs.len(), from = source,
                      ms = started.elapsed().as_millis() as u64, "accepted block");
                // One event per payment it confirms, so a txid can be followed into its block.
                for tx in block.txs.iter().skip(1) {
                    info!(target: "chain", txid = %tx.compute_txid(), block = %hash, height = tip.height,
                          from = source, "confirmed transaction");
                }
                metrics().block_accepted(started.elapsed());
                if !disconnected.is_empty() {
                    metrics().reorg(disconnected.len());
                }
                self.update_mempool(old_height, tip.height, &disconnected);
                if tip.height / crate::chain::SIDE_PRUNE_EVERY
                    != old_height / crate::chain::SIDE_PRUNE_EVERY
                {
                    self.prune_side_blocks();
                }
                BlockOutcome::NewTip {
                    height: tip.height,
                    reorg_depth: disconnected.len(),
                }
            }
            Ok(Accepted::SideBranch { height, .. }) => {
                info!(target: "chain", height, %hash, from = source, "stored side-branch block");
                metrics().block_accepted(started.elapsed());
                BlockOutcome::SideBranch { height }
            }
            Ok(Accepted::NotStored { height, .. }) => {
                metrics().block_rejected("not_stored_less_work");
                info!(target: "chain", height, %hash, from = source, "ignored an unrequested block on a branch with no more work");
                BlockOutcome::NotStored
            }
            Err(e) => self.refused(e, &hash, source),
        };
        self.publish_state();
        outcome
    }

    /// What a block the chain refused (`e`, never a new tip) means for its sender, counted
    /// and logged; a store failure stops the node. One mapping for single blocks and batches.
    fn refused(&mut self, e: ChainError, hash: &BlockHash, source: &str) -> BlockOutcome {
        match e {
            ChainError::Duplicate { .. } => {
                metrics().block_rejected("duplicate");
                BlockOutcome::Duplicate
            }
            ChainError::Orphan { prev, .. } => {
                metrics().block_rejected("orphan");
                BlockOutcome::Orphan { prev }
            }
            e if e.is_fatal() => {
                error!(target: "chain", %hash, from = source, "store failure while accepting a block: {e}; stopping the node");
                self.fatal = Some(format!("chain store failure: {e}"));
                BlockOutcome::Invalid {
                    reason: e.to_string(),
                    blame: false,
                    failed_ancestor: None,
                }
            }
            e => {
                metrics().block_rejected(&match &e {
                    ChainError::Invalid { source, .. } => reason_code(&format!("{source:?}")),
                    other => reason_code(&format!("{other:?}")),
                });
                let blame = e.is_peer_misbehaviour();
                warn!(target: "chain", %hash, from = source, blame, "refused block: {e}");
                let failed_ancestor = match &e {
                    ChainError::AncestorFailed { failed, .. } => Some(*failed),
                    _ => None,
                };
                BlockOutcome::Invalid {
                    reason: e.to_string(),
                    blame,
                    failed_ancestor,
                }
            }
        }
    }

    fn on_headers(&mut self, headers: &[BlockHeader], source: &str) -> HeadersOutcome {
        match self.chain.accept_headers(headers, unix_now()) {
            Ok(HeadersAccepted { last, new }) => {
                let hash = last.hash();
                if new > 0 {
                    debug!(target: "chain", height = last.height, %hash, new, from = source, "accepted headers");
                }
                HeadersOutcome::Accepted {
                    last: hash,
                    height: last.height,
                    chain_work: last.chain_work,
                    new,
                }
            }
            Err(ChainError::UnconnectedHeaders { prev }) => HeadersOutcome::Unconnected { prev },
            Err(e @ ChainError::LowWorkHeaders { .. }) => {
                debug!(target: "chain", from = source, headers = headers.len(), "{e}");
                HeadersOutcome::LowWork
            }
            Err(e) if e.is_fatal() => {
                error!(target: "chain", from = source, "store failure while accepting headers: {e}; stopping the node");
                self.fatal = Some(format!("chain store failure: {e}"));
                HeadersOutcome::Invalid {
                    reason: e.to_string(),
                    blame: false,
                }
            }
            Err(e) => {
                let blame = e.is_peer_misbehaviour();
                warn!(target: "chain", from = source, blame, headers = headers.len(), "refused headers: {e}");
                HeadersOutcome::Invalid {
                    reason: e.to_string(),
                    blame,
                }
            }
        }
    }

    /// Connects a batch (several blocks per write); every block that became the tip is logged
    /// and counted as soon as its write is committed, then the mempool and the published state
    /// are updated once.
    fn on_batch(&mut self, blocks: &[Block], source: &str) -> BatchOutcome {
        let old_height = self.chain.tip().map(|t| t.height).unwrap_or(0);
        let mut connected = 0;
        // The index of the block after the last one connected (where a store failure struck).
        let mut next = 0;
        let mut disconnected: Vec<Block> = Vec::new();
        let result = self.chain.accept_batch_with(blocks, unix_now(), |commit| {
            let each = commit.elapsed / commit.connected.len().max(1) as u32;
            for &(k, tip) in commit.connected {
                info!(target: "chain", height = tip.height, hash = %tip.hash, txs = blocks[k].txs.len(),
                      from = source, ms = each.as_millis() as u64, "accepted block");
                // DEBUG here: an initial sync confirms many transactions per second.
                for tx in blocks[k].txs.iter().skip(1) {
                    debug!(target: "chain", txid = %tx.compute_txid(), block = %tip.hash, height = tip.height,
                           from = source, "confirmed transaction");
                }
                metrics().block_accepted(each);
                next = k + 1;
            }
            if !commit.disconnected.is_empty() {
                metrics().reorg(commit.disconnected.len());
                disconnected.extend_from_slice(commit.disconnected);
            }
            connected += commit.connected.len();
        });
        let stopped = match result {
            Ok(accepted) => accepted.stopped.map(|(k, e)| (blocks[k].block_hash(), e)),
            // A store failure (fatal: `refused` stops the node).
            Err(e) => {
                let at = blocks.get(next).or(blocks.last());
                Some((at.map_or(BlockHash::ZERO, Block::block_hash), e))
            }
        }
        .map(|(hash, e)| {
            let outcome = self.refused(e, &hash, source);
            (hash, outcome)
        });
        let height = self.chain.tip().map(|t| t.height).unwrap_or(old_height);
        if connected > 0 {
            self.update_mempool(old_height, height, &disconnected);
        }
        self.publish_state();
        BatchOutcome {
            connected,
            height,
            stopped,
        }
    }

    /// After the tip moved from `old_height` to `height`: drop confirmed and conflicting txs,
    /// then return the txs of disconnected blocks that are still valid. With an empty mempool
    /// (initial sync) the connected blocks are not read back.
    fn update_mempool(&mut self, old_height: u32, height: u32, disconnected: &[Block]) {
        self.mempool.tick(u64::from(unix_now()));
        if !self.mempool.is_empty() {
            // Several reorganisations (a batch) disconnect no more than their sum: reading from
            // below every fork point they had is enough.
            let connected_from = (old_height + 1).saturating_sub(disconnected.len() as u32);
            let connected = self
                .chain
                .main_chain_from(connected_from)
                .unwrap_or_default();
            for b in &connected {
                self.mempool.remove_for_block(b);
            }
        }
        if !disconnected.is_empty() {
            let Ok(view) = self.chain.store().read() else {
                return;
            };
            let lookup = |op: &OutPoint| view.coin(op).ok().flatten();
            let back = self.mempool.readd_disconnected(
                disconnected,
                &lookup,
                height + 1,
                self.chain.params(),
            );
            info!(target: "mempool", returned = back, "transactions of disconnected blocks back in the mempool");
        }
    }

    fn on_tx(&mut self, tx: Transaction, source: &str) -> Result<Txid, MempoolError> {
        let height = self.chain.tip().map(|t| t.height + 1).unwrap_or(1);
        self.mempool.tick(u64::from(unix_now()));
        // for the refusal's log line (one hash of a few hundred bytes)
        let id = tx.compute_txid();
        let result = match self.chain.store().read() {
            Ok(view) => {
                let lookup = |op: &OutPoint| view.coin(op).ok().flatten();
                self.mempool
                    .insert(tx, &lookup, height, self.chain.params())
            }
            Err(e) => Err(MempoolError::Unavailable(e.to_string())),
        };
        match &result {
            Ok(added) => {
                metrics().tx_accepted();
                let txid = added.txid;
                let fee_rate = self
                    .mempool
                    .entry(&txid)
                    .map(|e| e.fee_rate())
                    .unwrap_or_default();
                info!(target: "mempool", %txid, from = source, %fee_rate, mempool_txs = self.mempool.len(), "accepted transaction");
                for replaced in &added.replaced {
                    info!(target: "mempool", txid = %replaced, by = %txid, "transaction replaced by one paying more");
                }
            }
            // Missing inputs usually mean an orphan, which the relay keeps and logs itself.
            Err(e @ MempoolError::MissingInputs { .. }) => {
                metrics().tx_rejected(&reason_code(&format!("{e:?}")));
                debug!(target: "mempool", txid = %id, from = source, reason = %e, "refused transaction")
            }
            Err(e) => {
                metrics().tx_rejected(&reason_code(&format!("{e:?}")));
                info!(target: "mempool", txid = %id, from = source, reason = %e, "refused transaction")
            }
        }
        self.publish_state();
        result.map(|added| added.txid)
    }

    fn template(&self, reward_to: PubkeyHash) -> Option<Block> {
        let tip = self.chain.tip().ok()?;
        let params = self.chain.params();
        let budget = params.max_block_size.saturating_sub(1000);
        let (txs, fees): (Vec<Transaction>, Amount) = self.mempool.select_for_block(budget);
        let mtp = self.chain.median_time_past(&tip.hash).ok()?;
        let time = unix_now().max(mtp + 1);
        let bits = self.chain.next_bits(&tip.hash).ok()?;
        let height = tip.height + 1;
        miner::assemble_block(tip.hash, height, time, bits, params, reward_to, txs, fees).ok()
    }
}

/// Seconds since 1970, saturating.
pub fn unix_now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::BlockHeader;

    use super::*;
    use crate::consensus::testutil::{T0, coins, key, params, remine};

    fn block_on(prev: BlockHash, time: u32, height: u32) -> Block {
        let mut b = Block {
            header: BlockHeader {
                version: 1,
                prev,
                merkle_root: Default::default(),
                time,
                bits: params().pow_bits,
                nonce: 0,
            },
            txs: vec![Transaction::coinbase(
                height,
                key(3).pubkey_hash(),
                coins(10),
            )],
        };
        remine(&mut b, &params());
        b
    }

    /// `n` blocks on `parent` at `height`.
    fn run(parent: &Block, height: u32, n: u32) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        for h in height + 1..=height + n {
            let prev = out.last().unwrap_or(parent);
            out.push(block_on(prev.block_hash(), prev.header.time + 1, h));
        }
        out
    }

    #[tokio::test]
    async fn headers_then_batches_through_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = block_on(BlockHash::ZERO, T0, 0);
        let chain = Chain::create(&dir.path().join("chain"), params(), &genesis).unwrap();
        let (handle, _stopped) = spawn(chain, &MempoolConfig::default()).unwrap();
        let blocks = run(&genesis, 0, 4);
        let headers: Vec<BlockHeader> = blocks.iter().map(|b| b.header).collect();
        let peer = || "peer".to_string();

        let outcome = handle.submit_headers(headers[..3].to_vec(), peer()).await;
        let HeadersOutcome::Accepted {
            last, height, new, ..
        } = outcome.unwrap()
        else {
            panic!("headers refused");
        };
        assert_eq!((last, height, new), (blocks[2].block_hash(), 3, 3));
        let outcome = handle.submit_headers(headers[3..].to_vec(), peer()).await;
        assert!(matches!(
            outcome.unwrap(),
            HeadersOutcome::Accepted { new: 1, .. }
        ));
        let later = run(&blocks[3], 4, 2);
        let outcome = handle.submit_headers(vec![later[1].header], peer()).await;
        assert_eq!(
            outcome.unwrap(),
            HeadersOutcome::Unconnected {
                prev: later[0].block_hash()
            }
        );
        let outcome = handle
            .submit_headers(vec![headers[0], headers[2]], peer())
            .await;
        assert!(matches!(
            outcome.unwrap(),
            HeadersOutcome::Invalid { blame: true, .. }
        ));

        // Blocks: the first three connect; the next batch starts with an orphan.
        let outcome = handle.submit_batch(blocks[..3].to_vec(), peer()).await;
        assert_eq!(
            outcome.unwrap(),
            BatchOutcome {
                connected: 3,
                height: 3,
                stopped: None
            }
        );
        assert_eq!(handle.state().borrow().height, 3);
        let outcome = handle.submit_batch(later.clone(), peer()).await.unwrap();
        assert_eq!(
            outcome,
            BatchOutcome {
                connected: 0,
                height: 3,
                stopped: Some((
                    later[0].block_hash(),
                    BlockOutcome::Orphan {
                        prev: blocks[3].block_hash()
                    }
                ))
            }
        );
        // Then one that connects and one that breaks a rule (its coinbase pays too much).
        let mut greedy = later[0].clone();
        greedy.txs[0].outputs[0].value = coins(11);
        remine(&mut greedy, &params());
        let outcome = handle
            .submit_batch(vec![blocks[3].clone(), greedy.clone()], peer())
            .await
            .unwrap();
        assert_eq!((outcome.connected, outcome.height), (1, 4));
        assert!(
            matches!(
                &outcome.stopped,
                Some((hash, BlockOutcome::Invalid { blame: true, .. })) if *hash == greedy.block_hash()
            ),
            "{outcome:?}"
        );
        assert_eq!(handle.state().borrow().height, 4);
        handle.shutdown().await;
    }
}
