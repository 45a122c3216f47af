//! The orphan-transaction pool (Bitcoin Core's orphanage): transactions from peers whose inputs
//! are neither unspent nor in the mempool, kept until a parent arrives.
//!
//! Pure bookkeeping, no I/O and no clock of its own (every call that needs the time takes
//! `now`), so it is unit-tested without waiting.
//!
//! - **Bounded**: at most [`MAX_ORPHAN_TXS`] transactions and [`MAX_ORPHAN_BYTES`] bytes, each at
//!   most [`MAX_ORPHAN_TX_BYTES`]. Over a bound, the oldest orphan of the peer that holds the
//!   most is evicted first: a flooding peer evicts its own, and a peer alone may use the whole
//!   pool.
//! - **Expiring**: an orphan is dropped [`ORPHAN_EXPIRY`] after it arrived, whatever happened
//!   meanwhile (trying it again does not renew it).
//! - **Accountable**: each orphan remembers the peer that sent it (so an orphan found invalid
//!   later costs *its* sender), and [`TxOrphans::drop_peer`] forgets a peer's orphans when it
//!   disconnects or is banned.
//! - **Indexed by the outpoints they spend**, so the orphans a new transaction unlocks are found
//!   from its outputs ([`TxOrphans::unlocked_by`]). Unlocked orphans wait in a work list, oldest
//!   first, and are handed out one at a time ([`TxOrphans::next_work`]): the caller interleaves
//!   them with new arrivals, and an orphan that unlocks more simply adds to the list (no
//!   recursion).
//! - **Carrying a held verdict** (`H`): the node keeps a gossiped orphan's message id, so the
//!   verdict on it can wait until the orphan is accepted (Accept: gossipsub forwards it) or
//!   dropped (Ignore). Whatever removes orphans hands them back for that.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gossipcoin_proto::{MAX_TX_BYTES, OutPoint, Transaction, Txid};

/// At most this many orphans are kept (Core: 100).
pub const MAX_ORPHAN_TXS: usize = 100;
/// At most this many bytes of orphans are kept.
pub const MAX_ORPHAN_BYTES: usize = 4 * 1024 * 1024;
/// A larger transaction is never kept as an orphan.
pub const MAX_ORPHAN_TX_BYTES: usize = MAX_TX_BYTES;
/// An orphan is dropped this long after it arrived (Core: 20 minutes).
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(20 * 60);

/// The bounds of a pool (the constants above, or smaller ones in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanLimits {
    pub txs: usize,
    pub bytes: usize,
    pub tx_bytes: usize,
    pub expiry: Duration,
}

impl<P, H> Orphan<P, H> {
    /// Whether it has expired by `now`.
    pub fn expires_by(&self, now: Instant) -> bool {
        self.expires <= now
    }
}

impl Default for OrphanLimits {
    fn default() -> Self {
        Self {
            txs: MAX_ORPHAN_TXS,
            bytes: MAX_ORPHAN_BYTES,
            tx_bytes: MAX_ORPHAN_TX_BYTES,
            expiry: ORPHAN_EXPIRY,
        }
    }
}

/// A pooled orphan and who sent it.
#[derive(Debug, Clone)]
pub struct Orphan<P, H = ()> {
    pub tx: Transaction,
    pub txid: Txid,
    /// The peer that sent it, charged for it.
    pub from: P,
    /// Its encoded size.
    pub bytes: usize,
    /// What the caller attached (the node: the gossip message whose verdict waits).
    pub held: Option<H>,
    /// When it arrived.
    pub arrived: Instant,
    /// Arrival order.
    seq: u64,
    expires: Instant,
}

/// What [`TxOrphans::add`] did.
#[derive(Debug)]
pub enum Added<P, H = ()> {
    /// Pooled; the orphans of the peer holding the most that were evicted to make room (and
    /// expired ones swept first).
    Pooled { removed: Vec<Orphan<P, H>> },
    /// Already pooled (from whichever peer): `held` is handed back.
    Known { held: Option<H> },
    /// Larger than an orphan may be, not kept: `held` is handed back.
    TooLarge { held: Option<H> },
}

