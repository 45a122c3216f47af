//! The life of one testnet's network: made by `up --hosts` (bridge, namespaces, and the router
//! when there are WAN conditions) and removed by `down` (router stopped, namespaces and links
//! deleted, then checked gone).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::debug;

use super::router::{OUT_FILE, READY_FILE};
use super::{HostsRecord, Names, claim, leftovers, setup, teardown};
use crate::testnet::State;
use crate::testnet::process::{self, wait_until_gone};

/// How often the router's readiness is looked at.
const POLL: Duration = Duration::from_millis(50);
/// How long the router gets to stop after SIGTERM.
const ROUTER_STOP: Duration = Duration::from_secs(5);

/// Makes the network of `state.hosts` (after removing this testnet's own leftovers, refusing
/// another's) and starts the router if there are WAN conditions; records it in the state file.
pub fn create(exe: &Path, state: &mut State, dir: &Path, deadline: Instant) -> Result<()> {
    let Some(hosts) = state.hosts.clone() else {
        return Ok(());
    };
    let names = Names::from_tag(&hosts.tag);
    claim(&names, dir)?;
    state.save(dir)?; // from here on, `down` knows what to remove
    let begun = Instant::now();
    setup(&names, dir, state.nodes.len())?;
    debug!(target: "testnet", nodes = state.nodes.len(), tag = %names.tag,
           secs = begun.elapsed().as_secs_f64(), "network namespaces made");
    if hosts.wan.is_none() {
        return Ok(());
    }
    let _ = std::fs::remove_file(dir.join(READY_FILE));
    let out = std::fs::File::create(dir.join(OUT_FILE))
        .with_context(|| format!("cannot write {}", dir.join(OUT_FILE).display()))?;
    let mut child = Command::new(exe)
        .args(["testnet", "router", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("cannot start the router")?;
    if let Some(h) = state.hosts.as_mut() {
        h.router_pid = Some(child.id());
    }
    state.save(dir)?;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = std::fs::read_to_string(dir.join(OUT_FILE)).unwrap_or_default();
            bail!("the router exited at once ({status}): {}", out.trim());
        }
        if dir.join(READY_FILE).exists() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the router was not ready in time; see {}",
                dir.join(OUT_FILE).display()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Stops the router and removes every namespace and link of the testnet; fails if any is left.
/// Returns what it removed.
pub fn remove(hosts: &HostsRecord) -> Result<Vec<String>> {
    if let Some(pid) = hosts.router_pid.filter(|&p| is_router(p)) {
        process::terminate(pid)?;
        if !wait_until_gone(&[pid], ROUTER_STOP).is_empty() {
            process::kill(pid)?;
            wait_until_gone(&[pid], ROUTER_STOP);
        }
    }
    let names = Names::from_tag(&hosts.tag);
    let removed = teardown(&names)?;
    let left = leftovers(&names)?;
    if !left.is_empty() {
        bail!("could not remove {}", left.join(", "));
    }
    Ok(removed)
}

/// Whether `pid` runs `gossipcoin testnet router` (a recorded pid may be another program's now).
fn is_router(pid: u32) -> bool {
    process::is_running(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"router"))
}
