//! `gossipcoin demo`, the README's first command: the seed's network scenario on a fresh local
//! testnet of three processes, ending with the seed's balance table and every process stopped.

mod common;

#[test]
fn demo_runs_the_seed_network_scenario_and_stops_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = std::process::Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(&dir)
        .env_remove("NODE_ID")
        .output()
        .unwrap();
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
    let again = std::process::Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a testnet"));
}
