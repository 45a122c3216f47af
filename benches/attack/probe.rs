//! What the bench reads about a victim process from outside: resident memory sampled every
//! 20 ms (VmHWM cannot be reset between scenarios), CPU time, loopback traffic, how long
//! `GET /status` takes, and the disk usage of a directory.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gossipcoin::api::client::ApiClient;

pub use crate::common::cpu_secs;

/// The sampling period of [`RssSampler`].
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// VmRSS of `pid` in KiB (`None` once it has exited).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Bytes carried by the loopback interface so far (every process's; during an attack, mostly
/// the attack and the victim's answers). Per-process socket bytes are not in `/proc`.
pub fn loopback_bytes() -> u64 {
    std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("lo:")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Disk usage of the files under `dir` (allocated blocks, as `du` counts them).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Samples a process's VmRSS every 20 ms on its own thread, from a baseline taken at start.
pub struct RssSampler {
    baseline_kib: u64,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let baseline_kib = rss_kib(pid).unwrap_or(0);
        let peak_kib = Arc::new(AtomicU64::new(baseline_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak_kib.clone(), stop.clone());
            std::thread::spawn(move || {
                // bounded: a run is under 10 minutes
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Self {
            baseline_kib,
            peak_kib,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns (baseline, peak growth over it) in MiB.
    pub fn finish(mut self) -> (f64, f64) {
        self.halt();
        let peak = self.peak_kib.load(Ordering::Relaxed);
        (
            self.baseline_kib as f64 / 1024.0,
            peak.saturating_sub(self.baseline_kib) as f64 / 1024.0,
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Calls `GET /status` back to back (one at a time, 200 ms apart, 20 s timeout each) on its own
/// thread and keeps the slowest answer: how long the API stalls during an attack.
pub struct StatusProbe {
    slowest_ms: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusProbe {
    pub fn start(api_url: &str) -> Self {
        let client = ApiClient::new(api_url, None).timeout(Duration::from_secs(20));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (slowest, failures, stop) = (slowest_ms.clone(), failures.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let t = Instant::now();
                    if client.get("/status").is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    slowest.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Self {
            slowest_ms,
            failures,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops probing (waiting for a call in flight, at most its 20 s timeout); returns the
    /// slowest answer in ms and the number of failed calls.
    pub fn finish(mut self) -> (u64, u64) {
        self.halt();
        (
            self.slowest_ms.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StatusProbe {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Waits until `pid` uses under 10 % of a core over half a second (it has finished the work an
/// attack queued), at most `limit`; returns how long that took.
pub fn wait_idle(pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = cpu_secs(pid);
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_secs(pid);
        if now - last < 0.05 {
            break;
        }
        last = now;
    }
    start.elapsed()
}
