//! Block assembly and the proof-of-work search.
//!
//! [`assemble_block`] puts the coinbase (subsidy + fees to the miner) in front of the chosen
//! transactions and fills in the header. [`mine`] then searches nonces until the header's
//! SHA-256d meets its target.
//!
//! The search never hashes the 80-byte header from scratch: the first 64 bytes (version, prev,
//! most of the merkle root) do not change with the nonce, so their SHA-256 compression, the
//! *midstate*, is computed once ([`HeaderHasher`]). Each nonce then costs two compressions: the
//! last 16 header bytes with their padding, and the second SHA-256 over the 32-byte digest.
//! The result is compared with the target as eight big-endian words, without allocating.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, MerkleRoot, PubkeyHash, Target, Transaction,
};
use sha2::block_api::compress256;

use crate::params::ChainParams;

/// Why a block could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinerError {
    /// The caller's fee total is impossible: subsidy + fees would exceed `MAX_MONEY`.
    #[error(
        "block reward overflows: subsidy {subsidy} plus fees {fees} exceeds the maximum of 21000000 coins"
    )]
    RewardOverflow { subsidy: Amount, fees: Amount },
}

/// Builds the block at `height` on `prev`: the coinbase paying `subsidy(height) + fees` to
/// `reward_to`, then `txs` in order, the merkle root over all of them, `bits` (what the chain
/// requires on `prev`: `Chain::next_bits`) and nonce 0. `fees` must be the fees of `txs`;
/// nothing here checks the transactions.
///
/// # Errors
/// [`MinerError::RewardOverflow`] if subsidy + fees exceeds `MAX_MONEY` (a bug in the caller).
#[allow(clippy::too_many_arguments)] // the header's fields and the coinbase's, each plain data
pub fn assemble_block(
    prev: BlockHash,
    height: u32,
    time: u32,
    bits: u32,
    params: &ChainParams,
    reward_to: PubkeyHash,
    txs: Vec<Transaction>,
    fees: Amount,
) -> Result<Block, MinerError> {
    let subsidy = params.subsidy(height);
    let reward = subsidy
        .checked_add(fees)
        .ok_or(MinerError::RewardOverflow { subsidy, fees })?;
    let mut all = Vec::with_capacity(txs.len() + 1);
    all.push(Transaction::coinbase(height, reward_to, reward));
    all.extend(txs);
    let mut block = Block {
        header: BlockHeader {
            version: BlockHeader::VERSION,
            prev,
            merkle_root: MerkleRoot::ZERO,
            time,
            bits,
            nonce: 0,
        },
        txs: all,
    };
    block.header.merkle_root = block.compute_merkle_root();
    Ok(block)
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// Where the nonce sits in the header's second 64-byte block.
const NONCE_AT: usize = 76 - 64;

/// Hashes one header with any nonce, reusing the compression of its first 64 bytes.
#[derive(Clone, Debug)]
pub struct HeaderHasher {
    /// SHA-256 state after the first 64 header bytes.
    midstate: [u32; 8],
    /// Header bytes 64..80 followed by SHA-256 padding for an 80-byte message.
    tail: [u8; 64],
}

impl HeaderHasher {
    /// Prepares to hash `header` (its nonce is ignored).
    pub fn new(header: &BlockHeader) -> Self {
        let bytes = header.to_bytes();
        let (first, rest) = bytes.split_at(64);
        let mut midstate = IV;
        compress256(&mut midstate, &[first.try_into().expect("64 bytes")]);
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(rest);
        tail[16] = 0x80;
        tail[56..].copy_from_slice(&(BlockHeader::SIZE as u64 * 8).to_be_bytes());
        Self { midstate, tail }
    }

    /// The block hash of the header with `nonce`: equal to `BlockHeader::block_hash`.
    pub fn hash_with_nonce(&self, nonce: u32) -> BlockHash {
        let words = self.hash_words(nonce);
        let mut out = [0u8; 32];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        BlockHash(out)
    }

    /// The hash as eight big-endian words, which compare like the 256-bit number.
    #[inline]
    fn hash_words(&self, nonce: u32) -> [u32; 8] {
        let mut block = self.tail;
        block[NONCE_AT..NONCE_AT + 4].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.midstate;
        compress256(&mut state, &[block]);

        // Second SHA-256: one block holding the 32-byte digest, 0x80 and the length 256 bits.
        let mut block = [0u8; 64];
        for (chunk, w) in block.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        block[32] = 0x80;
        block[62] = 0x01; // 256 = 0x0100, big-endian in the last 8 bytes
        let mut out = IV;
        compress256(&mut out, &[block]);
        out
    }
}

/// The target as eight big-endian words.
fn target_words(target: &Target) -> [u32; 8] {
    let bytes = target.0.to_be_bytes();
    std::array::from_fn(|i| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4")))
}

/// Nonces hashed between two looks at the stop flags (well under a millisecond).
const BATCH: u64 = 4096;
/// One past the last nonce.
const NONCE_END: u64 = 1 << 32;
/// More threads than this would only contend.
const MAX_THREADS: usize = 256;

/// What every thread of one search shares.
struct Job<'a> {
    hasher: HeaderHasher,
    target: [u32; 8],
    abort: &'a AtomicBool,
    /// Set by the thread that finds a nonce, so the others stop.
    found: AtomicBool,
    hashes: &'a AtomicU64,
}

impl Job<'_> {
    /// Tries nonces `first`, `first + stride`, ... below `end`; the first that meets the target,
    /// or `None` when the range is done or a stop flag is set.
    fn search(&self, first: u64, stride: u64, end: u64) -> Option<u32> {
        let mut nonce = first;
        while nonce < end {
            if self.abort.load(Ordering::Relaxed) || self.found.load(Ordering::Relaxed) {
                return None;
            }
            let batch_end = end.min(nonce + BATCH * stride);
            let mut tried = 0;
            while nonce < batch_end {
                let n = nonce as u32; // nonce < end <= 2^32
                tried += 1;
                if self.hasher.hash_words(n) <= self.target {
                    self.hashes.fetch_add(tried, Ordering::Relaxed);
                    self.found.store(true, Ordering::Relaxed);
                    return Some(n);
                }
                nonce += stride;
            }
            self.hashes.fetch_add(tried, Ordering::Relaxed);
        }
        None
    }

    /// Searches `first..end` on `threads` threads, thread t trying `first + t`, then every
    /// `threads`-th nonce. When several threads find one, the lowest nonce wins.
    fn run(&self, first: u64, end: u64, threads: usize) -> Option<u32> {
        if threads == 1 {
            return self.search(first, 1, end);
        }
        let stride = threads as u64;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..stride)
                .map(|t| s.spawn(move || self.search(first + t, stride, end)))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("a miner thread panicked"))
                .min()
        })
    }
}

