//! `gossipcoin testnet up --hosts` with the real binary: four nodes, each in its own network
//! namespace, behind the user-space router with 20 ms of one-way latency; a partition that
//! really drops packets (a TCP connect across it times out, the two sides grow two chains) and a
//! heal that joins them; a second `--hosts` testnet refused while this one's network exists; and
//! `testnet down` leaving no namespace, link or rule behind. Needs root on Linux (CI runs as
//! root); where namespaces cannot be made, each test says why and returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::{Run, bin, wait_until};

/// Why this machine cannot run the `--hosts` tests, or `None` when it can: a probe namespace is
/// made and removed, and `nft` must exist.
fn cannot_make_hosts() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    let probe = format!("gcprobe-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::piped())
        .output();
    match made {
        Err(e) => return Some(format!("no `ip` (iproute2): {e}")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "cannot make a network namespace (not root?): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    if Command::new("nft").arg("--version").output().is_err() {
        return Some("no `nft` (Debian: apt-get install nftables)".into());
    }
    None
}

/// One `--hosts` testnet at a time: 10.77.0.0/16 is one testnet's (a second is refused).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

macro_rules! require_hosts {
    () => {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = cannot_make_hosts() {
            eprintln!("SKIPPED: the --hosts test cannot run here: {why}");
            return;
        }
    };
}

/// A testnet directory; dropping it runs `testnet down` (which removes the network).
struct Net {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Net {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("testnet");
        Self { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str]) -> Run {
        Command::new(bin())
            .arg("testnet")
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "`testnet {}` failed:\n{}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("testnet.json")).unwrap())
            .unwrap()
    }

    fn tag(&self) -> String {
        self.state()["hosts"]["tag"].as_str().unwrap().to_string()
    }

    /// The heights of `testnet status --all`, in node order.
    fn heights(&self) -> Vec<String> {
        self.ok(&["status", "--all"])
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().nth(4).unwrap_or("-").to_string())
            .collect()
    }

    fn mine(&self, node: &str) {
        let out = Command::new(bin())
            .args(["mine", "--data-dir"])
            .arg(self.dir.join(node))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mine on {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.dir.join("testnet.json").exists() {
            let _ = self.run(&["down", "--timeout", "5"]);
        }
    }
}

/// Milliseconds a TCP connect from namespace `ns` to `ip:port` took, or `None` when it did not
/// complete within 2 s (timed inside the namespace, so process start-up does not count).
fn connect_ms(ns: &str, ip: &str, port: u16) -> Option<f64> {
    let script = format!(
        "s=$(date +%s%N); timeout 2 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' || exit 1; \
         e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", &script])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let micros: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(micros / 1000.0)
}

/// Our namespaces and links that exist now (names only).
fn ours(tag: &str) -> Vec<String> {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout).into_owned();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    let names = ns
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .chain(links.lines().filter_map(|l| {
            let name = l.split_whitespace().nth(1)?.trim_end_matches(':');
            name.split('@').next()
        }));
    names
        .filter(|n| n.starts_with(&format!("{tag}-")))
        .map(str::to_string)
        .collect()
}

fn router_running(dir: &Path) -> bool {
    dir.join("router.ready").exists()
}

