//! Operator safety with the real binary: a busy p2p port is refused, commands that change the
//! store go through a running node (or are refused) instead of writing behind its back, and the
//! API's edges (header sizes, no password dialog on 401).

mod common;
use common::{Daemon, Node, addr, easy_params, free_port, http_get, wait_until};
use std::time::{Duration, Instant};

fn start(node: &Node, params: &str, role: &str, port: u16, extra: &[&str]) -> Daemon {
    let listen = addr(port);
    let mut args = vec!["--params", params, "--role", role, "--listen", &listen];
    args.extend_from_slice(extra);
    node.start(&args)
}

/// The node has opened its p2p listener (it writes `node.addr` once it listens).
fn wait_listening(node: &Node) {
    let file = node.dir.join("node.addr");
    wait_until(60, "the node to listen", || file.exists());
}

#[test]
fn a_busy_p2p_port_is_refused_and_named() {
    let (first, second) = (Node::new(), Node::new());
    let params = easy_params(&first);
    let a = first.new_address();
    first.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let second_params = easy_params(&second);
    let b = second.new_address();
    second.ok(&[
        "--params",
        &second_params,
        "createblockchain",
        "--address",
        &b,
    ]);
    let port = free_port();
    let _running = start(&first, &params, "central", port, &[]);
    wait_listening(&first);

    let listen = addr(port);
    let mut child = second
        .cmd(&["startnode", "--params", &second_params, "--role", "central"])
        .args(["--listen", &listen, "--api-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second node on port {port} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("port {port} is in use")) && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!second.dir.join("node.addr").exists());
}

#[test]
fn store_changing_commands_go_through_the_running_node_or_are_refused() {
    let (central, wallet) = (Node::new(), Node::new());
    let params = easy_params(&central);
    let alice = central.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &alice]);
    let bob = wallet.new_address();
    let port = free_port();
    let c = start(&central, &params, "central", port, &[]);
    let boot = addr(port);
    let _w = start(
        &wallet,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    wait_until(60, "the wallet node to adopt the chain", || {
        wallet.height() == Some(0)
    });
    let api = c.api();
    let peers = || http_get(&format!("{api}/status"), None).body["peers"].as_u64();
    wait_until(60, "central to see its peer", || peers() == Some(1));

    // generate on the running node's data directory: the node mines and relays.
    let out = central.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        "2",
        "--address",
        &alice,
    ]);
    assert!(
        out.contains("at height 2") && out.contains(&api),
        "through the daemon: {out}"
    );
    wait_until(30, "the peer to receive the generated blocks", || {
        wallet.height() == Some(2)
    });
    assert_eq!(c.log_text().matches("\"mined block\"").count(), 2);
    // "mined block" and "accepted block" count transactions the same way; MH/s is a number.
    let events: Vec<serde_json::Value> = c
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |msg: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["message"] == msg).collect()
    };
    for (mined, accepted) in of("mined block").iter().zip(of("accepted block")) {
        assert_eq!(mined["hash"], accepted["hash"]);
        assert_eq!(mined["txs"], accepted["txs"], "{mined} vs {accepted}");
        assert!(mined["mhs"].is_number(), "{mined}");
    }

    // send --mine: paid and mined by the daemon, and the block reaches the peer.
    let out = central.ok(&[
        "--params", &params, "send", "--from", &alice, "--to", &bob, "--amount", "3", "--mine",
    ]);
    assert!(
        out.contains("mined in block") && out.contains("at height 3"),
        "{out}"
    );
    wait_until(30, "the peer to receive the payment's block", || {
        wallet.height() == Some(3)
    });
    assert_eq!(wallet.balance(&bob), "3");

    // Commands that rebuild or create the store refuse and say what to do.
    for args in [
        vec!["reindexutxo"],
        vec!["createblockchain", "--address", alice.as_str()],
    ] {
        let err = central.fails(&args);
        assert!(
            err.contains("a node is running on") && err.contains("Stop the node first"),
            "{err}"
        );
    }
    central.ok(&["verifychain"]);
}

