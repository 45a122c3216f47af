//! The network beyond the tutorial, across real processes: late joiners catch up, a fresh node
//! adopts the bootstrap's genesis, another network is refused, and the network survives the
//! central node's death. Blocks use an easy PoW target (`--params`) so chains build quickly.

mod common;
use common::{Daemon, Node, addr, easy_params, free_port, http_get, wait_until};

fn start(node: &Node, params: &str, role: &str, port: u16, extra: &[&str]) -> Daemon {
    let mut args = vec!["--params", params, "--role", role, "--listen"];
    let listen = addr(port);
    args.push(&listen);
    args.extend_from_slice(extra);
    node.start(&args)
}

#[test]
fn late_joiners_catch_up_and_a_fresh_node_adopts_genesis() {
    let (central, copied, fresh) = (Node::new(), Node::new(), Node::new());
    let params = easy_params(&central);
    let a = central.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &a]);
    copied.copy_chain_from(&central);
    central.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        "200",
        "--address",
        &a,
    ]);
    let p = free_port();
    let _central = start(&central, &params, "central", p, &[]);

    let boot = addr(p);
    let _copied = start(
        &copied,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    let fresh_node = start(
        &fresh,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    wait_until(120, "the copied node to reach height 200", || {
        copied.height() == Some(200)
    });
    wait_until(120, "the fresh node to reach height 200", || {
        fresh.height() == Some(200)
    });
    assert!(fresh_node.log_text().contains("adopted genesis block"));
    for node in [&copied, &fresh] {
        node.ok(&["verifychain"]);
        assert_eq!(node.balance(&a), "2010");
    }
}

#[test]
fn a_node_of_another_network_is_refused_and_nothing_of_it_is_stored() {
    let (ours, theirs, pinned) = (Node::new(), Node::new(), Node::new());
    let params = easy_params(&ours);
    let a = ours.new_address();
    ours.ok(&["--params", &params, "createblockchain", "--address", &a]);
    // each network has its own parameters file, where createblockchain records its genesis
    let their_params = easy_params(&theirs);
    let b = theirs.new_address();
    theirs.ok(&[
        "--params",
        &their_params,
        "createblockchain",
        "--address",
        &b,
    ]);
    theirs.ok(&[
        "--params",
        &their_params,
        "generate",
        "--blocks",
        "3",
        "--address",
        &b,
    ]);
    let our_genesis = ours
        .ok(&["printchain"])
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .to_string();

    let p = free_port();
    let our_node = start(&ours, &params, "central", p, &[]);
    let boot = addr(p);
    let their_node = start(
        &theirs,
        &their_params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    wait_until(60, "the other network's node to be refused", || {
        our_node.log_text().contains("another network")
            || their_node.log_text().contains("another network")
    });
    assert_eq!(ours.height(), Some(0));
    assert_eq!(theirs.height(), Some(3));
    let report = ours.ok(&["verifychain"]);
    assert!(report.contains("Index entries: 1,"), "{report}");

    // A fresh node pinned to another genesis refuses this one and stays empty.
    let other = "11".repeat(32);
    // (parameters without a genesis: --genesis alone names the network)
    let pinned_params = easy_params(&pinned);
    let pinned_node = start(
        &pinned,
        &pinned_params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot, "--genesis", &other],
    );
    // it reached our node (which lists it) and was answered "no such block" for its genesis
    let pinned_addr = pinned.dir.join("node.addr");
    wait_until(30, "the pinned node's address", || pinned_addr.exists());
    let text = std::fs::read_to_string(&pinned_addr).unwrap();
    let pinned_id = text.trim().rsplit('/').next().unwrap().to_string();
    wait_until(60, "the pinned node connected to ours", || {
        http_get(
            &format!("{}/peers", our_node.api()),
            Some(&our_node.cookie()),
        )
        .body["peers"]
            .as_array()
            .is_some_and(|peers| peers.iter().any(|p| p["peer_id"] == pinned_id.as_str()))
    });
    assert_eq!(pinned.height(), None);
    drop(pinned_node);
    assert_eq!(pinned.height(), None, "nothing adopted before it stopped");
    assert_ne!(our_genesis, other);
}

#[test]
fn miner_and_wallet_keep_going_when_the_central_node_dies() {
    let (central, miner, wallet) = (Node::new(), Node::new(), Node::new());
    let params = easy_params(&central);
    let w1 = wallet.new_address();
    let w2 = wallet.new_address();
    let m = miner.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &w1]);
    central.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        "2",
        "--address",
        &w1,
    ]);
    miner.copy_chain_from(&central);
    wallet.copy_chain_from(&central);

    let p = free_port();
    let central_node = start(&central, &params, "central", p, &[]);
    let boot = addr(p);
    let miner_node = start(
        &miner,
        &params,
        "miner",
        free_port(),
        &["--bootstrap", &boot, "--miner-address", &m],
    );
    let wp = free_port();
    let wallet_node = start(&wallet, &params, "wallet", wp, &["--bootstrap", &boot]);
    // The miner and the wallet node find each other through the central node (kad).
    let peer_id = |d: &Daemon| {
        http_get(&format!("{}/status", d.api()), Some(&d.cookie())).body["peer_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let peers_of = |d: &Daemon| {
        http_get(&format!("{}/peers", d.api()), Some(&d.cookie())).body["peers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let (miner_id, wallet_id) = (peer_id(&miner_node), peer_id(&wallet_node));
    wait_until(90, "miner and wallet to connect to each other", || {
        peers_of(&miner_node).contains(&wallet_id) && peers_of(&wallet_node).contains(&miner_id)
    });
    central_node.kill();

    // Two payments through the wallet's own daemon; the miner mines them; the wallet node
    // receives the block.
    for amount in ["1", "2"] {
        let out = wallet.ok(&[
            "--params",
            &params,
            "send",
            "--from",
            &w1,
            "--to",
            &w2,
            "--amount",
            amount,
            "--node",
            &addr(wp),
        ]);
        assert!(out.starts_with("Success!"), "{out}");
    }
    wait_until(90, "the wallet node to receive the miner's block", || {
        wallet.height() == Some(3)
    });
    assert_eq!(wallet.balance(&w2), "3");
    // The sender paid the two payments' default fees (to the miner).
    let fees = common::units("27") - common::units(&wallet.balance(&w1));
    common::assert_default_fee(fees / 2);
    assert_eq!(miner.height(), Some(3));
}

/// Issue 10: a node killed with SIGKILL in the middle of its initial sync (blocks committed
/// several per write transaction) leaves a store `verifychain` accepts, and resumes where it
/// stopped when started again.
#[test]
fn sigkill_during_batched_initial_sync_leaves_a_store_that_resumes() {
    const BLOCKS: u32 = 10_000;
    let (central, fresh) = (Node::new(), Node::new());
    let params = easy_params(&central);
    let a = central.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &a]);
    fresh.copy_chain_from(&central);
    let blocks = BLOCKS.to_string();
    central.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        &blocks,
        "--address",
        &a,
    ]);
    let p = free_port();
    let _central = start(&central, &params, "central", p, &[]);
    let boot = addr(p);
    let syncing = start(
        &fresh,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    let api = syncing.api();
    let height = |api: &str| {
        let status = common::http_get(&format!("{api}/status"), None);
        status.body["height"].as_u64().map(|h| h as u32)
    };
    // Polled closely: the whole sync takes about a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let seen = loop {
        let h = height(&api).unwrap_or(0);
        if h > 0 {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    syncing.kill();
    assert!(
        seen < BLOCKS,
        "the sync finished before it could be interrupted"
    );
    fresh.ok(&["verifychain"]); // fails unless every cross-table invariant holds
    let stopped_at = fresh.height().expect("a chain after the kill");
    assert!(
        stopped_at >= seen,
        "committed blocks were lost: {stopped_at} < {seen}"
    );

    let _again = start(
        &fresh,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    wait_until(120, "the restarted node to finish the sync", || {
        fresh.height() == Some(BLOCKS)
    });
    fresh.ok(&["verifychain"]);
    assert_eq!(fresh.balance(&a), central.balance(&a));
}
