//! What an operator can ask of a running node: its status, its peers, chain and mempool
//! queries, paying from its wallet, mining a block now, connecting to more nodes and syncing
//! with them. The HTTP API is a thin layer over this; nothing here knows about HTTP, and every
//! failure is a [`ControlError`] whose kind says whose fault it was.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use gossipcoin_proto::message::{Request, Response, Role};
use gossipcoin_proto::{Address, Amount, Block, BlockHash, Transaction, Txid, U256};
use tokio::sync::{Mutex, watch};
use tracing::info;

pub use super::wallet::PaymentRequest;

use super::arrivals::Arrivals;
use super::chain_handle::{BlockOutcome, ChainGone, ChainHandle, ChainState};
use super::reads::{ReadError, Reads};
use super::sync::{Sync, SyncProgress};
use super::wallet::{NodeWallet, PayError};
use super::wallet_history::{HistoryError, Rescanned};
use crate::chain::Origin;
use crate::config::NodeConfig;
use crate::mempool::{FeeEstimate, MempoolEntry, MempoolError};
use crate::metrics::{Gauges, Source, metrics};
use crate::miner;
use crate::net::{NetHandle, PeerInfo};
use crate::params::ChainParams;
use crate::store::{ChainRead, ReadView, StoreError};
use crate::wallet::ledger::{Balances, Listed};
use crate::wallet::{Payment, WalletError};

/// Why an operator's request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request itself is wrong (bad address, amount, unknown wallet key, no funds).
    #[error("{0}")]
    BadRequest(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but clashes with the node's state (double spend, stale block).
    #[error("{0}")]
    Conflict(String),
    /// The node cannot answer now (shutting down, not synced, a peer did not answer).
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside the node (store, wallet file).
    #[error("{0}")]
    Internal(String),
    /// The payment asked for is one the wallet or the mempool already has (409, with its
    /// txid): reported so, never as a new payment.
    #[error("payment {txid} is already known: the same transaction was submitted before")]
    AlreadyKnown { txid: Txid },
}

impl From<ChainGone> for ControlError {
    fn from(e: ChainGone) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<ReadError> for ControlError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Empty | ReadError::Stopping => Self::Unavailable(e.to_string()),
            ReadError::Store(_) | ReadError::Panicked(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<WalletError> for ControlError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::Io { .. }
            | WalletError::Corrupt { .. }
            | WalletError::UnsupportedVersion { .. }
            | WalletError::DataDirNotADirectory { .. } => Self::Internal(e.to_string()),
            WalletError::TooManyPayments { .. } => Self::Unavailable(e.to_string()),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl From<HistoryError> for ControlError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Read(e) => e.into(),
            HistoryError::Gone(e) => e.into(),
            HistoryError::Wallet(e) => e.into(),
        }
    }
}

impl From<PayError> for ControlError {
    fn from(e: PayError) -> Self {
        match e {
            PayError::UnknownAddress(_) => Self::BadRequest(e.to_string()),
            PayError::AlreadyKnown { txid } => Self::AlreadyKnown { txid },
            PayError::Wallet(e) => e.into(),
            PayError::Mempool(e) => mempool_error(e),
            PayError::Read(e) => e.into(),
            PayError::Gone(e) => e.into(),
        }
    }
}

fn mempool_error(e: MempoolError) -> ControlError {
    match e {
        MempoolError::Unavailable(_) => ControlError::Unavailable(e.to_string()),
        MempoolError::Invalid(_) => ControlError::BadRequest(e.to_string()),
        other => ControlError::Conflict(other.to_string()),
    }
}

/// Whether the node believes it has the best chain it knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// No peers.
    Alone,
    /// We verified headers of a chain with more work than ours and are downloading it.
    Syncing,
    /// No verified header chain has more work than ours (a peer's mere claim does not count).
    Synced,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alone => "alone",
            Self::Syncing => "syncing",
            Self::Synced => "synced",
        }
    }
}

