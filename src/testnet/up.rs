//! `testnet up`: creates the nodes' data directories, starts one `startnode` process per node and
//! returns once every node is connected to the central node and on its tip (`ready.rs` says
//! when). The central node starts first, the others once it is ready. On a timeout, a node
//! that exits, or Ctrl-C ([`stop_on_ctrl_c`]), every process started is stopped again.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gossipcoin_proto::message::Role;
use tracing::{debug, warn};

use super::hosts::{self, HostsRecord, Names, Wan};
use super::ready::{Progress, Started, stop, wait_ready};
use super::{LOG_FILE, NodeRecord, OUT_FILE, State, table};
use crate::api::ADDR_FILE as API_ADDR_FILE;
use crate::config::API_PORT_OFFSET;
use crate::node::ADDR_FILE;

/// Set by [`stop_on_ctrl_c`]'s handler: `up` stops waiting, and stops what it started.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C (or SIGTERM) arrived during `up`.
pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Makes Ctrl-C and SIGTERM interrupt `up` instead of killing it: the nodes run in their own
/// process groups (the terminal's SIGINT does not reach them), so a killed `up` would leave
/// them running unseen. Returns once the handler is in place.
pub fn stop_on_ctrl_c() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let _ = ready_tx.send(());
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\nInterrupted: stopping the nodes `testnet up` started...");
        });
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));
}

/// `startnode`'s API flags for `node`.
fn api_args(node: &NodeRecord) -> Vec<String> {
    vec![
        "--api-listen".into(),
        format!("{}:{}", node.listen_ip(), node.api_port),
    ]
}

/// What `testnet up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub miners: u16,
    pub wallets: u16,
    /// The central node's P2P port; the others follow it, APIs listen 1000 higher.
    pub base_port: u16,
    /// How long to wait for every node to be connected and synced.
    pub timeout: Duration,
    /// A chain parameters file for every node (`--params`).
    pub params: Option<PathBuf>,
    /// `--block-interval`: ASERT aiming at this many seconds between blocks, written with the
    /// other parameters to `<dir>/params.toml` for every node.
    pub block_interval_secs: Option<u32>,
    /// Print the "what next" hints after the table.
    pub hints: bool,
    /// Each node in its own network namespace (`--hosts`), with these WAN conditions.
    pub hosts: Option<Wan>,
    /// Every node relays payments without a fee (`--min-fee-rate 0`), remembered in
    /// `<dir>/free_relay` for restarts: the seed's scenario spends whole balances.
    pub free_relay: bool,
}

/// The marker file of a testnet whose nodes run with `--min-fee-rate 0`.
pub const FREE_RELAY_FILE: &str = "free_relay";

/// The testnet to start in `dir`: central, miners, wallets on consecutive ports, none running.
fn plan(dir: &Path, miners: u16, wallets: u16, base_port: u16) -> Result<State> {
    let mut nodes = vec![("central".to_string(), Role::Central)];
    nodes.extend((1..=miners).map(|i| (format!("miner-{i}"), Role::Miner)));
    nodes.extend((1..=wallets).map(|i| (format!("wallet-{i}"), Role::Wallet)));
    let nodes = nodes
        .into_iter()
        .enumerate()
        .map(|(i, (name, role))| {
            let p2p_port = u16::try_from(i)
                .ok()
                .and_then(|i| base_port.checked_add(i))
                .filter(|&p| p > 0);
            let api_port = p2p_port.and_then(|p| p.checked_add(API_PORT_OFFSET));
            let (Some(p2p_port), Some(api_port)) = (p2p_port, api_port) else {
                bail!(
                    "--base-port {base_port} leaves no room for {name}: ports up to \
                     {base_port} + nodes + {API_PORT_OFFSET} must stay below 65536"
                );
            };
            let node_dir = dir.join(&name);
            Ok(NodeRecord {
                log: node_dir.join(LOG_FILE),
                ip: None,
                dir: node_dir,
                name,
                role,
                pid: None,
                p2p_port,
                api_port,
                p2p_addr: None,
                peer_id: None,
                address: None,
            })
        })
        .collect::<Result<_>>()?;
    Ok(State {
        nodes,
        ..State::default()
    })
}