#[test]
fn the_api_limits_headers_and_never_asks_browsers_for_a_password() {
    use std::io::{Read, Write};
    let node = Node::new();
    let params = easy_params(&node);
    let a = node.new_address();
    node.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let d = start(&node, &params, "central", free_port(), &[]);
    let api = d.api();
    let host = api.strip_prefix("http://").unwrap().to_owned();
    let raw = |extra: &str| {
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /status HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(raw("").starts_with("HTTP/1.1 200"), "{}", raw(""));
    let big = format!("X-Padding: {}\r\n", "a".repeat(20_000));
    let answer = raw(&big);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let many: String = (0..90)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(100)))
        .collect();
    assert!(raw(&many).starts_with("HTTP/1.1 431"));

    // A 401 carries no Basic challenge (a browser would pop up a password dialog).
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    write!(
        s,
        "GET /mine HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(!out.to_lowercase().contains("www-authenticate"), "{out}");
    assert!(out.contains("api.cookie"), "{out}");
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal_or_under_no_color() {
    let node = Node::new();
    let file = node.dir.with_extension("pretty.log");
    // stderr is a pipe here, not a terminal: plain text.
    let r: common::Run = node
        .cmd(&["createwallet"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
        .into();
    assert!(
        r.ok && r.stderr.contains("created a new key"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains('\x1b'),
        "escape codes on a pipe: {:?}",
        r.stderr
    );
    // Into a log file, and with NO_COLOR: plain text too.
    let r: common::Run = node
        .cmd(&["createwallet", "--log-file", file.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
        .into();
    assert!(r.ok, "{}", r.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("created a new key"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "escape codes in the log file: {text:?}"
    );
}

#[test]
fn a_newcomers_mistakes_get_messages_that_say_what_to_do() {
    let node = Node::new();
    // blockchain_go's single-dash flags.
    let err = node.fails(&["getbalance", "-address", "1abc"]);
    assert!(
        err.contains("hint: gossipcoin spells flags with two dashes: --address"),
        "{err}"
    );
    // No wallet: not an empty list.
    let err = node.fails(&["listaddresses"]);
    assert!(
        err.contains("no wallet in") && err.contains("createwallet"),
        "{err}"
    );
    // The built-in configuration can be seen.
    let shown = node.ok(&["config", "show"]);
    assert!(
        shown.contains("pow_bits") && shown.contains("min_txs"),
        "{shown}"
    );

    // A send that reaches no node says how to name one.
    let params = easy_params(&node);
    let a = node.new_address();
    node.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let nobody = addr(free_port());
    let err = node.fails(&[
        "--params", &params, "send", "--from", &a, "--to", &a, "--amount", "1", "--node", &nobody,
    ]);
    assert!(err.contains("--node MULTIADDR"), "{err}");

    // No --role with another NODE_ID: a wallet node, which says so and warns that its
    // bootstrap peer cannot be reached.
    let other = Node::new();
    std::fs::create_dir_all(&other.dir).unwrap();
    let log = other.dir.with_extension("log");
    let listen = addr(free_port());
    let child = other
        .cmd(&["--params", &params, "startnode", "--listen", &listen])
        .args(["--bootstrap", &nobody, "--api-listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-file", log.to_str().unwrap()])
        .env("NODE_ID", "3001")
        .env_remove("RUST_LOG") // the default filter
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        log,
        dir: other.dir.clone(),
    };
    wait_until(30, "the warning about the bootstrap peer", || {
        d.log_text()
            .contains("the bootstrap peers cannot be reached")
    });
    let text = d.log_text();
    assert!(text.contains("starting as a wallet node"), "{text}");
    assert!(text.contains("\"level\":\"WARN\""), "{text}");
    assert!(
        !text.contains("No known peers"),
        "libp2p-kad's start-up noise: {text}"
    );
}

#[test]
fn a_peer_is_disconnected_banned_and_unbanned_from_the_command_line() {
    let (central, wallet) = (Node::new(), Node::new());
    let params = easy_params(&central);
    let a = central.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let port = free_port();
    let c = start(&central, &params, "central", port, &[]);
    let boot = addr(port);
    let w = start(
        &wallet,
        &params,
        "wallet",
        free_port(),
        &["--bootstrap", &boot],
    );
    c.api();
    let wallet_id = http_get(&format!("{}/status", w.api()), None).body["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let connected = || central.ok(&["peers"]).contains(&wallet_id);
    wait_until(60, "the wallet node to connect", connected);
    assert_eq!(central.ok(&["listbanned"]).trim(), "no bans");

    central.ok(&["disconnectnode", &wallet_id]);
    assert!(c.log_text().contains("disconnecting peer"));
    // Not banned: the wallet node (alone) dials again.
    wait_until(30, "the wallet node to reconnect", connected);

    let out = central.ok(&["setban", &wallet_id, "add"]);
    assert!(out.starts_with("Banned"), "{out}");
    wait_until(10, "the banned peer to be gone", || !connected());
    let listed = central.ok(&["listbanned"]);
    assert!(listed.starts_with(&wallet_id), "{listed}");
    assert!(!connected(), "a banned peer came back");
    // A ban outlives a restart (banlist.json, like Core's).
    drop(c);
    let c = start(&central, &params, "central", port, &[]);
    let api = c.api();
    let listed = central.ok(&["listbanned"]);
    assert!(
        listed.starts_with(&wallet_id),
        "the ban was lost at restart: {listed}"
    );
    assert!(!connected(), "a banned peer came back after a restart");
    central.ok(&["setban", &wallet_id, "remove"]);
    wait_until(30, "the unbanned wallet node to reconnect", connected);
    assert_eq!(central.ok(&["listbanned"]).trim(), "no bans");

    // Without the cookie, the endpoints refuse.
    let r = common::http_post(
        &format!("{api}/peers/ban"),
        &format!("{{\"peer\": \"{wallet_id}\"}}"),
        "application/json",
        None,
    );
    assert_eq!(r.status, 401, "{r:?}");
    let err = central.fails(&["setban", "not-a-peer-id", "add"]);
    assert!(err.contains("invalid peer id"), "{err}");
}
