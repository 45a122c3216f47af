//! `testnet up --hosts`: every node a host of its own. Linux only, and root (CAP_NET_ADMIN and
//! CAP_SYS_ADMIN, for network namespaces).
//!
//! ```text
//!   host (root namespace)                    namespace gcTTTTTT-<i> (one per node)
//!   bridge gcTTTTTT-br 10.77.0.1/16  ──veth── eth0 10.77.a.b          node i listens here
//!                                    (gcTTTTTT-v<i> on the bridge)
//!   router (with WAN conditions)     ──TUN─── gw0: every packet to another node
//! ```
//! - `TTTTTT` is a tag derived from the testnet's directory ([`Names`]), so every name of one
//!   testnet is found again by `down`, even after a crash, and two testnets never share one;
//!   the bridge's alias records the directory, so `up` can say whose leftovers block it.
//! - Without WAN conditions the nodes talk over the bridge. With them (`wan.rs`) each namespace
//!   routes 10.77.0.0/16 into a TUN device of the router process (`router.rs`, the hidden
//!   `testnet router` subcommand), which delays, jitters and drops each packet (`sched.rs`)
//!   before writing it into the destination's TUN; only the host (10.77.0.1, the nodes' APIs)
//!   is still reached over the bridge.
//! - `testnet partition` drops packets between groups with nftables rules inside the
//!   namespaces (`firewall.rs`); `heal` deletes them.
//! - `network.rs` makes and removes one testnet's network as a whole;
//! - `ip.rs` runs `ip` and `nft` (iproute2, nftables) and reads what exists.
//!
//! Nothing leaves the machine: no namespace has a default route, and the host does not forward.

mod firewall;
mod ip;
pub mod network;
mod router;
mod sched;
mod tun;
mod wan;

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use firewall::{cut, mend};
pub use router::{RouterOptions, run_router};
pub use sched::{Decision, Scheduler};
pub use wan::{GroupLatency, Wan, parse_group, parse_latency_between, parse_loss, parse_millis};

/// The host's address on the bridge: the nodes' APIs are reached from it.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The testnet's network.
pub const PREFIX: (u8, u8) = (10, 77);
/// Hosts that fit in 10.77.0.0/16 after the host's .0.1 (and never .255.255).
pub const MAX_NODES: usize = 65_000;

/// What `up --hosts` made, kept in `testnet.json` for the later commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsRecord {
    /// The tag of every name (see [`Names`]).
    pub tag: String,
    /// The WAN conditions, when a router delays the nodes' packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<Wan>,
    /// The router process, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_pid: Option<u32>,
}

/// The names of one testnet's namespaces and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `gc` and six hex digits of the SHA-256 of the testnet's canonical directory.
    pub tag: String,
}

impl Names {
    /// The names for the testnet in `dir` (canonical).
    pub fn of_dir(dir: &Path) -> Self {
        let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
        Self {
            tag: format!("gc{}", hex::encode(&digest[..3])),
        }
    }

    pub fn from_tag(tag: &str) -> Self {
        Self { tag: tag.into() }
    }

    /// Node `i`'s network namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    /// The bridge (11 characters; Linux allows 15).
    pub fn bridge(&self) -> String {
        format!("{}-br", self.tag)
    }

    /// The host end of node `i`'s veth pair.
    pub fn veth(&self, i: usize) -> String {
        format!("{}-v{i}", self.tag)
    }

    /// Whether `name` (a namespace or a link) is one of ours.
    pub fn owns(&self, name: &str) -> bool {
        name.strip_prefix(&self.tag)
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// Whether `name` looks like a name of some testnet (`gc` + 6 hex digits + `-`), and its tag.
pub fn tag_of(name: &str) -> Option<&str> {
    let tag = name.get(..8)?;
    let hex = tag.strip_prefix("gc")?;
    (hex.bytes().all(|b| b.is_ascii_hexdigit()) && name[8..].starts_with('-')).then_some(tag)
}

/// Node `i`'s address: 10.77.0.2 for the first, counting up, skipping .0 and .255 in each /24
/// would not matter on a /16, so simply i + 2.
pub fn node_ip(i: usize) -> Result<Ipv4Addr> {
    if i >= MAX_NODES {
        bail!("--hosts fits {MAX_NODES} nodes in 10.77.0.0/16");
    }
    let n = u16::try_from(i + 2)?;
    let [hi, lo] = n.to_be_bytes();
    Ok(Ipv4Addr::new(PREFIX.0, PREFIX.1, hi, lo))
}

/// The node index of an address of the testnet (the inverse of [`node_ip`]).
pub fn index_of(ip: Ipv4Addr) -> Option<usize> {
    let [a, b, hi, lo] = ip.octets();
    if (a, b) != PREFIX {
        return None;
    }
    usize::from(u16::from_be_bytes([hi, lo])).checked_sub(2)
}

/// Fails clearly when this process cannot make namespaces and links, or `ip`/`nft` are missing.
pub fn check_can_make_hosts(firewall: bool) -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!("--hosts needs Linux (network namespaces)");
    }
    let caps = effective_caps().unwrap_or(0);
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;
    if caps & NET_ADMIN == 0 || caps & SYS_ADMIN == 0 {
        bail!(
            "--hosts needs CAP_NET_ADMIN and CAP_SYS_ADMIN (to make network namespaces, a bridge \
             and firewall rules): run it as root, e.g. `sudo gossipcoin testnet up --hosts ...`"
        );
    }
    ip::require("ip", "iproute2")?;
    if firewall {
        ip::require("nft", "nftables")?;
    }
    Ok(())
}