/// Mines `block` (see [`mine_counting`]) and, when found, logs `mined block` with its height,
/// hash, nonce, hashes tried and MH/s, and counts the hashes in the node's metrics: what every
/// miner (the miner role, `GET /mine`, the CLI's `--mine` and `generate`) reports the same way.
pub fn mine_logged(block: &Block, threads: usize, abort: &AtomicBool) -> Option<BlockHeader> {
    let hashes = AtomicU64::new(0);
    let started = Instant::now();
    let header = mine_counting(block.header, threads, abort, &hashes)?;
    let (count, secs) = (
        hashes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64().max(1e-9),
    );
    tracing::info!(target: "miner", height = block.coinbase_height().unwrap_or(0),
                   hash = %header.block_hash(), nonce = header.nonce, hashes = count,
                   txs = block.txs.len(), // with the coinbase, as in "accepted block"
                   mhs = (count as f64 / secs / 1e4).round() / 100.0, "mined block");
    crate::metrics::metrics().mined(count, count as f64 / secs);
    Some(header)
}

/// Searches for a nonce that makes `header` meet its target; see [`mine_counting`].
pub fn mine(header: BlockHeader, threads: usize, abort: &AtomicBool) -> Option<BlockHeader> {
    mine_counting(header, threads, abort, &AtomicU64::new(0))
}

