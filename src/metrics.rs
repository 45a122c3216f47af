//! Node metrics: counters and histograms that the node's parts bump as things happen, rendered
//! in the Prometheus text format by `GET /metrics`.
//!
//! One node runs per process, so the registry is one process-wide static ([`metrics()`]), like
//! the default registry of Prometheus client libraries: the chain task, router and miner record
//! without any plumbing. Gauges that mirror live state (height, peers, mempool) are not stored
//! here; the API reads them from their owners when it renders ([`Gauges`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: Metrics = Metrics::new();
    &METRICS
}

/// Live values read from their owners at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub height: u32,
    pub peers: usize,
    pub mempool_txs: usize,
    pub mempool_bytes: usize,
}

/// Where a block or transaction came from, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Gossipsub.
    Gossip,
    /// Request-response sync (catch-up batches, or a client's `SubmitTx`).
    Sync,
    /// This node's miner or the HTTP API.
    Local,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::Gossip => "gossip",
            Self::Sync => "sync",
            Self::Local => "local",
        }
    }
}

/// Every metric of the node.
pub struct Metrics {
    blocks_received: Labeled,
    blocks_accepted: Counter,
    blocks_rejected: Labeled,
    txs_received: Labeled,
    txs_accepted: Counter,
    txs_rejected: Labeled,
    gossip: Labeled,
    sync_served: Labeled,
    ingest_dropped: Labeled,
    validation: Histogram,
    reorgs: Histogram,
    hashes: Counter,
    hash_rate: Counter,
    api_requests: Labeled,
    peer_penalties: Labeled,
    peer_bans: Counter,
    events_dropped: Labeled,
    dead_links: Counter,
    orphan_txs: Counter,
    orphan_events: Labeled,
}

