//! `testnet logs`: the parsed subcommand turned into `crate::testnet` options.

use std::path::Path;

use anyhow::Result;

use crate::cli::TestnetCommand;
use crate::testnet;

/// Runs one `testnet` subcommand.
pub(super) fn run(command: &TestnetCommand, _params: Option<&Path>) -> Result<()> {
    match command {
        TestnetCommand::Logs {
            dir,
            node,
            follow,
            grep,
            level,
        } => testnet::logs(&testnet::LogsOptions {
            dir: dir.path.clone(),
            node: node.clone(),
            follow: *follow,
            grep: grep.clone(),
            level: level.map(Into::into),
        }),
    }
}
