//! Two miners mining at once on a five-node network (central, two miners, two wallets): blocks
//! race, branches compete, and every node must end on the same most-work tip, with every coin
//! accounted for (total = subsidies of the main chain) and every payment confirmed.

mod common;
use common::{Daemon, Node, addr, free_port, wait_until};

/// A target that takes tens of thousands of hashes: fast, yet slow enough that the two miners
/// sometimes find competing blocks before hearing of each other's.
fn params(node: &Node) -> String {
    common::params_file(node, "0x1f00ffff")
}

/// A miner role file that mines every transaction at once.
fn eager_miner(node: &Node) -> String {
    let text = "role = \"miner\"\n[mining]\nmin_txs = 1\nmax_wait_secs = 1\nthreads = 1\n";
    let path = node.dir.with_extension("miner.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn tip(node: &Node) -> Option<String> {
    let r = node.run(&["verifychain"]);
    r.ok.then(|| r.stdout.lines().next().unwrap_or_default().to_string())
}

#[test]
fn two_miners_race_and_every_node_converges_on_the_most_work_tip() {
    let central = Node::new();
    let (m1, m2, w1, w2) = (Node::new(), Node::new(), Node::new(), Node::new());
    let params = params(&central);
    let payer = w1.new_address();
    let payee = w2.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &payer]);
    central.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        "2",
        "--address",
        &payer,
    ]);
    for n in [&m1, &m2, &w1, &w2] {
        n.copy_chain_from(&central);
    }
    let p = free_port();
    let boot = addr(p);
    let mut daemons: Vec<Daemon> =
        vec![central.start(&["--params", &params, "--role", "central", "--listen", &boot])];
    for m in [&m1, &m2] {
        let a = m.new_address();
        let config = eager_miner(m);
        daemons.push(m.start(&[
            "--params",
            &params,
            "--role",
            "miner",
            "--config",
            &config,
            "--miner-address",
            &a,
            "--listen",
            &addr(free_port()),
            "--bootstrap",
            &boot,
        ]));
    }
    let wallet_port = free_port();
    daemons.push(w1.start(&[
        "--params",
        &params,
        "--role",
        "wallet",
        "--listen",
        &addr(wallet_port),
        "--bootstrap",
        &boot,
    ]));
    daemons.push(w2.start(&[
        "--params",
        &params,
        "--role",
        "wallet",
        "--listen",
        &addr(free_port()),
        "--bootstrap",
        &boot,
    ]));
    let nodes = [&central, &m1, &m2, &w1, &w2];
    wait_until(60, "every node to connect", || {
        daemons
            .iter()
            .all(|d| d.log_text().contains("peer connected"))
    });

    // Payments of 1 coin through the wallet's own daemon, one at a time, each mined by whichever
    // miner is faster (often both).
    let wallet_addr = addr(wallet_port);
    let pay = || {
        let args = [
            "--params", &params, "send", "--from", &payer, "--to", &payee, "--amount", "1",
        ];
        w1.ok(&[&args[..], &["--node", &wallet_addr]].concat())
    };
    let mut paid = 0;
    for round in 0..6 {
        let before = w1.height().unwrap();
        let out = pay();
        assert!(out.starts_with("Success!"), "round {round}: {out}");
        paid += 1;
        wait_until(60, "a block with the payment", || {
            w1.height().is_some_and(|h| h > before)
        });
    }
    // Until all agree: a tie at the top is broken by the next block.
    let mut extra = 0;
    while !nodes.iter().all(|n| tip(n) == tip(&central)) {
        let settled = common::poll_until(5, || nodes.iter().all(|n| tip(n) == tip(&central)));
        if settled {
            break;
        }
        assert!(extra < 10, "the nodes never agreed on a tip");
        pay();
        paid += 1;
        extra += 1;
    }
    // No payment was lost: every one is confirmed on the common chain (those in orphaned blocks
    // went back to a mempool and were mined again).
    wait_until(90, "every payment to be confirmed", || {
        w2.balance(&payee) == paid.to_string()
    });
    wait_until(30, "every node on the same tip", || {
        nodes.iter().all(|n| tip(n) == tip(&central))
    });
    let reorgs: usize = daemons
        .iter()
        .map(|d| d.log_text().matches("reorganised").count())
        .sum();
    eprintln!(
        "height {:?}, {paid} payments, {reorgs} reorgs seen across the nodes",
        central.height()
    );
    // Every coin is accounted for: the UTXO set holds exactly the main chain's subsidies.
    for n in nodes {
        let report = n.ok(&["verifychain"]);
        let height: u32 = report
            .lines()
            .find_map(|l| {
                l.strip_prefix("Tip: height ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap();
        let total = report
            .lines()
            .find_map(|l| l.split(" holding ").nth(1))
            .unwrap();
        assert_eq!(total, format!("{} coins", (height + 1) * 10), "{report}");
    }
}

/// A deterministic fork: two nodes with the same chain mine apart (A one block, B two), then
/// meet. A must reorganise onto B's heavier branch: its tip becomes B's, its reorg counter in
/// `/metrics` counts a reorg of depth 1, and A's own block is no longer on its main chain.
#[test]
fn a_node_reorganises_onto_a_heavier_branch_when_two_halves_meet() {
    let (a, b) = (Node::new(), Node::new());
    let easy = common::params_file(&a, "0x207fffff");
    let owner = a.new_address();
    a.ok(&["--params", &easy, "createblockchain", "--address", &owner]);
    b.copy_chain_from(&a);
    let start = |n: &Node| {
        let listen = addr(free_port());
        n.start(&["--params", &easy, "--role", "central", "--listen", &listen])
    };
    let (da, db) = (start(&a), start(&b));
    let (api_a, api_b) = (da.api(), db.api());
    let mine = |api: &str, cookie: &str| {
        let r = common::http_get(&format!("{api}/mine"), Some(cookie));
        assert_eq!(r.status, 200, "{r:?}");
        r.body["block"]["hash"].as_str().unwrap().to_owned()
    };
    let ours = mine(&api_a, &da.cookie());
    mine(&api_b, &db.cookie());
    let theirs = mine(&api_b, &db.cookie());
    let status = |api: &str| common::http_get(&format!("{api}/status"), None).body;
    assert_eq!(status(&api_a)["tip"], ours.as_str());

    let b_addr = status(&api_b)["listen"][0].as_str().unwrap().to_owned();
    let r = common::http_post(
        &format!("{api_a}/nodes/register"),
        &format!(r#"{{"nodes":["{b_addr}"]}}"#),
        "application/json",
        Some(&da.cookie()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    wait_until(60, "A to adopt B's heavier branch", || {
        status(&api_a)["tip"] == theirs.as_str()
    });
    let metrics = common::http_get(&format!("{api_a}/metrics"), None).text;
    let reorgs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gossipcoin_reorg_depth_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reorg count in /metrics:\n{metrics}"));
    assert_eq!(reorgs, 1, "{metrics}");
    assert!(
        metrics.contains("gossipcoin_reorg_depth_bucket{le=\"1\"} 1"),
        "{metrics}"
    );
    let r = common::http_get(&format!("{api_a}/blocks/1"), None);
    assert_eq!(r.status, 200, "{r:?}");
    let at_1 = r.body["hash"].as_str().map(str::to_owned);
    assert!(at_1.is_some() && at_1 != Some(ours), "{r:?}");
}
