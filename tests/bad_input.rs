//! Bad input from the command line or the file system: a clear error, a non-zero exit, and
//! nothing written (the data directory is byte-for-byte unchanged).

mod common;
use common::Node;

/// A node with a chain: CENTRAL holds 10 coins, OTHER is an address of the same wallet.
fn funded() -> (Node, String, String) {
    let node = Node::new();
    let central = node.new_address();
    let other = node.new_address();
    node.ok(&["createblockchain", "--address", &central]);
    (node, central, other)
}

/// Runs a failing command, checks its message, and that nothing on disk changed.
fn refused(node: &Node, args: &[&str], message: &str) {
    let before = node.snapshot();
    let err = node.fails(args);
    assert!(
        err.contains(message),
        "`{}`: expected {message:?} in:\n{err}",
        args.join(" ")
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        before == node.snapshot(),
        "`{}` changed the data directory",
        args.join(" ")
    );
}

#[test]
fn invalid_addresses() {
    let (node, central, _) = funded();
    let typo = format!("{}x", &central[..central.len() - 1]);
    for bad in [
        "",
        "hello",
        "0OIl",
        typo.as_str(),
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    ] {
        refused(&node, &["getbalance", "--address", bad], "invalid address");
        refused(
            &node,
            &[
                "send", "--from", &central, "--to", bad, "--amount", "1", "--mine",
            ],
            "invalid address",
        );
        refused(
            &node,
            &[
                "send", "--from", bad, "--to", &central, "--amount", "1", "--mine",
            ],
            "invalid address",
        );
    }
    let fresh = Node::new();
    fresh.ok(&["createwallet"]);
    refused(
        &fresh,
        &["createblockchain", "--address", "nope"],
        "invalid address",
    );
    assert!(!fresh.dir.join("chain").exists());
}

#[test]
fn invalid_amounts() {
    let (node, central, other) = funded();
    for (amount, message) in [
        ("0", "greater than zero"),
        ("-1", "negative"),
        ("ten", "not a number"),
        ("1e3", "not a number"),
        ("", "not a number"),
        ("21000001", "above the maximum"),
        ("184467440737.09551616", "above the maximum"),
        ("0.000000001", "decimal places"),
    ] {
        let args = [
            "send", "--from", &central, "--to", &other, "--amount", amount, "--mine",
        ];
        refused(&node, &args, message);
    }
    let args = [
        "send", "--from", &central, "--to", &other, "--amount", "1", "--fee", "-1", "--mine",
    ];
    refused(&node, &args, "invalid fee");
    assert_eq!(node.balance(&central), "10");
}

#[test]
fn insufficient_funds_and_foreign_sender() {
    let (node, central, other) = funded();
    refused(
        &node,
        &[
            "send",
            "--from",
            &central,
            "--to",
            &other,
            "--amount",
            "10.00000001",
            "--mine",
        ],
        "insufficient funds",
    );
    // amount + fee above the balance
    refused(
        &node,
        &[
            "send", "--from", &central, "--to", &other, "--amount", "10", "--fee", "0.1", "--mine",
        ],
        "insufficient funds",
    );
    refused(
        &node,
        &[
            "send", "--from", &other, "--to", &central, "--amount", "1", "--mine",
        ],
        "insufficient funds",
    );
    let stranger = Node::new().new_address();
    refused(
        &node,
        &[
            "send", "--from", &stranger, "--to", &central, "--amount", "1", "--mine",
        ],
        "not in this wallet",
    );
    assert_eq!(node.balance(&central), "10");
}

#[test]
fn send_to_a_node_that_is_not_running() {
    let (node, central, other) = funded();
    let nobody = common::addr(common::free_port());
    let pay = [
        "send", "--from", &central, "--to", &other, "--amount", "1", "--node",
    ];
    refused(&node, &[&pay[..], &[&nobody]].concat(), "is it running?");
    refused(
        &node,
        &[&pay[..], &["not-an-address"]].concat(),
        "not-an-address",
    );
}

#[test]
fn createblockchain_twice() {
    let (node, central, _) = funded();
    refused(
        &node,
        &["createblockchain", "--address", &central],
        "already exists",
    );
}

#[test]
fn commands_without_a_chain() {
    let node = Node::new();
    let a = node.new_address();
    for args in [
        vec!["getbalance", "--address", a.as_str()],
        vec!["printchain"],
        vec!["reindexutxo"],
        vec!["verifychain"],
        vec!["send", "--from", &a, "--to", &a, "--amount", "1", "--mine"],
    ] {
        refused(&node, &args, "no blockchain");
    }
}

#[test]
fn no_data_directory_given() {
    let out = std::process::Command::new(common::bin())
        .arg("listaddresses")
        .env_remove("NODE_ID")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NODE_ID"));
}

#[test]
fn data_dir_that_is_a_file_or_unwritable() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let run = |dir: &std::path::Path, args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    for args in [
        &["createwallet"][..],
        &[
            "getbalance",
            "--address",
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH",
        ],
    ] {
        let out = run(&file, args);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    // A directory that cannot be created (its parent is a file; as root, permissions alone would
    // not stop us) is a clear error too.
    let out = run(&file.join("sub"), &["createwallet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create data directory"));
}

#[test]
fn corrupted_wallet_is_reported_and_left_alone() {
    let (node, central, other) = funded();
    let path = node.dir.join("wallet.dat");
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for bytes in [
        b"garbage".to_vec(),
        good[..good.len() - 3].to_vec(),
        flipped,
        Vec::new(),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        for args in [
            vec!["listaddresses"],
            vec!["createwallet"],
            vec![
                "send", "--from", &central, "--to", &other, "--amount", "1", "--mine",
            ],
        ] {
            refused(&node, &args, "wallet");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "wallet.dat was rewritten"
            );
        }
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(node.ok(&["listaddresses"]).lines().count(), 2);
}

#[test]
fn corrupted_params_file() {
    let node = Node::new();
    let a = node.new_address();
    let params = node.dir.join("bad.toml");
    std::fs::write(&params, "pow_bits = \"hard\"").unwrap();
    let p = params.to_str().unwrap();
    refused(
        &node,
        &["createblockchain", "--address", &a, "--params", p],
        "invalid chain parameters",
    );
    refused(
        &node,
        &[
            "createblockchain",
            "--address",
            &a,
            "--params",
            "/no/such/file.toml",
        ],
        "cannot read chain parameters",
    );
}
