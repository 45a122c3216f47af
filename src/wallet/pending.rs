//! `wallet.pending`: the payments this wallet made (transaction, fee, when, state), one
//! mechanism for `send` without a daemon and for the daemon's wallet. Unconfirmed payments keep
//! their coins off limits and offer their change, so payments in a row never spend the same
//! coin; each payment's state follows the chain: pending, confirmed (block, height) or
//! conflicted (by the confirmed transaction that spent one of its inputs). Entries are pruned
//! [`PRUNE_DEPTH`] blocks after they confirmed or were conflicted.
//!
//! File format: magic `GCPAYMNT`, a format byte ([`FORMAT_VERSION`]), then frames, each a
//! little-endian `u32` length, the first 4 bytes of SHA-256d of the payload, and the payload
//! (postcard of an [`Event`]). The daemon appends one frame per payment (a process kill loses
//! nothing written before it; a torn last frame is ignored); every rewrite ([`Pending::compact`])
//! is atomic (temp file, fsync, rename) and, under `wallet.lock`, first adopts what other
//! processes appended. A file of the first format (a bare list of transactions) is read as
//! pending payments and rewritten. Reading is bounded: [`MAX_FILE_BYTES`], frames of at most
//! [`MAX_FRAME_BYTES`], [`MAX_PAYMENTS`] entries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{
    Address, Amount, BlockHash, Coin, MAX_TX_BYTES, OutPoint, PubkeyHash, Transaction, TxOut, Txid,
    sha256d,
};
use serde::{Deserialize, Serialize};

use super::WalletError;
use crate::params::ChainParams;
use crate::store::{ChainRead, StoreError};

/// The file's name in the data directory.
pub const PENDING_FILE: &str = "wallet.pending";
/// The format version this program writes.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes the file may have; a larger one is refused before it is read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The largest frame: one maximal transaction and its record.
pub const MAX_FRAME_BYTES: usize = MAX_TX_BYTES + 1024;
/// Payments tracked at most; past this, a new payment is refused until older ones are pruned.
pub const MAX_PAYMENTS: usize = 10_000;
/// Bytes of transactions tracked at most (keeps a rewrite well under [`MAX_FILE_BYTES`]).
const MAX_TRACKED_BYTES: usize = 32 * 1024 * 1024;
/// A confirmed or conflicted payment is forgotten this many blocks deep.
pub const PRUNE_DEPTH: u32 = 100;
/// Blocks below a payment's submission height searched for the transaction that conflicted
/// it (a reorganisation may have put it lower), and the most blocks searched in all.
const CONFLICT_MARGIN: u32 = 10;
const MAX_CONFLICT_SCAN: u32 = 2_000;

const MAGIC: &[u8; 8] = b"GCPAYMNT";
const HEADER_LEN: usize = MAGIC.len() + 1;
const FRAME_HEADER: usize = 8;

/// What became of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentState {
    /// Not in a main-chain block yet (in a mempool, or to be rebroadcast).
    Pending,
    /// In the main-chain block `block` at `height`.
    Confirmed { block: BlockHash, height: u32 },
    /// A confirmed transaction (`by`, when found) spent one of its inputs, or of its unconfirmed
    /// parent's: it can never be mined. `height` is where that was seen (for pruning).
    Conflicted { by: Option<Txid>, height: u32 },
    /// The mempool replaced it by `by`, which spends the same coins and pays more (full RBF):
    /// not offered again. Still followed: it becomes confirmed if a block holds it after all,
    /// conflicted once a block holds the replacement.
    Replaced { by: Txid },
}

impl PaymentState {
    /// `pending`, `confirmed` or `conflicted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed { .. } => "confirmed",
            Self::Conflicted { .. } => "conflicted",
            Self::Replaced { .. } => "replaced",
        }
    }
}

/// One payment this wallet made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub tx: Transaction,
    /// Inputs minus outputs (unknown for payments read from the first file format).
    pub fee: Option<Amount>,
    /// Seconds since 1970 when it was first accepted.
    pub submitted_at: u64,
    /// The tip's height then.
    pub submitted_height: u32,
    pub state: PaymentState,
}

impl Payment {
    /// A new pending payment.
    pub fn new(tx: Transaction, fee: Amount, submitted_at: u64, submitted_height: u32) -> Self {
        Self {
            tx,
            fee: Some(fee),
            submitted_at,
            submitted_height,
            state: PaymentState::Pending,
        }
    }

    /// The paying address (the key of the first input).
    pub fn from(&self) -> Option<Address> {
        self.tx
            .inputs
            .first()
            .map(|i| Address(PubkeyHash::of_pubkey(&i.pubkey)))
    }

