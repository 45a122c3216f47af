//! The daemon wallet's history ([`Ledger`]) kept up to date: after every change the chain actor
//! publishes (a block connected or disconnected, a transaction in or out of the mempool), the
//! wallet reads the new main-chain blocks from a store snapshot (in batches of
//! [`SCAN_BATCH`] blocks, undoing what a reorg took away), looks at the mempool transactions it
//! has not seen yet, and judges its unconfirmed entries. The chain actor stays the only writer
//! of the store; the wallet only reads and keeps `wallet.history` (saved when it changed, on
//! each resend round and at shutdown, and after a rescan).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gossipcoin_proto::{Amount, OutPoint, PubkeyHash, Transaction, Txid};
use tracing::{debug, info, warn};

use super::chain_handle::{ChainGone, ChainHandle};
use super::reads::{ReadError, Reads};
use crate::params::ChainParams;
use crate::store::ChainRead;
use crate::wallet::WalletError;
use crate::wallet::history_file::{self, NotUsed};
use crate::wallet::ledger::{self, Balances, Entry, Ledger, Listed, Place};

/// Blocks read per store snapshot while following the chain (a rescan holds no snapshot long).
pub const SCAN_BATCH: u32 = 500;
/// Mempool transactions looked at per follow, at most.
const MAX_MEMPOOL_LOOK: usize = 100_000;
/// Mempool transactions fetched per request, and their bytes.
const FETCH_CHUNK: usize = 500;
const FETCH_BYTES: usize = 4 << 20;
/// The shortest time between two follows (the chain state changes with every mempool
/// transaction; the watch channel coalesces what happens meanwhile).
pub const MIN_FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Why the history could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Gone(#[from] ChainGone),
    #[error(transparent)]
    Wallet(#[from] WalletError),
}

/// What a rescan did.
#[derive(Debug, Clone, Copy)]
pub struct Rescanned {
    pub blocks: u32,
    pub entries: usize,
    pub secs: f64,
}

/// The history and what following it needs.
pub(super) struct History {
    dir: PathBuf,
    params: ChainParams,
    ledger: Mutex<Ledger>,
    /// Mempool txids already looked at (not saved: a restart looks at the mempool again).
    seen: Mutex<HashSet<Txid>>,
    dirty: AtomicBool,
    /// One follow at a time.
    following: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl History {
    /// The saved history of `dir` for `keys`, or an empty one (followed from genesis).
    pub(super) fn open(dir: &Path, params: ChainParams, keys: HashSet<PubkeyHash>) -> Self {
        let ledger = match history_file::load(dir, &keys) {
            Ok(l) => l,
            Err(why) => {
                match why {
                    NotUsed::Missing => {
                        debug!(target: "wallet", "no wallet.history: reading the chain")
                    }
                    NotUsed::OtherKeys => {
                        info!(target: "wallet", "wallet.history was built for other keys: rescanning the chain")
                    }
                    NotUsed::Invalid(reason) => {
                        warn!(target: "wallet", "wallet.history not used ({reason}): rescanning the chain")
                    }
                }
                Ledger::new(keys)
            }
        };
        Self {
            dir: dir.to_path_buf(),
            params,
            ledger: Mutex::new(ledger),
            seen: Mutex::new(HashSet::new()),
            dirty: AtomicBool::new(false),
            following: tokio::sync::Mutex::new(()),
        }
    }

    /// A key added to the wallet (a fresh one: it has no history to find).
    pub(super) fn add_key(&self, key: PubkeyHash) {
        let mut ledger = lock(&self.ledger);
        if !ledger.keys().contains(&key) {
            let mut keys = ledger.keys().clone();
            keys.insert(key);
            let tip = ledger.tip();
            let entries = ledger.entries().cloned().collect();
            *ledger = Ledger::restore(keys, tip, entries);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// A payment this wallet just made: in the history at once.
    pub(super) fn add_payment(&self, tx: &Transaction, fee: Amount) {
        if lock(&self.ledger).add_unconfirmed(tx.clone(), Some(fee), super::now_ms() / 1000) {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Brings the history up to the store's tip and the mempool.
    pub(super) async fn follow(
        &self,
        reads: &Reads,
        chain: &ChainHandle,
    ) -> Result<u32, HistoryError> {
        let _one = self.following.lock().await;
        let mut blocks = 0;
        loop {
            let (from, keys, mut known) = {
                let l = lock(&self.ledger);
                (l.tip(), l.keys().clone(), l.known_outpoints())
            };
            let scan = reads
                .run(move |v| -> Result<_, ReadError> {
                    Ok(ledger::scan(v, from, &keys, &mut known, SCAN_BATCH)?)
                })
                .await?;
            let done = scan.done;
            blocks += scan.blocks;
            if scan.reset {
                lock(&self.seen).clear();
            }
            let fork = scan.fork;
            let changed = lock(&self.ledger).apply(scan);
            if let Some(fork) = fork {
                info!(target: "wallet", height = fork, entries = changed.len(),
                      "wallet history: blocks above this height left the main chain");
            }
            if !changed.is_empty() || blocks > 0 {
                self.dirty.store(true, Ordering::Relaxed);
            }
            if done {
                break;
            }
        }
        let in_mempool = self.look_at_mempool(chain).await?;
        let inputs = lock(&self.ledger).inputs_to_check();
        let gone: HashSet<OutPoint> = if inputs.is_empty() {
            HashSet::new()
        } else {
            reads
                .run(move |v| -> Result<_, ReadError> {
                    let mut gone = HashSet::new();
                    for op in inputs {
                        if v.coin(&op)?.is_none() {
                            gone.insert(op);
                        }
                    }
                    Ok(gone)
                })
                .await?
        };
        let changed = {
            let mut l = lock(&self.ledger);
            let changed = l.resolve(&in_mempool, &gone);
            for txid in &changed {
                if let Some(Place::Conflicted { by }) = l.get(txid).map(|e| e.place) {
                    warn!(target: "wallet", %txid, by = by.map_or("unknown".into(), |t| t.to_string()),
                          "wallet transaction conflicted");
                }
            }
            changed
        };
        if !changed.is_empty() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(blocks)
    }

    /// Adds the mempool's new wallet transactions; returns every mempool txid.
    async fn look_at_mempool(&self, chain: &ChainHandle) -> Result<HashSet<Txid>, ChainGone> {
        let all = chain.mempool_txids(MAX_MEMPOOL_LOOK).await?;
        let now: HashSet<Txid> = all.iter().copied().collect();
        let new: Vec<Txid> = {
            let mut seen = lock(&self.seen);
            seen.retain(|t| now.contains(t));
            all.into_iter().filter(|t| !seen.contains(t)).collect()
        };
        for chunk in new.chunks(FETCH_CHUNK) {
            let txs = chain.mempool_txs(chunk.to_vec(), FETCH_BYTES).await?;
            for tx in txs {
                let txid = tx.compute_txid();
                lock(&self.seen).insert(txid);
                if !lock(&self.ledger).is_relevant(&tx) {
                    continue;
                }
                let fee = chain.mempool_tx(txid).await?.map(|e| e.fee());
                if lock(&self.ledger).add_unconfirmed(tx, fee, super::now_ms() / 1000) {
                    debug!(target: "wallet", %txid, "wallet transaction in the mempool");
                    self.dirty.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(now)
    }

    /// Forgets the history and reads it again from genesis for `keys`.
    pub(super) async fn rescan(
        &self,
        keys: HashSet<PubkeyHash>,
        reads: &Reads,
        chain: &ChainHandle,
    ) -> Result<Rescanned, HistoryError> {
        let started = Instant::now();
        {
            let _one = self.following.lock().await;
            lock(&self.ledger).reset(keys);
            lock(&self.seen).clear();
        }
        let blocks = self.follow(reads, chain).await?;
        self.save().await?;
        let r = Rescanned {
            blocks,
            entries: lock(&self.ledger).len(),
            secs: started.elapsed().as_secs_f64(),
        };
        info!(target: "wallet", blocks = r.blocks, entries = r.entries,
              secs = format!("{:.3}", r.secs), "wallet rescanned");
        Ok(r)
    }

    /// Writes `wallet.history` if it changed since the last save.
    pub(super) async fn save(&self) -> Result<(), WalletError> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = history_file::encode(&lock(&self.ledger));
        let dir = self.dir.clone();
        let saved = tokio::task::spawn_blocking(move || history_file::save(&dir, &bytes))
            .await
            .map_err(|e| WalletError::io("write wallet.history in", &self.dir)(e.into()))
            .and_then(|r| r);
        if saved.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        saved
    }

    /// Up to `count` lines, newest first, after `skip`; and how many there are.
    pub(super) fn list(&self, skip: usize, count: usize) -> (Vec<Listed>, usize, u32) {
        let l = lock(&self.ledger);
        (
            l.list(skip, count, &self.params),
            l.len(),
            l.tip().map_or(0, |t| t.1),
        )
    }

    pub(super) fn balances(&self, only: Option<&PubkeyHash>) -> Balances {
        lock(&self.ledger).balances(&self.params, only)
    }

    /// One key's confirmed received and sent totals and its entries (oldest first), as shown.
    pub(super) fn of_key(&self, key: &PubkeyHash) -> (Amount, Amount, Vec<Listed>) {
        let l = lock(&self.ledger);
        let (received, sent, entries) = l.of_key(key);
        let shown = entries
            .into_iter()
            .map(|e: &Entry| l.describe(e, &self.params))
            .collect();
        (received, sent, shown)
    }
}