impl Metrics {
    const fn new() -> Self {
        Self {
            blocks_received: Labeled::new(),
            blocks_accepted: Counter::new(),
            blocks_rejected: Labeled::new(),
            txs_received: Labeled::new(),
            txs_accepted: Counter::new(),
            txs_rejected: Labeled::new(),
            gossip: Labeled::new(),
            sync_served: Labeled::new(),
            ingest_dropped: Labeled::new(),
            validation: Histogram::new(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            reorgs: Histogram::new(&[1.0, 2.0, 3.0, 5.0, 10.0, 50.0, 100.0]),
            hashes: Counter::new(),
            hash_rate: Counter::new(),
            api_requests: Labeled::new(),
            peer_penalties: Labeled::new(),
            peer_bans: Counter::new(),
            events_dropped: Labeled::new(),
            dead_links: Counter::new(),
            orphan_txs: Counter::new(),
            orphan_events: Labeled::new(),
        }
    }

    /// Work from a peer found no room in an ingest queue (`queue_full`, `peer_full`).
    pub fn ingest_dropped(&self, queue: &str, reason: &str) {
        self.ingest_dropped.inc(&format!(
            "queue=\"{}\",reason=\"{}\"",
            escape(queue),
            escape(reason)
        ));
    }

    /// A block reached the chain from `source`.
    pub fn block_received(&self, source: Source) {
        self.blocks_received.inc(source.label());
    }

    /// A block was stored (new tip or side branch) after `took` of validation and writing.
    pub fn block_accepted(&self, took: Duration) {
        self.blocks_accepted.inc();
        self.validation.observe(took.as_secs_f64());
    }

    /// A block was refused; `reason` is a short code such as `high_hash`.
    pub fn block_rejected(&self, reason: &str) {
        self.blocks_rejected.inc(reason);
    }

    /// A transaction reached the mempool from `source`.
    pub fn tx_received(&self, source: Source) {
        self.txs_received.inc(source.label());
    }

    pub fn tx_accepted(&self) {
        self.txs_accepted.inc();
    }

    /// A transaction was refused; `reason` is a short code such as `conflict`.
    pub fn tx_rejected(&self, reason: &str) {
        self.txs_rejected.inc(reason);
    }

    /// A gossip message on `topic` (`blocks` or `txs`) went `direction` (`in` or `out`).
    pub fn gossip(&self, direction: &'static str, topic: &'static str) {
        self.gossip
            .inc(&format!("direction=\"{direction}\",topic=\"{topic}\""));
    }

    /// A peer's sync request of `kind` was answered.
    pub fn sync_served(&self, kind: &'static str) {
        self.sync_served.inc(kind);
    }

    /// A reorg disconnected `depth` blocks.
    pub fn reorg(&self, depth: usize) {
        self.reorgs.observe(depth as f64);
    }

    /// A mining attempt tried `hashes` hashes at `rate` hashes per second.
    pub fn mined(&self, hashes: u64, rate: f64) {
        self.hashes.add(hashes);
        self.hash_rate.set(rate as u64);
    }

    /// An HTTP API request on `route` was answered with `status`.
    pub fn api_request(&self, route: &str, status: u16) {
        self.api_requests
            .inc(&format!("route=\"{}\",status=\"{status}\"", escape(route)));
    }

    /// A peer lost score; `reason` is a short stable code such as `malformed_request`.
    pub fn peer_penalty(&self, reason: &str) {
        self.peer_penalties.inc(reason);
    }

    /// A peer was banned.
    pub fn peer_ban(&self) {
        self.peer_bans.inc();
    }

    /// The network dropped an event the node had no room for; `kind` is `gossip`, `request`
    /// or `other`.
    pub fn event_dropped(&self, kind: &'static str) {
        self.events_dropped.inc(kind);
    }

    /// A connection was closed because its pings failed (a dead link).
    pub fn dead_link(&self) {
        self.dead_links.inc();
    }

    /// The orphan-transaction pool now holds `pooled` transactions.
    pub fn orphan_txs(&self, pooled: usize) {
        self.orphan_txs.set(pooled as u64);
    }

    /// Something happened to an orphan transaction: `pooled`, `accepted`, `invalid`,
    /// `dropped` (conflict, spent on chain…), `expired`, `evicted`, `peer_gone`.
    pub fn orphan_event(&self, event: &'static str, n: usize) {
        if n > 0 {
            self.orphan_events.add(event, n as u64);
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric plus `gauges`.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "height",
            "Height of the main chain's tip.",
            gauges.height as u64,
        );
        gauge(&mut out, "peers", "Connected peers.", gauges.peers as u64);
        gauge(
            &mut out,
            "mempool_transactions",
            "Transactions in the mempool.",
            gauges.mempool_txs as u64,
        );
        gauge(
            &mut out,
            "mempool_bytes",
            "Bytes of transactions in the mempool.",
            gauges.mempool_bytes as u64,
        );
        self.blocks_received.render(
            &mut out,
            "blocks_received_total",
            "Blocks handed to the chain, by source.",
            "source",
        );
        counter(
            &mut out,
            "blocks_accepted_total",
            "Blocks stored (new tip or side branch).",
            self.blocks_accepted.get(),
        );
        self.blocks_rejected.render(
            &mut out,
            "blocks_rejected_total",
            "Blocks refused, by reason.",
            "reason",
        );
        self.txs_received.render(
            &mut out,
            "transactions_received_total",
            "Transactions handed to the mempool, by source.",
            "source",
        );
        counter(
            &mut out,
            "transactions_accepted_total",
            "Transactions accepted into the mempool.",
            self.txs_accepted.get(),
        );
        self.txs_rejected.render(
            &mut out,
            "transactions_rejected_total",
            "Transactions refused, by reason.",
            "reason",
        );
        self.gossip.render_raw(
            &mut out,
            "gossip_messages_total",
            "Gossip messages, by direction and topic.",
        );
        self.sync_served.render(
            &mut out,
            "sync_requests_served_total",
            "Sync requests answered, by kind.",
            "kind",
        );
        self.ingest_dropped.render_raw(
            &mut out,
            "ingest_dropped_total",
            "Peer work dropped because its ingest queue was full, by queue and reason.",
        );
        self.validation.render(
            &mut out,
            "block_validation_seconds",
            "Time to validate and store a block.",
        );
        self.reorgs.render(
            &mut out,
            "reorg_depth",
            "Reorgs, by the number of blocks they disconnected.",
        );
        counter(
            &mut out,
            "miner_hashes_total",
            "Proof-of-work hashes tried by this node's miner.",
            self.hashes.get(),
        );
        gauge(
            &mut out,
            "miner_hash_rate",
            "Hashes per second of the last mining attempt.",
            self.hash_rate.get(),
        );
        self.api_requests.render_raw(
            &mut out,
            "api_requests_total",
            "HTTP API requests, by route and status.",
        );
        self.peer_penalties.render(
            &mut out,
            "peer_penalties_total",
            "Score penalties given to peers, by reason.",
            "reason",
        );
        counter(
            &mut out,
            "peer_bans_total",
            "Peers banned.",
            self.peer_bans.get(),
        );
        self.events_dropped.render(
            &mut out,
            "net_events_dropped_total",
            "Network events dropped because the node was not keeping up, by kind.",
            "kind",
        );
        counter(
            &mut out,
            "dead_links_total",
            "Connections closed because pings failed.",
            self.dead_links.get(),
        );
        gauge(
            &mut out,
            "orphan_transactions",
            "Transactions waiting in the orphan pool for a parent.",
            self.orphan_txs.get(),
        );
        self.orphan_events.render(
            &mut out,
            "orphan_transaction_events_total",
            "What happened to orphan transactions, by event.",
            "event",
        );
        out
    }
}

const PREFIX: &str = "gossipcoin_";

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{PREFIX}{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{PREFIX}{name} {value}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }
    fn inc(&self) {
        self.add(1);
    }
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter per label value (few distinct values: sources, reasons, routes).
struct Labeled(Mutex<BTreeMap<String, u64>>);

impl Labeled {
    const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    fn inc(&self, label: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(label.to_owned()).or_default() += 1;
    }

