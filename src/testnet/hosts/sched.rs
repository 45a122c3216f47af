//! The router's delay line: each packet offered is dropped (the link's loss, or a full queue)
//! or given a release time, now + the link's latency ± uniform jitter, and kept in a min-heap
//! by that time until [`Scheduler::pop_due`] hands it out. The queue is bounded in bytes, as a
//! router's buffer is. No clock of its own: the caller passes `now`, so tests are exact.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::wan::Links;

/// What happened to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Lost on the link (the configured loss).
    Lost,
    /// The queue holds `max_bytes` already.
    Full,
    /// To be released at this time.
    Queued(Instant),
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due: Instant,
    /// Arrival order: equal release times leave in the order they came.
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

/// The delay line. See the module doc.
pub struct Scheduler {
    links: Links,
    heap: BinaryHeap<Reverse<Entry>>,
    bytes: usize,
    max_bytes: usize,
    seq: u64,
    rng: u64,
}

impl Scheduler {
    /// A scheduler for `links`, holding at most `max_bytes` of packets; `seed` drives the loss
    /// and the jitter (xorshift64*; any seed, 0 included).
    pub fn new(links: Links, max_bytes: usize, seed: u64) -> Self {
        Self {
            links,
            heap: BinaryHeap::new(),
            bytes: 0,
            max_bytes,
            seq: 0,
            rng: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Offers a packet from node `from` to node `to` at `now`.
    pub fn offer(&mut self, now: Instant, from: usize, to: usize, packet: Vec<u8>) -> Decision {
        if self.links.loss_ppm > 0
            && self.next_random() % 1_000_000 < u64::from(self.links.loss_ppm)
        {
            return Decision::Lost;
        }
        if self.bytes + packet.len() > self.max_bytes {
            return Decision::Full;
        }
        let base = i64::from(self.links.latency_ms(from, to)) * 1000;
        let jitter = i64::from(self.links.jitter_ms) * 1000;
        let offset = if jitter > 0 {
            let span = u64::try_from(2 * jitter + 1).unwrap_or(1);
            i64::try_from(self.next_random() % span).unwrap_or(0) - jitter
        } else {
            0
        };
        let micros = u64::try_from((base + offset).max(0)).unwrap_or(0);
        let due = now + Duration::from_micros(micros);
        self.bytes += packet.len();
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            due,
            seq: self.seq,
            to,
            packet,
        }));
        Decision::Queued(due)
    }

    /// When the next packet is due, if any is queued.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.due)
    }

    /// The next packet due at or before `now`, with its destination node.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        self.bytes -= e.packet.len();
        Some((e.to, e.packet))
    }

    /// Bytes queued.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::super::wan::{Wan, parse_group, parse_latency_between};
    use super::*;

    fn links(latency_ms: u32, jitter_ms: u32, loss_ppm: u32) -> Links {
        let wan = Wan {
            latency_ms,
            jitter_ms,
            loss_ppm,
            groups: vec![parse_group("eu=a").unwrap(), parse_group("us=b").unwrap()],
            between: vec![parse_latency_between("eu,us:150ms").unwrap()],
        };
        wan.links(&["a".into(), "b".into(), "c".into()]).unwrap()
    }

    #[test]
    fn packets_leave_after_their_latency_in_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Scheduler::new(links(80, 0, 0), 1 << 20, 7);
        assert_eq!(s.offer(t0, 0, 2, vec![1]), Decision::Queued(t0 + ms(80)));
        assert_eq!(
            s.offer(t0, 0, 1, vec![2]),
            Decision::Queued(t0 + ms(150)),
            "eu→us"
        );
        assert_eq!(
            s.offer(t0 + ms(1), 2, 0, vec![3]),
            Decision::Queued(t0 + ms(81))
        );
        assert_eq!(s.queued_bytes(), 3);
        assert_eq!(s.next_due(), Some(t0 + ms(80)));
        assert_eq!(s.pop_due(t0 + ms(79)), None, "nothing before its time");
        assert_eq!(s.pop_due(t0 + ms(100)), Some((2, vec![1])));
        assert_eq!(s.pop_due(t0 + ms(100)), Some((0, vec![3])));
        assert_eq!(s.pop_due(t0 + ms(100)), None);
        assert_eq!(s.pop_due(t0 + ms(150)), Some((1, vec![2])));
        assert_eq!((s.next_due(), s.queued_bytes()), (None, 0));
    }

    #[test]
    fn jitter_stays_in_its_band_and_averages_out() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(links(80, 20, 0), usize::MAX, 1);
        let delays: Vec<f64> = (0..10_000)
            .map(|_| match s.offer(t0, 0, 2, vec![0]) {
                Decision::Queued(due) => (due - t0).as_secs_f64() * 1000.0,
                other => panic!("{other:?}"),
            })
            .collect();
        let (min, max) = delays
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &d| (a.min(d), b.max(d)));
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!(min >= 60.0 && max <= 100.0, "{min}..{max}");
        assert!(
            min < 62.0 && max > 98.0,
            "the whole band is used: {min}..{max}"
        );
        assert!((mean - 80.0).abs() < 1.0, "{mean}");
        // A jitter larger than the latency never makes a negative delay.
        let mut s = Scheduler::new(links(5, 20, 0), usize::MAX, 3);
        for _ in 0..1000 {
            assert!(matches!(s.offer(t0, 0, 2, vec![0]), Decision::Queued(d) if d >= t0));
        }
    }

    #[test]
    fn loss_is_the_configured_fraction_and_a_full_queue_drops() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(links(1, 0, 10_000), usize::MAX, 42);
        let lost = (0..100_000)
            .filter(|_| s.offer(t0, 0, 2, vec![]) == Decision::Lost)
            .count();
        assert!((800..1200).contains(&lost), "1% of 100000: {lost}");
        let mut s = Scheduler::new(links(1, 0, 0), 1000, 42);
        assert!(matches!(
            s.offer(t0, 0, 2, vec![0; 600]),
            Decision::Queued(_)
        ));
        assert_eq!(s.offer(t0, 0, 2, vec![0; 600]), Decision::Full);
        assert!(matches!(
            s.offer(t0, 0, 2, vec![0; 400]),
            Decision::Queued(_)
        ));
        assert!(s.pop_due(t0 + Duration::from_millis(1)).is_some());
        assert!(
            matches!(s.offer(t0, 0, 2, vec![0; 600]), Decision::Queued(_)),
            "room again"
        );
    }
}
