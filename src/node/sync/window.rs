//! The block download window (Bitcoin Core's moving window, `FindNextBlocksToDownload`): which
//! blocks of the verified header branch to ask which peer for, what is in flight, what has
//! arrived out of order, and who stalls the window.
//!
//! Pure bookkeeping, no I/O and no clock of its own (the caller passes `now`), so every rule is
//! unit-tested here. The branch is a run of verified headers above the height our chain is
//! connected to; blocks are requested by hash, lowest heights first, only within
//! [`WINDOW`] blocks of the lowest block not yet connected, at most
//! [`MAX_REQUESTS_PER_PEER`] × [`BLOCKS_PER_REQUEST`] blocks in flight per peer. Blocks that
//! arrive ahead of their parents wait in a buffer bounded in bytes; they are handed to the chain
//! in height order ([`Window::take_ready`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use gossipcoin_proto::{Block, BlockHash};

use crate::net::PeerId;

/// Blocks are only requested this far above the lowest block not yet connected (Core: 1,024).
pub const WINDOW: u32 = 1024;
/// Hashes in one `GetBlocksByHash` request: the protocol's maximum. The answer stops at about
/// 1 MiB, so with big blocks only a few come back and the rest are asked again; with small
/// ones, one request brings many (a peer serves a bounded number of requests a second).
pub const BLOCKS_PER_REQUEST: usize = gossipcoin_proto::message::MAX_BLOCKS_PER_REQUEST;
/// Requests in flight to one peer (a server keeps at most two answers unsent per peer). Core
/// keeps 16 blocks in flight per peer on one stream; here a round trip is one request, so a
/// peer gets up to 2 × 128 hashes, still within the 1,024-block window.
pub const MAX_REQUESTS_PER_PEER: usize = 2;
/// Blocks that arrived ahead of their parents are kept up to this many bytes (encoded size;
/// decoded they take about twice that); past it only the lowest missing block is requested, so
/// the window can always move. 8 MiB is over a second of validation on 2 cores: enough to keep
/// the chain busy, small enough for a small node's memory.
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

/// A request in flight.
#[derive(Debug)]
struct Asked {
    peer: PeerId,
    hashes: Vec<BlockHash>,
    sent: Instant,
    /// Given up on (its peer stalled or left): its hashes may be asked of others; a late answer
    /// is still checked against what was asked, and its blocks still used.
    cancelled: bool,
}

/// A block that arrived ahead of its parent, and who sent it.
#[derive(Debug)]
pub struct Arrived {
    pub block: Block,
    pub from: PeerId,
    pub bytes: usize,
}

/// An answer that broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("sent block {0}, which was not asked for")]
    Unrequested(BlockHash),
    #[error("sent block {0} twice in one answer")]
    Repeated(BlockHash),
}

/// What an answer brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answered {
    /// Blocks of the branch newly buffered.
    pub useful: usize,
    /// Hashes asked for but not in the answer (asked again later, maybe of another peer).
    pub missing: usize,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Window {
    /// The verified branch above `connected`: hash by height.
    branch: BTreeMap<u32, BlockHash>,
    /// Heights of `branch` by hash.
    heights: HashMap<BlockHash, u32>,
    /// The height our chain is connected up to on this branch (the next block to hand to the
    /// chain is `connected + 1 + handed`).
    connected: u32,
    /// Blocks handed to the chain and not yet reported connected.
    handed: u32,
    asked: HashMap<u64, Asked>,
    /// The live request for each hash in flight.
    in_flight: HashMap<BlockHash, u64>,
    buffer: BTreeMap<u32, Arrived>,
    buffered_bytes: usize,
    next_id: u64,
}

impl Window {
    /// Starts over with `branch` (hashes at `connected + 1`, `connected + 2`, …) above our chain
    /// at height `connected`. Requests in flight stay recorded (their answers are still
    /// checked), buffered blocks no longer on the branch are dropped.
    pub fn reset(&mut self, connected: u32, branch: &[BlockHash]) {
        self.branch.clear();
        self.heights.clear();
        self.connected = connected;
        self.handed = 0;
        self.extend(connected + 1, branch);
        let keep: HashSet<BlockHash> = self.heights.keys().copied().collect();
        let dropped: Vec<u32> = self
            .buffer
            .iter()
            .filter(|(h, a)| self.branch.get(h) != Some(&a.block.block_hash()))
            .map(|(h, _)| *h)
            .collect();
        for h in dropped {
            self.unbuffer(h);
        }
        self.in_flight.retain(|hash, _| keep.contains(hash));
    }

