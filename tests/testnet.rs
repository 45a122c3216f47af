//! `gossipcoin testnet up|status|logs|down` with the real binary: a four-node network that mines a
//! payment, a second `up` refused, a SIGKILLed node shown as down, failed starts that leave no
//! process behind, and clear errors where there is no testnet.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, bin, free_base, wait_until};

/// Whether `pid` is a running process: `kill -0` finds it and Linux does not report it as a
/// zombie (the nodes outlive `testnet up`, their parent, and a container's PID 1 may reap them
/// seconds late, or never: an exited node can stay a zombie, which holds no memory, socket or
/// lock).
fn running(pid: u32) -> bool {
    let found = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rfind(')')
        .is_some_and(|i| matches!(stat[i + 1..].split_whitespace().next(), Some("Z" | "X")));
    found && !zombie
}

/// Whether a daemon holds the node directory's `node.lock`.
fn locked(node_dir: &Path) -> bool {
    std::fs::File::open(node_dir.join("node.lock"))
        .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// One row of `testnet status`.
#[derive(Debug)]
struct Row {
    node: String,
    pid: String,
    process: String,
    height: String,
    state: String,
}

/// A testnet directory on free ports. Dropping it runs `testnet down`, then SIGKILLs any pid
/// it ever saw that still runs, so a failing test leaves no process behind.
struct Net {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: u16,
    seen_pids: Vec<u32>,
}

impl Net {
    fn new(nodes: u16) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("testnet");
        Self {
            _tmp: tmp,
            dir,
            base: free_base(nodes),
            seen_pids: Vec::new(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("testnet")
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .env("RUST_LOG", "warn")
            .env_remove("NODE_ID")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "`testnet {}` failed:\n{}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// `testnet up` on this net's ports; remembers the pids for the drop guard.
    fn up(&mut self, args: &[&str]) -> Run {
        let base = self.base.to_string();
        let mut all = vec!["up", "--base-port", &base];
        if !args.contains(&"--timeout") {
            all.extend(["--timeout", "120"]);
        }
        all.extend(args);
        let r = self.run(&all);
        self.seen_pids
            .extend(self.pids().into_iter().map(|(_, p)| p));
        r
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("testnet.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// (node name, pid) of every node with a recorded pid.
    fn pids(&self) -> Vec<(String, u32)> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("testnet.json")) else {
            return vec![];
        };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| Some((n["name"].as_str()?.to_string(), n["pid"].as_u64()? as u32)))
            .collect()
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn address(&self, name: &str) -> String {
        let state = self.state();
        let node = state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap();
        node["address"].as_str().unwrap().to_string()
    }

    fn status(&self) -> Vec<Row> {
        let out = self.ok(&["status"]);
        out.lines()
            .skip(1)
            .take_while(|l| !l.is_empty()) // the tips and partition follow a blank line
            .map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                assert!(cells.len() >= 9, "status row: {l}");
                Row {
                    node: cells[0].into(),
                    pid: cells[2].into(),
                    process: cells[3].into(),
                    height: cells[4].into(),
                    state: cells[8..].join(" "),
                }
            })
            .collect()
    }

    /// Runs a `gossipcoin` command (not `testnet`) that must succeed.
    fn gossipcoin(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("NODE_ID")
            .output()
            .unwrap();
        let r: Run = out.into();
        assert!(
            r.ok,
            "`gossipcoin {}` failed:\n{}",
            args.join(" "),
            r.stderr
        );
        r.stdout
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() && self.dir.join("testnet.json").exists() {
            let status = self.run(&["status"]);
            eprintln!("--- testnet status ---\n{}{}", status.stdout, status.stderr);
            let logs = self.run(&["logs"]);
            let lines: Vec<&str> = logs.stdout.lines().collect();
            eprintln!("--- last lines of testnet logs ---");
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
        if self.dir.join("testnet.json").exists() {
            let _ = self.run(&["down", "--timeout", "5"]);
        }
        let pids = self
            .seen_pids
            .iter()
            .copied()
            .chain(self.pids().into_iter().map(|(_, p)| p));
        for pid in pids.collect::<HashSet<_>>() {
            if running(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

const FOUR: [&str; 4] = ["central", "miner-1", "wallet-1", "wallet-2"];

#[test]
fn a_testnet_comes_up_mines_a_payment_merges_its_logs_and_goes_down() {
    let mut net = Net::new(4);
    let up = net.up(&["--miners", "1", "--wallets", "2"]);
    assert!(up.ok, "testnet up failed:\n{}{}", up.stdout, up.stderr);

    // The table: one row per node, with its peer id in the P2P address.
    let rows: Vec<&str> = up
        .stdout
        .lines()
        .filter(|l| FOUR.iter().any(|n| l.starts_with(&format!("{n} "))))
        .collect();
    assert_eq!(rows.len(), 4, "{}", up.stdout);
    for (row, name) in rows.iter().zip(FOUR) {
        assert!(row.starts_with(name), "{row}");
        assert!(row.contains("/p2p/12D3KooW"), "{row}");
        assert!(row.contains(&format!("{name}/node.log")), "{row}");
    }
    assert!(
        up.stdout.contains("gossipcoin testnet down --dir"),
        "{}",
        up.stdout
    );
    let pids = net.pids();
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|&(_, p)| running(p)));

    // Every node up at the genesis height.
    let status = net.status();
    assert_eq!(
        status.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
        FOUR
    );
    for r in &status {
        assert_eq!(
            (r.process.as_str(), r.height.as_str()),
            ("up", "0"),
            "{r:?}"
        );
        assert_eq!(r.state, "synced", "{r:?}");
    }

    // Two payments from the central node's genesis coins, submitted to the central daemon; the
    // miner mines them (two transactions fill its block) and every node gets the block.
    let central = net.node_dir("central");
    let (from, to) = (net.address("central"), net.address("wallet-1"));
    for _ in 0..2 {
        let out = net.gossipcoin(&[
            "send",
            "--data-dir",
            central.to_str().unwrap(),
            "--from",
            &from,
            "--to",
            &to,
            "--amount",
            "1",
        ]);
        assert!(out.starts_with("Success!"), "{out}");
    }
    wait_until(120, "every node at height 1", || {
        net.status().iter().all(|r| r.height == "1")
    });
    let wallet_1 = net.node_dir("wallet-1");
    let balance = net.gossipcoin(&[
        "getbalance",
        "--data-dir",
        wallet_1.to_str().unwrap(),
        "--address",
        &to,
    ]);
    assert_eq!(balance.trim(), format!("Balance of '{to}': 2"));

    // The merged logs: all four nodes, in time order.
    let logs = net.ok(&["logs"]);
    let nodes: BTreeSet<&str> = logs
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(nodes, FOUR.into_iter().collect(), "nodes in the merged log");
    let times: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(times.len() > 20, "{logs}");
    assert!(
        times.iter().all(|t| t.len() == 27 && t.ends_with('Z')),
        "{logs}"
    );
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "not in time order:\n{logs}"
    );
    let miner = net.ok(&["logs", "--node", "miner-1"]);
    assert!(miner.lines().all(|l| l.starts_with("miner-1 ")), "{miner}");
    assert!(miner.contains("mined block"), "{miner}");
    let started = net.ok(&["logs", "--grep", "node started"]);
    assert_eq!(started.lines().count(), 4, "{started}");
    let warnings = net.ok(&["logs", "--level", "warn"]);
    assert!(!warnings.contains(" INFO "), "{warnings}");
    let unknown = net.run(&["logs", "--node", "miner-9"]);
    assert!(
        !unknown.ok && unknown.stderr.contains("no node \"miner-9\""),
        "{}",
        unknown.stderr
    );

    // `logs --follow` shows what the nodes log while they stop.
    let mut follow = net
        .cmd(&["logs", "--follow", "--grep", "node stopping"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Down: every node stopped, nothing left running, data and logs kept.
    let down = net.ok(&["down"]);
    for name in FOUR {
        assert!(
            down.lines()
                .any(|l| l.starts_with(name) && l.contains("stopped")),
            "{down}"
        );
    }
    for (name, pid) in &pids {
        assert!(!running(*pid), "{name} (pid {pid}) still runs after down");
        assert!(
            !locked(&net.node_dir(name)),
            "{name}'s node.lock still held"
        );
        assert!(net.node_dir(name).join("chain").join("data.mdb").is_file());
        assert!(net.node_dir(name).join("node.log").is_file());
    }
    assert!(net.pids().is_empty(), "pids cleared: {}", net.state());
    assert!(
        net.status()
            .iter()
            .all(|r| r.process == "down" && r.state == "down")
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stopping = BTreeSet::new();
    while stopping.len() < 4 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            stopping.insert(
                line.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(stopping, FOUR.into_iter().map(String::from).collect());

    // Down again: nothing to stop, not an error.
    let again = net.ok(&["down"]);
    assert!(again.contains("Nothing to stop"), "{again}");
}

#[test]
fn a_second_up_is_refused_and_a_killed_node_shows_down() {
    let mut net = Net::new(3);
    let up = net.up(&["--miners", "1", "--wallets", "1"]);
    assert!(up.ok, "testnet up failed:\n{}{}", up.stdout, up.stderr);
    let pids = net.pids();
    assert_eq!(pids.len(), 3);

    let second = net.up(&["--miners", "1", "--wallets", "1"]);
    assert!(!second.ok, "the second up should fail:\n{}", second.stdout);
    assert!(
        second.stderr.contains("a testnet is already running in")
            && second.stderr.contains(&pids[0].1.to_string())
            && second.stderr.contains("gossipcoin testnet down --dir"),
        "{}",
        second.stderr
    );
    assert_eq!(net.pids(), pids, "the second up changed the state file");
    let status = net.status();
    assert!(status.iter().all(|r| r.process == "up"), "{status:?}");

    let (name, pid) = &pids[1];
    assert_eq!(name, "miner-1");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until(20, "miner-1 to show as down", || {
        net.status()
            .iter()
            .any(|r| r.node == "miner-1" && r.process == "down" && r.state == "down")
    });
    let status = net.status();
    let others: Vec<&Row> = status.iter().filter(|r| r.node != "miner-1").collect();
    assert!(others.iter().all(|r| r.process == "up"), "{status:?}");
    let miner = status.iter().find(|r| r.node == "miner-1").unwrap();
    assert_eq!(miner.pid, "-", "no process holds its lock: {miner:?}");

    // Started again while the others run; then crashed on purpose.
    let out = net.ok(&["start", "miner-1"]);
    assert!(out.starts_with("Started miner-1"), "{out}");
    net.seen_pids.extend(net.pids().into_iter().map(|(_, p)| p));
    let restarted = net
        .pids()
        .into_iter()
        .find(|(n, _)| n == "miner-1")
        .unwrap()
        .1;
    assert!(running(restarted) && restarted != *pid);
    let err = net.run(&["start", "miner-1"]);
    assert!(
        !err.ok && err.stderr.contains("already runs"),
        "{}",
        err.stderr
    );
    let row = net
        .status()
        .into_iter()
        .find(|r| r.node == "miner-1")
        .unwrap();
    assert_eq!(
        (row.process.as_str(), row.pid.clone()),
        ("up", restarted.to_string())
    );
    let out = net.ok(&["kill", "miner-1"]);
    assert!(out.contains("SIGKILL"), "{out}");
    assert!(!running(restarted));

    let down = net.ok(&["down"]);
    assert!(
        down.lines()
            .any(|l| l.starts_with("miner-1") && l.contains("was not running")),
        "{down}"
    );
    assert!(pids.iter().all(|&(_, p)| !running(p)));

    // A recorded pid that another program took since is neither shown as the node nor
    // signalled by `down`.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let mut state = net.state();
    state["nodes"][0]["pid"] = sleeper.id().into();
    std::fs::write(
        net.dir.join("testnet.json"),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
    let central = net.status().into_iter().next().unwrap();
    assert_eq!(
        (central.process.as_str(), central.pid.as_str()),
        ("down", "-")
    );
    let down = net.ok(&["down"]);
    assert!(down.contains("Nothing to stop"), "{down}");
    assert!(
        running(sleeper.id()),
        "down signalled a process that is not the node"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_failed_up_names_the_node_and_leaves_no_process() {
    // A timeout: nothing can be ready at once.
    let mut net = Net::new(2);
    let r = net.up(&["--miners", "0", "--wallets", "1", "--timeout", "0"]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("node central was not ready in time"),
        "{}",
        r.stderr
    );
    assert!(net.pids().is_empty(), "{}", net.state());
    assert!(!locked(&net.node_dir("central")));

    // A node that cannot start: wallet-1's store is garbage. The central node was started first
    // and is stopped again.
    let mut net = Net::new(2);
    let chain = net.node_dir("wallet-1").join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::write(chain.join("data.mdb"), b"not an LMDB file").unwrap();
    let r = net.up(&["--miners", "0", "--wallets", "1"]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("node wallet-1 exited early"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("wallet-1/node.out ---"),
        "the tail of its output: {}",
        r.stderr
    );
    assert!(net.pids().is_empty(), "{}", net.state());
    assert!(!locked(&net.node_dir("central")) && !locked(&net.node_dir("wallet-1")));
}

#[test]
fn a_busy_port_is_named_and_nothing_starts() {
    let net = Net::new(2);
    let _busy = std::net::TcpListener::bind(("127.0.0.1", net.base + 1)).unwrap();
    let base = net.base.to_string();
    let r = net.run(&[
        "up",
        "--base-port",
        &base,
        "--miners",
        "1",
        "--wallets",
        "0",
    ]);
    assert!(!r.ok);
    let port = (net.base + 1).to_string();
    assert!(
        r.stderr.contains(&format!("port {port} ")) && r.stderr.contains("miner-1"),
        "{}",
        r.stderr
    );
    assert!(net.pids().is_empty());
}

#[test]
fn commands_without_a_testnet_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["down"][..], &["status"], &["logs"]] {
        let r: Run = Command::new(bin())
            .arg("testnet")
            .args(args)
            .arg("--dir")
            .arg(tmp.path())
            .output()
            .unwrap()
            .into();
        assert!(!r.ok, "testnet {args:?} should fail");
        assert!(
            r.stderr.contains("no testnet in") && r.stderr.contains("testnet up --dir"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// The txid in `Success! txid <txid> ...`.
fn txid_of(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "txid")
        .nth(1)
        .unwrap_or_else(|| panic!("no txid in {out:?}"))
        .to_string()
}

#[test]
fn a_payment_is_traced_across_every_node() {
    let mut net = Net::new(3);
    let up = net.up(&["--miners", "1", "--wallets", "1"]);
    assert!(up.ok, "testnet up failed:\n{}{}", up.stdout, up.stderr);
    let dir = |n: &str| net.node_dir(n).to_str().unwrap().to_string();
    let (central, miner) = (dir("central"), dir("miner-1"));
    let (from, to) = (net.address("central"), net.address("wallet-1"));
    let out = net.gossipcoin(&[
        "send",
        "--data-dir",
        &central,
        "--from",
        &from,
        "--to",
        &to,
        "--amount",
        "2",
    ]);
    let txid = txid_of(&out);
    wait_until(60, "the payment in the miner's mempool", || {
        net.gossipcoin(&["mempool", "--data-dir", &miner])
            .contains(&txid)
    });
    net.gossipcoin(&["mine", "--data-dir", &miner]);
    let wallet = dir("wallet-1");
    // "confirmations", not "confirmed": a transaction in the mempool is shown "unconfirmed".
    wait_until(60, "the payment confirmed on wallet-1", || {
        // not `contains("confirmed")`: "unconfirmed" contains it
        net.gossipcoin(&["gettransaction", &txid, "--data-dir", &wallet])
            .contains("confirmations  1")
    });
    let shown = net.gossipcoin(&["gettransaction", &txid, "--data-dir", &wallet]);
    assert!(
        shown.contains("confirmations  1") && shown.contains(&format!("2 to {to}")),
        "{shown}"
    );
    // Every node logs the block (the INFO events trace needs) before the trace is read.
    wait_until(60, "every node at height 1", || {
        net.status().iter().all(|r| r.height == "1")
    });

    let begun = Instant::now();
    let trace = net.ok(&["trace", &txid]);
    eprintln!(
        "testnet trace on 3 nodes took {:.3}s\n{trace}",
        begun.elapsed().as_secs_f64()
    );
    assert!(trace.contains("submitted"), "{trace}");
    assert!(trace.contains("mined block"), "{trace}");
    // The per-node table: every node with the block, where from, and a delay in seconds.
    let table: Vec<&str> = trace
        .lines()
        .skip_while(|l| !l.starts_with("node "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 3, "{trace}");
    for name in ["central", "miner-1", "wallet-1"] {
        let row = table.iter().find(|l| l.starts_with(name)).unwrap();
        let delay = row.split_whitespace().last().unwrap();
        assert!(
            delay.ends_with('s') && delay.trim_end_matches('s').parse::<f64>().is_ok(),
            "{name} has no block delay: {row}"
        );
    }
    assert!(trace.contains("reached 3 of 3 nodes"), "{trace}");
    assert!(
        trace.contains("from miner-1"),
        "node names, not peer ids: {trace}"
    );

    // The merged logs name nodes instead of peer ids, and follow the txid into its block.
    let logs = net.ok(&["logs", "--grep", &txid]);
    assert!(logs.contains("confirmed transaction"), "{logs}");
    assert!(logs.contains("from=central"), "{logs}");
}

#[test]
fn a_partition_forks_the_chain_and_healing_joins_it_again() {
    let mut net = Net::new(4);
    let up = net.up(&["--miners", "2", "--wallets", "1"]);
    assert!(up.ok, "testnet up failed:\n{}{}", up.stdout, up.stderr);
    let dir = |n: &str| net.node_dir(n).to_str().unwrap().to_string();
    let out = net.ok(&["partition", "central,miner-1", "miner-2,wallet-1"]);
    assert!(out.contains("central,miner-1 | miner-2,wallet-1"), "{out}");
    // The central node keeps only its own side: miner-1.
    wait_until(30, "the central node to keep only miner-1", || {
        net.gossipcoin(&["status", "--data-dir", &dir("central")])
            .contains("peers       1\n")
    });

    // A miner on each side: one block on one side, two on the other.
    net.gossipcoin(&["mine", "--data-dir", &dir("miner-1")]);
    net.gossipcoin(&["mine", "--data-dir", &dir("miner-2")]);
    net.gossipcoin(&["mine", "--data-dir", &dir("miner-2")]);
    wait_until(60, "two tips, each side at its own height", || {
        let h: Vec<String> = net.status().into_iter().map(|r| r.height).collect();
        h == ["1", "1", "2", "2"]
    });
    let status = net.ok(&["status"]);
    assert!(
        status.contains("FORK: the running nodes are on 2 tips"),
        "{status}"
    );
    assert!(
        status.contains("PARTITIONED: central,miner-1 | miner-2,wallet-1"),
        "{status}"
    );

    let healed = Instant::now();
    let out = net.ok(&["heal"]);
    // Each of the 4 nodes had banned the 2 of the other side.
    assert!(out.starts_with("Healed: 8 bans lifted"), "{out}");
    wait_until(60, "one tip after the heal", || {
        net.ok(&["status"])
            .contains("one tip: 4 running node(s) at height 2")
    });
    eprintln!(
        "heal to one tip on 4 nodes: {:.2}s",
        healed.elapsed().as_secs_f64()
    );
    assert!(!net.ok(&["status"]).contains("PARTITIONED"));
}

#[test]
fn ctrl_c_during_up_stops_the_nodes_it_started() {
    let net = Net::new(3);
    let base = net.base.to_string();
    let child = net
        .cmd(&[
            "up",
            "--base-port",
            &base,
            "--miners",
            "1",
            "--wallets",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = HashSet::new();
    wait_until(60, "up to start its first node", || {
        seen.extend(net.pids().into_iter().map(|(_, p)| p));
        !seen.is_empty()
    });
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    seen.extend(net.pids().into_iter().map(|(_, p)| p));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("interrupted: stopped the"), "{stderr}");
    for pid in &seen {
        assert!(!running(*pid), "pid {pid} still runs after Ctrl-C");
    }
    assert!(net.pids().is_empty(), "pids left in testnet.json");
}

#[test]
fn a_block_interval_gives_every_node_asert_at_that_spacing() {
    let mut net = Net::new(2);
    let r = net.up(&["--miners", "0", "--wallets", "1", "--block-interval", "0s"]);
    assert!(!r.ok && r.stderr.contains("1 s or more"), "{}", r.stderr);
    assert!(net.pids().is_empty());

    let up = net.up(&["--miners", "0", "--wallets", "1", "--block-interval", "5s"]);
    assert!(up.ok, "testnet up failed:\n{}{}", up.stdout, up.stderr);
    let written = net.dir.canonicalize().unwrap().join("params.toml");
    let text = std::fs::read_to_string(&written).unwrap();
    let params = gossipcoin::params::ChainParams::from_toml(&text).unwrap();
    assert_eq!(params.retarget, gossipcoin::params::Retarget::Asert);
    assert_eq!(params.target_spacing_secs, 5);
    assert_eq!(
        net.state()["params"].as_str(),
        written.to_str(),
        "recorded for `start`"
    );
    // Every node runs with it.
    for (name, pid) in net.pids() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let at = args.iter().position(|a| a == "--params");
        assert_eq!(
            at.and_then(|i| args.get(i + 1)).map(String::as_str),
            written.to_str(),
            "{name}: {args:?}"
        );
    }
    net.ok(&["down"]);
}
