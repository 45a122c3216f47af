//! [`Ledger`]: the wallet's history, derived from the chain and the mempool — every transaction
//! that pays to or spends from one of the wallet's keys, not only the payments this node made.
//!
//! The ledger follows the main chain block by block ([`scan`] reads a store snapshot and finds
//! what is new, [`Ledger::apply`] records it): a block that leaves the main chain sends its
//! transactions back to unconfirmed (a coinbase becomes an orphan), and each unconfirmed
//! transaction is then judged ([`Ledger::resolve`]): pending (in the mempool, or still able to
//! confirm) or conflicted (an input spent by a confirmed transaction, or gone). Bitcoin Core's
//! wallet keeps the same record (`CWalletTx` with its confirmation state).
//!
//! Categories are computed when asked ([`Ledger::list`]), from the transaction, the wallet's
//! coins and the tip: `generate` / `immature` / `orphan` for a coinbase, `send` when a wallet
//! coin is spent, else `receive`. What the ledger needs on disk is in [`super::history_file`].

use std::collections::{HashMap, HashSet};

use gossipcoin_proto::{
    Address, Amount, BlockHash, OutPoint, PubkeyHash, Transaction, TxOut, Txid,
};
use serde::{Deserialize, Serialize};

use crate::params::ChainParams;
use crate::store::{ChainRead, StoreError};

/// Where a wallet transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Place {
    /// In a main-chain block.
    Confirmed {
        block: BlockHash,
        height: u32,
        /// Its position in the block (the coinbase is 0).
        index: u32,
        /// The block's header time.
        time: u32,
    },
    /// Not in a block; `in_mempool` as last seen.
    Pending { in_mempool: bool },
    /// Can never confirm: an input was spent by the confirmed `by` (None: an input is gone
    /// and the wallet does not know who spent it).
    Conflicted { by: Option<Txid> },
    /// A coinbase whose block left the main chain.
    Orphan,
}

/// One wallet transaction as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub txid: Txid,
    pub tx: Transaction,
    /// Inputs minus outputs, when known (never for a coinbase).
    pub fee: Option<Amount>,
    pub place: Place,
    /// Unix seconds at which the wallet first saw it (a block's time when found in a block).
    pub first_seen: u64,
}

/// What a transaction is to the wallet (Bitcoin Core's `listtransactions` categories).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Send,
    Receive,
    Generate,
    Immature,
    Orphan,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Receive => "receive",
            Self::Generate => "generate",
            Self::Immature => "immature",
            Self::Orphan => "orphan",
        }
    }
}

/// One line of the history, as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub txid: Txid,
    pub category: Category,
    /// For a send, what left the wallet to others; otherwise what the wallet received.
    pub amount: Amount,
    pub fee: Option<Amount>,
    /// For a send the first recipient outside the wallet; otherwise the first wallet address paid.
    pub address: Option<Address>,
    /// A wallet address spent from (sends only).
    pub from: Option<Address>,
    pub place: Place,
    /// 0 when not in a block.
    pub confirmations: u32,
    /// The block time, else when first seen.
    pub time: u64,
}

/// The wallet's balances, from its history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    /// Confirmed coins, mature, not spent on the chain.
    pub confirmed: Amount,
    /// Coins of pending transactions (received or change), not spent by another pending one.
    pub unconfirmed: Amount,
    /// Confirmed coinbase coins not yet spendable.
    pub immature: Amount,
    /// Confirmed coins that pending transactions spend.
    pub outgoing: Amount,
}

/// The wallet's history: every entry, ordered (confirmed by height and position, then
/// unconfirmed by when first seen), with the wallet's coins and who spent them on the chain.
#[derive(Default, Debug)]
pub struct Ledger {
    /// The last main-chain block followed.
    tip: Option<(BlockHash, u32)>,
    keys: HashSet<PubkeyHash>,
    entries: HashMap<Txid, Entry>,
    /// Txids, oldest first.
    order: Vec<Txid>,
    /// Every output of an entry that pays a wallet key.
    coins: HashMap<OutPoint, TxOut>,
    /// Wallet coins spent by confirmed entries.
    spent_by: HashMap<OutPoint, Txid>,
}

