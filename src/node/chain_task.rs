//! The chain task: one OS thread that owns the [`Chain`] and the [`Mempool`] and is the only
//! writer of the store. Everyone else sends it a [`ChainCommand`] and awaits the answer, so
//! blocking LMDB writes and signature checks never run on the async threads.

use std::time::Instant;

use gossipcoin_proto::message::{Role, Status};
use gossipcoin_proto::{Amount, Block, BlockHash, Coin, OutPoint, PubkeyHash, Transaction, Txid};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::chain::{Accepted, Chain, ChainError};
use crate::config::MempoolConfig;
use crate::mempool::{Mempool, MempoolEntry, MempoolError, MempoolLimits};
use crate::metrics::{metrics, reason_code};
use crate::miner;
use crate::store::ChainRead;

/// What happened to a block handed to the chain.
#[derive(Debug)]
pub enum BlockOutcome {
    /// It is the new tip (`reorg_depth` blocks were disconnected first).
    NewTip { height: u32, reorg_depth: usize },
    /// Valid so far and stored on a side branch.
    SideBranch { height: u32 },
    /// Already known.
    Duplicate,
    /// Its parent is unknown.
    Orphan { prev: BlockHash },
    /// Refused; `misbehaviour` says whether the sender provably sent invalid data.
    Invalid { reason: String, misbehaviour: bool },
}

/// The state the chain task publishes after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainState {
    pub tip: BlockHash,
    pub height: u32,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
}

/// A request to the chain task.
pub enum ChainCommand {
    SubmitBlock {
        block: Block,
        source: String,
        reply: oneshot::Sender<BlockOutcome>,
    },
    SubmitTx {
        tx: Transaction,
        source: String,
        reply: oneshot::Sender<Result<Txid, MempoolError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Locator {
        reply: oneshot::Sender<Vec<BlockHash>>,
    },
    BlocksAfter {
        locator: Vec<BlockHash>,
        max: u32,
        reply: oneshot::Sender<Vec<Block>>,
    },
    GetBlock {
        hash: BlockHash,
        reply: oneshot::Sender<Option<Block>>,
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
    /// The coins `owner` can spend in the next block, as a wallet on this node sees them:
    /// mature confirmed coins no mempool tx spends, plus unspent mempool outputs to `owner`.
    Spendable {
        owner: PubkeyHash,
        reply: oneshot::Sender<Result<Vec<(OutPoint, Coin)>, String>>,
    },
    /// Stop: close the store, then answer.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The cloneable way to talk to the chain task.
#[derive(Clone)]
pub struct ChainHandle {
    tx: mpsc::Sender<ChainCommand>,
    state: watch::Receiver<ChainState>,
}

/// The chain task stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the chain task has stopped")]
pub struct ChainGone;

impl ChainHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ChainCommand,
    ) -> Result<T, ChainGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| ChainGone)?;
        rx.await.map_err(|_| ChainGone)
    }

    pub async fn submit_block(
        &self,
        block: Block,
        source: String,
    ) -> Result<BlockOutcome, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitBlock {
            block,
            source,
            reply,
        })
        .await
    }

    pub async fn submit_tx(
        &self,
        tx: Transaction,
        source: String,
    ) -> Result<Result<Txid, MempoolError>, ChainGone> {
        self.ask(|reply| ChainCommand::SubmitTx { tx, source, reply })
            .await
    }

    pub async fn status(&self) -> Result<Status, ChainGone> {
        self.ask(|reply| ChainCommand::Status { reply }).await
    }

    pub async fn locator(&self) -> Result<Vec<BlockHash>, ChainGone> {
        self.ask(|reply| ChainCommand::Locator { reply }).await
    }

    pub async fn blocks_after(
        &self,
        locator: Vec<BlockHash>,
        max: u32,
    ) -> Result<Vec<Block>, ChainGone> {
        self.ask(|reply| ChainCommand::BlocksAfter {
            locator,
            max,
            reply,
        })
        .await
    }

    pub async fn block(&self, hash: BlockHash) -> Result<Option<Block>, ChainGone> {
        self.ask(|reply| ChainCommand::GetBlock { hash, reply })
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

    /// See [`ChainCommand::Spendable`].
    pub async fn spendable(
        &self,
        owner: PubkeyHash,
    ) -> Result<Result<Vec<(OutPoint, Coin)>, String>, ChainGone> {
        self.ask(|reply| ChainCommand::Spendable { owner, reply })
            .await
    }

    /// Stops the chain task and waits until the store is closed. Later requests fail.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| ChainCommand::Shutdown { reply }).await;
    }

    /// The latest published state; `changed()` on a clone wakes on every update.
    pub fn state(&self) -> watch::Receiver<ChainState> {
        self.state.clone()
    }
}