/// See the module docs.
#[derive(Debug)]
pub struct TxOrphans<P, H = ()> {
    limits: OrphanLimits,
    entries: HashMap<Txid, Orphan<P, H>>,
    /// Every outpoint an orphan spends → the orphans spending it.
    by_prevout: HashMap<OutPoint, Vec<Txid>>,
    /// Orphans to try again, oldest first; `queued` is the same set.
    work: VecDeque<Txid>,
    queued: HashSet<Txid>,
    bytes: usize,
    next_seq: u64,
}

impl<P, H> Default for TxOrphans<P, H> {
    fn default() -> Self {
        Self::new(OrphanLimits::default())
    }
}

impl<P, H> TxOrphans<P, H> {
    /// An empty pool with these bounds.
    pub fn new(limits: OrphanLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            by_prevout: HashMap::new(),
            work: VecDeque::new(),
            queued: HashSet::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Orphans pooled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no orphan is pooled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Their encoded sizes, summed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `txid` is pooled.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// Whether orphans wait to be tried again.
    pub fn has_work(&self) -> bool {
        !self.work.is_empty()
    }
}

impl<P: Copy + Eq + Hash, H> TxOrphans<P, H> {
    /// Pools `tx` (`txid`, `bytes` encoded) from `from`, with `held` attached, first dropping
    /// expired orphans, then evicting over the bounds (the oldest orphan of the peer holding
    /// the most, which may be `from` itself).
    pub fn add(
        &mut self,
        tx: Transaction,
        txid: Txid,
        bytes: usize,
        from: P,
        held: Option<H>,
        now: Instant,
    ) -> Added<P, H> {
        if self.entries.contains_key(&txid) {
            return Added::Known { held };
        }
        if bytes > self.limits.tx_bytes {
            return Added::TooLarge { held };
        }
        let mut removed = self.expire(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(Orphan {
            tx,
            txid,
            from,
            bytes,
            held,
            arrived: now,
            seq,
            expires: now + self.limits.expiry,
        });
        removed.extend(self.evict_over_bounds());
        Added::Pooled { removed }
    }

    /// Puts back an orphan taken by [`Self::next_work`] that is still missing inputs: it keeps
    /// its arrival order and expiry. Returns what did not stay: the orphan itself if it has
    /// expired (or is the first to be evicted, should the pool have filled meanwhile), and any
    /// orphan evicted for it.
    pub fn put_back(&mut self, orphan: Orphan<P, H>, now: Instant) -> Vec<Orphan<P, H>> {
        if orphan.expires <= now || self.entries.contains_key(&orphan.txid) {
            return vec![orphan];
        }
        self.insert(orphan);
        self.evict_over_bounds()
    }

    /// Evicts until within the bounds; returns the evicted.
    fn evict_over_bounds(&mut self) -> Vec<Orphan<P, H>> {
        let mut evicted = Vec::new();
        while self.entries.len() > self.limits.txs || self.bytes > self.limits.bytes {
            let Some(victim) = self.eviction_victim() else {
                break;
            };
            evicted.extend(self.remove(&victim));
        }
        evicted
    }

    /// The orphan to evict: the oldest of the peer with the most orphans (ties: most bytes).
    fn eviction_victim(&self) -> Option<Txid> {
        let mut per_peer: HashMap<P, (usize, usize)> = HashMap::new();
        for o in self.entries.values() {
            let (n, b) = per_peer.entry(o.from).or_default();
            *n += 1;
            *b += o.bytes;
        }
        let heaviest = per_peer.into_iter().max_by_key(|(_, load)| *load)?.0;
        self.entries
            .values()
            .filter(|o| o.from == heaviest)
            .min_by_key(|o| o.seq)
            .map(|o| o.txid)
    }

    fn insert(&mut self, orphan: Orphan<P, H>) {
        for input in &orphan.tx.inputs {
            let spenders = self.by_prevout.entry(input.prevout).or_default();
            if !spenders.contains(&orphan.txid) {
                spenders.push(orphan.txid);
            }
        }
        self.bytes += orphan.bytes;
        self.entries.insert(orphan.txid, orphan);
    }

    /// Removes `txid` from the pool (and, lazily, from the work list).
    fn remove(&mut self, txid: &Txid) -> Option<Orphan<P, H>> {
        let orphan = self.entries.remove(txid)?;
        for input in &orphan.tx.inputs {
            if let Some(spenders) = self.by_prevout.get_mut(&input.prevout) {
                spenders.retain(|t| t != txid);
                if spenders.is_empty() {
                    self.by_prevout.remove(&input.prevout);
                }
            }
        }
        self.bytes -= orphan.bytes;
        Some(orphan)
    }

    /// Drops the orphans that expired by `now` and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Orphan<P, H>> {
        self.remove_where(|o| o.expires <= now)
    }

