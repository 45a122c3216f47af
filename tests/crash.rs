//! Crash safety: `send --mine` and `createwallet` run in a loop and are killed with SIGKILL at
//! random moments; `getbalance` readers run at the same time. Afterwards the store opens, tip,
//! height index, UTXO set and address index agree (`verifychain`), the coins add up, and
//! `reindexutxo` gives the same balances.

mod common;
use std::time::{Duration, Instant};

use common::Node;

/// xorshift64*: a reproducible random source (the seed is printed on failure).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn parse_coins(s: &str) -> f64 {
    s.parse().expect("balance is a number")
}

#[test]
fn sigkill_during_mining_and_sending_leaves_a_consistent_store() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let node = Node::new();
    let a = node.new_address();
    let b = node.new_address();
    node.ok(&["createblockchain", "--address", &a]);

    // How long one uninterrupted send takes, so kills land across its whole run.
    let t = Instant::now();
    node.ok(&["send", "--from", &a, "--to", &b, "--amount", "1", "--mine"]);
    let typical = t.elapsed().as_micros() as u64;

    let readers_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, cmd_dir, addr) = (readers_stop.clone(), node.dir.clone(), a.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new(common::bin())
                    .args(["getbalance", "--address", &addr, "--data-dir"])
                    .arg(&cmd_dir)
                    .env("RUST_LOG", "warn")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                reads += 1;
            }
            reads
        })
    };

    let (mut killed, mut finished) = (0, 0);
    for round in 0..40 {
        let (from, to) = if rng.next().is_multiple_of(2) {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let mut child = if round % 8 == 7 {
            node.cmd(&["createwallet"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        } else {
            node.cmd(&[
                "send", "--from", from, "--to", to, "--amount", "0.5", "--mine",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
        };
        let delay = Duration::from_micros(rng.next() % (typical * 6 / 5 + 1));
        // A waiter thread reaps the child and reports; if it has not ended by the random
        // moment, it gets SIGKILL.
        let pid = child.id().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().expect("wait for child")));
        match rx.recv_timeout(delay) {
            Ok(_) => finished += 1,
            Err(_) => {
                std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .unwrap();
                let status = rx.recv().expect("child reaped");
                if status.success() {
                    finished += 1; // it ended just before the signal
                } else {
                    killed += 1;
                }
            }
        }
    }
    readers_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("reader thread");
    eprintln!("seed {seed}: {killed} killed, {finished} finished, {reads} concurrent reads");
    assert!(killed > 0, "no process was killed (seed {seed})");

    // The store opens and agrees with itself.
    node.ok(&["verifychain"]);
    // The wallet survived every kill and still holds both keys.
    let listed = node.ok(&["listaddresses"]);
    assert!(listed.contains(&a) && listed.contains(&b), "{listed}");

    // All coins are A's and B's (every reward went to a sender): (height + 1) × 10.
    let chain = node.ok(&["printchain"]);
    let height: u32 = chain
        .lines()
        .find_map(|l| l.strip_prefix("Height: "))
        .and_then(|h| h.parse().ok())
        .expect("tip height");
    let (bal_a, bal_b) = (node.balance(&a), node.balance(&b));
    assert_eq!(
        parse_coins(&bal_a) + parse_coins(&bal_b),
        f64::from(height + 1) * 10.0,
        "seed {seed}"
    );

    node.ok(&["reindexutxo"]);
    assert_eq!(
        (node.balance(&a), node.balance(&b)),
        (bal_a, bal_b),
        "seed {seed}"
    );
    node.ok(&["verifychain"]);
    // And the chain still grows.
    node.ok(&[
        "send", "--from", &a, "--to", &b, "--amount", "0.5", "--mine",
    ]);
    node.ok(&["verifychain"]);
}