#[test]
fn hosts_partition_drops_packets_heal_joins_and_down_removes_everything() {
    require_hosts!();
    let net = Net::new();
    let up = net.run(&[
        "up",
        "--hosts",
        "--miners",
        "2",
        "--wallets",
        "1",
        "--latency",
        "20ms",
        "--timeout",
        "120",
    ]);
    assert!(
        up.ok,
        "testnet up --hosts failed:\n{}{}",
        up.stdout, up.stderr
    );
    assert!(up.stdout.contains("http://10.77.0.2:"), "{}", up.stdout);
    let tag = net.tag();
    let ns = |i: usize| format!("{tag}-{i}");
    assert_eq!(
        ours(&tag).iter().filter(|n| !n.contains("-v")).count(),
        5,
        "4 namespaces + bridge"
    );
    assert!(router_running(&net.dir));

    // Through the router: a TCP connect is one round trip, twice the one-way 20 ms.
    let rtt = connect_ms(&ns(0), "10.77.0.3", 3001).expect("central reaches miner-1");
    eprintln!("TCP connect across the router at --latency 20ms: {rtt:.1} ms");
    assert!((38.0..400.0).contains(&rtt), "{rtt} ms");

    // A second --hosts testnet is refused while this one's network exists.
    let other = Net::new();
    let refused = other.run(&["up", "--hosts", "--miners", "0", "--wallets", "0"]);
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("left over of the testnet in")
            && refused
                .stderr
                .contains(net.dir.canonicalize().unwrap().to_str().unwrap()),
        "{}",
        refused.stderr
    );

    let out = net.ok(&["partition", "central,miner-1", "miner-2,wallet-1"]);
    assert!(out.contains("firewall rules in 4 namespaces"), "{out}");
    // Packets across the cut are dropped; inside a group they pass.
    assert_eq!(
        connect_ms(&ns(0), "10.77.0.4", 3002),
        None,
        "central → miner-2 across the cut"
    );
    assert!(
        connect_ms(&ns(0), "10.77.0.3", 3001).is_some(),
        "central → miner-1, same side"
    );
    net.mine("miner-1");
    net.mine("miner-2");
    net.mine("miner-2");
    wait_until(60, "each side on its own chain", || {
        net.heights() == ["1", "1", "2", "2"]
    });
    let status = net.ok(&["status", "--summary"]);
    assert!(
        status.contains("FORK: the running nodes are on 2 tips"),
        "{status}"
    );
    assert!(status.contains("PARTITIONED"), "{status}");

    let out = net.ok(&["heal"]);
    assert!(
        out.contains("firewall rules removed in 4 namespaces"),
        "{out}"
    );
    assert!(connect_ms(&ns(0), "10.77.0.4", 3002).is_some(), "healed");
    wait_until(90, "one chain after the heal", || {
        net.heights() == ["2", "2", "2", "2"]
    });

    let down = net.ok(&["down"]);
    assert!(down.contains("Removed the testnet's network"), "{down}");
    assert_eq!(ours(&tag), Vec::<String>::new(), "nothing left after down");
    assert!(!router_running(&net.dir));
    // And now the other testnet may start its network (then takes it down again).
    let two = other.run(&["up", "--hosts", "--miners", "0", "--wallets", "0"]);
    assert!(two.ok, "{}{}", two.stdout, two.stderr);
    let other_tag = other.tag();
    assert_ne!(other_tag, tag, "names are per directory");
    other.ok(&["down"]);
    assert_eq!(ours(&other_tag), Vec::<String>::new());
}

#[test]
fn hosts_without_cap_net_admin_is_a_clear_error() {
    require_hosts!();
    let net = Net::new();
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin,-sys_admin", "--"])
        .arg(bin())
        .args([
            "testnet",
            "up",
            "--hosts",
            "--miners",
            "0",
            "--wallets",
            "0",
            "--dir",
        ])
        .arg(&net.dir)
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED: no setpriv (util-linux) to drop the capabilities");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs CAP_NET_ADMIN"), "{stderr}");
}

#[test]
fn down_removes_the_network_of_a_testnet_whose_state_file_is_lost() {
    require_hosts!();
    let net = Net::new();
    net.ok(&["up", "--hosts", "--miners", "0", "--wallets", "1"]);
    let tag = net.tag();
    net.ok(&["down"]);
    // A crash that left the network but lost testnet.json: `up` again, then remove the file
    // after stopping the nodes by hand.
    net.ok(&["up", "--hosts", "--miners", "0", "--wallets", "1"]);
    let pids: Vec<u64> = net.state()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .collect();
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::fs::remove_file(net.dir.join("testnet.json")).unwrap();
    assert!(!ours(&tag).is_empty());
    let out = Command::new(bin())
        .args(["testnet", "down", "--dir"])
        .arg(&net.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("its network was left over"),
        "{stdout}"
    );
    assert_eq!(ours(&tag), Vec::<String>::new());
}