/// Runs `testnet up`.
pub fn up(opts: &UpOptions) -> Result<()> {
    let begun = Instant::now();
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let dir = opts.dir.canonicalize()?;
    let mut state = plan(&dir, opts.miners, opts.wallets, opts.base_port)?;
    state.params = opts
        .params
        .as_ref()
        .map(|p| p.canonicalize())
        .transpose()
        .context("cannot find the --params file")?;
    if let Some(wan) = &opts.hosts {
        hosts::check_can_make_hosts(true)?;
        for (i, node) in state.nodes.iter_mut().enumerate() {
            node.ip = Some(hosts::node_ip(i)?);
        }
        let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
        wan.links(&names)?; // the groups name nodes that exist, before anything is made
        state.hosts = Some(HostsRecord {
            tag: Names::of_dir(&dir).tag,
            wan: wan.is_active().then(|| wan.clone()),
            router_pid: None,
        });
    }
    refuse_if_running(&opts.dir, &dir, &state)?;
    if state.hosts.is_none() {
        check_ports(&state)?;
    }
    let marker = dir.join(FREE_RELAY_FILE);
    if opts.free_relay {
        std::fs::write(&marker, "nodes run with --min-fee-rate 0\n")
            .with_context(|| format!("cannot write {}", marker.display()))?;
    } else if marker.exists() {
        std::fs::remove_file(&marker)
            .with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    // one parameters file for the whole testnet, where the central node records the genesis
    let written = super::params::prepare(state.params.as_deref(), opts.block_interval_secs, &dir)?;
    state.params = Some(written);

    let exe = std::env::current_exe().context("cannot find the gossipcoin binary")?;
    let params = state.params.clone();
    let params = params.as_deref();
    for node in &mut state.nodes {
        node.address = Some(prepare(&exe, node, params)?);
    }

    let deadline = begun + opts.timeout;
    let mut started = Vec::new();
    let network = match state.hosts.is_some() {
        true => hosts::network::create(&exe, &mut state, &dir, deadline),
        false => Ok(()),
    };
    let result = network.and_then(|()| start_all(&exe, &mut state, &dir, &mut started, deadline));
    if let Err(e) = result {
        stop(&mut started);
        for n in &mut state.nodes {
            n.pid = None;
        }
        state.save(&dir)?;
        if let Some(h) = &state.hosts
            && let Err(e) = hosts::network::remove(h)
        {
            warn!(target: "testnet", "cannot remove the testnet's network: {e:#}");
        }
        if interrupted() {
            bail!(
                "interrupted: stopped the {} node(s) `testnet up` had started; data and logs \
                 are kept in {}",
                started.len(),
                opts.dir.display()
            );
        }
        return Err(e);
    }
    for (record, node) in state.nodes.iter_mut().zip(&started) {
        record.peer_id = node.addr().map(|a| a.peer_id.clone());
        record.p2p_addr = node.addr().map(|a| a.addr.clone());
    }
    state.save(&dir)?;

    let tip = started[0].tip().map_or(0, |t| t.height);
    let secs = begun.elapsed().as_secs_f64();
    let count = state.nodes.len();
    debug!(target: "testnet", nodes = count, height = tip, secs, "testnet up");
    println!(
        "Testnet up in {} after {secs:.1}s: {count} nodes, connected, all at height {tip}.\n",
        opts.dir.display(),
    );
    print!("{}", summary(&state));
    if !opts.hints {
        return Ok(());
    }
    let d = opts.dir.display();
    println!(
        "\nThe nodes run in the background. Next:\n  gossipcoin testnet status --dir {d}\n  \
         gossipcoin testnet logs --dir {d} [--follow]\n  gossipcoin testnet down --dir {d}"
    );
    Ok(())
}

/// The table `up` prints.
fn summary(state: &State) -> String {
    let rows: Vec<Vec<String>> = state
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.role.to_string(),
                n.peer_id.clone().unwrap_or_else(|| "-".into()),
                n.p2p_addr.clone().unwrap_or_else(|| "-".into()),
                n.api_url(),
                n.log.display().to_string(),
            ]
        })
        .collect();
    table(
        &["node", "role", "peer id", "p2p address", "api", "log"],
        &rows,
    )
}

