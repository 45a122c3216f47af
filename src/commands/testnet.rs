//! `testnet up|down|status|ui|logs|trace|kill|start|partition|heal`: the parsed subcommand turned into `crate::testnet` options.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cli::TestnetCommand;
use crate::testnet;

/// Runs one `testnet` subcommand; `params` (the global `--params`) goes to every node `up` makes.
pub(super) fn run(command: &TestnetCommand, params: Option<&Path>) -> Result<()> {
    match command {
        TestnetCommand::Up {
            dir,
            miners,
            wallets,
            base_port,
            timeout,
            block_interval,
            hosts,
        } => {
            testnet::stop_on_ctrl_c();
            testnet::up(&testnet::UpOptions {
                dir: dir.path.clone(),
                miners: *miners,
                wallets: *wallets,
                base_port: *base_port,
                timeout: Duration::from_secs(*timeout),
                params: params.map(Path::to_path_buf),
                block_interval_secs: *block_interval,
                hints: true,
                hosts: hosts.wan(),
                free_relay: false,
            })
        }
        TestnetCommand::Down { dir, timeout } => testnet::down(&testnet::DownOptions {
            dir: dir.path.clone(),
            timeout: Duration::from_secs(*timeout),
        }),
        TestnetCommand::Status {
            dir,
            watch,
            all,
            summary,
        } => testnet::status(&testnet::StatusOptions {
            dir: dir.path.clone(),
            watch: *watch,
            detail: match (all, summary) {
                (true, _) => testnet::Detail::All,
                (_, true) => testnet::Detail::Summary,
                _ => testnet::Detail::Auto,
            },
        }),
        TestnetCommand::Ui { dir, listen } => testnet::ui(&testnet::UiOptions {
            dir: dir.path.clone(),
            listen: *listen,
        }),
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
        TestnetCommand::Trace { dir, id } => testnet::trace(&testnet::TraceOptions {
            dir: dir.path.clone(),
            id: id.clone(),
        }),
        TestnetCommand::Kill { dir, node } => testnet::kill(&dir.path, &node.node),
        TestnetCommand::Start { dir, node, timeout } => {
            testnet::start(&dir.path, &node.node, Duration::from_secs(*timeout))
        }
        TestnetCommand::Partition { dir, groups } => testnet::partition(&dir.path, groups),
        TestnetCommand::Heal { dir } => testnet::heal(&dir.path),
        TestnetCommand::Router { dir } => {
            testnet::hosts::run_router(&testnet::hosts::RouterOptions {
                dir: dir.path.clone(),
            })
        }
    }
}