/// A transaction found in a main-chain block.
#[derive(Clone, Debug)]
pub struct Found {
    pub txid: Txid,
    pub tx: Transaction,
    pub fee: Option<Amount>,
    pub place: Place,
}

/// What [`scan`] read.
#[derive(Debug, Default)]
pub struct Scan {
    /// The followed tip is not in the store's index at all: start again from genesis.
    pub reset: bool,
    /// Entries confirmed above this height left the main chain.
    pub fork: Option<u32>,
    pub found: Vec<Found>,
    /// The last block read; `None` for an empty chain.
    pub tip: Option<(BlockHash, u32)>,
    /// Blocks read.
    pub blocks: u32,
    /// Whether the scan reached the store's tip (false: `max_blocks` stopped it).
    pub done: bool,
}

/// Reads, from one snapshot, what changed on the main chain since `from` (the ledger's
/// [`Ledger::tip`]): the fork point if `from` left the main chain, then up to `max_blocks`
/// blocks, keeping the transactions that pay one of `keys` or spend one of `known` (which
/// grows with what is found, so a spend of a coin found earlier in the scan is found too).
pub fn scan(
    view: &impl ChainRead,
    from: Option<(BlockHash, u32)>,
    keys: &HashSet<PubkeyHash>,
    known: &mut HashSet<OutPoint>,
    max_blocks: u32,
) -> Result<Scan, StoreError> {
    let mut out = Scan::default();
    let Some(tip) = view.tip()? else {
        out.reset = from.is_some();
        out.done = true;
        return Ok(out);
    };
    // Walk back from the followed block to the main chain.
    let mut start = from;
    while let Some((hash, height)) = start {
        if view.is_on_main_chain(&hash)? {
            break;
        }
        let Some(entry) = view.index(&hash)? else {
            out.reset = true;
            start = None;
            break;
        };
        out.fork = Some(height.saturating_sub(1));
        start = (height > 0).then_some((entry.header.prev, height - 1));
        if height == 0 {
            out.reset = true;
        }
    }
    if out.reset {
        out.fork = None;
        known.clear();
    }
    let first = start.map_or(0, |(_, h)| h + 1);
    out.tip = start;
    let last = tip
        .height
        .min(first.saturating_add(max_blocks.saturating_sub(1)));
    for height in first..=last.max(first) {
        if height > tip.height {
            break;
        }
        let Some(hash) = view.hash_at(height)? else {
            break;
        };
        let Some(block) = view.block(&hash)? else {
            break;
        };
        let mut undo: Option<Vec<gossipcoin_proto::Coin>> = None;
        let mut spent_before = 0usize;
        for (index, tx) in block.txs.iter().enumerate() {
            let inputs = if tx.is_coinbase() { 0 } else { tx.inputs.len() };
            let relevant = tx.outputs.iter().any(|o| keys.contains(&o.owner))
                || (inputs > 0 && tx.inputs.iter().any(|i| known.contains(&i.prevout)));
            if relevant {
                let txid = tx.compute_txid();
                let fee = if inputs == 0 {
                    None
                } else {
                    if undo.is_none() {
                        undo = view.undo(&hash)?;
                    }
                    undo.as_ref()
                        .and_then(|u| u.get(spent_before..spent_before + inputs))
                        .and_then(|spent| Amount::checked_sum(spent.iter().map(|c| c.output.value)))
                        .zip(tx.output_total())
                        .and_then(|(i, o)| i.checked_sub(o))
                };
                for (vout, o) in tx.outputs.iter().enumerate() {
                    if keys.contains(&o.owner) {
                        known.insert(OutPoint {
                            txid,
                            vout: vout as u32,
                        });
                    }
                }
                out.found.push(Found {
                    txid,
                    tx: tx.clone(),
                    fee,
                    place: Place::Confirmed {
                        block: hash,
                        height,
                        index: index as u32,
                        time: block.header.time,
                    },
                });
            }
            spent_before += inputs;
        }
        out.tip = Some((hash, height));
        out.blocks += 1;
    }
    out.done = out.tip.is_some_and(|(h, _)| h == tip.hash);
    Ok(out)
}