/// Refuses when a recorded process still runs or a daemon holds a node directory's lock.
fn refuse_if_running(shown: &Path, dir: &Path, plan: &State) -> Result<()> {
    let recorded = State::load(dir)?.unwrap_or_default();
    let mut busy = Vec::new();
    let mut checked = HashSet::new();
    for n in &recorded.nodes {
        if let Some(pid) = super::process::lock_holder(&n.dir, n.pid) {
            busy.push(format!("{pid} ({})", n.name));
            checked.insert(n.dir.as_path());
        }
    }
    let dirs = recorded
        .nodes
        .iter()
        .map(|n| &n.dir)
        .chain(plan.nodes.iter().map(|p| &p.dir));
    for d in dirs {
        if checked.insert(d.as_path()) && crate::node::is_running(d) {
            let lock = d.join(crate::node::LOCK_FILE);
            busy.push(format!("unknown, holding {}", lock.display()));
        }
    }
    if !busy.is_empty() {
        bail!(
            "a testnet is already running in {} (pids {}); run `gossipcoin testnet down --dir {}` first",
            shown.display(),
            busy.join(", "),
            shown.display()
        );
    }
    Ok(())
}

/// Fails, naming the port, when another process listens on one of the nodes' ports.
fn check_ports(plan: &State) -> Result<()> {
    let mut held = Vec::new();
    for node in &plan.nodes {
        for (port, what) in [(node.p2p_port, "P2P"), (node.api_port, "API")] {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => held.push(l),
                Err(e) => bail!(
                    "port {port} on 127.0.0.1 ({what} port of {}) is in use: {e}; pick another \
                     --base-port",
                    node.name
                ),
            }
        }
    }
    Ok(())
}

/// Makes the node's data directory, its wallet, and for the central node the chain; returns the
/// node's address. Directories of an earlier testnet are reused as they are.
fn prepare(exe: &Path, node: &NodeRecord, params: Option<&Path>) -> Result<String> {
    std::fs::create_dir_all(&node.dir)
        .with_context(|| format!("cannot create {}", node.dir.display()))?;
    let address = if node.dir.join(crate::wallet::file::WALLET_FILE).exists() {
        let out = run(exe, &node.dir, params, &["listaddresses"])?;
        out.lines().next().map(str::to_string)
    } else {
        let out = run(exe, &node.dir, params, &["createwallet"])?;
        out.trim()
            .strip_prefix("Your new address: ")
            .map(str::to_string)
    };
    let address = address.with_context(|| format!("no address in {}'s wallet", node.name))?;
    if node.role == Role::Central && !crate::store::Store::exists(node.dir.join("chain")) {
        run(
            exe,
            &node.dir,
            params,
            &["createblockchain", "--address", &address],
        )?;
    }
    // A node killed earlier leaves these behind; no daemon runs here (checked), so they are stale.
    for stale in [ADDR_FILE, API_ADDR_FILE] {
        let _ = std::fs::remove_file(node.dir.join(stale));
    }
    Ok(address)
}

