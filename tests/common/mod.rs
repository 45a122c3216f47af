//! Helpers for tests that run the real `gossipcoin` binary in a temporary data directory.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gossipcoin")
}

/// A data directory and a way to run commands against it.
pub struct Node {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

/// What a command did.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Node {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("node");
        Self { _tmp: tmp, dir }
    }

    /// A command with `--data-dir` set, logs quiet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .env("RUST_LOG", "warn")
            .env_remove("NODE_ID");
        c
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().expect("spawn gossipcoin").into()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "`gossipcoin {}` failed:\n{}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "`gossipcoin {}` should have failed:\n{}",
            args.join(" "),
            r.stdout
        );
        r.stderr
    }

    /// `createwallet`, returning the new address.
    pub fn new_address(&self) -> String {
        let out = self.ok(&["createwallet"]);
        out.trim()
            .strip_prefix("Your new address: ")
            .expect("address line")
            .to_string()
    }

    /// The balance as printed by `getbalance`.
    pub fn balance(&self, address: &str) -> String {
        let out = self.ok(&["getbalance", "--address", address]);
        let prefix = format!("Balance of '{address}': ");
        out.trim()
            .strip_prefix(&prefix)
            .expect("balance line")
            .to_string()
    }

    /// Every file under the data directory with its bytes, to prove a failed command wrote nothing.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = std::fs::read_dir(p) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                // lock.mdb holds reader slots: it changes on every read by design.
                if path
                    .file_name()
                    .is_some_and(|n| n == "lock.mdb" || n == "wallet.lock")
                {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out.sort();
        out
    }
}
