//! The seed's network scenario (`000_*.txt`) across three real processes: a central node, a
//! wallet node and a miner node, with the tutorial's final balances.

mod common;
use common::{Node, addr, free_port, wait_until};

#[test]
fn seed_scenario_across_three_processes() {
    let (central, wallet, miner) = (Node::new(), Node::new(), Node::new());
    let (p_central, p_wallet, p_miner) = (free_port(), free_port(), free_port());

    // NODE 3000: a wallet and a chain; keep a copy of the genesis-only chain.
    let central_addr = central.new_address();
    central.ok(&["createblockchain", "--address", &central_addr]);
    let genesis = Node::new();
    genesis.copy_chain_from(&central);

    // NODE 3001: three wallets (and a fourth for the second payment).
    let w1 = wallet.new_address();
    let w2 = wallet.new_address();
    let w3 = wallet.new_address();
    let w4 = wallet.new_address();

    // NODE 3000: fund WALLET_1 and WALLET_2, mining at once; start the central node.
    for to in [&w1, &w2] {
        central.ok(&[
            "send",
            "--from",
            &central_addr,
            "--to",
            to,
            "--amount",
            "10",
            "--mine",
        ]);
    }
    let central_node = central.start(&["--role", "central", "--listen", &addr(p_central)]);

    // NODE 3001: start from the genesis copy; it downloads the two blocks.
    wallet.copy_chain_from(&genesis);
    let wallet_args = [
        "--role",
        "wallet",
        "--listen",
        &addr(p_wallet),
        "--bootstrap",
        &addr(p_central),
    ];
    let wallet_node = wallet.start(&wallet_args);
    wait_until(60, "the wallet node to sync height 2", || {
        wallet.height() == Some(2)
    });
    assert!(wallet_node.stop().success());
    assert_eq!(wallet.balance(&w1), "10");
    assert_eq!(wallet.balance(&w2), "10");
    assert_eq!(wallet.balance(&central_addr), "10");

    // NODE 3002: the miner, from the genesis copy.
    let miner_addr = miner.new_address();
    miner.copy_chain_from(&genesis);
    let miner_node = miner.start(&[
        "--role",
        "miner",
        "--miner-address",
        &miner_addr,
        "--listen",
        &addr(p_miner),
        "--bootstrap",
        &addr(p_central),
    ]);
    wait_until(60, "the miner to sync height 2", || {
        miner.height() == Some(2)
    });

    // NODE 3001: two payments, submitted to the central node (no local daemon runs).
    for (from, to) in [(&w1, &w3), (&w2, &w4)] {
        let out = wallet.ok(&[
            "send",
            "--from",
            from,
            "--to",
            to,
            "--amount",
            "1",
            "--node",
            &addr(p_central),
        ]);
        assert!(out.starts_with("Success!"), "{out}");
    }

    // The miner mines one block with both; the central node gets it.
    wait_until(90, "the mined block to reach the central node", || {
        central.height() == Some(3)
    });
    assert!(miner_node.log_text().contains("mined block"));

    // NODE 3001 starts again and downloads the new block.
    let wallet_node = wallet.start(&wallet_args);
    wait_until(60, "the wallet node to sync height 3", || {
        wallet.height() == Some(3)
    });
    assert!(wallet_node.stop().success());
    // The seed's balances, but the payers paid the default fee and the miner earned both.
    for (a, expect) in [(&w3, "1"), (&w4, "1"), (&central_addr, "10")] {
        assert_eq!(wallet.balance(a), expect, "balance of {a}");
    }
    let nine = common::units("9");
    let fee1 = nine - common::units(&wallet.balance(&w1));
    let fee2 = nine - common::units(&wallet.balance(&w2));
    common::assert_default_fee(fee1);
    common::assert_default_fee(fee2);
    assert_eq!(
        common::units(&wallet.balance(&miner_addr)),
        common::units("10") + fee1 + fee2
    );
    assert!(central_node.stop().success());
}
