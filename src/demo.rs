//! `gossipcoin demo`: the seed's network scenario (`000_*.txt`) on a fresh local testnet of
//! three real processes — NODE 3000 the central node, NODE 3001 a wallet node, NODE 3002 the
//! miner — narrated step by step as the seed tells it. Every step is this same binary run as a
//! separate command against a node's data directory, printed as a user would type it; the
//! running daemons do the work (the CLI goes through their HTTP APIs). At the end: the seed's
//! balance table, and where the logs are. Every process it started is stopped, on success, on
//! failure and on Ctrl-C.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::testnet::{self, DownOptions, NodeRecord, State, UpOptions};

/// How long a step may wait for the network (a sync, a block to be mined).
const STEP_DEADLINE: Duration = Duration::from_secs(90);

/// Runs the scenario in `dir` (default: a new temporary directory), which keeps the stopped
/// testnet's data and logs afterwards.
pub fn run(dir: Option<&Path>) -> Result<()> {
    let began = Instant::now();
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("gossipcoin-demo-{}", std::process::id())),
    };
    if testnet::State::load(&dir)?.is_some() {
        bail!(
            "{} already holds a testnet: choose another --dir (or remove it)",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).context("cannot create the demo directory")?;
    let dir = dir.canonicalize()?;
    stop_on_ctrl_c(dir.clone());
    // Also when a panic unwinds, e.g. printing to a closed pipe (`gossipcoin demo | head`).
    let _guard = StopOnDrop(dir.clone());
    let result = scenario(&dir, began);
    let stopped = testnet::down(&DownOptions {
        dir: dir.clone(),
        timeout: Duration::from_secs(10),
    });
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("Interrupted; logs kept in {}", dir.display());
        std::process::exit(130);
    }
    match &result {
        Ok(()) => println!("\nDemo finished in {:.1} s.", began.elapsed().as_secs_f64()),
        Err(e) => println!("\nDemo FAILED: {e:#}"),
    }
    println!(
        "Logs: {0}/<node>/node.log, all merged in time order: gossipcoin testnet logs --dir {0}",
        dir.display()
    );
    result.and(stopped.map_err(|e| anyhow!("could not stop the testnet: {e:#}")))
}

/// Stops the demo's nodes, quietly, when dropped.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if State::path(&self.0).exists() {
            let _ = testnet::down_quietly(&DownOptions {
                dir: self.0.clone(),
                timeout: Duration::from_secs(10),
            });
        }
    }
}

/// Set once Ctrl-C arrived: the steps that fail because their nodes were stopped are not the
/// demo's failure, and the exit code is 130 whichever thread exits first.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// On Ctrl-C: stop the testnet's nodes (they run in their own process groups, so the terminal's
/// SIGINT does not reach them), then exit 130.
fn stop_on_ctrl_c(dir: PathBuf) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\nInterrupted: stopping the demo's nodes...");
            let _ = testnet::down_quietly(&DownOptions {
                dir: dir.clone(),
                timeout: Duration::from_secs(10),
            });
            eprintln!("Logs kept in {}", dir.display());
            std::process::exit(130);
        }
    });
}

/// One node of the story: its testnet record and the seed's name for it.
struct Actor<'a> {
    node: &'a NodeRecord,
    seed_name: &'static str,
}

