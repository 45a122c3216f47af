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

/// The devnet parameters with another `pow_bits` and fixed difficulty (tests mine many blocks
/// at once, which ASERT would make ever harder), written next to `node`; returns the path for
/// `--params`.
pub fn params_file(node: &Node, pow_bits: &str) -> String {
    let text = gossipcoin::params::DEVNET_TOML
        .replace("pow_bits = 0x1e0fffff", &format!("pow_bits = {pow_bits}"))
        .replace("retarget = \"asert\"", "retarget = \"fixed\"");
    let path = node.dir.with_extension("params.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A free TCP port on 127.0.0.1 (bound once, then released for the node to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The multiaddr of a loopback port.
pub fn addr(port: u16) -> String {
    format!("/ip4/127.0.0.1/tcp/{port}")
}

/// Polls `cond` every 100 ms until it holds (true) or `secs` pass (false).
pub fn poll_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Polls `cond` until it holds or `secs` pass; panics with `what` on timeout.
pub fn wait_until(secs: u64, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(secs, cond),
        "timed out after {secs}s waiting for {what}"
    );
}

/// A running `startnode` process; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
    pub dir: PathBuf,
}

impl Daemon {
    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The API's URL, once the node has written `api.addr`.
    pub fn api(&self) -> String {
        let file = self.dir.join("api.addr");
        wait_until(60, "the node's api.addr", || file.exists());
        std::fs::read_to_string(file).unwrap().trim().to_owned()
    }

    /// The cookie (`__cookie__:<hex>`) this node wrote.
    pub fn cookie(&self) -> String {
        std::fs::read_to_string(self.dir.join("api.cookie"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

impl Node {
    /// Starts `startnode` with `args` on this data directory, JSON logs into `<dir>/../<name>.log`.
    pub fn start(&self, args: &[&str]) -> Daemon {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = self.dir.with_extension("log");
        // The API's default port is the p2p port + 1000; free p2p ports from the OS may not
        // leave room for that, so tests let the OS pick the API's port too.
        let api: &[&str] = if args.contains(&"--api-listen") {
            &[]
        } else {
            &["--api-listen", "127.0.0.1:0"]
        };
        let child = self
            .cmd(&["startnode"])
            .args(args)
            .args(api)
            .args(["--log-format", "json", "--log-file"])
            .arg(&log)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn startnode");
        Daemon {
            child,
            log,
            dir: self.dir.clone(),
        }
    }

    /// The main-chain height, from `verifychain` (None when there is no chain yet).
    pub fn height(&self) -> Option<u32> {
        let r = self.run(&["verifychain"]);
        if !r.ok {
            return None;
        }
        r.stdout.lines().find_map(|l| {
            l.strip_prefix("Tip: height ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
    }

    /// Copies another node's chain directory into this one (the tutorial's `cp` of the db).
    pub fn copy_chain_from(&self, other: &Node) {
        std::fs::create_dir_all(self.dir.join("chain")).unwrap();
        let file = |n: &Node| n.dir.join("chain").join("data.mdb");
        std::fs::copy(file(other), file(self)).unwrap();
    }
}

/// An HTTP answer: status and body (parsed as JSON when it is JSON, else a JSON string).
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Http {
    let mut r = r.expect("HTTP request");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    Http { status, body, text }
}

/// `Authorization: Bearer <hex>` for a cookie `__cookie__:<hex>` (as the CLI sends it; the
/// basic-auth form of `curl -u` is covered by the unit tests of `api::auth`).
fn bearer(cookie: &str) -> String {
    let secret = cookie.split_once(':').map_or(cookie, |(_, s)| s);
    format!("Bearer {secret}")
}

/// `GET url`, with the cookie when given.
pub fn http_get(url: &str, cookie: Option<&str>) -> Http {
    let mut req = agent().get(url);
    if let Some(c) = cookie {
        req = req.header("Authorization", bearer(c));
    }
    answer(req.call())
}

/// `POST url` with a raw body and content type, with the cookie when given.
pub fn http_post(url: &str, body: &str, content_type: &str, cookie: Option<&str>) -> Http {
    let mut req = agent().post(url).header("Content-Type", content_type);
    if let Some(c) = cookie {
        req = req.header("Authorization", bearer(c));
    }
    answer(req.send(body))
}

/// Devnet parameters with the easiest target, so mining is instant; the file's path.
pub fn easy_params(node: &Node) -> String {
    params_file(node, "0x207fffff")
}

/// A wallet and a chain whose genesis pays its first address; that address.
pub fn funded(node: &Node, params: &str) -> String {
    let a = node.new_address();
    node.ok(&["--params", params, "createblockchain", "--address", &a]);
    a
}

/// A central node (no bootstrap peers) on a free port, with `extra` flags.
pub fn start_central(node: &Node, params: &str, extra: &[&str]) -> Daemon {
    let listen = addr(free_port());
    let mut args = vec!["--params", params, "--role", "central", "--listen", &listen];
    args.extend_from_slice(extra);
    node.start(&args)
}

/// Base units of an amount printed in coins ("8.9999954").
#[allow(dead_code)]
pub fn units(coins: &str) -> u64 {
    gossipcoin_proto::Amount::parse_coins(coins)
        .unwrap_or_else(|e| panic!("{coins:?} is not an amount: {e}"))
        .units()
}

/// Asserts `paid` is a fee a default payment pays: more than nothing (the node's floor is
/// 1 unit/vB) and under 10,000 units (a few hundred bytes at a few units/vB).
#[allow(dead_code)]
pub fn assert_default_fee(paid: u64) {
    assert!(
        (100..10_000).contains(&paid),
        "a default fee of {paid} units"
    );
}

/// Port ranges handed out to the tests of this binary, which run in parallel.
static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A base port such that `nodes` P2P ports from it, and the API ports 1000 higher, are free and
/// not handed to another test. Searched below 32768: the kernel takes the source ports of the
/// nodes' outgoing connections from the range above, which could steal a port between this check
/// and the node's start.
pub fn free_base(nodes: u16) -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut taken = TAKEN.lock().unwrap();
    for attempt in 0..500u32 {
        let base = 10_000 + ((seed / 7 + attempt * 211) % 20_000) as u16;
        let ports: Vec<u16> = (0..nodes)
            .flat_map(|i| [base + i, base + 1000 + i])
            .collect();
        let overlaps = ports.iter().any(|p| taken.contains(p));
        let free = || {
            ports
                .iter()
                .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        };
        if !overlaps && free() {
            taken.extend(&ports);
            return base;
        }
    }
    panic!("no {nodes} free consecutive ports found");
}
