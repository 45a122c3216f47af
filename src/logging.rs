//! Log setup: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Targets name the subsystem (`chain`, `store`, `wallet`, `miner`, ...); block and transaction
//! events carry `height`, `hash` and `txid` fields. Command output proper goes to stdout.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
