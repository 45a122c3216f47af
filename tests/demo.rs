//! `gossipcoin demo`, the README's first command: the seed's network scenario on a fresh local
//! testnet of three processes, ending with the seed's balance table and every process stopped.

mod common;

/// `gossipcoin demo --dir DIR`.
fn demo(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(common::bin());
    c.args(["demo", "--dir"]).arg(dir).env_remove("NODE_ID");
    c
}

/// Waits until none of the demo's three nodes holds its lock.
fn wait_all_stopped(dir: &std::path::Path) {
    for name in ["central", "miner-1", "wallet-1"] {
        common::wait_until(30, "every node to release its lock", || {
            !gossipcoin::node::is_running(&dir.join(name))
        });
    }
}

#[test]
fn demo_runs_the_seed_network_scenario_and_stops_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The seed's final balances, each next to what the seed says.
    for (name, balance) in [
        ("CENTRAL_NODE", "10"),
        ("WALLET_1", "9"),
        ("WALLET_2", "9"),
        ("WALLET_3", "1"),
        ("WALLET_4", "1"),
        ("MINER_WALLET", "10"),
    ] {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name) && l.split_whitespace().count() == 4)
            .unwrap_or_else(|| panic!("no balance row for {name}:\n{stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], balance, "{row}");
        assert_eq!(cols[3], balance, "{row}");
    }
    assert!(stdout.contains("[7/7]"), "{stdout}");
    assert!(stdout.contains("NODE 3002 log: mined block"), "{stdout}");
    // The commands shown can be typed again: with their data directory, and which real
    // port each seed node name stands for.
    assert!(
        stdout.contains("NODE 3001 $ gossipcoin createwallet --data-dir "),
        "{stdout}"
    );
    assert!(
        stdout.contains("NODE 3000 is central here: p2p port "),
        "{stdout}"
    );

    // Every node it started is stopped; their logs are kept.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap()).unwrap();
    let nodes = state["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert!(node["pid"].is_null(), "{node}");
        let log = std::path::Path::new(node["log"].as_str().unwrap());
        assert!(
            std::fs::metadata(log).unwrap().len() > 0,
            "{}",
            log.display()
        );
    }
    for name in ["central", "miner-1", "wallet-1"] {
        assert!(
            !gossipcoin::node::is_running(&dir.join(name)),
            "{name} still holds its lock"
        );
    }

    // A second demo in the same directory refuses.
    let again = demo(&dir).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a testnet"));
}

#[test]
fn ctrl_c_stops_every_node_the_demo_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = demo(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt as soon as all three nodes run.
    let state = dir.join("testnet.json");
    let pids = || -> Vec<u32> {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| {
                v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|n| n["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut seen = Vec::new();
    common::wait_until(60, "the demo's three nodes to start", || {
        seen = pids();
        seen.len() == 3
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    // Either the interrupt stopped it (130) or the demo had just finished (0): both stop all.
    assert!(matches!(exit.code(), Some(130) | Some(0)), "{exit:?}");
    wait_all_stopped(&dir);
    for pid in seen {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "node process {pid} survived the demo's Ctrl-C");
    }
}

#[test]
fn a_closed_stdout_stops_every_node_too() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = demo(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read until the nodes run, then go away like `gossipcoin demo | head`.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.contains("[2/7]") {
        line.clear();
    }
    assert!(
        line.contains("[2/7]"),
        "the demo ended before its nodes ran"
    );
    drop(out);
    child.wait().unwrap();
    wait_all_stopped(&dir);
}