impl Actor<'_> {
    /// Runs `gossipcoin ARGS --data-dir <node>`, printing the command and its output.
    fn gc(&self, args: &[&str]) -> Result<String> {
        // As it can be typed again: the data directory included.
        println!(
            "  {} $ gossipcoin {} --data-dir {}",
            self.seed_name,
            args.join(" "),
            self.node.dir.display()
        );
        let exe = std::env::current_exe().context("cannot find the gossipcoin binary")?;
        let out = Command::new(exe)
            .args(args)
            .arg("--data-dir")
            .arg(&self.node.dir)
            .env("RUST_LOG", "warn")
            .env_remove("NODE_ID")
            .output()
            .with_context(|| format!("cannot run gossipcoin {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in stdout.lines() {
            println!("  {}   {line}", " ".repeat(self.seed_name.len()));
        }
        if !out.status.success() {
            bail!(
                "`gossipcoin {}` on {} failed: {}",
                args.join(" "),
                self.node.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    fn new_address(&self) -> Result<String> {
        let out = self.gc(&["createwallet"])?;
        out.trim()
            .strip_prefix("Your new address: ")
            .map(str::to_owned)
            .context("createwallet printed no address")
    }

    /// The main-chain height, read from the node's store.
    fn height(&self) -> Option<u32> {
        use crate::store::{ChainRead, Store};
        let store = Store::open_read_only(self.node.dir.join("chain")).ok()?;
        Some(store.read().ok()?.tip().ok()??.height)
    }

    fn balance(&self, address: &str) -> Result<String> {
        let out = self.gc(&["getbalance", "--address", address])?;
        out.trim()
            .rsplit(": ")
            .next()
            .map(str::to_owned)
            .context("getbalance printed no balance")
    }
}

/// Waits until every actor's height is `height`, showing progress on a terminal.
fn wait_for_height(actors: &[&Actor], height: u32, what: &str) -> Result<()> {
    let began = Instant::now();
    let tty = std::io::stderr().is_terminal();
    loop {
        let heights: Vec<Option<u32>> = actors.iter().map(|a| a.height()).collect();
        if heights.iter().all(|h| *h == Some(height)) {
            if tty {
                eprint!("\r\x1b[K");
            }
            return Ok(());
        }
        if began.elapsed() > STEP_DEADLINE {
            let seen: Vec<String> = actors
                .iter()
                .zip(&heights)
                .map(|(a, h)| {
                    format!(
                        "{} at {}",
                        a.seed_name,
                        h.map_or("-".into(), |h| h.to_string())
                    )
                })
                .collect();
            bail!(
                "timed out after {}s waiting for {what} (height {height}): {}",
                STEP_DEADLINE.as_secs(),
                seen.join(", ")
            );
        }
        if tty {
            eprint!(
                "\r  waiting for {what}... {:.0} s",
                began.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn step(n: u32, text: &str) {
    let mut lines = vec![format!("[{n}/7]")];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if last.len() + 1 + word.len() > 96 {
            lines.push(format!("      {word}"));
        } else {
            last.push(' ');
            last.push_str(word);
        }
    }
    println!("\n{}", lines.join("\n"));
}

fn scenario(dir: &Path, began: Instant) -> Result<()> {
    println!("# gossipcoin demo: the seed's network scenario on three real processes\n");
    step(
        1,
        "Start the network. NODE 3000 is the central node: it creates the chain, whose genesis \
         block pays CENTRAL_NODE. NODE 3001 is a wallet node, NODE 3002 the miner (MINER_WALLET). \
         The other two join NODE 3000 and download its chain. (The seed starts the miner last, \
         once the wallet node has synced; here all three start now, the miner before the wallet node, and the order \
         does not matter: each node downloads the chain when it joins.)",
    );
    testnet::up(&UpOptions {
        dir: dir.to_path_buf(),
        miners: 1,
        wallets: 1,
        base_port: free_base_port(3)?,
        timeout: Duration::from_secs(60),
        params: None,
        block_interval_secs: None,
        hints: false,
        hosts: None,
        free_relay: true,
    })
    .context("step 1 (starting the network)")?;
    let state = State::load_existing(dir)?;
    let find = |name: &str| {
        state
            .node(name)
            .ok_or_else(|| anyhow!("the testnet has no {name}"))
    };
    let central = Actor {
        node: find("central")?,
        seed_name: "NODE 3000",
    };
    let wallet = Actor {
        node: find("wallet-1")?,
        seed_name: "NODE 3001",
    };
    let miner = Actor {
        node: find("miner-1")?,
        seed_name: "NODE 3002",
    };
    let central_addr = central
        .node
        .address
        .clone()
        .context("the central node has no address")?;
    let miner_addr = miner
        .node
        .address
        .clone()
        .context("the miner has no address")?;
    println!("  CENTRAL_NODE = {central_addr}\n  MINER_WALLET = {miner_addr}");
    for actor in [&central, &wallet, &miner] {
        println!(
            "  {} is {} here: p2p port {}, API {}, data in {}",
            actor.seed_name,
            actor.node.name,
            actor.node.p2p_port,
            actor.node.api_url(),
            actor.node.dir.display()
        );
    }
    println!("  (up in {:.1} s)", began.elapsed().as_secs_f64());

    step(
        2,
        "NODE 3001 creates wallets WALLET_1, WALLET_2, WALLET_3 (and WALLET_4 for later).",
    );
    let w: Vec<String> = (0..4)
        .map(|_| wallet.new_address())
        .collect::<Result<_>>()
        .context("step 2 (creating wallets)")?;
    let (w1, w2, w3, w4) = (&w[0], &w[1], &w[2], &w[3]);

    step(
        3,
        "NODE 3000 sends 10 coins to WALLET_1 and 10 to WALLET_2, mining each block at once \
         itself (the seed's `-mine`, from when its miner had not started). The miner already \
         runs here, but it waits for two payments, so these one-payment blocks are NODE 3000's. \
         Each block pays CENTRAL_NODE the 10-coin reward. (The seed's payments spend whole \
         balances and pay no fee, so this testnet's nodes run with --min-fee-rate 0; a node's \
         default is 1 unit/vB, and `send` then pays the node's estimate.)",
    );
    for (i, to) in [w1, w2].into_iter().enumerate() {
        central
            .gc(&[
                "send",
                "--from",
                &central_addr,
                "--to",
                to,
                "--amount",
                "10",
            ])
            .and_then(|_| central.gc(&["mine", "--address", &central_addr]))
            .with_context(|| format!("step 3 (payment {} from CENTRAL_NODE)", i + 1))?;
    }

    step(
        4,
        "NODE 3001 syncs: it downloads both blocks from the central node.",
    );
    wait_for_height(
        &[&central, &wallet, &miner],
        2,
        "every node to hold both blocks",
    )
    .context("step 4 (the wallet node syncing)")?;
    for (name, a) in [
        ("WALLET_1", w1),
        ("WALLET_2", w2),
        ("CENTRAL_NODE", &central_addr),
    ] {
        let b = wallet.balance(a)?;
        if b != "10" {
            bail!("step 4: {name} has {b} on NODE 3001, the seed says 10");
        }
    }

    step(
        5,
        "NODE 3001 sends 1 coin from WALLET_1 to WALLET_3 and 1 from WALLET_2 to WALLET_4, \
         without -mine: its node relays both transactions over gossipsub.",
    );
    wallet
        .gc(&["send", "--from", w1, "--to", w3, "--amount", "1"])
        .and_then(|_| wallet.gc(&["send", "--from", w2, "--to", w4, "--amount", "1"]))
        .context("step 5 (payments from the wallet node)")?;

    step(
        6,
        "NODE 3002, the miner, sees two transactions in its mempool, mines a block with both \
         (subsidy to MINER_WALLET) and relays it; NODE 3001 and NODE 3000 accept it.",
    );
    wait_for_height(
        &[&central, &wallet, &miner],
        3,
        "the miner's block on every node",
    )
    .context("step 6 (the miner mining both payments)")?;
    if let Some(line) = log_line(&miner.node.log, "mined block") {
        println!("  NODE 3002 log: {line}");
    }
    if let Some(line) = log_line(&wallet.node.log, "accepted block") {
        println!("  NODE 3001 log: {line}");
    }

    step(7, "The balances, as the seed ends, read on NODE 3001:");
    let expected = [
        ("CENTRAL_NODE", &central_addr, "10"),
        ("WALLET_1", w1, "9"),
        ("WALLET_2", w2, "9"),
        ("WALLET_3", w3, "1"),
        ("WALLET_4", w4, "1"),
        ("MINER_WALLET", &miner_addr, "10"),
    ];
    let mut rows = Vec::new();
    for (name, address, want) in expected {
        let got = wallet.balance(address)?;
        rows.push((name, address.clone(), got, want));
    }
    println!(
        "\n  {:<13} {:<35} {:>8} {:>6}",
        "wallet", "address", "balance", "seed"
    );
    for (name, address, got, want) in &rows {
        let mark = if got == want { "" } else { "  <-- differs" };
        println!("  {name:<13} {address:<35} {got:>8} {want:>6}{mark}");
    }
    if let Some((name, _, got, want)) = rows.iter().find(|(_, _, g, w)| g != w) {
        bail!("step 7: {name} has {got}, the seed says {want}");
    }
    Ok(())
}

/// The last line of a node's JSON log whose message is `message`, as `message k=v ...`.
fn log_line(log: &Path, message: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("message")?.as_str()? != message {
            return None;
        }
        let fields: Vec<String> = v
            .as_object()?
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "message" | "timestamp" | "level" | "target"))
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect();
        Some(format!("{message} {}", fields.join(" ")))
    })
}

/// A base port with `n` consecutive p2p ports and their API ports (+1000) free.
fn free_base_port(n: u16) -> Result<u16> {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base > 60000 {
            continue;
        }
        if (0..n).all(|i| free(base + i) && free(base + i + 1000)) {
            return Ok(base);
        }
    }
    bail!("could not find {n} free consecutive loopback ports for the demo")
}