/// Starts the chain thread; it ends when every handle is dropped.
pub fn spawn(chain: Chain, mempool: &MempoolConfig, role: Role) -> Result<ChainHandle, ChainError> {
    let (tx, rx) = mpsc::channel(256);
    let task = ChainTask {
        mempool: Mempool::new(MempoolLimits {
            max_bytes: mempool.max_bytes,
            min_fee_rate: mempool.min_fee_rate,
        }),
        role,
        state: watch::channel(initial_state(&chain)?).0,
        chain,
    };
    let state = task.state.subscribe();
    std::thread::Builder::new()
        .name("chain".into())
        .spawn(move || task.run(rx))
        .map_err(|e| {
            ChainError::Store(crate::store::StoreError::io(
                "cannot start the chain thread",
                e,
            ))
        })?;
    Ok(ChainHandle { tx, state })
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
    role: Role,
    state: watch::Sender<ChainState>,
}

impl ChainTask {
    fn run(mut self, mut rx: mpsc::Receiver<ChainCommand>) {
        let mut closed = None;
        while let Some(cmd) = rx.blocking_recv() {
            // A dropped reply means the asker gave up; nothing to do about it.
            match cmd {
                ChainCommand::SubmitBlock {
                    block,
                    source,
                    reply,
                } => {
                    let _ = reply.send(self.on_block(&block, &source));
                }
                ChainCommand::SubmitTx { tx, source, reply } => {
                    let _ = reply.send(self.on_tx(tx, &source));
                }
                ChainCommand::Status { reply } => {
                    let _ = self.status().map(|s| reply.send(s));
                }
                ChainCommand::Locator { reply } => {
                    let _ = reply.send(self.chain.locator().unwrap_or_default());
                }
                ChainCommand::BlocksAfter {
                    locator,
                    max,
                    reply,
                } => {
                    let _ = reply.send(
                        self.chain
                            .blocks_after(&locator, max as usize)
                            .unwrap_or_default(),
                    );
                }
                ChainCommand::GetBlock { hash, reply } => {
                    let _ = reply.send(
                        self.chain
                            .store()
                            .read()
                            .and_then(|r| r.block(&hash))
                            .ok()
                            .flatten(),
                    );
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
                ChainCommand::Spendable { owner, reply } => {
                    let _ = reply.send(self.spendable(&owner).map_err(|e| e.to_string()));
                }
                ChainCommand::Shutdown { reply } => {
                    closed = Some(reply);
                    break;
                }
            }
        }
        drop(self); // closes the LMDB environment (the last clone of it)
        info!(target: "chain", "chain task stopped; store closed");
        if let Some(reply) = closed {
            let _ = reply.send(());
        }
    }

    fn status(&self) -> Result<Status, ChainError> {
        let r = self.chain.store().read()?;
        let tip = self.chain.tip()?;
        Ok(Status {
            genesis: r.genesis_hash()?.unwrap_or(BlockHash::ZERO),
            tip: tip.hash,
            height: tip.height,
            chain_work: tip.chain_work,
            role: self.role,
        })
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

    fn on_block(&mut self, block: &Block, source: &str) -> BlockOutcome {
        let hash = block.block_hash();
        let started = Instant::now();
        let old_height = self.chain.tip().map(|t| t.height).unwrap_or(0);
        let outcome = match self.chain.accept_block(block, unix_now()) {
            Ok(Accepted::NewTip { tip, disconnected }) => {
                info!(target: "chain", height = tip.height, %hash, txs = block.txs.len(), from = source,
                      ms = started.elapsed().as_millis() as u64, "accepted block");
                metrics().block_accepted(started.elapsed());
                if !disconnected.is_empty() {
                    metrics().reorg(disconnected.len());
                }
                self.update_mempool(old_height, tip.height, &disconnected);
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
            Err(ChainError::Duplicate { .. }) => {
                metrics().block_rejected("duplicate");
                BlockOutcome::Duplicate
            }
            Err(ChainError::Orphan { prev, .. }) => {
                metrics().block_rejected("orphan");
                BlockOutcome::Orphan { prev }
            }
            Err(e) => {
                metrics().block_rejected(&match &e {
                    ChainError::Invalid { source, .. } => reason_code(&format!("{source:?}")),
                    other => reason_code(&format!("{other:?}")),
                });
                let misbehaviour = e.is_peer_misbehaviour();
                warn!(target: "chain", %hash, from = source, misbehaviour, "refused block: {e}");
                BlockOutcome::Invalid {
                    reason: e.to_string(),
                    misbehaviour,
                }
            }
        };
        self.publish_state();
        outcome
    }

    /// After the tip moved from `old_height` to `height`: drop confirmed and conflicting txs,
    /// then return the txs of disconnected blocks that are still valid.
    fn update_mempool(&mut self, old_height: u32, height: u32, disconnected: &[Block]) {
        let connected_from = (old_height + 1).saturating_sub(disconnected.len() as u32);
        let connected = self
            .chain
            .main_chain_from(connected_from)
            .unwrap_or_default();
        for b in &connected {
            self.mempool.remove_for_block(b);
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
        let result = match self.chain.store().read() {
            Ok(view) => {
                let lookup = |op: &OutPoint| view.coin(op).ok().flatten();
                self.mempool
                    .insert(tx, &lookup, height, self.chain.params())
            }
            Err(e) => Err(MempoolError::Unavailable(e.to_string())),
        };
        match &result {
            Ok(txid) => {
                metrics().tx_accepted();
                info!(target: "mempool", %txid, from = source, mempool_txs = self.mempool.len(), "accepted transaction")
            }
            Err(e) => {
                metrics().tx_rejected(&reason_code(&format!("{e:?}")));
                info!(target: "mempool", from = source, "refused transaction: {e}")
            }
        }
        self.publish_state();
        result
    }

    fn spendable(&self, owner: &PubkeyHash) -> Result<Vec<(OutPoint, Coin)>, ChainError> {
        let next = self.chain.tip()?.height + 1;
        let maturity = self.chain.params().coinbase_maturity.max(1);
        let view = self.chain.store().read()?;
        let mut coins = Vec::new();
        for (outpoint, _) in view.utxos_of(owner)? {
            if self.mempool.spends(&outpoint).is_some() {
                continue;
            }
            let Some(coin) = view.coin(&outpoint)? else {
                continue;
            };
            if coin.is_coinbase && next.saturating_sub(coin.height) < maturity {
                continue;
            }
            coins.push((outpoint, coin));
        }
        for entry in self.mempool.iter() {
            for (vout, output) in entry.tx().outputs.iter().enumerate() {
                let outpoint = OutPoint {
                    txid: entry.txid(),
                    vout: vout as u32,
                };
                if output.owner == *owner && self.mempool.spends(&outpoint).is_none() {
                    let coin = Coin {
                        output: *output,
                        height: next,
                        is_coinbase: false,
                    };
                    coins.push((outpoint, coin));
                }
            }
        }
        Ok(coins)
    }

    fn template(&self, reward_to: PubkeyHash) -> Option<Block> {
        let tip = self.chain.tip().ok()?;
        let params = self.chain.params();
        let budget = params.max_block_size.saturating_sub(1000);
        let (txs, fees): (Vec<Transaction>, Amount) = self.mempool.select_for_block(budget);
        let mtp = self.chain.median_time_past(&tip.hash).ok()?;
        let time = unix_now().max(mtp + 1);
        miner::assemble_block(tip.hash, tip.height + 1, time, params, reward_to, txs, fees).ok()
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