/// A snapshot of the node for `GET /status`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub role: Role,
    pub peer_id: String,
    pub listen: Vec<String>,
    pub genesis: BlockHash,
    pub height: u32,
    pub tip: BlockHash,
    pub chain_work: U256,
    /// The next block's bits, their difficulty and the recent mean block interval.
    pub difficulty: crate::chain::difficulty::Summary,
    pub sync: SyncState,
    /// Height of the best verified header chain a peer showed us, when it is above ours.
    pub best_peer_height: Option<u32>,
    /// Height of the best header we verified (our height when no better is known).
    pub headers_height: u32,
    /// Our height over the best verified header's, 0..=1.
    pub progress: f64,
    /// Blocks connected per second while syncing.
    pub blocks_per_sec: f64,
    pub peers: usize,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
    pub uptime: Duration,
}

/// What `register` did with one node.
#[derive(Debug, Clone)]
pub struct Registered {
    pub node: String,
    pub dialed: String,
}

/// What `resolve` found.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub changed: bool,
    pub old_tip: BlockHash,
    pub tip: BlockHash,
    pub height: u32,
    pub peers_asked: usize,
}

/// The node, as the operator sees it. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    chain: ChainHandle,
    net: NetHandle,
    sync: Arc<Sync>,
    /// Snapshot reads, bounded so that a flood of queries cannot take every core from the
    /// chain actor that validates blocks.
    reads: Reads,
    params: ChainParams,
    config: NodeConfig,
    started: Instant,
    /// The node's wallet: keys in memory, its payments and their states.
    wallet: NodeWallet,
    /// One `mine` at a time.
    mining: Mutex<()>,
    /// When recent blocks arrived here.
    arrivals: Arrivals,
}

impl Control {
    pub(super) fn new(
        chain: ChainHandle,
        net: NetHandle,
        sync: Arc<Sync>,
        reads: Reads,
        params: ChainParams,
        config: NodeConfig,
        wallet: NodeWallet,
    ) -> Self {
        let arrivals = Arrivals::spawn(chain.state(), reads.clone());
        Self {
            inner: Arc::new(Inner {
                arrivals,
                chain,
                net,
                sync,
                reads,
                params,
                config,
                started: Instant::now(),
                wallet,
                mining: Mutex::new(()),
            }),
        }
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn params(&self) -> &ChainParams {
        &self.inner.params
    }

    /// Runs `f` on a snapshot of the store, on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ControlError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadView) -> Result<T, ControlError> + Send + 'static,
    {
        self.inner.reads.run(f).await
    }

    pub async fn status(&self) -> Result<NodeStatus, ControlError> {
        let i = &self.inner;
        // From a store snapshot, not the chain task's queue: status answers at once even while
        // the chain thread is busy validating a sync batch.
        let params = i.params.clone();
        let (genesis, tip, difficulty) = self
            .read(move |v| {
                let tip = v.tip()?;
                let difficulty = match &tip {
                    Some(tip) => Some(crate::chain::difficulty::summary(v, &params, &tip.hash)?),
                    None => None,
                };
                Ok((v.genesis_hash()?, tip, difficulty))
            })
            .await?;
        let (Some(genesis), Some(tip), Some(difficulty)) = (genesis, tip, difficulty) else {
            return Err(ControlError::Unavailable("the chain is empty".into()));
        };
        let ours = gossipcoin_proto::message::Status {
            genesis,
            tip: tip.hash,
            height: tip.height,
            chain_work: tip.chain_work,
            role: i.config.role,
            time: super::unix_now(),
        };
        let state = *i.chain.state().borrow();
        let peers = i.net.peers().await;
        let progress = *i.sync.progress().borrow();
        let (sync, best_peer_height) = sync_state(&peers, &progress);
        let peer = i.net.local_peer_id();
        Ok(NodeStatus {
            role: ours.role,
            peer_id: peer.to_string(),
            listen: i
                .net
                .listen_addrs()
                .await
                .into_iter()
                .map(|a| format!("{a}/p2p/{peer}"))
                .collect(),
            genesis: ours.genesis,
            height: ours.height,
            tip: ours.tip,
            chain_work: ours.chain_work,
            difficulty,
            sync,
            best_peer_height,
            headers_height: progress.headers_height.max(ours.height),
            progress: if sync == SyncState::Syncing {
                progress.progress
            } else {
                1.0
            },
            blocks_per_sec: progress.blocks_per_sec,
            peers: peers.len(),
            mempool_txs: state.mempool_txs,
            mempool_bytes: state.mempool_bytes,
            uptime: i.started.elapsed(),
        })
    }

    /// The chain actor's published state (tip, height, mempool size); `changed()` wakes on
    /// every accepted block or transaction.
    pub fn watch_state(&self) -> watch::Receiver<ChainState> {
        self.inner.chain.state()
    }

    /// When recent main-chain blocks arrived at this node.
    pub fn arrivals(&self) -> &Arrivals {
        &self.inner.arrivals
    }

    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.inner.net.peers().await
    }