/// Searches nonces from `header.nonce` up on `threads` threads (at least 1) until the header's
/// hash meets the target of its `bits`, and returns that header. Every hash tried is added to
/// `hashes`, which another thread may read to report a hash rate.
///
/// When every nonce up to `u32::MAX` fails, `time` goes up by one second and the search starts
/// again from nonce 0 (see [`next_attempt`]).
///
/// Returns `None` when `abort` is set (checked every few thousand nonces per thread), when
/// `bits` is not a valid target, or when `time` cannot go up any more.
pub fn mine_counting(
    mut header: BlockHeader,
    threads: usize,
    abort: &AtomicBool,
    hashes: &AtomicU64,
) -> Option<BlockHeader> {
    let target = Target::from_compact(header.bits).ok()?;
    let threads = threads.clamp(1, MAX_THREADS);
    loop {
        let job = Job {
            hasher: HeaderHasher::new(&header),
            target: target_words(&target),
            abort,
            found: AtomicBool::new(false),
            hashes,
        };
        if let Some(nonce) = job.run(u64::from(header.nonce), NONCE_END, threads) {
            header.nonce = nonce;
            debug_assert!(target.is_met_by(&header.block_hash()));
            return Some(header);
        }
        if abort.load(Ordering::Relaxed) {
            return None;
        }
        header = next_attempt(&header)?;
    }
}

/// The header to search once every nonce of `header` failed: one second later, from nonce 0.
/// `None` when the time is already `u32::MAX`.
pub fn next_attempt(header: &BlockHeader) -> Option<BlockHeader> {
    Some(BlockHeader {
        time: header.time.checked_add(1)?,
        nonce: 0,
        ..*header
    })
}

/// How fast the search loop ran in [`hash_rate_probe`].
#[derive(Debug, Clone, Copy)]
pub struct HashRate {
    pub hashes: u64,
    pub elapsed: Duration,
}