    /// Appends headers that continue the branch, the first at height `from` (which must be the
    /// height just above the branch's top, or the first height of an empty branch).
    pub fn extend(&mut self, from: u32, hashes: &[BlockHash]) {
        for (height, hash) in (from..).zip(hashes) {
            if height <= self.connected {
                continue;
            }
            self.branch.insert(height, *hash);
            self.heights.insert(*hash, height);
        }
    }

    /// The top of the branch: (height, hash), if any block is left to connect.
    pub fn top(&self) -> Option<(u32, BlockHash)> {
        self.branch.last_key_value().map(|(h, b)| (*h, *b))
    }

    /// The branch's hash at `height`, if the height is above what is connected.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.branch.get(&height).copied()
    }

    /// Whether nothing is left to download or connect.
    pub fn is_empty(&self) -> bool {
        self.branch.is_empty()
    }

    /// Our chain is connected up to `height` on the branch: everything at or below it is done.
    pub fn connected_to(&mut self, height: u32) {
        if height <= self.connected {
            return;
        }
        let done: Vec<u32> = self.branch.range(..=height).map(|(h, _)| *h).collect();
        for h in done {
            if let Some(hash) = self.branch.remove(&h) {
                self.heights.remove(&hash);
                self.in_flight.remove(&hash);
            }
            self.unbuffer(h);
        }
        self.handed = self.handed.saturating_sub(height - self.connected);
        self.connected = height;
    }

    /// The chain finished with what was handed to it without connecting all of it (it stopped
    /// on a block): those blocks are not handed any more.
    pub fn handed_back(&mut self) {
        self.handed = 0;
    }

    /// Up to [`BLOCKS_PER_REQUEST`] hashes to ask `peer` for, whose best verified header on
    /// this branch is at `serves_to`: the lowest blocks of the window that are neither in
    /// flight nor buffered. `None` when the peer is busy or there is nothing for it.
    pub fn assign(
        &mut self,
        peer: PeerId,
        serves_to: u32,
        now: Instant,
    ) -> Option<(u64, Vec<BlockHash>)> {
        let busy = self
            .asked
            .values()
            .filter(|a| a.peer == peer && !a.cancelled)
            .count();
        if busy >= MAX_REQUESTS_PER_PEER {
            return None;
        }
        // Blocks handed to the chain are neither in flight nor buffered: start above them.
        let first = self.connected + 1 + self.handed;
        let last = (self.connected + WINDOW).min(serves_to);
        if first > last {
            return None;
        }
        let budget = if self.buffered_bytes >= MAX_BUFFERED_BYTES {
            1
        } else {
            BLOCKS_PER_REQUEST
        };
        let mut hashes = Vec::new();
        for (height, hash) in self.branch.range(first..=last) {
            if hashes.len() >= budget {
                break;
            }
            if self.in_flight.contains_key(hash) || self.buffer.contains_key(height) {
                continue;
            }
            if budget == 1 && *height != self.lowest_missing()? {
                break;
            }
            hashes.push(*hash);
        }
        if hashes.is_empty() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        for hash in &hashes {
            self.in_flight.insert(*hash, id);
        }
        self.asked.insert(
            id,
            Asked {
                peer,
                hashes: hashes.clone(),
                sent: now,
                cancelled: false,
            },
        );
        Some((id, hashes))
    }

    /// The lowest height of the branch neither handed to the chain nor buffered.
    fn lowest_missing(&self) -> Option<u32> {
        let first = self.connected + 1 + self.handed;
        self.branch
            .range(first..)
            .map(|(h, _)| *h)
            .find(|h| !self.buffer.contains_key(h))
    }

    /// The answer to request `id` from `peer`. Every block must be one that was asked for, at
    /// most once; those still on the branch are buffered, the hashes left out are asked again
    /// later. An answer to a request we do not know (or from another peer) is ignored.
    pub fn on_answer(
        &mut self,
        id: u64,
        peer: PeerId,
        blocks: Vec<(Block, usize)>,
    ) -> Result<Answered, Violation> {
        let Some(asked) = self.asked.remove(&id) else {
            return Ok(Answered::default());
        };
        if asked.peer != peer {
            return Ok(Answered::default());
        }
        let wanted: HashSet<BlockHash> = asked.hashes.iter().copied().collect();
        let mut got = HashSet::with_capacity(blocks.len());
        let mut answer = Vec::with_capacity(blocks.len());
        for (block, bytes) in blocks {
            let hash = block.block_hash();
            if !wanted.contains(&hash) {
                self.release(id, &asked.hashes);
                return Err(Violation::Unrequested(hash));
            }
            if !got.insert(hash) {
                self.release(id, &asked.hashes);
                return Err(Violation::Repeated(hash));
            }
            answer.push((hash, block, bytes));
        }
        let mut useful = 0;
        for (hash, block, bytes) in answer {
            if self.in_flight.get(&hash) == Some(&id) {
                self.in_flight.remove(&hash);
            }
            let Some(&height) = self.heights.get(&hash) else {
                continue;
            };
            if height <= self.connected || self.buffer.contains_key(&height) {
                continue;
            }
            self.buffered_bytes += bytes;
            self.buffer.insert(
                height,
                Arrived {
                    block,
                    from: peer,
                    bytes,
                },
            );
            useful += 1;
        }
        let missing = asked.hashes.len() - got.len();
        self.release(id, &asked.hashes);
        Ok(Answered { useful, missing })
    }

    /// Request `id` failed (error, timeout, "busy"): its hashes may be asked again.
    pub fn on_failed(&mut self, id: u64) {
        if let Some(asked) = self.asked.remove(&id) {
            self.release(id, &asked.hashes);
        }
    }

    /// Frees the hashes still in flight under request `id`.
    fn release(&mut self, id: u64, hashes: &[BlockHash]) {
        for hash in hashes {
            if self.in_flight.get(hash) == Some(&id) {
                self.in_flight.remove(hash);
            }
        }
    }

    /// The peer whose request holds the lowest missing block of the window for longer than
    /// `timeout`: it stalls the download (Core's `BLOCK_STALLING_TIMEOUT`).
    pub fn staller(&self, now: Instant, timeout: Duration) -> Option<PeerId> {
        let height = self.lowest_missing()?;
        let hash = self.branch.get(&height)?;
        let asked = self.asked.get(self.in_flight.get(hash)?)?;
        (now.saturating_duration_since(asked.sent) > timeout).then_some(asked.peer)
    }

    /// Gives up on `peer`'s requests (it stalled, or left): their hashes may be asked of
    /// others at once. A late answer is still checked and used.
    pub fn release_peer(&mut self, peer: &PeerId) {
        let ids: Vec<u64> = self
            .asked
            .iter()
            .filter(|(_, a)| a.peer == *peer && !a.cancelled)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(asked) = self.asked.get_mut(&id) {
                asked.cancelled = true;
                let hashes = asked.hashes.clone();
                self.release(id, &hashes);
            }
        }
    }

    /// Forgets a peer that left: its requests will never be answered.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.release_peer(peer);
        self.asked.retain(|_, a| a.peer != *peer);
    }

    /// The buffered blocks that continue what was handed to the chain, in height order: at
    /// most `max` blocks and about `max_bytes` (at least one). They count as handed until
    /// [`Self::connected_to`] or [`Self::handed_back`].
    pub fn take_ready(&mut self, max: usize, max_bytes: usize) -> Vec<Arrived> {
        let mut ready: Vec<Arrived> = Vec::new();
        let mut next = self.connected + 1 + self.handed;
        let mut bytes = 0;
        while ready.len() < max && (ready.is_empty() || bytes < max_bytes) {
            let Some(arrived) = self.buffer.remove(&next) else {
                break;
            };
            self.buffered_bytes -= arrived.bytes;
            bytes += arrived.bytes;
            ready.push(arrived);
            next += 1;
        }
        self.handed += ready.len() as u32;
        ready
    }

    /// Bytes of blocks waiting for their parents.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    fn unbuffer(&mut self, height: u32) {
        if let Some(a) = self.buffer.remove(&height) {
            self.buffered_bytes -= a.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, BlockHeader, PubkeyHash, Transaction};

    use super::*;

    /// A chain of `n` distinct blocks (not mined: the window never checks work).
    fn blocks(n: u32) -> Vec<Block> {
        let mut prev = BlockHash::ZERO;
        (1..=n)
            .map(|h| {
                let b = Block {
                    header: BlockHeader {
                        version: 1,
                        prev,
                        merkle_root: Default::default(),
                        time: h,
                        bits: 0x207f_ffff,
                        nonce: h,
                    },
                    txs: vec![Transaction::coinbase(h, PubkeyHash([1; 20]), Amount::ZERO)],
                };
                prev = b.block_hash();
                b
            })
            .collect()
    }

    fn window(chain: &[Block]) -> Window {
        let mut w = Window::default();
        let hashes: Vec<BlockHash> = chain.iter().map(Block::block_hash).collect();
        w.reset(0, &hashes);
        w
    }

    fn answer(chain: &[Block], hashes: &[BlockHash]) -> Vec<(Block, usize)> {
        hashes
            .iter()
            .map(|h| {
                let b = chain.iter().find(|b| b.block_hash() == *h).unwrap().clone();
                (b, 100)
            })
            .collect()
    }

    #[test]
    fn peers_get_disjoint_lowest_blocks_and_answers_come_out_in_order() {
        let chain = blocks(100);
        let mut w = window(&chain);
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let (ia, ha) = w.assign(a, 16, now).unwrap();
        let (ib, hb) = w.assign(b, 32, now).unwrap();
        assert_eq!(
            ha,
            chain[..16]
                .iter()
                .map(Block::block_hash)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            hb,
            chain[16..32]
                .iter()
                .map(Block::block_hash)
                .collect::<Vec<_>>()
        );
        // b answers first: nothing is ready until a's blocks (the lower ones) arrive
        assert_eq!(w.on_answer(ib, b, answer(&chain, &hb)).unwrap().useful, 16);
        assert!(w.take_ready(1000, usize::MAX).is_empty());
        w.on_answer(ia, a, answer(&chain, &ha)).unwrap();
        // the byte bound: one block at least, then only while under it
        let first = w.take_ready(1000, 1);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].block, chain[0]);
        let ready = w.take_ready(1000, usize::MAX);
        assert_eq!(ready.len(), 31);
        assert!(ready.iter().zip(&chain[1..]).all(|(r, c)| r.block == *c));
        assert_eq!(ready[19].from, b);
        // handed, not yet connected: not handed again, not asked again
        assert!(w.take_ready(1000, usize::MAX).is_empty());
        w.connected_to(32);
        let (_, next) = w.assign(a, 100, now).unwrap();
        assert_eq!(next[0], chain[32].block_hash());
    }

    #[test]
    fn a_peer_gets_at_most_two_requests_and_only_what_it_has() {
        const N: u32 = BLOCKS_PER_REQUEST as u32;
        let chain = blocks(4 * N);
        let mut w = window(&chain);
        let p = PeerId::random();
        let now = Instant::now();
        assert!(w.assign(p, 4 * N, now).is_some());
        assert!(w.assign(p, 4 * N, now).is_some());
        assert!(w.assign(p, 4 * N, now).is_none(), "two requests in flight");
        let q = PeerId::random();
        let (_, h) = w.assign(q, 2 * N + 8, now).unwrap();
        assert_eq!(
            h.len(),
            8,
            "q's best header is 8 blocks above what p was given"
        );
        assert!(
            w.assign(q, 2 * N + 8, now).is_none(),
            "nothing more below its best"
        );
    }

    #[test]
    fn the_window_is_bounded_above_the_connected_height() {
        let chain = blocks(WINDOW + 200);
        let mut w = window(&chain);
        let now = Instant::now();
        let mut top = 0;
        for _ in 0..200 {
            let Some((_, h)) = w.assign(PeerId::random(), u32::MAX, now) else {
                break;
            };
            top = top.max(
                chain
                    .iter()
                    .position(|b| b.block_hash() == *h.last().unwrap())
                    .unwrap()
                    + 1,
            );
        }
        assert_eq!(top as u32, WINDOW, "nothing above the window");
    }

    #[test]
    fn unrequested_and_repeated_blocks_are_violations_and_missing_ones_are_asked_again() {
        let chain = blocks(50);
        let mut w = window(&chain);
        let (p, q) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let (id, hashes) = w.assign(p, 16, now).unwrap();
        let mut bad = answer(&chain, &hashes[..2]);
        bad.push((chain[40].clone(), 100));
        assert_eq!(
            w.on_answer(id, p, bad),
            Err(Violation::Unrequested(chain[40].block_hash()))
        );
        // the request's hashes are free again
        let (id, again) = w.assign(q, 16, now).unwrap();
        assert_eq!(again, hashes);
        let mut twice = answer(&chain, &again[..1]);
        twice.push(twice[0].clone());
        assert_eq!(
            w.on_answer(id, q, twice),
            Err(Violation::Repeated(chain[0].block_hash()))
        );
        // a partial answer: the rest is asked again
        let (id, hashes) = w.assign(q, 16, now).unwrap();
        let got = w.on_answer(id, q, answer(&chain, &hashes[..4])).unwrap();
        assert_eq!((got.useful, got.missing), (4, 12));
        let (_, rest) = w.assign(q, 16, now).unwrap();
        assert_eq!(rest[0], chain[4].block_hash());
    }

    #[test]
    fn a_staller_is_found_and_its_blocks_go_to_another_peer() {
        let chain = blocks(32);
        let mut w = window(&chain);
        let (slow, fast) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let (slow_id, slow_hashes) = w.assign(slow, 16, t0).unwrap();
        let (fast_id, fast_hashes) = w.assign(fast, 32, t0).unwrap();
        w.on_answer(fast_id, fast, answer(&chain, &fast_hashes))
            .unwrap();
        let timeout = Duration::from_secs(2);
        assert_eq!(w.staller(t0 + Duration::from_secs(1), timeout), None);
        assert_eq!(w.staller(t0 + Duration::from_secs(3), timeout), Some(slow));
        w.release_peer(&slow);
        assert_eq!(w.staller(t0 + Duration::from_secs(3), timeout), None);
        let (_, reassigned) = w.assign(fast, 100, t0).unwrap();
        assert_eq!(reassigned, slow_hashes);
        // the staller's late answer is still checked, and used if still needed
        assert_eq!(
            w.on_answer(slow_id, slow, answer(&chain, &slow_hashes))
                .unwrap()
                .useful,
            16
        );
        assert_eq!(w.take_ready(1000, usize::MAX).len(), 32);
    }

    #[test]
    fn a_full_buffer_only_asks_for_the_lowest_missing_block() {
        let chain = blocks(3000);
        let mut w = window(&chain);
        let now = Instant::now();
        let p = PeerId::random();
        // fill the buffer with blocks 2..=17, huge
        let (id, hashes) = w.assign(p, 17, now).unwrap();
        let big: Vec<(Block, usize)> = answer(&chain, &hashes[1..])
            .into_iter()
            .map(|(b, _)| (b, MAX_BUFFERED_BYTES))
            .collect();
        w.on_answer(id, p, big).unwrap();
        let (_, h) = w.assign(p, 3000, now).unwrap();
        assert_eq!(h, vec![chain[0].block_hash()]);
        assert!(
            w.assign(PeerId::random(), 3000, now).is_none(),
            "block 1 is in flight"
        );
    }

    #[test]
    fn reset_keeps_what_is_still_on_the_branch() {
        let chain = blocks(40);
        let mut w = window(&chain);
        let p = PeerId::random();
        let now = Instant::now();
        let (id, hashes) = w.assign(p, 16, now).unwrap();
        w.on_answer(id, p, answer(&chain, &hashes)).unwrap();
        // the branch is extended from the same base: block 1..16 stay buffered
        let all: Vec<BlockHash> = chain.iter().map(Block::block_hash).collect();
        w.reset(0, &all);
        assert_eq!(w.take_ready(100, usize::MAX).len(), 16);
        // a branch that replaces heights 10..: buffered blocks there are dropped
        let mut w = window(&chain);
        let (id, hashes) = w.assign(p, 16, now).unwrap();
        w.on_answer(id, p, answer(&chain, &hashes)).unwrap();
        let mut other = all.clone();
        for h in other.iter_mut().skip(9) {
            h.0[0] ^= 1;
        }
        w.reset(0, &other);
        assert_eq!(w.take_ready(100, usize::MAX).len(), 9);
        assert_eq!(w.buffered_bytes(), 0);
    }
}