    /// The main chain's height, as the chain task last published it.
    pub fn height(&self) -> u32 {
        self.inner.chain.state().borrow().height
    }

    /// Live gauges for `/metrics`.
    pub async fn gauges(&self) -> Gauges {
        let state = *self.inner.chain.state().borrow();
        Gauges {
            height: state.height,
            peers: self.inner.net.peers().await.len(),
            mempool_txs: state.mempool_txs,
            mempool_bytes: state.mempool_bytes,
        }
    }

    pub async fn mempool(&self) -> Result<Vec<MempoolEntry>, ControlError> {
        Ok(self.inner.chain.mempool().await?)
    }

    pub async fn mempool_tx(&self, txid: Txid) -> Result<Option<MempoolEntry>, ControlError> {
        Ok(self.inner.chain.mempool_tx(txid).await?)
    }

    /// The fee rate to pay to be mined within `blocks` blocks (see
    /// [`crate::mempool::Mempool::estimate_fee`]).
    pub async fn estimate_fee(&self, blocks: u32) -> Result<FeeEstimate, ControlError> {
        Ok(self.inner.chain.estimate_fee(blocks).await?)
    }

    /// Hands a signed transaction to the mempool and relays it when accepted.
    pub async fn submit_tx(&self, tx: Transaction, source: &str) -> Result<Txid, ControlError> {
        metrics().tx_received(Source::Local);
        let relay = tx.clone();
        let txid = self
            .inner
            .chain
            .submit_tx(tx, source.to_owned())
            .await?
            .map_err(mempool_error)?;
        self.inner.net.publish_tx(&relay).await;
        Ok(txid)
    }

    /// Builds, signs and relays a payment from an address of this node's wallet and tracks
    /// it. Coins that its unconfirmed payments (or mempool transactions) spend are skipped and
    /// their change can be spent, so payments in a row never conflict; a payment identical to
    /// one already made is [`ControlError::AlreadyKnown`].
    pub async fn pay(&self, req: PaymentRequest) -> Result<(Txid, Amount), ControlError> {
        let paid = self.inner.wallet.pay(&req).await?;
        Ok((paid.txid, paid.fee))
    }

    /// The node's wallet (for the node's own tasks).
    pub(super) fn wallet(&self) -> &NodeWallet {
        &self.inner.wallet
    }

    /// This node's wallet's payments, newest first.
    pub fn payments(&self) -> Vec<(Txid, Payment)> {
        self.inner.wallet.payments()
    }

    /// The wallet's history (every transaction paying to or spending from it), newest first:
    /// up to `count` lines after `skip`, the number of lines, the height followed to.
    pub fn wallet_history(&self, skip: usize, count: usize) -> (Vec<Listed>, usize, u32) {
        self.inner.wallet.history(skip, count)
    }

    /// The wallet's balances, in all or of one of its addresses.
    pub fn wallet_balances(&self, of: Option<&Address>) -> Balances {
        self.inner
            .wallet
            .balances(of.map(|a| a.pubkey_hash()).as_ref())
    }