    fn add(&self, label: &str, n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(label.to_owned()).or_default() += n;
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// One sample per value of the single label `label`.
    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        header(out, name, help, "counter");
        for (value, n) in self.snapshot() {
            let _ = writeln!(out, "{PREFIX}{name}{{{label}=\"{}\"}} {n}", escape(&value));
        }
    }

    /// Keys that are already `a="x",b="y"` label lists.
    fn render_raw(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "counter");
        for (labels, n) in self.snapshot() {
            let _ = writeln!(out, "{PREFIX}{name}{{{labels}}} {n}");
        }
    }
}

/// A Prometheus histogram with fixed upper bounds.
struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramData>,
}

struct HistogramData {
    buckets: [u64; 8],
    count: u64,
    sum: f64,
}

impl Histogram {
    const fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= 8);
        Self {
            bounds,
            inner: Mutex::new(HistogramData {
                buckets: [0; 8],
                count: 0,
                sum: 0.0,
            }),
        }
    }

    fn observe(&self, value: f64) {
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in self.bounds.iter().enumerate() {
            if value <= *bound {
                d.buckets[i] += 1;
            }
        }
        d.count += 1;
        d.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, bound) in self.bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{PREFIX}{name}_bucket{{le=\"{bound}\"}} {}",
                d.buckets[i]
            );
        }
        let _ = writeln!(out, "{PREFIX}{name}_bucket{{le=\"+Inf\"}} {}", d.count);
        let _ = writeln!(out, "{PREFIX}{name}_sum {}", d.sum);
        let _ = writeln!(out, "{PREFIX}{name}_count {}", d.count);
    }
}

/// A short `snake_case` code for an error enum's variant, from its `Debug` form
/// (`HighHash { .. }` → `high_hash`): a stable, low-cardinality metric label.
pub fn reason_code(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut code = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    if code.is_empty() {
        "other".into()
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_snake_case_variant_names() {
        assert_eq!(reason_code("HighHash { hash: 00ab }"), "high_hash");
        assert_eq!(reason_code("NoCoinbase"), "no_coinbase");
        assert_eq!(reason_code("Conflict { txid: .. }"), "conflict");
        assert_eq!(reason_code(""), "other");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("gossipcoin_x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("gossipcoin_x_bucket{le=\"2\"} 2\n"), "{out}");
        assert!(
            out.contains("gossipcoin_x_bucket{le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("gossipcoin_x_count 3\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        let m = Metrics::new();
        m.api_request("/a\"b", 200);
        let text = m.render(Gauges::default());
        assert!(
            text.contains("gossipcoin_api_requests_total{route=\"/a\\\"b\",status=\"200\"} 1"),
            "{text}"
        );
    }
}
