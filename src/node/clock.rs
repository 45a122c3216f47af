//! Our clock against our peers' (Bitcoin Core's time offsets from `version` messages): each
//! peer's Status carries its clock, and when the median offset from ours passes
//! [`WARN_OFFSET_SECS`] the node warns, once per [`WARN_EVERY`]. Nothing is adjusted (Core
//! stopped adjusting its clock from peers too): a block's time is still checked against our
//! own clock, and a node whose clock is wrong should be told so, loudly, because it will
//! refuse good blocks as "too far in the future" or mine blocks others refuse.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::net::PeerId;

/// The offset at which the node warns (Core: 70 minutes).
pub const WARN_OFFSET_SECS: i64 = 70 * 60;
/// Peers whose offsets are kept (Core: 200), the oldest sample making room.
const MAX_SAMPLES: usize = 200;
/// Offsets needed before a median means anything (Core: 5).
const MIN_SAMPLES: usize = 5;
/// At most one warning this often.
const WARN_EVERY: Duration = Duration::from_secs(3600);

/// The offsets of our peers' clocks (theirs minus ours, seconds), one per peer.
#[derive(Debug, Default)]
pub struct PeerClocks {
    offsets: HashMap<PeerId, i64>,
    order: VecDeque<PeerId>,
    warned: Option<Instant>,
}

impl PeerClocks {
    /// Records `peer`'s clock (`theirs`, Unix seconds) against ours (`now`); returns the
    /// median offset when it calls for a warning now.
    pub fn note(&mut self, peer: PeerId, theirs: u32, now: u32, at: Instant) -> Option<i64> {
        if theirs == 0 {
            return None; // a peer that does not tell its time
        }
        if self
            .offsets
            .insert(peer, i64::from(theirs) - i64::from(now))
            .is_none()
        {
            self.order.push_back(peer);
            if self.order.len() > MAX_SAMPLES
                && let Some(oldest) = self.order.pop_front()
            {
                self.offsets.remove(&oldest);
            }
        }
        let median = self.median()?;
        let due = self
            .warned
            .is_none_or(|t| at.saturating_duration_since(t) >= WARN_EVERY);
        if median.abs() > WARN_OFFSET_SECS && due {
            self.warned = Some(at);
            return Some(median);
        }
        None
    }

    /// The median offset, once there are enough peers.
    pub fn median(&self) -> Option<i64> {
        if self.offsets.len() < MIN_SAMPLES {
            return None;
        }
        let mut all: Vec<i64> = self.offsets.values().copied().collect();
        all.sort_unstable();
        Some(all[all.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_far_from_the_peers_median_warns_once_an_hour() {
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut clocks = PeerClocks::default();
        // Four peers two hours ahead: not enough to judge.
        for _ in 0..4 {
            assert_eq!(clocks.note(PeerId::random(), now + 7200, now, t0), None);
        }
        // The fifth makes a median of +2 h: warn, once.
        assert_eq!(
            clocks.note(PeerId::random(), now + 7200, now, t0),
            Some(7200)
        );
        assert_eq!(clocks.note(PeerId::random(), now + 7200, now, t0), None);
        assert_eq!(
            clocks.note(PeerId::random(), now + 7200, now, t0 + WARN_EVERY),
            Some(7200)
        );
    }

    #[test]
    fn a_few_wrong_peers_or_small_offsets_do_not_warn() {
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut clocks = PeerClocks::default();
        for i in 0..6 {
            assert_eq!(clocks.note(PeerId::random(), now + 30 * i, now, t0), None);
        }
        // Three liars far ahead do not move the median of nine past the limit.
        for _ in 0..3 {
            assert_eq!(clocks.note(PeerId::random(), u32::MAX, now, t0), None);
        }
        assert!(clocks.median().unwrap().abs() < WARN_OFFSET_SECS);
        // A peer heard again counts once; a peer that sends no time is ignored.
        let p = PeerId::random();
        clocks.note(p, now, now, t0);
        clocks.note(p, now, now, t0);
        assert_eq!(clocks.offsets.len(), 10);
        assert_eq!(clocks.note(PeerId::random(), 0, now, t0), None);
        assert_eq!(clocks.offsets.len(), 10);
    }

    #[test]
    fn samples_are_bounded() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::default();
        for _ in 0..(MAX_SAMPLES + 50) {
            clocks.note(PeerId::random(), 100, 100, t0);
        }
        assert_eq!(clocks.offsets.len(), MAX_SAMPLES);
        assert_eq!(clocks.order.len(), MAX_SAMPLES);
    }
}
