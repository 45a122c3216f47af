//! `testnet down`: SIGTERM to every recorded node that runs, a grace period (polled), SIGKILL for
//! whoever is left; the pids are cleared from `testnet.json`. With `--hosts`, then the router is
//! stopped and every namespace and link of the testnet removed (also when a crash left them
//! without a state file). Data directories and logs stay.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tracing::{debug, warn};

use super::hosts::{self, Names, network};
use super::process::{self, wait_until_gone};
use super::{State, table};

/// How long a SIGKILLed process may take to disappear before `down` reports it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What `testnet down` stops.
#[derive(Debug, Clone)]
pub struct DownOptions {
    pub dir: PathBuf,
    /// How long the nodes get to shut down cleanly before SIGKILL.
    pub timeout: Duration,
}

/// What happened to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NotRunning,
    Stopped,
    Killed,
    /// Still running after SIGKILL (or could not be signalled).
    Survived,
}

impl Outcome {
    fn text(self, timeout: Duration) -> String {
        match self {
            Self::NotRunning => "was not running".into(),
            Self::Stopped => "stopped".into(),
            Self::Killed => format!(
                "killed (still running {}s after SIGTERM)",
                timeout.as_secs()
            ),
            Self::Survived => "STILL RUNNING after SIGKILL".into(),
        }
    }
}

/// Runs `testnet down`.
pub fn down(opts: &DownOptions) -> Result<()> {
    let begun = Instant::now();
    if State::load(&opts.dir)?.is_none()
        && let Some(removed) = remove_orphan_network(&opts.dir)?
    {
        println!(
            "No testnet.json in {}, but its network was left over: removed {}.",
            opts.dir.display(),
            removed.join(", ")
        );
        return Ok(());
    }
    let Stopped {
        state,
        outcomes,
        running,
        survivors,
    } = stop_all(opts)?;
    let rows: Vec<Vec<String>> = state
        .nodes
        .iter()
        .zip(&outcomes)
        .map(|(n, o)| vec![n.name.clone(), o.text(opts.timeout)])
        .collect();
    print!("{}", table(&["node", "result"], &rows));
    let secs = begun.elapsed().as_secs_f64();
    debug!(target: "testnet", stopped = running, secs, "testnet down");
    if !survivors.is_empty() {
        bail!("processes {survivors:?} are still running after SIGKILL");
    }
    if let Some(hosts) = &state.hosts {
        let removed = network::remove(hosts)?;
        println!(
            "Removed the testnet's network: {} namespaces and links ({}).",
            removed.len(),
            hosts.tag
        );
    }
    if running == 0 {
        println!("Nothing to stop: no node of this testnet was running.");
    } else {
        println!(
            "Testnet down in {secs:.1}s: {running} node(s) stopped. Data and logs are kept in {}.",
            opts.dir.display()
        );
    }
    Ok(())
}

/// Like [`down`], printing nothing: for clean-up paths where stdout may be gone (a closed pipe,
/// a panic unwinding, Ctrl-C).
pub fn down_quietly(opts: &DownOptions) -> Result<()> {
    let stopped = stop_all(opts)?;
    if !stopped.survivors.is_empty() {
        bail!(
            "processes {:?} are still running after SIGKILL",
            stopped.survivors
        );
    }
    if let Some(hosts) = &stopped.state.hosts {
        network::remove(hosts)?;
    }
    Ok(())
}

/// With no state file: the namespaces and links named after `dir`, removed when there are
/// any (a testnet whose `testnet.json` was lost); `None` when there are none, or no `ip`.
fn remove_orphan_network(dir: &std::path::Path) -> Result<Option<Vec<String>>> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(None);
    };
    let names = Names::of_dir(&dir);
    let Ok(left) = hosts::leftovers(&names) else {
        return Ok(None);
    };
    if left.is_empty() {
        return Ok(None);
    }
    hosts::teardown(&names).map(Some)
}

/// What [`stop_all`] did.
struct Stopped {
    state: State,
    outcomes: Vec<Outcome>,
    /// How many nodes were running.
    running: usize,
    survivors: Vec<u32>,
}

/// SIGTERM to every running node, SIGKILL after the timeout; records the stopped pids.
fn stop_all(opts: &DownOptions) -> Result<Stopped> {
    let mut state = State::load_existing(&opts.dir)?;
    let mut outcomes = vec![Outcome::NotRunning; state.nodes.len()];
    let running: Vec<(usize, u32)> = state
        .nodes
        .iter()
        .enumerate()
        // Only the process holding the node's lock: a recorded pid may belong to another
        // program by now, and a node restarted by hand has another pid.
        .filter_map(|(i, n)| process::lock_holder(&n.dir, n.pid).map(|p| (i, p)))
        .collect();
    for &(i, pid) in &running {
        outcomes[i] = match process::terminate(pid) {
            Ok(()) => Outcome::Stopped,
            Err(e) => {
                warn!(target: "testnet", node = %state.nodes[i].name, pid, "cannot signal: {e}");
                Outcome::Survived
            }
        };
    }
    let pids: Vec<u32> = running.iter().map(|&(_, p)| p).collect();
    let left = wait_until_gone(&pids, opts.timeout);
    for &(i, pid) in running.iter().filter(|(_, p)| left.contains(p)) {
        outcomes[i] = Outcome::Killed;
        if let Err(e) = process::kill(pid) {
            warn!(target: "testnet", node = %state.nodes[i].name, pid, "cannot kill: {e}");
        }
    }
    let survivors = wait_until_gone(&left, KILL_WAIT);
    for &(i, _) in running.iter().filter(|(_, p)| survivors.contains(p)) {
        outcomes[i] = Outcome::Survived;
    }
    for (node, outcome) in state.nodes.iter_mut().zip(&outcomes) {
        if *outcome != Outcome::Survived {
            node.pid = None;
        }
    }
    state.save(&opts.dir)?;
    Ok(Stopped {
        state,
        outcomes,
        running: running.len(),
        survivors,
    })
}