/// Runs one short `gossipcoin` command on a node's data directory; returns its stdout.
fn run(exe: &Path, dir: &Path, params: Option<&Path>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("--data-dir").arg(dir);
    if let Some(p) = params {
        cmd.arg("--params").arg(p);
    }
    let out = cmd
        .env("RUST_LOG", "warn")
        .env_remove("NODE_ID")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run gossipcoin {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`gossipcoin {} --data-dir {}` failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts the central node, waits until it is ready, then starts and waits for the others.
/// Every process started is pushed on `started`, and recorded in the state file at once.
fn start_all(
    exe: &Path,
    state: &mut State,
    dir: &Path,
    started: &mut Vec<Started>,
    deadline: Instant,
) -> Result<()> {
    let mut progress = Progress::new();
    for i in 0..state.nodes.len() {
        if interrupted() {
            bail!("interrupted");
        }
        let node = &state.nodes[i];
        let offset = std::fs::metadata(&node.log).map_or(0, |m| m.len());
        let child = spawn(exe, state, i)?;
        debug!(target: "testnet", node = %node.name, pid = child.id(), port = node.p2p_port, "started node");
        started.push(Started::new(i, node, child, offset));
        state.nodes[i].pid = Some(started[i].pid());
        state.save(dir)?;
        if i == 0 {
            wait_ready(started, deadline, &mut progress)?;
        }
    }
    wait_ready(started, deadline, &mut progress)?;
    progress.done();
    Ok(())
}

/// The nodes node `i` bootstraps from: the central node, and up to two nodes started before it
/// (spread pseudo-randomly), as DNS seeds hand Bitcoin nodes several addresses. With the
/// network's genesis in the parameters any of them can hand it over, and a newcomer that the
/// central node evicts when its inbound slots are full (past ~117 nodes) still has a way in.
fn seeds(i: usize) -> Vec<usize> {
    let mut seeds = vec![0];
    for k in [7919u64, 104_729] {
        let mixed = ((i as u64) ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
        let s = (mixed % i.max(1) as u64) as usize;
        if s != 0 && !seeds.contains(&s) {
            seeds.push(s);
        }
    }
    seeds
}

/// Starts `startnode` for `node`, detached from the terminal's process group.
pub(super) fn spawn(exe: &Path, state: &State, i: usize) -> Result<Child> {
    let params = state.params.as_deref();
    let out_path = state.nodes[i].dir.join(OUT_FILE);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .with_context(|| format!("cannot open {}", out_path.display()))?;
    let node = &state.nodes[i];
    let mut cmd = match &state.hosts {
        Some(h) => hosts::in_netns(&Names::from_tag(&h.tag), i, exe),
        None => Command::new(exe),
    };
    cmd.arg("startnode")
        .arg("--data-dir")
        .arg(&node.dir)
        .args(["--role", &node.role.to_string()])
        .args(["--listen", &node.multiaddr()]);
    if node.role != Role::Central {
        for seed in seeds(i) {
            cmd.args(["--bootstrap", &state.nodes[seed].multiaddr()]);
        }
    }
    if node.role == Role::Miner
        && let Some(address) = &node.address
    {
        cmd.args(["--miner-address", address]);
    }
    cmd.args(api_args(node));
    if node
        .dir
        .parent()
        .is_some_and(|d| d.join(FREE_RELAY_FILE).exists())
    {
        cmd.args(["--min-fee-rate", "0"]);
    }
    if let Some(p) = params {
        cmd.arg("--params").arg(p);
    }
    cmd.args(["--log-format", "json", "--log-file"])
        .arg(&node.log)
        .env("RUST_LOG", "info,libp2p_kad=error")
        .env_remove("NODE_ID")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group: Ctrl-C in this terminal does not reach the node.
        .process_group(0);
    cmd.spawn()
        .with_context(|| format!("cannot start {}", node.name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_are_the_central_node_and_earlier_nodes() {
        assert_eq!(super::seeds(1), vec![0]);
        for i in 2..400 {
            let s = super::seeds(i);
            assert_eq!(s[0], 0);
            assert!(s.len() <= 3 && s.iter().all(|&n| n < i), "{i}: {s:?}");
        }
        assert!((2..400).filter(|&i| super::seeds(i).len() == 3).count() > 300);
    }

    use super::*;

    #[test]
    fn the_plan_names_nodes_and_numbers_ports() {
        let p = plan(Path::new("/t"), 1, 2, 3000).unwrap().nodes;
        let got: Vec<(&str, Role, u16, u16)> = p
            .iter()
            .map(|n| (n.name.as_str(), n.role, n.p2p_port, n.api_port))
            .collect();
        assert_eq!(
            got,
            [
                ("central", Role::Central, 3000, 4000),
                ("miner-1", Role::Miner, 3001, 4001),
                ("wallet-1", Role::Wallet, 3002, 4002),
                ("wallet-2", Role::Wallet, 3003, 4003),
            ]
        );
        assert_eq!(p[3].dir, Path::new("/t/wallet-2"));
        assert_eq!(p[3].log, Path::new("/t/wallet-2/node.log"));
        assert_eq!(plan(Path::new("/t"), 0, 0, 3000).unwrap().nodes.len(), 1);
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let e = plan(Path::new("/t"), 1, 1, 64_536).unwrap_err().to_string();
        assert!(
            e.contains("--base-port 64536") && e.contains("central"),
            "{e}"
        );
        let e = plan(Path::new("/t"), 1, 1, 64_534).unwrap_err().to_string();
        assert!(e.contains("wallet-1"), "{e}");
        assert!(plan(Path::new("/t"), 0, 0, 0).is_err());
    }

    #[test]
    fn a_busy_port_is_named() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let p = plan(Path::new("/t"), 0, 0, port).unwrap();
        let e = check_ports(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("port {port} ")) && e.contains("central"),
            "{e}"
        );
    }
}