/// This process's effective capabilities, from `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The tags of every testnet whose namespaces or bridge exist now, with the directory its
/// bridge records (when there is one).
pub fn existing() -> Result<Vec<(String, Option<String>)>> {
    let mut tags: Vec<(String, Option<String>)> = Vec::new();
    let mut add = |tag: &str, dir: Option<String>| match tags.iter_mut().find(|(t, _)| t == tag) {
        Some((_, d)) => {
            if d.is_none() {
                *d = dir;
            }
        }
        None => tags.push((tag.to_string(), dir)),
    };
    for ns in ip::netns_list()? {
        if let Some(tag) = tag_of(&ns) {
            add(tag, None);
        }
    }
    for (link, alias) in ip::links()? {
        if let Some(tag) = tag_of(&link) {
            add(tag, alias);
        }
    }
    Ok(tags)
}

/// Refuses when another testnet's namespaces or bridge exist (10.77.0.0/16 is taken then);
/// removes this testnet's own leftovers of an earlier run.
pub fn claim(names: &Names, dir: &Path) -> Result<()> {
    for (tag, other_dir) in existing()? {
        if tag == names.tag {
            continue;
        }
        let whose = match &other_dir {
            Some(d) => format!("of the testnet in {d}: run `gossipcoin testnet down --dir {d}`"),
            None => format!(
                "of an unknown testnet: remove them with `ip netns del` and `ip link del` (names \
                 starting with {tag}-)"
            ),
        };
        bail!(
            "network namespaces or links {tag}-* are left over {whose} first (10.77.0.0/16 \
             is in use); this testnet is {}",
            dir.display()
        );
    }
    teardown(names).map(drop)
}

/// Makes the bridge and one namespace per node with its address; `wan` adds the TUN routes
/// later (the router makes the devices).
pub fn setup(names: &Names, dir: &Path, nodes: usize) -> Result<()> {
    let br = names.bridge();
    ip::run(&["link", "add", &br, "type", "bridge"])?;
    ip::run(&["link", "set", &br, "alias", &dir.display().to_string()])?;
    ip::run(&["addr", "add", &format!("{HOST_IP}/16"), "dev", &br])?;
    ip::run(&["link", "set", &br, "up"])?;
    for i in 0..nodes {
        let ns = names.netns(i);
        let veth = names.veth(i);
        let addr = node_ip(i)?;
        ip::run(&["netns", "add", &ns])?;
        ip::run(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip::run(&["link", "set", &veth, "master", &br, "up"])?;
        ip::run_batch_in(
            &ns,
            &[
                "link set lo up".to_string(),
                format!("addr add {addr}/16 dev eth0"),
                "link set eth0 up".to_string(),
            ],
        )?;
    }
    Ok(())
}

/// Removes every namespace and link of this testnet (the firewall rules and TUN devices live
/// in the namespaces and go with them). Returns what it removed.
pub fn teardown(names: &Names) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for ns in ip::netns_list()?.into_iter().filter(|n| names.owns(n)) {
        ip::run(&["netns", "del", &ns])?;
        removed.push(ns);
    }
    for (link, _) in ip::links()?.into_iter().filter(|(l, _)| names.owns(l)) {
        // A veth disappears with its namespace's end; the bridge is removed here.
        match ip::run(&["link", "del", &link]) {
            Ok(()) => removed.push(link),
            Err(_) if !ip::link_exists(&link)? => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// What of this testnet still exists: namespaces and links by name.
pub fn leftovers(names: &Names) -> Result<Vec<String>> {
    let mut left: Vec<String> = ip::netns_list()?
        .into_iter()
        .filter(|n| names.owns(n))
        .collect();
    left.extend(
        ip::links()?
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| names.owns(l)),
    );
    Ok(left)
}

/// The command line that runs `program` inside node `i`'s namespace.
pub fn in_netns(names: &Names, i: usize, program: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &names.netns(i)]).arg(program);
    cmd
}

/// Routes node `i`'s traffic to the other nodes through its TUN device `dev` (made by the
/// router), keeping the host (the API) on the bridge.
pub fn route_through(names: &Names, i: usize, dev: &str) -> Result<()> {
    let addr = node_ip(i)?;
    ip::run_batch_in(
        &names.netns(i),
        &[
            format!("link set {dev} up"),
            format!("route add {HOST_IP}/32 dev eth0 src {addr}"),
            format!("route replace 10.77.0.0/16 dev {dev} src {addr}"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_directory_and_short() {
        let a = Names::of_dir(Path::new("/tmp/a"));
        let b = Names::of_dir(Path::new("/tmp/b"));
        assert_ne!(a, b);
        assert_eq!(a.tag.len(), 8);
        assert!(a.bridge().len() <= 15 && a.veth(9999).len() <= 15);
        assert_eq!(tag_of(&a.netns(3)), Some(a.tag.as_str()));
        assert_eq!(tag_of(&a.bridge()), Some(a.tag.as_str()));
        assert!(a.owns(&a.veth(1)) && !a.owns(&b.veth(1)));
        assert_eq!(tag_of("eth0"), None);
        assert_eq!(tag_of("gcxyzxyz-1"), None);
        assert_eq!(tag_of("gc012345"), None);
    }

    #[test]
    fn addresses_count_up_from_two_and_back() {
        assert_eq!(node_ip(0).unwrap(), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(node_ip(300).unwrap(), Ipv4Addr::new(10, 77, 1, 46));
        for i in [0, 1, 253, 254, 300, 64_999] {
            assert_eq!(index_of(node_ip(i).unwrap()), Some(i));
        }
        assert_eq!(index_of(HOST_IP), None);
        assert_eq!(index_of(Ipv4Addr::new(10, 78, 0, 2)), None);
        assert!(node_ip(MAX_NODES).is_err());
    }
}