    /// The wallet's addresses with their balances, oldest first.
    pub fn wallet_addresses(&self) -> Vec<(Address, Balances)> {
        let w = &self.inner.wallet;
        w.addresses()
            .into_iter()
            .map(|a| (a, w.balances(Some(&a.pubkey_hash()))))
            .collect()
    }

    /// A wallet address's confirmed received and sent totals and its history, oldest first;
    /// `None` for an address that is not the wallet's.
    pub fn wallet_address_history(
        &self,
        address: &Address,
    ) -> Option<(Amount, Amount, Vec<Listed>)> {
        let key = address.pubkey_hash();
        let w = &self.inner.wallet;
        w.is_mine(&key).then(|| w.key_history(&key))
    }

    /// Reads the whole chain again for the wallet's keys (`rescanwallet`).
    pub async fn rescan_wallet(&self) -> Result<Rescanned, ControlError> {
        Ok(self.inner.wallet.rescan().await?)
    }

    /// A new key in this node's wallet; only its address leaves the node.
    pub async fn create_address(&self) -> Result<Address, ControlError> {
        let address = self.inner.wallet.create_address().await?;
        info!(target: "wallet", %address, "created a new key");
        Ok(address)
    }

    /// Who a block mined on request pays: `explicit`, else `--miner-address`, else this node's
    /// first wallet address (a new one if the wallet is empty), like the Flask node paying
    /// itself.
    async fn reward_address(&self, explicit: Option<Address>) -> Result<Address, ControlError> {
        if let Some(a) = explicit.or(self.inner.config.miner_address) {
            return Ok(a);
        }
        match self.inner.wallet.first_address() {
            Some(a) => Ok(a),
            None => self.create_address().await,
        }
    }

    /// Offers a block made elsewhere (Bitcoin Core's `submitblock`): validated like our own,
    /// relayed if it becomes the tip.
    pub async fn submit_block(&self, block: Block) -> Result<BlockOutcome, ControlError> {
        metrics().block_received(Source::Local);
        let outcome = self
            .inner
            .chain
            .submit_block(block.clone(), Origin::Requested, "operator".into())
            .await?;
        if let BlockOutcome::NewTip { .. } = outcome {
            self.inner.net.publish_block(&block).await;
        }
        Ok(outcome)
    }

    /// Mines one block of the mempool's best transactions on the tip now, and relays it.
    pub async fn mine(&self, reward_to: Option<Address>) -> Result<Block, ControlError> {
        let _one = self.inner.mining.lock().await;
        let ours = self.inner.reads.status().await?;
        let peers = self.inner.net.peers().await;
        let progress = *self.inner.sync.progress().borrow();
        if let (SyncState::Syncing, best) = sync_state(&peers, &progress) {
            return Err(ControlError::Unavailable(format!(
                "not synced: we verified the headers of a chain with more work (height {}); \
                 mining on our tip (height {}) would be wasted, try again once synced",
                best.unwrap_or(0),
                ours.height
            )));
        }
        let reward_to = self.reward_address(reward_to).await?;
        let template = self
            .inner
            .chain
            .template(reward_to.pubkey_hash())
            .await?
            .ok_or_else(|| ControlError::Unavailable("cannot assemble a block now".into()))?;
        let threads = self.inner.config.mining.threads;
        let block = tokio::task::spawn_blocking(move || {
            let found = miner::mine_logged(&template, threads, &AtomicBool::new(false));
            found.map(|header| Block {
                header,
                txs: template.txs,
            })
        })
        .await
        .map_err(|e| ControlError::Internal(e.to_string()))?
        .ok_or_else(|| ControlError::Internal("no proof of work found".into()))?;
        metrics().block_received(Source::Local);
        match self
            .inner
            .chain
            .submit_block(block.clone(), Origin::Requested, "api".into())
            .await?
        {
            BlockOutcome::NewTip { .. } => {
                self.inner.net.publish_block(&block).await;
                Ok(block)
            }
            other => Err(ControlError::Conflict(format!(
                "the mined block did not become the tip: {other:?}"
            ))),
        }
    }

