//! The daemon's wallet: keys held in memory ([`Keyring`]), the payments it made ([`Pending`],
//! kept in `wallet.pending`), paying from them, and the resend task (Bitcoin Core's wallet
//! rebroadcast) that re-submits and re-announces pending payments and follows each one to
//! confirmed or conflicted.
//!
//! A payment reads the payer's confirmed coins from a store snapshot (the address index), never
//! through the chain actor; it takes the wallet's lock only to choose coins and sign (its own
//! pending payments' spends are off limits, their change may be spent), then offers the
//! transaction to the mempool. A coin the mempool says another transaction spends is left out
//! and the payment built again. A payment that comes out identical to one the wallet or the
//! mempool already has is [`PayError::AlreadyKnown`], never a new payment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use gossipcoin_proto::{Address, Amount, Coin, OutPoint, PubkeyHash, Transaction, Txid};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::chain_handle::{ChainGone, ChainHandle};
use super::reads::{ReadError, Reads};
use super::wallet_history::{History, HistoryError, MIN_FOLLOW_INTERVAL, Rescanned};
use crate::mempool::MempoolError;
use crate::net::NetHandle;
use crate::params::ChainParams;
use crate::store::ChainRead;
use crate::wallet::ledger::{Balances, Listed};
use crate::wallet::pending::{Event, PENDING_FILE};
use crate::wallet::{self, Keyring, Payment, PaymentState, Pending, WalletError};

/// Times a payment is built again after the mempool named a coin as spent elsewhere.
const MAX_ATTEMPTS: usize = 8;
/// How long a payment waits for the payments in flight that hold its coins.
const RESERVED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pending payments offered again per resend round at most (oldest first).
const MAX_RESEND: usize = 1_000;

/// A payment from this node's wallet.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub from: Address,
    pub to: Address,
    pub amount: Amount,
    /// The fee; `None`: what the mempool's estimate for [`FEE_TARGET_BLOCKS`] asks of the
    /// payment's size (never below the mempool's minimum).
    pub fee: Option<Amount>,
}

/// Blocks a payment without an explicit fee aims to be mined within.
pub const FEE_TARGET_BLOCKS: u32 = 2;

/// Why a payment was not made.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("address {0} is not in this node's wallet")]
    UnknownAddress(Address),
    /// The transaction this request builds is already the wallet's or in the mempool.
    #[error("payment {txid} is already known (the same transaction was submitted before)")]
    AlreadyKnown { txid: Txid },
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Gone(#[from] ChainGone),
}

/// A payment made: its txid and fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paid {
    pub txid: Txid,
    pub fee: Amount,
}

