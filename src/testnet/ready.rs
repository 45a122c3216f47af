//! How `testnet up` decides that its nodes are ready, watching each process from outside: it
//! still runs, it wrote `node.addr`, its log says "node started" and "peer connected" for the
//! central node, and its store (read-only) has the central node's tip. Also: stopping what was
//! started when that does not happen, and the progress line shown meanwhile.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gossipcoin_proto::message::Role;
use tracing::debug;

use super::logs::{Line, Tail};
use super::probe::{self, NodeAddr};
use super::{LOG_FILE, NodeRecord, OUT_FILE};
use crate::node::ADDR_FILE;
use crate::store::Tip;

/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(100);
/// How long stopped nodes get to exit cleanly when `up` gives up.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a failed node's log shown in the error.
const TAIL_LINES: usize = 20;

/// A node `up` started, and what it has shown of itself so far.
pub(super) struct Started {
    name: String,
    role: Role,
    dir: PathBuf,
    child: Child,
    log: Tail,
    seen: Seen,
}

/// What a node has shown of itself so far.
#[derive(Debug, Default)]
struct Seen {
    addr: Option<NodeAddr>,
    started: bool,
    /// Peer ids it logged "peer connected" for.
    peers: HashSet<String>,
    tip: Option<Tip>,
}

impl Started {
    /// Watches `child`, the process of `node`, whose log had `log_offset` bytes before it started.
    pub(super) fn new(index: usize, node: &NodeRecord, child: Child, log_offset: u64) -> Self {
        Self {
            name: node.name.clone(),
            role: node.role,
            dir: node.dir.clone(),
            log: Tail::new(index, node.log.clone(), log_offset),
            child,
            seen: Seen::default(),
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the node listens, once it has said so.
    pub(super) fn addr(&self) -> Option<&NodeAddr> {
        self.seen.addr.as_ref()
    }

    /// The node's tip, as last read.
    pub(super) fn tip(&self) -> Option<Tip> {
        self.seen.tip
    }

    /// Looks at the process, its files, new log lines and its store; fails if it exited.
    fn poll(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("exited early ({status})");
        }
        self.seen.addr = probe::node_addr(&self.dir);
        for entry in self.log.read_new(false)? {
            let Line::Event(e) = entry.line else { continue };
            match e.message.as_str() {
                "node started" => self.seen.started = true,
                "peer connected" => {
                    self.seen.peers.extend(e.field("peer").map(str::to_string));
                }
                _ => {}
            }
        }
        // The store may be half-created for an instant while the node adopts its genesis.
        match probe::chain_tip(&self.dir) {
            Ok(tip) => self.seen.tip = tip,
            Err(e) => debug!(target: "testnet", node = %self.name, "store not readable yet: {e:#}"),
        }
        Ok(())
    }
}

impl Seen {
    /// What a node of `role` that has shown this still lacks to be ready, or `None` when it
    /// is ready; `central` is what the central node has shown.
    fn waiting_for(&self, role: Role, central: &Seen) -> Option<String> {
        let is_central = role == Role::Central;
        if self.addr.is_none() {
            return Some(format!("its listen address ({ADDR_FILE})"));
        }
        if !is_central && self.tip.is_none() {
            return Some("the central node's genesis block".into());
        }
        if !self.started {
            return Some("its \"node started\" log line".into());
        }
        let central_peer = central.addr.as_ref().map(|a| a.peer_id.as_str());
        if !is_central && !central_peer.is_some_and(|p| self.peers.contains(p)) {
            return Some("a connection to the central node".into());
        }
        match (self.tip, central.tip) {
            (Some(t), Some(c)) if t.hash == c.hash => None,
            (Some(t), Some(c)) => Some(format!(
                "the central node's tip (at height {}, central at {})",
                t.height, c.height
            )),
            (None, _) => Some("a chain".into()),
            (Some(_), None) => Some("the central node's chain".into()),
        }
    }
}

/// Polls every started node (the central node first) until all are ready; on a timeout or an
/// exit, the error names the node and shows the end of its log.
pub(super) fn wait_ready(
    nodes: &mut [Started],
    deadline: Instant,
    progress: &mut Progress,
) -> Result<()> {
    loop {
        if super::up::interrupted() {
            progress.done();
            bail!("interrupted");
        }
        for node in nodes.iter_mut() {
            if let Err(e) = node.poll() {
                progress.done();
                bail!("node {} {e}{}", node.name, tails(&node.dir));
            }
        }
        let waiting: Vec<(&Started, String)> = nodes
            .iter()
            .filter_map(|n| Some((n, n.seen.waiting_for(n.role, &nodes[0].seen)?)))
            .collect();
        let Some((node, why)) = waiting.first() else {
            return Ok(());
        };
        progress.show(nodes.len() - waiting.len(), nodes.len(), &node.name, why);
        if Instant::now() >= deadline {
            progress.done();
            bail!(
                "node {} was not ready in time: still waiting for {why}{}",
                node.name,
                tails(&node.dir)
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The last lines of a node's log and of its stdout/stderr, for an error message.
fn tails(node_dir: &Path) -> String {
    let mut out = String::new();
    for file in [LOG_FILE, OUT_FILE] {
        let path = node_dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("\n--- last lines of {} ---\n", path.display()));
        for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Stops the processes `up` started: SIGTERM, a grace period, then SIGKILL; reaps them all.
pub(super) fn stop(nodes: &mut [Started]) {
    for n in nodes.iter() {
        let _ = super::process::terminate(n.pid());
    }
    let deadline = Instant::now() + STOP_GRACE;
    for n in nodes.iter_mut() {
        while matches!(n.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if matches!(n.child.try_wait(), Ok(None)) {
            let _ = n.child.kill();
        }
        let _ = n.child.wait();
        debug!(target: "testnet", node = %n.name, "stopped node");
    }
}

/// One line of progress on stderr while waiting, only when stderr is a terminal.
pub(super) struct Progress {
    on: bool,
    begun: Instant,
    shown: bool,
}

impl Progress {
    pub(super) fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            begun: Instant::now(),
            shown: false,
        }
    }

    fn show(&mut self, ready: usize, total: usize, name: &str, why: &str) {
        if !self.on {
            return;
        }
        let secs = self.begun.elapsed().as_secs_f64();
        eprint!("\r\x1b[2K[{secs:4.1}s] {ready}/{total} nodes ready; {name} waits for {why}");
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    /// Clears the progress line.
    pub(super) fn done(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipcoin_proto::BlockHash;

    fn seen(peer: &str, height: Option<u32>) -> Seen {
        Seen {
            addr: Some(NodeAddr {
                addr: format!("/ip4/127.0.0.1/tcp/3000/p2p/{peer}"),
                peer_id: peer.into(),
            }),
            started: true,
            peers: HashSet::new(),
            tip: height.map(|height| Tip {
                hash: BlockHash([height as u8; 32]),
                height,
                chain_work: Default::default(),
            }),
        }
    }

    #[test]
    fn a_node_is_ready_when_connected_to_the_central_node_and_on_its_tip() {
        let central = seen("C", Some(0));
        assert_eq!(central.waiting_for(Role::Central, &central), None);

        let mut wallet = seen("W", None);
        wallet.started = false;
        let why = |w: &Seen| w.waiting_for(Role::Wallet, &central).unwrap_or_default();
        assert_eq!(why(&wallet), "the central node's genesis block");
        wallet.tip = central.tip;
        assert_eq!(why(&wallet), "its \"node started\" log line");
        wallet.started = true;
        wallet.peers.insert("X".into()); // another peer is not the central node
        assert_eq!(why(&wallet), "a connection to the central node");
        wallet.peers.insert("C".into());
        assert_eq!(wallet.waiting_for(Role::Wallet, &central), None);

        let ahead = seen("C", Some(2));
        assert_eq!(
            wallet.waiting_for(Role::Wallet, &ahead).unwrap(),
            "the central node's tip (at height 0, central at 2)"
        );
        wallet.addr = None;
        assert!(why(&wallet).contains("node.addr"));
    }
}
