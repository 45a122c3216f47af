//! The seed's NODE 3000 steps through the real binary: three wallets, a chain, two `send --mine`
//! of 10 coins, and the tutorial's balances (the mining reward goes back to the sender).

mod common;
use common::Node;

#[test]
fn seed_node_3000_steps_give_the_tutorial_balances() {
    let node = Node::new();
    let central = node.new_address();
    let wallet_1 = node.new_address();
    let wallet_2 = node.new_address();
    let out = node.ok(&["createblockchain", "--address", &central]);
    assert!(out.starts_with("Done!"), "{out}");
    assert_eq!(node.balance(&central), "10");
    for to in [&wallet_1, &wallet_2] {
        let out = node.ok(&[
            "send", "--from", &central, "--to", to, "--amount", "10", "--mine",
        ]);
        assert!(out.starts_with("Success!"), "{out}");
    }
    assert_eq!(node.balance(&central), "10");
    assert_eq!(node.balance(&wallet_1), "10");
    assert_eq!(node.balance(&wallet_2), "10");

    let listed = node.ok(&["listaddresses"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [&central, &wallet_1, &wallet_2]
    );

    let chain = node.ok(&["printchain"]);
    assert_eq!(chain.matches("============ Block").count(), 3, "{chain}");
    assert_eq!(chain.matches("PoW: true").count(), 3);
    assert!(chain.contains("Height: 2") && chain.contains("Height: 0"));

    node.ok(&["verifychain"]);
    let out = node.ok(&["reindexutxo"]);
    assert!(out.starts_with("Done! There are "), "{out}");
    for (a, b) in [(&central, "10"), (&wallet_1, "10"), (&wallet_2, "10")] {
        assert_eq!(node.balance(a), b);
    }
}

#[test]
fn fee_and_miner_address_pay_the_miner() {
    let node = Node::new();
    let alice = node.new_address();
    let bob = node.new_address();
    let miner = node.new_address();
    node.ok(&["createblockchain", "--address", &alice]);
    node.ok(&[
        "send",
        "--from",
        &alice,
        "--to",
        &bob,
        "--amount",
        "2.5",
        "--fee",
        "0.5",
        "--mine",
        "--miner-address",
        &miner,
        "--threads",
        "2",
    ]);
    assert_eq!(node.balance(&alice), "7");
    assert_eq!(node.balance(&bob), "2.5");
    assert_eq!(node.balance(&miner), "10.5");
}

#[test]
fn node_id_picks_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("createwallet")
        .env("NODE_ID", "3000")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.path().join("node_3000").join("wallet.dat").is_file());
}