    /// Drops every orphan `peer` sent (it disconnected or was banned) and returns them.
    pub fn drop_peer(&mut self, peer: &P) -> Vec<Orphan<P, H>> {
        self.remove_where(|o| o.from == *peer)
    }

    fn remove_where(&mut self, pred: impl Fn(&Orphan<P, H>) -> bool) -> Vec<Orphan<P, H>> {
        let gone: Vec<Txid> = self
            .entries
            .values()
            .filter(|o| pred(o))
            .map(|o| o.txid)
            .collect();
        gone.iter().filter_map(|t| self.remove(t)).collect()
    }

    /// How many orphans `peer` sent.
    pub fn count_from(&self, peer: &P) -> usize {
        self.entries.values().filter(|o| o.from == *peer).count()
    }

    /// `txid` (with `outputs` outputs) was accepted into the mempool: the orphans spending one
    /// of its outputs join the work list, oldest first. Returns how many joined.
    pub fn unlocked_by(&mut self, txid: Txid, outputs: usize) -> usize {
        let mut found: Vec<(u64, Txid)> = (0..outputs as u32)
            .filter_map(|vout| self.by_prevout.get(&OutPoint { txid, vout }))
            .flatten()
            .filter_map(|t| self.entries.get(t).map(|o| (o.seq, o.txid)))
            .collect();
        found.sort_unstable();
        found.dedup();
        self.queue_work(found.into_iter().map(|(_, t)| t))
    }

    /// Every orphan joins the work list, oldest first (the tip changed: a parent may have
    /// been confirmed). Returns how many joined.
    pub fn retry_all(&mut self) -> usize {
        let mut all: Vec<(u64, Txid)> = self.entries.values().map(|o| (o.seq, o.txid)).collect();
        all.sort_unstable();
        self.queue_work(all.into_iter().map(|(_, t)| t))
    }

    fn queue_work(&mut self, txids: impl Iterator<Item = Txid>) -> usize {
        let mut joined = 0;
        for txid in txids {
            if self.queued.insert(txid) {
                self.work.push_back(txid);
                joined += 1;
            }
        }
        joined
    }

    /// The next orphan to try again, taken out of the pool: the caller offers it to the
    /// mempool and, if it still misses inputs, hands it back with [`Self::put_back`].
    pub fn next_work(&mut self) -> Option<Orphan<P, H>> {
        while let Some(txid) = self.work.pop_front() {
            self.queued.remove(&txid);
            if let Some(orphan) = self.remove(&txid) {
                return Some(orphan);
            }
        }
        None
    }
}

/// The node's orphan pool, shared by the transaction worker, the router (which drops a gone
/// peer's orphans) and whoever asks how big it is. Cheap to clone.
pub struct SharedTxOrphans<P, H = ()>(Arc<Mutex<TxOrphans<P, H>>>);

impl<P, H> Clone for SharedTxOrphans<P, H> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<P, H> Default for SharedTxOrphans<P, H> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<P, H> SharedTxOrphans<P, H> {
    /// The pool, locked (never across an `.await`).
    pub fn lock(&self) -> MutexGuard<'_, TxOrphans<P, H>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Orphans pooled now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no orphan is pooled now.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether `txid` is pooled now.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.lock().contains(txid)
    }
}

impl<P: Copy + Eq + Hash, H> SharedTxOrphans<P, H> {
    /// How many orphans `peer` sent are pooled now.
    pub fn count_from(&self, peer: &P) -> usize {
        self.lock().count_from(peer)
    }
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{PubkeyHash, PublicKey, Signature, TxIn, TxOut};

    use super::*;

    /// A transaction spending `spends` (txid byte, vout) with `outputs` outputs; `tag` makes it
    /// unique.
    fn tx(tag: u32, spends: &[(u8, u32)], outputs: usize) -> (Transaction, Txid) {
        let tx = Transaction {
            version: tag,
            inputs: spends
                .iter()
                .map(|&(t, vout)| TxIn {
                    prevout: OutPoint {
                        txid: Txid([t; 32]),
                        vout,
                    },
                    signature: Signature::ZERO,
                    pubkey: PublicKey::ZERO,
                })
                .collect(),
            outputs: vec![
                TxOut {
                    value: gossipcoin_proto::Amount::ZERO,
                    owner: PubkeyHash([0; 20]),
                };
                outputs
            ],
        };
        let txid = tx.compute_txid();
        (tx, txid)
    }