    /// The address paid and the amount (the first output, as the builder orders them).
    pub fn paid(&self) -> Option<(Address, Amount)> {
        self.tx.outputs.first().map(|o| (Address(o.owner), o.value))
    }
}

/// One frame of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A payment (with its state at the time).
    Add(Payment),
    /// A payment's new state.
    State(Txid, PaymentState),
    /// A payment pruned.
    Remove(Txid),
}

/// What [`Pending::refresh`] changed, for the logs and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// Payments whose state changed, with the new state.
    pub changed: Vec<(Txid, PaymentState)>,
    /// Payments pruned.
    pub pruned: Vec<Txid>,
}

/// The wallet's payments, oldest first, with an index of what unconfirmed ones spend and the
/// change they offer.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    list: Vec<(Txid, Payment)>,
    index: HashMap<Txid, usize>,
    /// Inputs of pending payments, and which payment spends each.
    spends: HashMap<OutPoint, Txid>,
    /// Outputs of pending payments no pending payment spends, by owner.
    change: BTreeMap<(PubkeyHash, OutPoint), TxOut>,
    /// Bytes of the transactions tracked.
    bytes: usize,
    /// Pruned since the file was last rewritten: not adopted again from the file.
    removed: HashSet<Txid>,
    /// Frames in the file as this process last knew it.
    frames: usize,
    /// The file needs a rewrite before anything is appended (first format, torn last frame).
    needs_rewrite: bool,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Pending {
    /// Loads the payments (none when there is no file).
    ///
    /// # Errors
    /// [`WalletError::Corrupt`] for a file that is not a payments file (left untouched),
    /// [`WalletError::Io`].
    pub fn load(dir: &Path) -> Result<Self, WalletError> {
        let path = dir.join(PENDING_FILE);
        match read_bounded(&path)? {
            None => Ok(Self::default()),
            Some(bytes) => Self::decode(&bytes).map_err(|reason| WalletError::Corrupt {
                path: path.clone(),
                reason,
            }),
        }
    }

    /// Whether the file must be rewritten ([`Self::compact`]) before the next append.
    pub fn needs_rewrite(&self) -> bool {
        self.needs_rewrite
    }

    /// Whether rewriting the file would shrink it a lot (many state frames or pruned entries).
    pub fn wants_compaction(&self) -> bool {
        self.needs_rewrite || self.frames > 2 * self.list.len() + 64
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut pending = Self::default();
        if !bytes.starts_with(MAGIC) {
            // The first format: a bare postcard list of pending transactions.
            let txs: Vec<Transaction> = from_bytes(bytes, MAX_FILE_BYTES as usize)
                .map_err(|e| format!("not a payments file ({e})"))?;
            for tx in txs {
                pending.insert(Payment {
                    tx,
                    fee: None,
                    submitted_at: 0,
                    submitted_height: 0,
                    state: PaymentState::Pending,
                })?;
            }
            pending.needs_rewrite = true;
            return Ok(pending);
        }
        if bytes.len() < HEADER_LEN {
            return Err("truncated header".into());
        }
        if bytes[MAGIC.len()] != FORMAT_VERSION {
            return Err(format!(
                "format version {}, this gossipcoin reads version {FORMAT_VERSION}: use a newer gossipcoin",
                bytes[MAGIC.len()]
            ));
        }
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let Some(len) = rest
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            else {
                pending.needs_rewrite = true; // a torn last frame
                break;
            };
            if len > MAX_FRAME_BYTES {
                return Err(format!(
                    "a frame at byte {at} claims {len} bytes, above {MAX_FRAME_BYTES}"
                ));
            }
            let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
                pending.needs_rewrite = true;
                break;
            };
            let last = at + FRAME_HEADER + len == bytes.len();
            if sha256d(payload)[..4] != rest[4..8] {
                if last {
                    pending.needs_rewrite = true;
                    break;
                }
                return Err(format!("checksum mismatch in the frame at byte {at}"));
            }
            let event: Event = from_bytes(payload, MAX_FRAME_BYTES)
                .map_err(|e| format!("bad frame at byte {at}: {e}"))?;
            pending.apply(event)?;
            pending.frames += 1;
            at += FRAME_HEADER + len;
        }
        Ok(pending)
    }

    /// Applies one frame read from the file.
    fn apply(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Add(p) => {
                // A payment appended again after a rewrite that already held it: the state
                // frames that follow are what counts.
                if self.index.contains_key(&p.tx.compute_txid()) {
                    Ok(())
                } else {
                    self.insert(p).map(|_| ())
                }
            }
            Event::State(txid, state) => {
                if let Some(&i) = self.index.get(&txid) {
                    self.list[i].1.state = state;
                    self.reindex();
                }
                Ok(())
            }
            Event::Remove(txid) => {
                self.remove(&[txid]);
                Ok(())
            }
        }
    }

    fn insert(&mut self, payment: Payment) -> Result<Txid, String> {
        if self.list.len() >= MAX_PAYMENTS {
            return Err(format!("more than {MAX_PAYMENTS} payments"));
        }
        let txid = payment.tx.compute_txid();
        self.bytes += payment.tx.encoded_len();
        if payment.state == PaymentState::Pending {
            self.index_pending(txid, &payment.tx);
        }
        self.index.insert(txid, self.list.len());
        self.list.push((txid, payment));
        Ok(txid)
    }

    /// Records a payment a node accepted (in memory; see [`Self::append`] and
    /// [`Self::record`]). A payment already known is left as it is.
    ///
    /// # Errors
    /// [`WalletError::TooManyPayments`] when [`MAX_PAYMENTS`] (or the byte bound) are tracked.
    pub fn add(&mut self, payment: Payment) -> Result<Txid, WalletError> {
        let txid = payment.tx.compute_txid();
        if self.index.contains_key(&txid) {
            return Ok(txid);
        }
        if self.list.len() >= MAX_PAYMENTS
            || self.bytes + payment.tx.encoded_len() > MAX_TRACKED_BYTES
        {
            return Err(WalletError::TooManyPayments {
                limit: MAX_PAYMENTS,
            });
        }
        self.removed.remove(&txid);
        self.insert(payment)
            .map_err(|_| WalletError::TooManyPayments {
                limit: MAX_PAYMENTS,
            })
    }

    fn index_pending(&mut self, txid: Txid, tx: &Transaction) {
        for input in &tx.inputs {
            self.spends.insert(input.prevout, txid);
            let owner = PubkeyHash::of_pubkey(&input.pubkey);
            self.change.remove(&(owner, input.prevout));
        }
        for (vout, output) in tx.outputs.iter().enumerate() {
            let op = OutPoint {
                txid,
                vout: vout as u32,
            };
            if !self.spends.contains_key(&op) {
                self.change.insert((output.owner, op), *output);
            }
        }
    }

    fn reindex(&mut self) {
        self.spends.clear();
        self.change.clear();
        let pending: Vec<(Txid, Transaction)> = self
            .list
            .iter()
            .filter(|(_, p)| p.state == PaymentState::Pending)
            .map(|(t, p)| (*t, p.tx.clone()))
            .collect();
        for (txid, tx) in &pending {
            self.index_pending(*txid, tx);
        }
    }

    fn remove(&mut self, txids: &[Txid]) {
        if txids.is_empty() {
            return;
        }
        let gone: HashSet<&Txid> = txids.iter().collect();
        self.list.retain(|(t, _)| !gone.contains(t));
        self.removed.extend(txids.iter().copied());
        self.index = self
            .list
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (*t, i))
            .collect();
        self.bytes = self.list.iter().map(|(_, p)| p.tx.encoded_len()).sum();
        self.reindex();
    }

    /// Sets the states [`Self::refresh`] found on a copy (payments gone since are skipped).
    pub fn set_states(&mut self, changed: &[(Txid, PaymentState)]) {
        for (txid, state) in changed {
            if let Some(&i) = self.index.get(txid) {
                self.list[i].1.state = *state;
            }
        }
        if !changed.is_empty() {
            self.reindex();
        }
    }

    /// Forgets `txids` (pruned on a copy by [`Self::refresh`]).
    pub fn prune(&mut self, txids: &[Txid]) {
        self.remove(txids);
    }

    /// A payment by txid.
    pub fn get(&self, txid: &Txid) -> Option<&Payment> {
        self.index.get(txid).map(|&i| &self.list[i].1)
    }

    /// Whether `txid` is one of the wallet's payments.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.index.contains_key(txid)
    }

    /// Every payment, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Txid, &Payment)> + '_ {
        self.list.iter().map(|(t, p)| (t, p))
    }

    /// The pending payments, oldest first (parents before children).
    pub fn pending(&self) -> impl Iterator<Item = (&Txid, &Payment)> + '_ {
        self.iter()
            .filter(|(_, p)| p.state == PaymentState::Pending)
    }

    /// How many payments are tracked.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a pending payment spends `outpoint`.
    pub fn spends(&self, outpoint: &OutPoint) -> bool {
        self.spends.contains_key(outpoint)
    }

    /// The unspent outputs to `owner` of pending payments: their change, or what they pay to
    /// another key of this wallet (outputs of our own transactions are trusted, as in Core).
    pub fn change_of(&self, owner: PubkeyHash) -> impl Iterator<Item = (OutPoint, TxOut)> + '_ {
        let from = (
            owner,
            OutPoint {
                txid: Txid::ZERO,
                vout: 0,
            },
        );
        self.change
            .range(from..)
            .take_while(move |((o, _), _)| *o == owner)
            .map(|((_, op), out)| (*op, *out))
    }

    /// The coins `owner` may spend in the block at `next_height`: `confirmed` (the owner's
    /// coins in the UTXO set) minus what pending payments or `also_spent` spend, plus the change
    /// of pending payments. See [`super::coins::spendable`].
    pub fn spendable(
        &self,
        owner: PubkeyHash,
        confirmed: impl IntoIterator<Item = (OutPoint, Coin)>,
        also_spent: impl Fn(&OutPoint) -> bool,
        next_height: u32,
        params: &ChainParams,
    ) -> Vec<(OutPoint, Coin)> {
        super::coins::spendable(
            confirmed,
            self.change_of(owner),
            |op| self.spends(op) || also_spent(op),
            next_height,
            params,
        )
    }

    /// Follows the chain in `view`: a payment in a main-chain block is confirmed; one whose
    /// input is gone from the UTXO set (and is no output of a pending payment) is conflicted,
    /// by the main-chain transaction that spent it when one of the recent blocks holds it; a
    /// confirmed one no longer on the main chain (a reorganisation) is pending again. Entries
    /// [`PRUNE_DEPTH`] deep are pruned. Oldest first, so a payment whose unconfirmed parent
    /// was conflicted is conflicted by the same transaction.
    pub fn refresh(&mut self, view: &impl ChainRead) -> Result<Refreshed, StoreError> {
        let mut out = Refreshed {
            changed: Vec::new(),
            pruned: Vec::new(),
        };
        let Some(tip) = view.tip()? else {
            return Ok(out);
        };
        let mut spenders: Option<Spenders> = None;
        for i in 0..self.list.len() {
            let (txid, payment) = &self.list[i];
            let old = payment.state;
            let new = match view.tx_location(txid)? {
                Some(at) => PaymentState::Confirmed {
                    block: at.block,
                    height: at.height,
                },
                None if matches!(old, PaymentState::Conflicted { .. }) => old,
                None => {
                    let mut state = PaymentState::Pending;
                    for input in &payment.tx.inputs {
                        let op = input.prevout;
                        if view.coin(&op)?.is_some() {
                            continue;
                        }
                        if let Some(&p) = self.index.get(&op.txid) {
                            match self.list[p].1.state {
                                PaymentState::Pending => continue,
                                c @ (PaymentState::Conflicted { .. }
                                | PaymentState::Replaced { .. }) => {
                                    state = c;
                                    break;
                                }
                                PaymentState::Confirmed { .. } => {}
                            }
                        }
                        let found = match &spenders {
                            Some(map) => map.get(&op).copied(),
                            None => {
                                let from = self.lowest_pending_height();
                                let map = scan_spenders(view, from, tip.height)?;
                                let found = map.get(&op).copied();
                                spenders = Some(map);
                                found
                            }
                        };
                        state = match found {
                            // Ours, found without a transaction index (an old read-only store).
                            Some((by, height, block)) if by == *txid => {
                                PaymentState::Confirmed { block, height }
                            }
                            Some((by, height, _)) => PaymentState::Conflicted {
                                by: Some(by),
                                height,
                            },
                            None => PaymentState::Conflicted {
                                by: None,
                                height: tip.height,
                            },
                        };
                        break;
                    }
                    match (state, old) {
                        // Not in a block, inputs unspent there: still replaced.
                        (PaymentState::Pending, PaymentState::Replaced { .. }) => old,
                        _ => state,
                    }
                }
            };
            if new != old {
                self.list[i].1.state = new;
                out.changed.push((self.list[i].0, new));
            }
        }
        for (txid, payment) in &self.list {
            let deep = |h: u32| tip.height.saturating_sub(h) + 1 >= PRUNE_DEPTH;
            match payment.state {
                PaymentState::Confirmed { height, .. }
                | PaymentState::Conflicted { height, .. }
                    if deep(height) =>
                {
                    out.pruned.push(*txid)
                }
                _ => {}
            }
        }
        if !out.changed.is_empty() {
            self.reindex();
        }
        self.remove(&out.pruned);
        Ok(out)
    }

    fn lowest_pending_height(&self) -> u32 {
        self.pending()
            .map(|(_, p)| p.submitted_height)
            .min()
            .unwrap_or(0)
            .saturating_sub(CONFLICT_MARGIN)
    }

    /// Appends `events` to the file in one write, under `wallet.lock` (a new file gets its
    /// header first). Survives a kill of this process once it returns; not fsynced (the next
    /// [`Self::compact`] is).
    pub fn append(dir: &Path, events: &[Event]) -> Result<(), WalletError> {
        if events.is_empty() {
            return Ok(());
        }
        let path = dir.join(PENDING_FILE);
        let _lock = super::file::lock(dir)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(WalletError::io("open", &path))?;
        let len = file
            .metadata()
            .map_err(WalletError::io("read the size of", &path))?
            .len();
        let mut bytes = Vec::new();
        if len == 0 {
            bytes.extend_from_slice(MAGIC);
            bytes.push(FORMAT_VERSION);
        } else {
            let mut head = [0u8; HEADER_LEN];
            file.read_exact(&mut head)
                .map_err(WalletError::io("read", &path))?;
            if head[..MAGIC.len()] != MAGIC[..] || head[MAGIC.len()] != FORMAT_VERSION {
                return Err(WalletError::Corrupt {
                    path,
                    reason: "not a payments file of this version: not appended to".into(),
                });
            }
        }
        for event in events {
            frame(&mut bytes, event);
        }
        file.write_all(&bytes)
            .map_err(WalletError::io("append to", &path))
    }

    /// Notes that `n` frames were appended by this process.
    pub fn appended(&mut self, n: usize) {
        self.frames += n;
    }

    /// Rewrites the file atomically from memory, first adopting (under `wallet.lock`) the
    /// payments another process added to it since; pruned ones are not adopted again.
    pub fn compact(&mut self, dir: &Path) -> Result<(), WalletError> {
        let _lock = super::file::lock(dir)?;
        self.compact_locked(dir)
    }

    fn compact_locked(&mut self, dir: &Path) -> Result<(), WalletError> {
        let (list, removed) = self.for_compaction();
        let (adopted, frames) = Self::write_compacted_locked(dir, list, &removed)?;
        self.compacted(adopted, &removed, frames);
        Ok(())
    }

    /// What [`Self::write_compacted`] needs: a copy of the payments and of the pruned txids, so
    /// the file can be rewritten without holding whatever guards `self`.
    pub fn for_compaction(&self) -> (Vec<Payment>, HashSet<Txid>) {
        (
            self.list.iter().map(|(_, p)| p.clone()).collect(),
            self.removed.clone(),
        )
    }

    /// Under `wallet.lock`: reads the file, adopts the payments in it that are neither in
    /// `list` nor `removed` (another process's), and replaces the file atomically with `list`
    /// and those. Returns the adopted payments and the frames written.
    pub fn write_compacted(
        dir: &Path,
        list: Vec<Payment>,
        removed: &HashSet<Txid>,
    ) -> Result<(Vec<Payment>, usize), WalletError> {
        let _lock = super::file::lock(dir)?;
        Self::write_compacted_locked(dir, list, removed)
    }

    fn write_compacted_locked(
        dir: &Path,
        mut list: Vec<Payment>,
        removed: &HashSet<Txid>,
    ) -> Result<(Vec<Payment>, usize), WalletError> {
        let path = dir.join(PENDING_FILE);
        let mut adopted = Vec::new();
        if let Some(bytes) = read_bounded(&path)? {
            let on_disk = Self::decode(&bytes).map_err(|reason| WalletError::Corrupt {
                path: path.clone(),
                reason,
            })?;
            let known: HashSet<Txid> = list.iter().map(|p| p.tx.compute_txid()).collect();
            for (txid, payment) in on_disk.list {
                if !known.contains(&txid) && !removed.contains(&txid) {
                    adopted.push(payment);
                }
            }
        }
        list.extend(adopted.iter().cloned());
        list.truncate(MAX_PAYMENTS);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.push(FORMAT_VERSION);
        for payment in list.iter() {
            frame(&mut bytes, &Event::Add(payment.clone()));
        }
        super::file::write_atomically(&path, &bytes)?;
        Ok((adopted, list.len()))
    }

    /// After [`Self::write_compacted`]: takes in the adopted payments, forgets the pruned
    /// txids that were written out, and counts the file's frames afresh.
    pub fn compacted(&mut self, adopted: Vec<Payment>, removed: &HashSet<Txid>, frames: usize) {
        for payment in adopted {
            let _ = self.add(payment);
        }
        self.removed.retain(|t| !removed.contains(t));
        self.frames = frames;
        self.needs_rewrite = false;
    }

    /// Adds `payment` and rewrites the file with it (what `send` without a daemon does: one
    /// short process, one atomic write).
    pub fn record(&mut self, dir: &Path, payment: Payment) -> Result<Txid, WalletError> {
        let _lock = super::file::lock(dir)?;
        let txid = self.add(payment)?;
        self.compact_locked(dir)?;
        Ok(txid)
    }
}