/// The daemon's wallet. Cheap to clone.
#[derive(Clone)]
pub struct NodeWallet {
    inner: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    params: ChainParams,
    chain: ChainHandle,
    net: NetHandle,
    reads: Reads,
    keys: RwLock<Keyring>,
    /// Every wallet transaction, from the chain and the mempool.
    history: History,
    /// Held to choose coins and sign, and to change the payments in memory; never for I/O.
    state: Mutex<State>,
    /// Appends and rewrites of `wallet.pending` by this process, one at a time.
    file: tokio::sync::Mutex<()>,
    /// Woken whenever reserved inputs are released or become a recorded payment (whose change
    /// may then be spent): a payment that found its coins reserved waits for it.
    settled: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    payments: Pending,
    /// Inputs of payments being offered to the mempool right now.
    reserved: HashSet<OutPoint>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NodeWallet {
    /// Loads the keys and the payments of `dir`. A `wallet.pending` that cannot be read is
    /// moved aside (`wallet.pending.corrupt`) with a warning, never deleted; a corrupt
    /// `wallet.dat` is an error.
    pub fn open(
        dir: &Path,
        params: ChainParams,
        chain: ChainHandle,
        net: NetHandle,
        reads: Reads,
    ) -> Result<Self, WalletError> {
        let keys = Keyring::load(dir)?;
        let mut payments = match Pending::load(dir) {
            Ok(p) => p,
            Err(e @ WalletError::Corrupt { .. }) => {
                let aside = dir.join(format!("{PENDING_FILE}.corrupt"));
                warn!(target: "wallet", "{e}; moved to {} and starting with no payments",
                      aside.display());
                std::fs::rename(dir.join(PENDING_FILE), &aside)
                    .map_err(WalletError::io("move aside", &aside))?;
                Pending::default()
            }
            Err(e) => return Err(e),
        };
        if payments.needs_rewrite() {
            payments.compact(dir)?;
        }
        let history = History::open(dir, params.clone(), keys.pubkey_hashes());
        info!(target: "wallet", keys = keys.len(), payments = payments.len(),
              pending = payments.pending().count(), "wallet loaded");
        Ok(Self {
            inner: Arc::new(Shared {
                dir: dir.to_path_buf(),
                params,
                chain,
                net,
                reads,
                keys: RwLock::new(keys),
                history,
                state: Mutex::new(State {
                    payments,
                    reserved: HashSet::new(),
                }),
                file: tokio::sync::Mutex::new(()),
                settled: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The oldest key's address.
    pub fn first_address(&self) -> Option<Address> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .first_address()
    }

    /// Adds a key to `wallet.dat` (atomically) and to memory.
    pub async fn create_address(&self) -> Result<Address, WalletError> {
        let this = self.clone();
        let address = tokio::task::spawn_blocking(move || {
            let mut keys = this.inner.keys.write().unwrap_or_else(|p| p.into_inner());
            keys.create_address(&this.inner.dir)
        })
        .await
        .map_err(|e| WalletError::io("create a key in", &self.inner.dir)(e.into()))??;
        self.inner.history.add_key(address.pubkey_hash());
        Ok(address)
    }

    /// The signing key of `from`, reading `wallet.dat` again once if another process changed it.
    async fn key_of(&self, from: &Address) -> Result<crate::keys::PrivateKey, PayError> {
        let pkh = from.pubkey_hash();
        let stale = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = keys.key_for(&pkh) {
                return Ok(k.clone());
            }
            keys.stale(&self.inner.dir)
        };
        if stale {
            let dir = self.inner.dir.clone();
            let fresh = tokio::task::spawn_blocking(move || Keyring::load(&dir))
                .await
                .map_err(|e| WalletError::io("read", &self.inner.dir)(e.into()))??;
            let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
            *keys = fresh;
            // Keys another process created are fresh: they have no history to look for (a
            // wallet copied in needs `rescanwallet`).
            for k in keys.pubkey_hashes() {
                self.inner.history.add_key(k);
            }
            if let Some(k) = keys.key_for(&pkh) {
                return Ok(k.clone());
            }
        }
        Err(PayError::UnknownAddress(*from))
    }

    /// Builds, signs, offers to the mempool and relays a payment, and records it.
    pub async fn pay(&self, req: &PaymentRequest) -> Result<Paid, PayError> {
        let key = self.key_of(&req.from).await?;
        let owner = req.from.pubkey_hash();
        let (confirmed, tip) = self
            .inner
            .reads
            .run(move |v| -> Result<_, ReadError> {
                let tip = v.tip()?.map_or(0, |t| t.height);
                let mut coins: Vec<(OutPoint, Coin)> = Vec::new();
                for (outpoint, _) in v.utxos_of(&owner)? {
                    if let Some(coin) = v.coin(&outpoint)? {
                        coins.push((outpoint, coin));
                    }
                }
                Ok((coins, tip))
            })
            .await?;
        let rate = match req.fee {
            Some(_) => None,
            None => Some(
                self.inner
                    .chain
                    .estimate_fee(FEE_TARGET_BLOCKS)
                    .await?
                    .fee_rate,
            ),
        };
        let mut excluded: HashSet<OutPoint> = HashSet::new();
        let wait_until = tokio::time::Instant::now() + RESERVED_WAIT;
        let mut attempts = 0;
        while attempts < MAX_ATTEMPTS {
            // Armed before the state is looked at, so a release in between is not missed.
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let built = {
                let mut state = lock(&self.inner.state);
                if state.payments.len() >= wallet::pending::MAX_PAYMENTS {
                    return Err(WalletError::TooManyPayments {
                        limit: wallet::pending::MAX_PAYMENTS,
                    }
                    .into());
                }
                let State { payments, reserved } = &*state;
                let spendable = payments.spendable(
                    owner,
                    confirmed.iter().copied(),
                    |op| reserved.contains(op) || excluded.contains(op),
                    tip + 1,
                    &self.inner.params,
                );
                // Would the coins that payments in flight hold now cover this one? Only then
                // is it worth waiting for them.
                let covered_by_held = |need: Amount| {
                    !reserved.is_empty() && {
                        let with_held = payments.spendable(
                            owner,
                            confirmed.iter().copied(),
                            |op| excluded.contains(op),
                            tip + 1,
                            &self.inner.params,
                        );
                        let units: u64 =
                            with_held.iter().map(|(_, c)| c.output.value.units()).sum();
                        units >= need.units()
                    }
                };
                let build = |fee| {
                    wallet::build_payment(&key, &spendable, req.to.pubkey_hash(), req.amount, fee)
                };
                let built = match (req.fee, rate) {
                    (Some(fee), _) => build(fee).map(|tx| (tx, fee)),
                    (None, rate) => crate::mempool::fit_fee(rate.unwrap_or_default(), build),
                };
                match built {
                    // Payments in flight hold coins, or will leave change: wait for them, as a
                    // payment right after another from the same address would have.
                    Err(WalletError::InsufficientFunds { need, .. })
                        if tokio::time::Instant::now() < wait_until && covered_by_held(need) =>
                    {
                        None
                    }
                    built => {
                        let (tx, fee) = built?;
                        let txid = tx.compute_txid();
                        if payments.contains(&txid) {
                            return Err(PayError::AlreadyKnown { txid });
                        }
                        state.reserved.extend(tx.inputs.iter().map(|i| i.prevout));
                        Some((tx, fee))
                    }
                }
            };
            let Some((tx, fee)) = built else {
                let _ = tokio::time::timeout_at(wait_until, settled).await;
                continue;
            };
            attempts += 1;
            let result = self
                .inner
                .chain
                .submit_tx(tx.clone(), "wallet".into())
                .await;
            let release = || {
                let mut state = lock(&self.inner.state);
                for i in &tx.inputs {
                    state.reserved.remove(&i.prevout);
                }
                drop(state);
                self.inner.settled.notify_waiters();
            };
            match result {
                Ok(Ok(txid)) => {
                    self.inner.net.publish_tx(&tx).await;
                    self.record(tx, fee, tip).await?;
                    info!(target: "wallet", %txid, from = %req.from, to = %req.to,
                          amount = %req.amount, %fee, "payment submitted");
                    return Ok(Paid { txid, fee });
                }
                Ok(Err(MempoolError::AlreadyKnown { txid })) => {
                    // Ours (our key signed it) but not recorded: a restart lost the record.
                    self.record(tx, fee, tip).await?;
                    return Err(PayError::AlreadyKnown { txid });
                }
                Ok(Err(MempoolError::Conflict { outpoint, .. })) => {
                    release();
                    excluded.insert(outpoint);
                }
                Ok(Err(MempoolError::MissingInputs { missing, .. })) => {
                    // Change of a payment that is not in the mempool (yet): other coins first.
                    release();
                    excluded.extend(missing);
                }
                Ok(Err(e)) => {
                    release();
                    return Err(e.into());
                }
                Err(gone) => {
                    release();
                    return Err(gone.into());
                }
            }
        }
        Err(MempoolError::Unavailable(format!(
            "every coin chosen in {MAX_ATTEMPTS} attempts was spent by another mempool transaction"
        ))
        .into())
    }

    /// Records an accepted payment in memory (its inputs were reserved) and in the file.
    async fn record(&self, tx: Transaction, fee: Amount, tip: u32) -> Result<(), PayError> {
        self.inner.history.add_payment(&tx, fee);
        let payment = Payment::new(tx, fee, crate::node::now_ms() / 1000, tip);
        {
            let mut state = lock(&self.inner.state);
            for i in &payment.tx.inputs {
                state.reserved.remove(&i.prevout);
            }
            state.payments.add(payment.clone())?;
        }
        self.inner.settled.notify_waiters();
        self.append(vec![Event::Add(payment)]).await?;
        Ok(())
    }

    async fn append(&self, events: Vec<Event>) -> Result<(), WalletError> {
        if events.is_empty() {
            return Ok(());
        }
        let _file = self.inner.file.lock().await;
        let n = events.len();
        let dir = self.inner.dir.clone();
        tokio::task::spawn_blocking(move || Pending::append(&dir, &events))
            .await
            .map_err(|e| WalletError::io("append to", &self.inner.dir)(e.into()))??;
        lock(&self.inner.state).payments.appended(n);
        Ok(())
    }

    /// Rewrites `wallet.pending` from memory (adopting what other processes appended), without
    /// holding the wallet's lock during the I/O.
    async fn compact(&self) -> Result<(), WalletError> {
        let _file = self.inner.file.lock().await;
        let (list, removed) = lock(&self.inner.state).payments.for_compaction();
        let dir = self.inner.dir.clone();
        let keep = removed.clone();
        let (adopted, frames) =
            tokio::task::spawn_blocking(move || Pending::write_compacted(&dir, list, &keep))
                .await
                .map_err(|e| WalletError::io("rewrite", &self.inner.dir)(e.into()))??;
        lock(&self.inner.state)
            .payments
            .compacted(adopted, &removed, frames);
        Ok(())
    }

    /// Every payment, newest first, and the tip height they were last checked against.
    pub fn payments(&self) -> Vec<(Txid, Payment)> {
        let state = lock(&self.inner.state);
        state
            .payments
            .iter()
            .rev()
            .map(|(t, p)| (*t, p.clone()))
            .collect()
    }

    /// The wallet's history, newest first: up to `count` lines after `skip`, how many there
    /// are in all, and the height they were followed to.
    pub fn history(&self, skip: usize, count: usize) -> (Vec<Listed>, usize, u32) {
        self.inner.history.list(skip, count)
    }

    /// The wallet's balances (of one key when given).
    pub fn balances(&self, only: Option<&PubkeyHash>) -> Balances {
        self.inner.history.balances(only)
    }

    /// Whether `key` is one of the wallet's.
    pub fn is_mine(&self, key: &PubkeyHash) -> bool {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key_for(key)
            .is_some()
    }

    /// The wallet's addresses, oldest first.
    pub fn addresses(&self) -> Vec<Address> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .addresses()
    }

    /// One wallet key's confirmed received and sent totals and its history, oldest first.
    pub fn key_history(&self, key: &PubkeyHash) -> (Amount, Amount, Vec<Listed>) {
        self.inner.history.of_key(key)
    }

    /// Brings the history up to the chain's tip and the mempool.
    pub async fn follow_history(&self) -> Result<(), HistoryError> {
        self.inner
            .history
            .follow(&self.inner.reads, &self.inner.chain)
            .await
            .map(|_| ())
    }

    /// Reads the whole chain again for the wallet's keys (reading `wallet.dat` again first, for
    /// keys another process added): Bitcoin Core's `rescanblockchain`.
    pub async fn rescan(&self) -> Result<Rescanned, HistoryError> {
        let dir = self.inner.dir.clone();
        let fresh = tokio::task::spawn_blocking(move || Keyring::load(&dir))
            .await
            .map_err(|e| WalletError::io("read", &self.inner.dir)(e.into()))??;
        let keys = fresh.pubkey_hashes();
        *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.inner
            .history
            .rescan(keys, &self.inner.reads, &self.inner.chain)
            .await
    }

    /// Follows each payment on the chain (confirmed, conflicted, pruned), saves what changed,
    /// then offers pending payments to the mempool again and re-announces them. One round of
    /// the resend task.
    pub async fn resend_round(&self) -> Result<(), WalletError> {
        self.follow_chain().await?;
        self.rebroadcast().await;
        Ok(())
    }

    async fn follow_chain(&self) -> Result<(), WalletError> {
        let copy = lock(&self.inner.state).payments.clone();
        let refreshed = self
            .inner
            .reads
            .run(move |v| -> Result<_, ReadError> {
                let mut copy = copy;
                Ok(copy.refresh(v)?)
            })
            .await;
        let refreshed = match refreshed {
            Ok(r) => r,
            Err(e) => {
                warn!(target: "wallet", "cannot follow payments on the chain: {e}");
                return Ok(());
            }
        };
        if refreshed.changed.is_empty() && refreshed.pruned.is_empty() {
            return Ok(());
        }
        for (txid, state) in &refreshed.changed {
            match state {
                PaymentState::Confirmed { height, block } => {
                    info!(target: "wallet", %txid, height, %block, "payment confirmed")
                }
                PaymentState::Conflicted { by: Some(by), .. } => {
                    warn!(target: "wallet", %txid, %by, "payment conflicted")
                }
                PaymentState::Conflicted { by: None, .. } => {
                    warn!(target: "wallet", %txid, by = "unknown", "payment conflicted")
                }
                PaymentState::Pending => {
                    info!(target: "wallet", %txid, "payment pending again (its block left the main chain)")
                }
                PaymentState::Replaced { by } => {
                    warn!(target: "wallet", %txid, %by, "payment replaced in the mempool")
                }
            }
        }
        let wants_compaction = {
            let mut state = lock(&self.inner.state);
            state.payments.set_states(&refreshed.changed);
            state.payments.prune(&refreshed.pruned);
            state.payments.wants_compaction()
        };
        if wants_compaction || !refreshed.pruned.is_empty() {
            self.compact().await
        } else {
            let events = refreshed
                .changed
                .iter()
                .map(|(t, s)| Event::State(*t, *s))
                .collect();
            self.append(events).await
        }
    }

    /// Offers every pending payment (oldest first, at most [`MAX_RESEND`]) to the mempool
    /// again and gossips it; a child whose parent was not in the mempool yet is offered again
    /// after its parent.
    async fn rebroadcast(&self) {
        let mut todo: Vec<(Txid, Transaction)> = lock(&self.inner.state)
            .payments
            .pending()
            .take(MAX_RESEND)
            .map(|(t, p)| (*t, p.tx.clone()))
            .collect();
        loop {
            let mut waiting = Vec::new();
            let before = todo.len();
            for (txid, tx) in todo {
                match self
                    .inner
                    .chain
                    .submit_tx(tx.clone(), "wallet".into())
                    .await
                {
                    Ok(Ok(_)) => {
                        info!(target: "wallet", %txid, "rebroadcast");
                        self.inner.net.publish_tx(&tx).await;
                    }
                    Ok(Err(MempoolError::AlreadyKnown { .. })) => {
                        debug!(target: "wallet", %txid, "rebroadcast (announced again)");
                        self.inner.net.publish_tx(&tx).await;
                    }
                    Ok(Err(MempoolError::MissingInputs { .. })) => waiting.push((txid, tx)),
                    Ok(Err(MempoolError::Replaced { by, .. })) => {
                        warn!(target: "wallet", %txid, %by, "payment replaced in the mempool by one paying more");
                        let state = PaymentState::Replaced { by };
                        lock(&self.inner.state)
                            .payments
                            .set_states(&[(txid, state)]);
                        if let Err(e) = self.append(vec![Event::State(txid, state)]).await {
                            warn!(target: "wallet", "cannot save the wallet's payments: {e}");
                        }
                    }
                    Ok(Err(e)) => {
                        debug!(target: "wallet", %txid, "not rebroadcast: {e}");
                    }
                    Err(_) => return,
                }
            }
            if waiting.is_empty() || waiting.len() == before {
                return;
            }
            todo = waiting;
        }
    }

    /// The resend task: a round at once (a restarted node offers its pending payments again
    /// without waiting), then one every `every`, until `shutdown`; payments are also followed
    /// on the chain each time the tip changes.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tips = self.inner.chain.state();
        let mut tip = tips.borrow_and_update().tip;
        self.follow_history_logged().await;
        let mut last_follow = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.resend_round().await {
                        warn!(target: "wallet", "cannot save the wallet's payments: {e}");
                    }
                    if let Err(e) = self.inner.history.save().await {
                        warn!(target: "wallet", "cannot save the wallet's history: {e}");
                    }
                }
                changed = tips.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // Changes that come meanwhile are coalesced by the watch channel.
                    tokio::time::sleep_until(last_follow + MIN_FOLLOW_INTERVAL).await;
                    let now = tips.borrow_and_update().tip;
                    if now != tip {
                        tip = now;
                        if let Err(e) = self.follow_chain().await {
                            warn!(target: "wallet", "cannot save the wallet's payments: {e}");
                        }
                    }
                    self.follow_history_logged().await;
                    last_follow = tokio::time::Instant::now();
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        // Leave a compact, fsynced file behind.
        if let Err(e) = self.compact().await {
            warn!(target: "wallet", "cannot save the wallet's payments: {e}");
        }
        if let Err(e) = self.inner.history.save().await {
            warn!(target: "wallet", "cannot save the wallet's history: {e}");
        }
    }

    async fn follow_history_logged(&self) {
        if let Err(e) = self.follow_history().await {
            warn!(target: "wallet", "cannot follow the wallet's history: {e}");
        }
    }
}
