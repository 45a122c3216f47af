//! `testnet kill NODE` and `testnet start NODE`: one node crashed on purpose (SIGKILL, as a
//! power cut would), and started again with the flags `up` gave it, while the others run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::process::{self, lock_holder, wait_until_gone};
use super::{NodeRecord, OUT_FILE, State, probe};
use crate::api::ADDR_FILE as API_ADDR_FILE;
use crate::node::ADDR_FILE;

/// How long a SIGKILLed node may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often `start` looks whether the node listens.
const POLL: Duration = Duration::from_millis(100);

/// The node called `name`, or an error listing the nodes there are.
fn find<'s>(state: &'s State, name: &str) -> Result<(usize, &'s NodeRecord)> {
    match state.nodes.iter().position(|n| n.name == name) {
        Some(i) => Ok((i, &state.nodes[i])),
        None => {
            let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "no node {name:?} in this testnet (nodes: {})",
                names.join(", ")
            )
        }
    }
}

/// Runs `testnet kill NODE`.
pub fn kill(dir: &Path, name: &str) -> Result<()> {
    let mut state = State::load_existing(dir)?;
    let (i, node) = find(&state, name)?;
    let Some(pid) = lock_holder(&node.dir, node.pid) else {
        bail!("{name} is not running (no process holds its node.lock)");
    };
    process::kill(pid).with_context(|| format!("cannot kill {name} (pid {pid})"))?;
    if !wait_until_gone(&[pid], KILL_WAIT).is_empty() {
        bail!(
            "{name} (pid {pid}) still runs {}s after SIGKILL",
            KILL_WAIT.as_secs()
        );
    }
    state.nodes[i].pid = None;
    state.save(dir)?;
    println!(
        "Killed {name} (pid {pid}) with SIGKILL. Start it again with `gossipcoin testnet start \
         {name} --dir {}`.",
        dir.display()
    );
    Ok(())
}

/// Runs `testnet start NODE`: refuses if it runs, starts it, returns once it listens (its
/// `node.addr` and `api.addr` written).
pub fn start(dir: &Path, name: &str, timeout: Duration) -> Result<()> {
    let mut state = State::load_existing(dir)?;
    let (i, node) = find(&state, name)?;
    if let Some(pid) = lock_holder(&node.dir, node.pid) {
        bail!("{name} already runs (pid {pid})");
    }
    for stale in [ADDR_FILE, API_ADDR_FILE] {
        let _ = std::fs::remove_file(node.dir.join(stale));
    }
    let exe = std::env::current_exe().context("cannot find the gossipcoin binary")?;
    let mut child = super::up::spawn(&exe, &state, i)?;
    let pid = child.id();
    state.nodes[i].pid = Some(pid);
    state.save(dir)?;
    let begun = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            state.nodes[i].pid = None;
            state.save(dir)?;
            let out =
                std::fs::read_to_string(node_dir(&state, i).join(OUT_FILE)).unwrap_or_default();
            bail!("{name} exited at once ({status}): {}", out.trim());
        }
        let node = &state.nodes[i];
        let addr = probe::node_addr(&node.dir);
        if let Some(addr) = addr
            && node.dir.join(API_ADDR_FILE).exists()
        {
            state.nodes[i].peer_id = Some(addr.peer_id);
            state.nodes[i].p2p_addr = Some(addr.addr);
            state.save(dir)?;
            break;
        }
        if begun.elapsed() > timeout {
            bail!(
                "{name} (pid {pid}) did not listen within {}s; see {}",
                timeout.as_secs(),
                node.log.display()
            );
        }
        std::thread::sleep(POLL);
    }
    println!(
        "Started {name} (pid {pid}) in {:.1}s; it rejoins through the central node. Watch it \
         with `gossipcoin testnet status --dir {}`.",
        begun.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

fn node_dir(state: &State, i: usize) -> &Path {
    &state.nodes[i].dir
}