/// Who spent an outpoint on the main chain: the txid, its block's height and hash.
type Spenders = HashMap<OutPoint, (Txid, u32, BlockHash)>;

/// Every input spent by main-chain blocks from `from` to `tip` (at most the last
/// [`MAX_CONFLICT_SCAN`]), with the spending txid and its block.
fn scan_spenders(view: &impl ChainRead, from: u32, tip: u32) -> Result<Spenders, StoreError> {
    let mut map = HashMap::new();
    let from = from.max(tip.saturating_sub(MAX_CONFLICT_SCAN));
    for height in from..=tip {
        let Some(hash) = view.hash_at(height)? else {
            continue;
        };
        let Some(block) = view.block(&hash)? else {
            continue;
        };
        for tx in block.txs.iter().skip(1) {
            let txid = tx.compute_txid();
            for input in &tx.inputs {
                map.insert(input.prevout, (txid, height, hash));
            }
        }
    }
    Ok(map)
}

fn frame(out: &mut Vec<u8>, event: &Event) {
    let payload = to_bytes(event);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&sha256d(&payload)[..4]);
    out.extend_from_slice(&payload);
}

/// The file's bytes (None when it does not exist), refused past [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, WalletError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WalletError::io("open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(WalletError::io("read", path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(WalletError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("larger than the limit of {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Block, BlockHeader};

    use super::*;
    use crate::chain::{Chain, Origin};
    use crate::consensus::testutil::{T0, coins, key, out_of, params, pay, remine, signed_tx};

    fn block_on(prev: &Block, height: u32, txs: Vec<Transaction>) -> Block {
        let mut all = vec![Transaction::coinbase(
            height,
            key(99).pubkey_hash(),
            coins(10),
        )];
        all.extend(txs);
        let mut b = Block {
            header: BlockHeader {
                version: 1,
                prev: prev.block_hash(),
                merkle_root: Default::default(),
                time: prev.header.time + 1,
                bits: params().pow_bits,
                nonce: 0,
            },
            txs: all,
        };
        remine(&mut b, &params());
        b
    }

    /// A genesis paying key 1 ten coins, and three payments: `t1` and `t2` both spend that
    /// coin (a wallet shared by two nodes), `t3` spends `t2`'s change.
    fn story() -> (Block, [Transaction; 3]) {
        let mut genesis = Block {
            header: BlockHeader {
                version: 1,
                prev: BlockHash::ZERO,
                merkle_root: Default::default(),
                time: T0,
                bits: params().pow_bits,
                nonce: 0,
            },
            txs: vec![Transaction::coinbase(0, key(1).pubkey_hash(), coins(10))],
        };
        remine(&mut genesis, &params());
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let cb = (out_of(&genesis.txs[0], 0), genesis.txs[0].outputs[0], &k1);
        let t1 = signed_tx(&[cb], vec![pay(&k2, coins(4)), pay(&k1, coins(6))]);
        let t2 = signed_tx(&[cb], vec![pay(&k3, coins(3)), pay(&k1, coins(7))]);
        let t3 = signed_tx(
            &[(out_of(&t2, 1), t2.outputs[1], &k1)],
            vec![pay(&k2, coins(1)), pay(&k1, coins(6))],
        );
        (genesis, [t1, t2, t3])
    }

    fn payment(tx: &Transaction) -> Payment {
        Payment::new(tx.clone(), Amount::ZERO, 1_700_000_000, 0)
    }

    #[test]
    fn unconfirmed_spends_are_off_limits_and_their_change_is_spendable() {
        let (genesis, [t1, _, t3]) = story();
        let me = key(1).pubkey_hash();
        let cb = out_of(&genesis.txs[0], 0);
        let coin = Coin {
            output: genesis.txs[0].outputs[0],
            height: 0,
            is_coinbase: true,
        };
        let mut p = Pending::default();
        let none = |_: &OutPoint| false;
        let all = p.spendable(me, vec![(cb, coin)], none, 1, &params());
        assert_eq!(all.len(), 1);
        p.add(payment(&t1)).unwrap();
        let coins_now = p.spendable(me, vec![(cb, coin)], none, 1, &params());
        assert_eq!(
            coins_now,
            vec![(
                out_of(&t1, 1),
                Coin {
                    output: t1.outputs[1],
                    height: 1,
                    is_coinbase: false
                }
            )]
        );
        // Outputs are offered to their owner only (key 2 is paid 4 coins, key 3 nothing);
        // what the caller also excludes is not offered.
        let k2 = p.spendable(key(2).pubkey_hash(), vec![], none, 1, &params());
        assert_eq!(k2.len(), 1);
        assert_eq!(k2[0].1.output.value, coins(4));
        assert!(
            p.spendable(key(3).pubkey_hash(), vec![], none, 1, &params())
                .is_empty()
        );
        let t1_change = out_of(&t1, 1);
        assert!(
            p.spendable(me, vec![(cb, coin)], |o| *o == t1_change, 1, &params())
                .is_empty()
        );
        // Adding the same payment twice changes nothing; a foreign child spends nothing of ours.
        assert_eq!(p.add(payment(&t1)).unwrap(), t1.compute_txid());
        assert_eq!(p.len(), 1);
        p.add(payment(&t3)).unwrap();
        assert!(p.spends(&out_of(&story().1[1], 1)));
    }

    #[test]
    fn refresh_follows_confirmation_conflict_and_prunes_deep_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (genesis, [t1, t2, t3]) = story();
        let chain = Chain::create(&dir.path().join("chain"), params(), &genesis).unwrap();
        let mut p = Pending::default();
        for t in [&t1, &t2, &t3] {
            p.add(payment(t)).unwrap();
        }
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        assert!(r.changed.is_empty() && r.pruned.is_empty(), "{r:?}");

        let b1 = block_on(&genesis, 1, vec![t1.clone()]);
        let now = T0 + 100_000;
        chain.accept_block(&b1, now, Origin::Requested).unwrap();
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        let t1_state = PaymentState::Confirmed {
            block: b1.block_hash(),
            height: 1,
        };
        let by_t1 = PaymentState::Conflicted {
            by: Some(t1.compute_txid()),
            height: 1,
        };
        assert_eq!(
            r.changed,
            vec![
                (t1.compute_txid(), t1_state),
                (t2.compute_txid(), by_t1),
                (t3.compute_txid(), by_t1),
            ]
        );
        assert_eq!(p.pending().count(), 0);
        assert!(!p.spends(&out_of(&genesis.txs[0], 0)));
        // Nothing changes on a second look.
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        assert!(r.changed.is_empty(), "{r:?}");

        // 100 blocks deep (tip 100, confirmed at 1): forgotten.
        let mut tip = b1;
        for h in 2..=99 {
            tip = block_on(&tip, h, vec![]);
            chain.accept_block(&tip, now, Origin::Requested).unwrap();
        }
        assert!(
            p.refresh(&chain.store().read().unwrap())
                .unwrap()
                .pruned
                .is_empty()
        );
        tip = block_on(&tip, 100, vec![]);
        chain.accept_block(&tip, now, Origin::Requested).unwrap();
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        assert_eq!(r.pruned.len(), 3);
        assert!(p.is_empty());
    }

    #[test]
    fn a_replaced_payment_stays_replaced_until_a_block_settles_it() {
        let dir = tempfile::tempdir().unwrap();
        let (genesis, [t1, t2, t3]) = story();
        let chain = Chain::create(&dir.path().join("chain"), params(), &genesis).unwrap();
        let mut p = Pending::default();
        for t in [&t2, &t3] {
            p.add(payment(t)).unwrap();
        }
        // The mempool replaced t2 by t1 (which took t3, t2's child, with it).
        let replaced = PaymentState::Replaced {
            by: t1.compute_txid(),
        };
        p.set_states(&[(t2.compute_txid(), replaced)]);
        assert_eq!(replaced.as_str(), "replaced");
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        assert_eq!(r.changed, vec![(t3.compute_txid(), replaced)]);
        assert_eq!(p.pending().count(), 0);
        // A block with t1: both conflicted by it.
        let b1 = block_on(&genesis, 1, vec![t1.clone()]);
        chain
            .accept_block(&b1, T0 + 100_000, Origin::Requested)
            .unwrap();
        let r = p.refresh(&chain.store().read().unwrap()).unwrap();
        let by_t1 = PaymentState::Conflicted {
            by: Some(t1.compute_txid()),
            height: 1,
        };
        assert_eq!(
            r.changed,
            vec![(t2.compute_txid(), by_t1), (t3.compute_txid(), by_t1)]
        );
    }

    #[test]
    fn appended_payments_and_states_round_trip_and_compaction_adopts_others() {
        let dir = tempfile::tempdir().unwrap();
        let (_, [t1, t2, t3]) = story();
        let mut p = Pending::default();
        p.add(payment(&t1)).unwrap();
        Pending::append(dir.path(), &[Event::Add(payment(&t1))]).unwrap();
        let confirmed = PaymentState::Confirmed {
            block: BlockHash([3; 32]),
            height: 4,
        };
        Pending::append(dir.path(), &[Event::State(t1.compute_txid(), confirmed)]).unwrap();
        p.set_states(&[(t1.compute_txid(), confirmed)]);
        // The same payment appended again (after a rewrite that held it) changes nothing.
        Pending::append(dir.path(), &[Event::Add(payment(&t1))]).unwrap();
        let loaded = Pending::load(dir.path()).unwrap();
        assert_eq!(loaded, p);
        assert_eq!(loaded.get(&t1.compute_txid()).unwrap().state, confirmed);
        assert!(!loaded.needs_rewrite());

        // Another process (the CLI) records t2 in the file; our compaction keeps it, and a
        // payment we pruned is not brought back.
        let mut other = Pending::load(dir.path()).unwrap();
        other.record(dir.path(), payment(&t2)).unwrap();
        p.add(payment(&t3)).unwrap();
        p.prune(&[t1.compute_txid()]);
        p.compact(dir.path()).unwrap();
        let ids: Vec<Txid> = p.iter().map(|(t, _)| *t).collect();
        assert_eq!(ids, vec![t3.compute_txid(), t2.compute_txid()]);
        let loaded = Pending::load(dir.path()).unwrap();
        assert_eq!(loaded, p);
        assert!(!loaded.wants_compaction());
    }

    #[test]
    fn a_torn_last_frame_is_ignored_and_a_damaged_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PENDING_FILE);
        let (_, [t1, t2, _]) = story();
        Pending::append(dir.path(), &[Event::Add(payment(&t1))]).unwrap();
        let good = std::fs::read(&path).unwrap();
        Pending::append(dir.path(), &[Event::Add(payment(&t2))]).unwrap();
        let both = std::fs::read(&path).unwrap();

        // A kill in the middle of the second append.
        std::fs::write(&path, &both[..both.len() - 7]).unwrap();
        let p = Pending::load(dir.path()).unwrap();
        assert_eq!(p.len(), 1);
        assert!(p.needs_rewrite());

        // A damaged frame that is not the last one, a frame claiming too many bytes, a file too
        // large, another format: refused, and the file left as it was.
        let mut damaged = both.clone();
        damaged[HEADER_LEN + FRAME_HEADER + 3] ^= 1;
        let mut huge = good.clone();
        huge[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut version = good.clone();
        version[MAGIC.len()] = 9;
        for (bytes, needle) in [
            (damaged, "checksum"),
            (huge, "claims"),
            (version, "version 9"),
            (b"junk".to_vec(), "not a payments file"),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            match Pending::load(dir.path()) {
                Err(WalletError::Corrupt { reason, .. }) => {
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
                }
                other => panic!("{needle}: {other:?}"),
            }
            if !bytes.starts_with(good[..HEADER_LEN].as_ref()) {
                // Never appended to a file of another format.
                assert!(Pending::append(dir.path(), &[Event::Remove(Txid::ZERO)]).is_err());
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            Pending::load(dir.path()),
            Err(WalletError::Corrupt { reason, .. }) if reason.contains("larger")
        ));
    }

    #[test]
    fn the_first_format_is_read_as_pending_payments() {
        let dir = tempfile::tempdir().unwrap();
        let (_, [t1, _, t3]) = story();
        std::fs::write(
            dir.path().join(PENDING_FILE),
            to_bytes(&vec![t1.clone(), t3.clone()]),
        )
        .unwrap();
        let mut p = Pending::load(dir.path()).unwrap();
        assert_eq!(p.pending().count(), 2);
        assert_eq!(p.get(&t1.compute_txid()).unwrap().fee, None);
        assert!(p.needs_rewrite());
        p.compact(dir.path()).unwrap();
        let again = Pending::load(dir.path()).unwrap();
        assert_eq!(again, p);
        assert!(!again.needs_rewrite());
    }

    #[test]
    fn the_number_of_payments_is_bounded() {
        let (_, [t1, ..]) = story();
        let mut p = Pending::default();
        for i in 0..MAX_PAYMENTS {
            let mut tx = t1.clone();
            tx.version = i as u32 + 2; // a distinct txid each
            p.add(payment(&tx)).unwrap();
        }
        assert!(matches!(
            p.add(payment(&t1)),
            Err(WalletError::TooManyPayments { .. })
        ));
    }
}
