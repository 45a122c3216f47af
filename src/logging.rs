//! Log setup: `tracing` events filtered by `RUST_LOG` (default `info`), as human-readable lines
//! (`pretty`) or one JSON object per line (`json`), to stderr or to a file.
//!
//! Targets name the subsystem (`net`, `sync`, `chain`, `mempool`, `miner`, `store`, `wallet`,
//! `api`, `testnet`);
//! block and transaction events carry `height`, `hash`, `txid` and `peer` fields, so the logs of
//! several nodes can be merged and searched. Command output proper goes to stdout.

use std::path::Path;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal, unless `NO_COLOR` is set).
    #[default]
    Pretty,
    /// One JSON object per line, for scripts and log merging.
    Json,
}

/// Installs the global subscriber; a second call does nothing. `file` appends to that file
/// instead of writing to stderr.
pub fn init(format: LogFormat, file: Option<&Path>) -> std::io::Result<()> {
    // Without RUST_LOG: INFO, but not libp2p-kad's "No known peers" warning at every start
    // (a node bootstraps from its peers, not from a DHT it does not know yet).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,libp2p_kad=error"));
    let writer = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(f))
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.with_ansi(colour(file.is_some())).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    Ok(())
}

/// Colours only on a terminal (never into a file or a pipe) and never under `NO_COLOR`
/// (<https://no-color.org>: any non-empty value).
fn colour(to_file: bool) -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !to_file && !no_color && std::io::stderr().is_terminal()
}