    fn small() -> OrphanLimits {
        OrphanLimits {
            txs: 4,
            bytes: 1000,
            tx_bytes: 400,
            expiry: Duration::from_secs(60),
        }
    }

    /// Adds a fresh orphan of `bytes` from `peer`, spending `(1, tag)`.
    fn add(pool: &mut TxOrphans<u8>, tag: u32, bytes: usize, peer: u8, now: Instant) -> Txid {
        let (t, id) = tx(tag, &[(1, tag)], 1);
        assert!(matches!(
            pool.add(t, id, bytes, peer, None, now),
            Added::Pooled { .. }
        ));
        id
    }

    #[test]
    fn bounded_by_count_and_bytes_and_the_flooders_orphans_go_first() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8> = TxOrphans::new(small());
        let honest = add(&mut pool, 0, 100, 9, t0);
        let flood: Vec<Txid> = (1..=10).map(|n| add(&mut pool, n, 100, 1, t0)).collect();
        assert_eq!(pool.len(), 4);
        assert!(
            pool.contains(&honest),
            "the flooder evicted another peer's orphan"
        );
        // The flooder's newest three stay.
        for (i, id) in flood.iter().enumerate() {
            assert_eq!(pool.contains(id), i >= 7, "orphan {i}");
        }
        // Bytes: 300-byte orphans push the pool over 1,000 bytes before over 4 entries.
        let mut pool: TxOrphans<u8> = TxOrphans::new(small());
        let a = add(&mut pool, 0, 300, 1, t0);
        let b = add(&mut pool, 1, 300, 2, t0);
        add(&mut pool, 2, 300, 1, t0);
        add(&mut pool, 3, 300, 1, t0); // 1,200 bytes: peer 1 (3 orphans) loses its oldest
        assert_eq!((pool.len(), pool.bytes()), (3, 900));
        assert!(!pool.contains(&a) && pool.contains(&b));
        // Too large for an orphan, and a duplicate.
        let (big, big_id) = tx(50, &[(1, 50)], 1);
        let added = pool.add(big, big_id, 401, 1, None, t0);
        assert!(matches!(added, Added::TooLarge { .. }));
        let (dup, dup_id) = tx(1, &[(1, 1)], 1);
        let added = pool.add(dup, dup_id, 300, 3, None, t0);
        assert!(matches!(added, Added::Known { .. }));
        assert_eq!(pool.count_from(&2), 1);
    }

    #[test]
    fn orphans_expire_twenty_minutes_after_arrival_even_when_tried_again() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8> = TxOrphans::default();
        let old = add(&mut pool, 0, 100, 1, t0);
        let young = add(&mut pool, 1, 100, 1, t0 + Duration::from_secs(600));
        assert!(
            pool.expire(t0 + ORPHAN_EXPIRY - Duration::from_secs(1))
                .is_empty()
        );
        // Tried again just before expiry and put back: it keeps its first expiry.
        pool.retry_all();
        let again = pool.next_work().unwrap();
        assert_eq!(again.txid, old);
        pool.put_back(again, t0 + ORPHAN_EXPIRY - Duration::from_secs(1));
        let expired = pool.expire(t0 + ORPHAN_EXPIRY);
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].txid, expired[0].from), (old, 1));
        assert!(pool.contains(&young));
        // An add sweeps expired ones too.
        add(
            &mut pool,
            2,
            100,
            2,
            t0 + ORPHAN_EXPIRY + Duration::from_secs(600),
        );
        assert!(!pool.contains(&young));
        assert_eq!(pool.len(), 1);
        // An orphan taken for work after its expiry is not put back.
        pool.retry_all();
        let o = pool.next_work().unwrap();
        let gone = pool.put_back(o, t0 + 3 * ORPHAN_EXPIRY);
        assert_eq!(gone.len(), 1);
        assert!(pool.is_empty());
    }

    #[test]
    fn a_peers_orphans_are_dropped_with_it() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8> = TxOrphans::default();
        for n in 0..5 {
            add(&mut pool, n, 100, n as u8 % 2, t0);
        }
        assert_eq!(pool.drop_peer(&0).len(), 3);
        assert_eq!((pool.len(), pool.bytes()), (2, 200));
        assert_eq!(pool.count_from(&0), 0);
        assert!(pool.drop_peer(&0).is_empty());
    }

    #[test]
    fn a_parent_unlocks_its_children_oldest_first_then_theirs() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8> = TxOrphans::default();
        // parent P (not pooled) with 2 outputs; c2 spends P:1, c1 spends P:0 and P:1,
        // g spends c1:0, u spends something else.
        let (p, pid) = tx(100, &[(5, 0)], 2);
        let spend = |tag, parent: Txid, vouts: &[u32]| {
            let mut t = tx(tag, &[], 1).0;
            t.inputs = vouts
                .iter()
                .map(|&vout| TxIn {
                    prevout: OutPoint { txid: parent, vout },
                    signature: Signature::ZERO,
                    pubkey: PublicKey::ZERO,
                })
                .collect();
            let id = t.compute_txid();
            (t, id)
        };
        let (c2, c2id) = spend(1, pid, &[1]);
        let (c1, c1id) = spend(2, pid, &[0, 1]);
        let (g, gid) = spend(3, c1id, &[0]);
        let (u, uid) = tx(4, &[(7, 0)], 1);
        for (t, id) in [(g, gid), (c2, c2id), (c1, c1id), (u, uid)] {
            pool.add(t, id, 100, 1u8, None, t0);
        }
        assert_eq!(pool.unlocked_by(pid, p.outputs.len()), 2);
        // already queued: not twice
        assert_eq!(pool.unlocked_by(pid, p.outputs.len()), 0);
        let first = pool.next_work().unwrap();
        assert_eq!(first.txid, c2id, "the older orphan first");
        assert!(!pool.contains(&c2id), "taken out while it is tried");
        let second = pool.next_work().unwrap();
        assert_eq!(second.txid, c1id);
        assert!(pool.next_work().is_none());
        // c1 accepted: it unlocks g.
        assert_eq!(pool.unlocked_by(c1id, 1), 1);
        assert_eq!(pool.next_work().unwrap().txid, gid);
        // c2 still missing an input: put back, found again by its outpoint.
        assert!(pool.put_back(first, t0).is_empty());
        assert_eq!(pool.unlocked_by(pid, 2), 1);
        assert_eq!(pool.len(), 2); // c2 and u
        // An orphan dropped while queued is skipped.
        pool.drop_peer(&1);
        assert!(pool.next_work().is_none());
        assert!(!pool.has_work());
    }

    #[test]
    fn a_held_verdict_comes_back_with_whatever_removes_its_orphan() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8, &str> = TxOrphans::new(small());
        let mut put = |tag: u32, peer: u8, held: &'static str, now: Instant| {
            let (t, id) = tx(tag, &[(1, tag)], 1);
            match pool.add(t, id, 100, peer, Some(held), now) {
                Added::Pooled { removed } => removed.into_iter().filter_map(|o| o.held).collect(),
                Added::Known { held } | Added::TooLarge { held } => vec![held.unwrap()],
            }
        };
        for (n, held) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(put(n as u32, 1, held, t0).is_empty());
        }
        assert_eq!(put(4, 1, "e", t0), vec!["a"], "evicted");
        assert_eq!(put(4, 2, "e again", t0), vec!["e again"], "known");
        let later = t0 + Duration::from_secs(61);
        let swept = put(5, 2, "f", later);
        assert_eq!(swept.len(), 4, "expired: {swept:?}");
        let dropped: Vec<_> = pool.drop_peer(&2).into_iter().map(|o| o.held).collect();
        assert_eq!(dropped, vec![Some("f")]);
        assert!(pool.is_empty());
    }

    #[test]
    fn put_back_respects_the_bounds() {
        let t0 = Instant::now();
        let mut pool: TxOrphans<u8> = TxOrphans::new(small());
        let a = add(&mut pool, 0, 100, 1, t0);
        pool.retry_all();
        let taken = pool.next_work().unwrap();
        for n in 1..=4 {
            add(&mut pool, n, 100, 2, t0);
        }
        let evicted = pool.put_back(taken, t0);
        assert_eq!(pool.len(), 4);
        assert!(pool.contains(&a), "peer 2 holds the most: its oldest goes");
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].from, 2);
    }
}