impl Ledger {
    /// An empty ledger for `keys`.
    pub fn new(keys: HashSet<PubkeyHash>) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }

    /// Rebuilds a ledger from saved entries (in any order) and its followed tip.
    pub fn restore(
        keys: HashSet<PubkeyHash>,
        tip: Option<(BlockHash, u32)>,
        entries: Vec<Entry>,
    ) -> Self {
        let mut ledger = Self::new(keys);
        ledger.tip = tip;
        for e in entries {
            ledger.entries.insert(e.txid, e);
        }
        ledger.reindex();
        ledger
    }

    /// The last main-chain block followed.
    pub fn tip(&self) -> Option<(BlockHash, u32)> {
        self.tip
    }

    /// The wallet's keys.
    pub fn keys(&self) -> &HashSet<PubkeyHash> {
        &self.keys
    }

    /// Every wallet coin ever seen (spent or not): what a transaction must spend to be ours.
    pub fn known_outpoints(&self) -> HashSet<OutPoint> {
        self.coins.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid)
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.order.iter().filter_map(|t| self.entries.get(t))
    }

    /// Forgets everything, keeps the keys (given anew): a rescan follows.
    pub fn reset(&mut self, keys: HashSet<PubkeyHash>) {
        *self = Self::new(keys);
    }

    /// Whether `tx` pays one of the wallet's keys or spends one of its coins.
    pub fn is_relevant(&self, tx: &Transaction) -> bool {
        tx.outputs.iter().any(|o| self.keys.contains(&o.owner))
            || (!tx.is_coinbase()
                && tx
                    .inputs
                    .iter()
                    .any(|i| self.coins.contains_key(&i.prevout)))
    }

    /// Records what [`scan`] read: entries above the fork back to unconfirmed, the found ones
    /// confirmed. Returns the txids whose place changed.
    pub fn apply(&mut self, scan: Scan) -> Vec<Txid> {
        let mut changed = Vec::new();
        if scan.reset {
            let keys = std::mem::take(&mut self.keys);
            self.reset(keys);
        }
        if let Some(fork) = scan.fork {
            for e in self.entries.values_mut() {
                if let Place::Confirmed { height, .. } = e.place
                    && height > fork
                {
                    e.place = if e.tx.is_coinbase() {
                        Place::Orphan
                    } else {
                        Place::Pending { in_mempool: false }
                    };
                    changed.push(e.txid);
                }
            }
            let gone: HashSet<Txid> = changed.iter().copied().collect();
            self.spent_by.retain(|_, by| !gone.contains(by));
        }
        for f in scan.found {
            let first_seen = match f.place {
                Place::Confirmed { time, .. } => u64::from(time),
                _ => 0,
            };
            match self.entries.get_mut(&f.txid) {
                Some(e) => {
                    if e.place != f.place {
                        e.place = f.place;
                        changed.push(f.txid);
                    }
                    if f.fee.is_some() {
                        e.fee = f.fee;
                    }
                }
                None => {
                    changed.push(f.txid);
                    self.entries.insert(
                        f.txid,
                        Entry {
                            txid: f.txid,
                            tx: f.tx,
                            fee: f.fee,
                            place: f.place,
                            first_seen,
                        },
                    );
                }
            }
            self.index_entry(&f.txid);
        }
        self.tip = scan.tip;
        self.sort();
        changed
    }

    /// Adds a transaction seen in the mempool (already known ones keep their record).
    pub fn add_unconfirmed(&mut self, tx: Transaction, fee: Option<Amount>, now: u64) -> bool {
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return false;
        }
        let fee = fee.or_else(|| self.fee_from_coins(&tx));
        self.entries.insert(
            txid,
            Entry {
                txid,
                tx,
                fee,
                place: Place::Pending { in_mempool: true },
                first_seen: now,
            },
        );
        self.index_entry(&txid);
        self.order.push(txid);
        true
    }

    /// Inputs of every unconfirmed, unconflicted entry that are not wallet coins spent on the
    /// chain: what [`Self::resolve`] needs to know exists.
    pub fn inputs_to_check(&self) -> Vec<OutPoint> {
        self.entries
            .values()
            .filter(|e| !matches!(e.place, Place::Confirmed { .. } | Place::Orphan))
            .flat_map(|e| e.tx.inputs.iter().map(|i| i.prevout))
            .collect()
    }

    /// Judges every unconfirmed entry: pending when `in_mempool` says so or when it can still
    /// confirm, conflicted when a confirmed entry spent one of its inputs (by that one) or an
    /// input is `gone` (neither unspent on the chain nor made by another pending entry).
    /// Returns the txids whose place changed.
    pub fn resolve(&mut self, in_mempool: &HashSet<Txid>, gone: &HashSet<OutPoint>) -> Vec<Txid> {
        let pending_txids: HashSet<Txid> = self
            .entries
            .values()
            .filter(|e| matches!(e.place, Place::Pending { .. }))
            .map(|e| e.txid)
            .collect();
        let mut changed = Vec::new();
        for e in self.entries.values_mut() {
            if matches!(e.place, Place::Confirmed { .. } | Place::Orphan) {
                continue;
            }
            let by_chain =
                e.tx.inputs
                    .iter()
                    .find_map(|i| self.spent_by.get(&i.prevout).filter(|by| **by != e.txid));
            let place = if in_mempool.contains(&e.txid) {
                Place::Pending { in_mempool: true }
            } else if let Some(by) = by_chain {
                Place::Conflicted { by: Some(*by) }
            } else if e.tx.inputs.iter().any(|i| {
                gone.contains(&i.prevout)
                    && !pending_txids.contains(&i.prevout.txid)
                    && !in_mempool.contains(&i.prevout.txid)
            }) {
                Place::Conflicted { by: None }
            } else {
                Place::Pending { in_mempool: false }
            };
            if place != e.place {
                e.place = place;
                changed.push(e.txid);
            }
        }
        changed
    }

    /// Up to `count` lines, newest first, after skipping `skip`.
    pub fn list(&self, skip: usize, count: usize, params: &ChainParams) -> Vec<Listed> {
        self.order
            .iter()
            .rev()
            .skip(skip)
            .take(count)
            .filter_map(|t| self.entries.get(t))
            .map(|e| self.describe(e, params))
            .collect()
    }

    /// One entry as shown.
    pub fn describe(&self, e: &Entry, params: &ChainParams) -> Listed {
        let tip = self.tip.map_or(0, |(_, h)| h);
        let confirmations = match e.place {
            Place::Confirmed { height, .. } => tip.saturating_sub(height) + 1,
            _ => 0,
        };
        let mine = |o: &TxOut| self.keys.contains(&o.owner);
        let received =
            Amount::checked_sum(e.tx.outputs.iter().filter(|o| mine(o)).map(|o| o.value))
                .unwrap_or(Amount::MAX);
        let spends: Vec<&TxOut> = if e.tx.is_coinbase() {
            Vec::new()
        } else {
            e.tx.inputs
                .iter()
                .filter_map(|i| self.coins.get(&i.prevout))
                .collect()
        };
        let first_mine =
            e.tx.outputs
                .iter()
                .find(|o| mine(o))
                .map(|o| Address(o.owner));
        let (category, amount, address) = if e.tx.is_coinbase() {
            let category = match e.place {
                Place::Orphan | Place::Pending { .. } | Place::Conflicted { .. } => {
                    Category::Orphan
                }
                Place::Confirmed { height, .. } => {
                    if tip + 1 < height.saturating_add(params.coinbase_maturity.max(1)) {
                        Category::Immature
                    } else {
                        Category::Generate
                    }
                }
            };
            (category, received, first_mine)
        } else if !spends.is_empty() {
            let others: Vec<&TxOut> = e.tx.outputs.iter().filter(|o| !mine(o)).collect();
            let amount = Amount::checked_sum(others.iter().map(|o| o.value)).unwrap_or(Amount::MAX);
            let to = others.first().map(|o| Address(o.owner)).or(first_mine);
            (Category::Send, amount, to)
        } else {
            (Category::Receive, received, first_mine)
        };
        Listed {
            txid: e.txid,
            category,
            amount,
            fee: e.fee,
            address,
            from: spends.first().map(|o| Address(o.owner)),
            place: e.place,
            confirmations,
            time: match e.place {
                Place::Confirmed { time, .. } => u64::from(time),
                _ => e.first_seen,
            },
        }
    }

    /// The wallet's balances (of `only` one key when given).
    pub fn balances(&self, params: &ChainParams, only: Option<&PubkeyHash>) -> Balances {
        let tip = self.tip.map_or(0, |(_, h)| h);
        let mut spent_pending: HashSet<OutPoint> = HashSet::new();
        for e in self.entries.values() {
            if matches!(e.place, Place::Pending { .. }) && !e.tx.is_coinbase() {
                spent_pending.extend(e.tx.inputs.iter().map(|i| i.prevout));
            }
        }
        let mut b = Balances::default();
        let add = |sum: &mut Amount, v: Amount| *sum = sum.checked_add(v).unwrap_or(Amount::MAX);
        for (op, out) in &self.coins {
            if only.is_some_and(|k| *k != out.owner) || self.spent_by.contains_key(op) {
                continue;
            }
            let Some(origin) = self.entries.get(&op.txid) else {
                continue;
            };
            match origin.place {
                Place::Confirmed { height, .. } => {
                    if spent_pending.contains(op) {
                        add(&mut b.outgoing, out.value);
                    }
                    let immature = origin.tx.is_coinbase()
                        && tip + 1 < height.saturating_add(params.coinbase_maturity.max(1));
                    if immature {
                        add(&mut b.immature, out.value);
                    } else {
                        add(&mut b.confirmed, out.value);
                    }
                }
                Place::Pending { .. } if !spent_pending.contains(op) => {
                    add(&mut b.unconfirmed, out.value)
                }
                _ => {}
            }
        }
        b
    }

    /// Received and sent totals of one key over its confirmed history, and its entries in
    /// height order (oldest first).
    pub fn of_key(&self, key: &PubkeyHash) -> (Amount, Amount, Vec<&Entry>) {
        let (mut received, mut sent) = (Amount::ZERO, Amount::ZERO);
        let mut list = Vec::new();
        for e in self.entries() {
            let paid = e.tx.outputs.iter().filter(|o| o.owner == *key);
            let spent = if e.tx.is_coinbase() {
                Vec::new()
            } else {
                e.tx.inputs
                    .iter()
                    .filter_map(|i| self.coins.get(&i.prevout))
                    .filter(|o| o.owner == *key)
                    .collect()
            };
            let paid: Vec<&TxOut> = paid.collect();
            if paid.is_empty() && spent.is_empty() {
                continue;
            }
            if matches!(e.place, Place::Confirmed { .. }) {
                for o in &paid {
                    received = received.checked_add(o.value).unwrap_or(Amount::MAX);
                }
                for o in &spent {
                    sent = sent.checked_add(o.value).unwrap_or(Amount::MAX);
                }
            }
            list.push(e);
        }
        (received, sent, list)
    }

    fn fee_from_coins(&self, tx: &Transaction) -> Option<Amount> {
        let inputs: Option<Vec<Amount>> = tx
            .inputs
            .iter()
            .map(|i| self.coins.get(&i.prevout).map(|o| o.value))
            .collect();
        Amount::checked_sum(inputs?)?.checked_sub(tx.output_total()?)
    }

    /// Adds an entry's wallet outputs to the coins and, when confirmed, its spends.
    fn index_entry(&mut self, txid: &Txid) {
        let Some(e) = self.entries.get(txid) else {
            return;
        };
        for (vout, o) in e.tx.outputs.iter().enumerate() {
            if self.keys.contains(&o.owner) {
                self.coins.insert(
                    OutPoint {
                        txid: *txid,
                        vout: vout as u32,
                    },
                    *o,
                );
            }
        }
        if matches!(e.place, Place::Confirmed { .. }) && !e.tx.is_coinbase() {
            for i in &e.tx.inputs {
                if self.coins.contains_key(&i.prevout) {
                    self.spent_by.insert(i.prevout, *txid);
                }
            }
        }
    }

    /// Coins and spends rebuilt from the entries, in order.
    fn reindex(&mut self) {
        self.coins.clear();
        self.spent_by.clear();
        self.sort();
        for t in self.order.clone() {
            self.index_entry(&t);
        }
    }

    fn sort(&mut self) {
        let mut order: Vec<(u8, u32, u32, u64, Txid)> = self
            .entries
            .values()
            .map(|e| match e.place {
                Place::Confirmed { height, index, .. } => (0, height, index, 0, e.txid),
                _ => (1, 0, 0, e.first_seen, e.txid),
            })
            .collect();
        order.sort_unstable();
        self.order = order.into_iter().map(|k| k.4).collect();
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