impl HashRate {
    /// Hashes per second.
    pub fn per_second(&self) -> f64 {
        self.hashes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the miner's own search loop over `hashes` nonces of `header` on `threads` threads
/// against a target no hash meets, and reports the speed: what a benchmark compares with a
/// plain `sha256d(&header.to_bytes())` loop.
pub fn hash_rate_probe(header: &BlockHeader, hashes: u32, threads: usize) -> HashRate {
    let counter = AtomicU64::new(0);
    let never = AtomicBool::new(false);
    let job = Job {
        hasher: HeaderHasher::new(header),
        target: [0; 8],
        abort: &never,
        found: AtomicBool::new(false),
        hashes: &counter,
    };
    let start = Instant::now();
    // A hash of zero would "meet" the zero target; it does not happen.
    let _ = job.run(0, u64::from(hashes), threads.clamp(1, MAX_THREADS));
    HashRate {
        hashes: counter.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipcoin_proto::{COIN, sha256d};

    fn header(bits: u32, time: u32) -> BlockHeader {
        BlockHeader {
            version: BlockHeader::VERSION,
            prev: BlockHash([0xab; 32]),
            merkle_root: MerkleRoot(std::array::from_fn(|i| i as u8)),
            time,
            bits,
            nonce: 0,
        }
    }

    fn meets(h: &BlockHeader) -> bool {
        Target::from_compact(h.bits)
            .unwrap()
            .is_met_by(&h.block_hash())
    }

    #[test]
    fn midstate_hash_equals_plain_sha256d() {
        for time in [0, 1_700_000_000, u32::MAX] {
            let mut h = header(0x1e0fffff, time);
            let hasher = HeaderHasher::new(&h);
            for nonce in (0..2000).chain([u32::MAX - 1, u32::MAX, 0x8000_0000]) {
                h.nonce = nonce;
                assert_eq!(hasher.hash_with_nonce(nonce), h.block_hash());
                assert_eq!(hasher.hash_with_nonce(nonce).0, sha256d(&h.to_bytes()));
            }
        }
        // The nonce set in the header given to `new` does not matter.
        let mut h = header(0x1e0fffff, 5);
        h.nonce = 77;
        assert_eq!(
            HeaderHasher::new(&h).hash_with_nonce(9),
            HeaderHasher::new(&header(0x1e0fffff, 5)).hash_with_nonce(9)
        );
    }

    #[test]
    fn target_words_compare_like_the_number() {
        let t = Target::from_compact(0x1f00ffff).unwrap();
        let words = target_words(&t);
        assert_eq!(words, [0x0000_ffff, 0, 0, 0, 0, 0, 0, 0]);
        // Hashes around the target: the word comparison agrees with `Target::is_met_by`.
        let edge = t.0.to_be_bytes();
        let mut cases = vec![edge, [0; 32], [0xff; 32]];
        for i in [3, 4, 31] {
            let mut above = edge;
            above[i] = above[i].wrapping_add(1);
            let mut below = edge;
            below[i] = below[i].wrapping_sub(1);
            cases.extend([above, below]);
        }
        for bytes in cases {
            let hash_words: [u32; 8] = std::array::from_fn(|i| {
                u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap())
            });
            assert_eq!(
                hash_words <= words,
                t.is_met_by(&BlockHash(bytes)),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn mines_easy_and_moderate_targets_single_and_multi_threaded() {
        let never = AtomicBool::new(false);
        for bits in [0x207fffff, 0x1f00ffff] {
            for threads in [1, 2, 3] {
                let start = header(bits, 1_700_000_000 + threads as u32);
                let found = mine(start, threads, &never).expect("found");
                assert!(meets(&found), "bits {bits:#x} threads {threads}");
                assert_eq!(BlockHeader { nonce: 0, ..found }, start);
            }
        }
    }

    #[test]
    fn single_thread_finds_the_lowest_nonce_and_counts_hashes() {
        let start = header(0x1f00ffff, 42);
        let lowest = (0..=u32::MAX)
            .find(|&n| meets(&BlockHeader { nonce: n, ..start }))
            .unwrap();
        let hashes = AtomicU64::new(0);
        let found = mine_counting(start, 1, &AtomicBool::new(false), &hashes).unwrap();
        assert_eq!(found.nonce, lowest);
        assert_eq!(hashes.load(Ordering::Relaxed), u64::from(lowest) + 1);
        // Multi-threaded counts at least every nonce below the winner it tried.
        let hashes = AtomicU64::new(0);
        let found = mine_counting(start, 2, &AtomicBool::new(false), &hashes).unwrap();
        assert!(meets(&found));
        assert!(hashes.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn abort_before_or_during_mining_returns_none() {
        // About 2^32 hashes: never found within this test.
        let hard = header(0x1d00ffff, 1);
        let aborted = AtomicBool::new(true);
        for threads in [1, 2] {
            assert_eq!(mine(hard, threads, &aborted), None);
        }
        for threads in [1, 2] {
            let abort = AtomicBool::new(false);
            let hashes = AtomicU64::new(0);
            let started = Instant::now();
            let result = std::thread::scope(|s| {
                let miner = s.spawn(|| mine_counting(hard, threads, &abort, &hashes));
                while hashes.load(Ordering::Relaxed) < 10 * BATCH {
                    std::thread::yield_now();
                }
                abort.store(true, Ordering::Relaxed);
                miner.join().unwrap()
            });
            assert_eq!(result, None);
            assert!(started.elapsed() < Duration::from_secs(30));
        }
    }

    #[test]
    fn exhausted_nonces_bump_the_time() {
        let h = BlockHeader {
            nonce: 12345,
            ..header(0x1f00ffff, 100)
        };
        let next = next_attempt(&h).unwrap();
        assert_eq!((next.time, next.nonce), (101, 0));
        assert_eq!(
            BlockHeader {
                time: 100,
                nonce: 12345,
                ..next
            },
            h
        );
        assert_eq!(next_attempt(&header(0x1f00ffff, u32::MAX)), None);

        // The real path: start near the end of the nonce space, where no nonce meets the
        // target, so the search must move to the next second and find one there.
        let near_end = u32::MAX - 200;
        let start = (100..)
            .map(|time| BlockHeader {
                nonce: near_end,
                ..header(0x1f00ffff, time)
            })
            .find(|h| (near_end..=u32::MAX).all(|n| !meets(&BlockHeader { nonce: n, ..*h })))
            .unwrap();
        for threads in [1, 2] {
            let found = mine(start, threads, &AtomicBool::new(false)).unwrap();
            assert_eq!(found.time, start.time + 1);
            assert!(meets(&found));
        }
        // And at the last possible second there is nowhere to go.
        let last = BlockHeader {
            time: u32::MAX,
            ..start
        };
        if (near_end..=u32::MAX).all(|n| !meets(&BlockHeader { nonce: n, ..last })) {
            assert_eq!(mine(last, 1, &AtomicBool::new(false)), None);
        }
    }

    #[test]
    fn invalid_bits_mine_nothing() {
        assert_eq!(
            mine(header(0x1d80ffff, 1), 1, &AtomicBool::new(false)),
            None
        );
    }

    #[test]
    fn probe_counts_every_hash() {
        let r = hash_rate_probe(&header(0x1e0fffff, 1), 10_000, 2);
        assert_eq!(r.hashes, 10_000);
        assert!(r.per_second() > 0.0);
    }

    #[test]
    fn assembles_coinbase_first_with_subsidy_and_fees() {
        let params = ChainParams::devnet();
        let miner = PubkeyHash([5; 20]);
        let other = Transaction::coinbase(99, PubkeyHash([6; 20]), Amount::from_units(1).unwrap());
        let fees = Amount::from_units(250).unwrap();
        let prev = BlockHash([9; 32]);
        let block = assemble_block(
            prev,
            7,
            1_700_000_000,
            params.pow_bits,
            &params,
            miner,
            vec![other.clone()],
            fees,
        )
        .unwrap();
        assert_eq!(block.txs.len(), 2);
        assert_eq!(block.txs[1], other);
        let cb = &block.txs[0];
        assert!(cb.is_coinbase());
        assert_eq!(cb.inputs[0].prevout.vout, 7);
        assert_eq!(cb.outputs[0].owner, miner);
        assert_eq!(cb.outputs[0].value.units(), 10 * COIN + 250);
        let h = block.header;
        assert_eq!(h.merkle_root, block.compute_merkle_root());
        assert_eq!(
            (h.version, h.prev, h.time, h.bits, h.nonce),
            (
                BlockHeader::VERSION,
                prev,
                1_700_000_000,
                params.pow_bits,
                0
            )
        );
        // Mining the assembled header gives a block the chain's target accepts.
        let mined = mine(h, 2, &AtomicBool::new(false)).unwrap();
        assert!(params.target().is_met_by(&mined.block_hash()));
    }

    #[test]
    fn reward_overflow_is_an_error() {
        let err = assemble_block(
            BlockHash::ZERO,
            1,
            0,
            0x1e0fffff,
            &ChainParams::devnet(),
            PubkeyHash::ZERO,
            vec![],
            Amount::MAX,
        )
        .unwrap_err();
        assert!(matches!(err, MinerError::RewardOverflow { .. }));
        assert!(err.to_string().contains("overflows"));
    }
}
