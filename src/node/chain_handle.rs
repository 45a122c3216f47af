//! `ChainHandle`: the cloneable way to talk to the chain actor, the commands it carries, and
//! what the actor answers.
//!
//! Only writes and the mempool go through the actor's queue: submitting blocks and
//! transactions, block templates, mempool queries. Reads of the chain (status, locators, blocks
//! for peers, the API's queries) come from store snapshots off the actor's thread
//! ([`super::reads::Reads`]), so they never wait behind validation.

use gossipcoin_proto::{Block, BlockHash, BlockHeader, PubkeyHash, Transaction, Txid, U256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::chain::Origin;
use crate::mempool::{FeeEstimate, MempoolEntry, MempoolError};

/// What happened to a block handed to the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOutcome {
    /// It is the new tip (`reorg_depth` blocks were disconnected first). Only such a block is
    /// relayed: it was fully validated on the main chain.
    NewTip { height: u32, reorg_depth: usize },
    /// Valid so far and stored on a side branch with as much work as the tip; not relayed.
    SideBranch { height: u32 },
    /// Unrequested, on a branch with less work than the tip (or past the sender's side-branch
    /// allowance): not stored, not relayed, no penalty.
    NotStored,
    /// Already known.
    Duplicate,
    /// Its parent is unknown.
    Orphan { prev: BlockHash },
    /// Refused. `blame` says whether the sender provably sent invalid data; a block that
    /// failed only because an ancestor did blames nobody new: `failed_ancestor` names that
    /// ancestor (a stored side block found invalid when its branch was connected), so that
    /// whoever sent it can be charged.
    Invalid {
        reason: String,
        blame: bool,
        failed_ancestor: Option<BlockHash>,
    },
}

/// What happened to a run of headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersOutcome {
    /// Indexed (`new` of them were not known before); `last` is the last header of the run, at
    /// `height`, with the cumulative work of the chain it ends.
    Accepted {
        last: BlockHash,
        height: u32,
        chain_work: U256,
        new: usize,
    },
    /// The first header builds on a header we do not know.
    Unconnected { prev: BlockHash },
    /// Not stored: the branch ends too far below our tip's work to be worth keeping. The peer
    /// is on a stale fork; its claim is not followed (and not held against it).
    LowWork,
    /// Refused; `blame` says whether the sender provably misbehaved. The headers before the
    /// one refused stay indexed.
    Invalid { reason: String, blame: bool },
}

/// What happened to a batch of blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// How many blocks became the tip in turn.
    pub connected: usize,
    /// The tip height afterwards.
    pub height: u32,
    /// The first block not connected and what happened to it (never NewTip).
    pub stopped: Option<(BlockHash, BlockOutcome)>,
}

/// The state the chain actor publishes after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainState {
    pub tip: BlockHash,
    pub height: u32,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
}

/// A request to the chain actor.
pub(super) enum ChainCommand {
    SubmitBlock {
        block: Block,
        origin: Origin,
        /// Who sent it, for the logs (a peer id, "miner", "api").
        source: String,
        reply: oneshot::Sender<BlockOutcome>,
    },
    /// A run of headers, each on the one before (headers-first sync).
    SubmitHeaders {
        headers: Vec<BlockHeader>,
        source: String,
        reply: oneshot::Sender<HeadersOutcome>,
    },
    /// Downloaded blocks, each the child of the one before, the first (normally) of the tip:
    /// connected several per write transaction.
    SubmitBatch {
        blocks: Vec<Block>,
        source: String,
        reply: oneshot::Sender<BatchOutcome>,
    },
    SubmitTx {
        tx: Transaction,
        source: String,
        reply: oneshot::Sender<Result<Txid, MempoolError>>,
    },
    /// A block to mine: the mempool's best transactions on the tip, paying `reward_to`.
    Template {
        reward_to: PubkeyHash,
        reply: oneshot::Sender<Option<Block>>,
    },
    /// Every mempool entry, best fee rate first.
    Mempool {
        reply: oneshot::Sender<Vec<MempoolEntry>>,
    },
    /// One mempool entry.
    MempoolTx {
        txid: Txid,
        reply: oneshot::Sender<Option<MempoolEntry>>,
    },
    /// At most `max` mempool txids, oldest arrival first (what a peer is told we hold).
    MempoolTxids {
        max: usize,
        reply: oneshot::Sender<Vec<Txid>>,
    },
    /// The mempool transactions among `txids`, in that order, about `max_bytes` of them.
    MempoolTxs {
        txids: Vec<Txid>,
        max_bytes: usize,
        reply: oneshot::Sender<Vec<Transaction>>,
    },
    /// Those of `txids` not in the mempool, in their order.
    MempoolMissing {
        txids: Vec<Txid>,
        reply: oneshot::Sender<Vec<Txid>>,
    },
    /// The fee rate to pay to be mined within `blocks` blocks.
    EstimateFee {
        blocks: u32,
        reply: oneshot::Sender<FeeEstimate>,
    },
    /// Stop: close the store, then answer.
    Shutdown { reply: oneshot::Sender<()> },
}