    /// Connects to another node at the multiaddr `addr` (`node` is what the operator named:
    /// the address itself, or another node's API URL the caller resolved to it).
    pub async fn register(&self, node: &str, addr: &str) -> Result<Registered, ControlError> {
        let addr = addr.to_owned();
        self.inner
            .net
            .dial(&addr)
            .await
            .map_err(|e| ControlError::BadRequest(format!("cannot dial {addr}: {e}")))?;
        info!(target: "net", node, addr, "registered a node");
        Ok(Registered {
            node: node.to_owned(),
            dialed: addr,
        })
    }

    /// Closes the connections to `peer` (a peer id), no penalty (Core's `disconnectnode`).
    pub async fn disconnect_peer(&self, peer: &str) -> Result<(), ControlError> {
        let id = parse_peer(peer)?;
        if !self.inner.net.disconnect(id).await {
            return Err(ControlError::NotFound(format!("not connected to {peer}")));
        }
        Ok(())
    }

    /// Bans `peer` (a peer id) now, connected or not: disconnected, refused, never dialed,
    /// until [`Self::unban_peer`] or the ban's end (Core's `setban add`).
    pub async fn ban_peer(&self, peer: &str, reason: &str) -> Result<(), ControlError> {
        let id = parse_peer(peer)?;
        if id == self.inner.net.local_peer_id() {
            return Err(ControlError::BadRequest("a node cannot ban itself".into()));
        }
        self.inner.net.ban(id, &format!("operator: {reason}")).await;
        Ok(())
    }

    /// Lifts the ban of `peer` (Core's `setban remove`).
    pub async fn unban_peer(&self, peer: &str) -> Result<(), ControlError> {
        let id = parse_peer(peer)?;
        if !self.inner.net.unban(id).await {
            return Err(ControlError::NotFound(format!("{peer} is not banned")));
        }
        Ok(())
    }

    /// The banned peers, each with the seconds its ban still runs (Core's `listbanned`).
    pub async fn bans(&self) -> Vec<(String, u64)> {
        let mut bans: Vec<(String, u64)> = self
            .inner
            .net
            .bans()
            .await
            .into_iter()
            .map(|(p, left)| (p.to_string(), left.as_secs()))
            .collect();
        bans.sort();
        bans
    }

    /// Syncs with every connected peer now (the Flask node's consensus step): asks each for its
    /// status and downloads from any with more work. Says whether our tip changed.
    pub async fn resolve(&self) -> Result<Resolved, ControlError> {
        let i = &self.inner;
        let before = i.reads.status().await?;
        let peers = i.net.peers().await;
        for p in &peers {
            let ours = i.reads.status().await?;
            let theirs = match i.net.request(p.peer, Request::Status(ours)).await {
                Ok(Response::Status(s)) => s,
                _ => continue,
            };
            // The sync manager hears this answer before the resolve below, so it asks for
            // headers first instead of finding nothing to wait for (a race with the Status
            // exchange of a peer that has just connected).
            if !i.sync.on_peer_status(p.peer, theirs).await {
                continue;
            }
            if theirs.chain_work > ours.chain_work {
                let _ = i.sync.download_now(p.peer).await;
            }
        }
        let after = i.reads.status().await?;
        Ok(Resolved {
            changed: after.tip != before.tip,
            old_tip: before.tip,
            tip: after.tip,
            height: after.height,
            peers_asked: peers.len(),
        })
    }
}

fn parse_peer(peer: &str) -> Result<crate::net::PeerId, ControlError> {
    peer.trim()
        .parse()
        .map_err(|e: crate::net::NetError| ControlError::BadRequest(e.to_string()))
}

/// The sync state from verified headers only, and the best verified height when it is above
/// ours. A peer's claimed work never counts: only headers it proved.
fn sync_state(peers: &[PeerInfo], progress: &SyncProgress) -> (SyncState, Option<u32>) {
    let state = match progress {
        _ if peers.is_empty() => SyncState::Alone,
        p if p.syncing => SyncState::Syncing,
        _ => SyncState::Synced,
    };
    let best = (state == SyncState::Syncing).then_some(progress.headers_height);
    (state, best)
}
