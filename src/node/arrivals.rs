//! When each recent main-chain block arrived here: the local wall-clock time (ms since the Unix
//! epoch) at which this node first saw it as part of its main chain. Comparing these times
//! across nodes shows a block travelling through a network (the testnet page does).
//!
//! A task follows the chain actor's published state; when the tip moves, the new tip and any
//! of its ancestors not yet recorded (a sync batch, a reorg) get the time of that moment. Only
//! the last [`KEEP`] blocks are kept; a block connected before the node started has no time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gossipcoin_proto::BlockHash;
use tokio::sync::watch;

use super::chain_handle::ChainState;
use super::reads::{ReadError, Reads};
use crate::store::ChainRead;

/// Blocks remembered.
pub const KEEP: usize = 1000;
/// Ancestors of a new tip looked at for missing times (a longer catch-up gets times for these).
const WALK_BACK: usize = 64;

/// Recent arrival times, shared by the recorder task and the API.
#[derive(Clone, Default)]
pub struct Arrivals {
    inner: Arc<Mutex<Recent>>,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<BlockHash>,
    at: HashMap<BlockHash, u64>,
}

impl Arrivals {
    /// When `hash` arrived, in ms since the epoch, if it is among the recent ones.
    pub fn get(&self, hash: &BlockHash) -> Option<u64> {
        self.inner
            .lock()
            .expect("arrivals lock")
            .at
            .get(hash)
            .copied()
    }

    /// Records `hash` at `ms` unless it already has a time; the oldest entry goes past [`KEEP`].
    fn record(&self, hash: BlockHash, ms: u64) {
        let mut r = self.inner.lock().expect("arrivals lock");
        if r.at.contains_key(&hash) {
            return;
        }
        r.at.insert(hash, ms);
        r.order.push_back(hash);
        while r.order.len() > KEEP {
            if let Some(old) = r.order.pop_front() {
                r.at.remove(&old);
            }
        }
    }

    fn knows(&self, hash: &BlockHash) -> bool {
        self.get(hash).is_some()
    }

    /// Starts recording: runs until the chain actor drops its state sender (node stopped).
    /// The tip at start and its ancestors are not recorded: they arrived before this process ran.
    pub fn spawn(mut state: watch::Receiver<ChainState>, reads: Reads) -> Self {
        let arrivals = Self::default();
        let this = arrivals.clone();
        let mut last = state.borrow_and_update().tip;
        let start = last;
        tokio::spawn(async move {
            while state.changed().await.is_ok() {
                let tip = state.borrow_and_update().tip;
                if tip == last {
                    continue;
                }
                last = tip;
                let ms = now_ms();
                let seen = this.clone();
                // The tip, then back through ancestors until one already has a time.
                let new: Result<Vec<BlockHash>, ReadError> = reads
                    .run(move |v| {
                        let mut out = vec![tip];
                        let mut hash = tip;
                        while out.len() < WALK_BACK {
                            let Some(entry) = v.index(&hash)? else { break };
                            let prev = entry.header.prev;
                            if entry.height == 0 || prev == start || seen.knows(&prev) {
                                break;
                            }
                            hash = prev;
                            out.push(hash);
                        }
                        Ok(out)
                    })
                    .await;
                for hash in new.unwrap_or_else(|_| vec![tip]).into_iter().rev() {
                    this.record(hash, ms);
                }
            }
        });
        arrivals
    }
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_time_and_only_the_last_blocks() {
        let a = Arrivals::default();
        let h = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            BlockHash(b)
        };
        a.record(h(0), 5);
        a.record(h(0), 9);
        assert_eq!(a.get(&h(0)), Some(5), "the first arrival counts");
        for i in 1..=KEEP as u32 {
            a.record(h(i), 10 + u64::from(i));
        }
        assert_eq!(a.get(&h(0)), None, "the oldest is forgotten");
        assert_eq!(a.get(&h(1)), Some(11));
        assert_eq!(a.get(&h(KEEP as u32)), Some(10 + KEEP as u64));
    }
}