/// The cloneable way to talk to the chain actor.
#[derive(Clone)]
pub struct ChainHandle {
    tx: mpsc::Sender<ChainCommand>,
    state: watch::Receiver<ChainState>,
}

/// The chain actor stopped (the node is shutting down, or the store failed).
#[derive(Debug, thiserror::Error)]
#[error("the chain task has stopped")]
pub struct ChainGone;

impl ChainHandle {
    pub(super) fn new(tx: mpsc::Sender<ChainCommand>, state: watch::Receiver<ChainState>) -> Self {
        Self { tx, state }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ChainCommand,
    ) -> Result<T, ChainGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| ChainGone)?;
        rx.await.map_err(|_| ChainGone)
    }

    /// Validates and stores a block; see [`BlockOutcome`].
    pub async fn submit_block(
        &self,
        block: Block,
        origin: Origin,
        source: String,
    ) -> Result<BlockOutcome, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitBlock {
            block,
            origin,
            source,
            reply,
        })
        .await
    }

    /// Checks and indexes a run of headers, each building on the one before, the first on a
    /// header the chain knows; see [`HeadersOutcome`].
    pub async fn submit_headers(
        &self,
        headers: Vec<BlockHeader>,
        source: String,
    ) -> Result<HeadersOutcome, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitHeaders {
            headers,
            source,
            reply,
        })
        .await
    }

    /// Connects blocks asked for during sync, each the child of the one before and the first
    /// the child of the tip, several per write transaction (a block off the tip is handled as
    /// by [`Self::submit_block`]); stops at the first block refused. See [`BatchOutcome`].
    pub async fn submit_batch(
        &self,
        blocks: Vec<Block>,
        source: String,
    ) -> Result<BatchOutcome, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitBatch {
            blocks,
            source,
            reply,
        })
        .await
    }

    /// Offers a transaction to the mempool.
    pub async fn submit_tx(
        &self,
        tx: Transaction,
        source: String,
    ) -> Result<Result<Txid, MempoolError>, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitTx { tx, source, reply })
            .await
    }

    pub async fn template(&self, reward_to: PubkeyHash) -> Result<Option<Block>, ChainGone> {
        self.ask(|reply| ChainCommand::Template { reward_to, reply })
            .await
    }

    pub async fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainGone> {
        self.ask(|reply| ChainCommand::Mempool { reply }).await
    }

    pub async fn mempool_tx(&self, txid: Txid) -> Result<Option<MempoolEntry>, ChainGone> {
        self.ask(|reply| ChainCommand::MempoolTx { txid, reply })
            .await
    }

    /// See [`ChainCommand::MempoolTxids`].
    pub async fn mempool_txids(&self, max: usize) -> Result<Vec<Txid>, ChainGone> {
        self.ask(|reply| ChainCommand::MempoolTxids { max, reply })
            .await
    }

    /// See [`ChainCommand::MempoolTxs`].
    pub async fn mempool_txs(
        &self,
        txids: Vec<Txid>,
        max_bytes: usize,
    ) -> Result<Vec<Transaction>, ChainGone> {
        self.ask(|reply| ChainCommand::MempoolTxs {
            txids,
            max_bytes,
            reply,
        })
        .await
    }

    /// See [`ChainCommand::MempoolMissing`].
    pub async fn mempool_missing(&self, txids: Vec<Txid>) -> Result<Vec<Txid>, ChainGone> {
        self.ask(|reply| ChainCommand::MempoolMissing { txids, reply })
            .await
    }

    /// See [`ChainCommand::EstimateFee`].
    pub async fn estimate_fee(&self, blocks: u32) -> Result<FeeEstimate, ChainGone> {
        self.ask(|reply| ChainCommand::EstimateFee { blocks, reply })
            .await
    }

    /// Stops the chain actor and waits until the store is closed. Later requests fail.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| ChainCommand::Shutdown { reply }).await;
    }

    /// The latest published state; `changed()` on a clone wakes on every update.
    pub fn state(&self) -> watch::Receiver<ChainState> {
        self.state.clone()
    }
}
