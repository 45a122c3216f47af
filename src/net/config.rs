//! `NetConfig`: what the node tells the network layer at start, with defaults for a devnet.
//!
//! Addresses are multiaddr strings (`/ip4/127.0.0.1/tcp/3000`, optionally ending in
//! `/p2p/<peer id>`), parsed and checked once by [`super::spawn`].

use std::path::PathBuf;
use std::time::Duration;

use gossipcoin_proto::{BlockHash, MAX_BLOCK_BYTES};
use libp2p::Multiaddr;

use super::NetError;

/// How the network layer runs.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on; port 0 picks a free port.
    pub listen: Vec<String>,
    /// Peers to connect to at start (the central node). With `/p2p/<peer id>` the peer is also
    /// put straight into the DHT; without it, it joins the DHT once connected.
    pub bootstrap: Vec<String>,
    /// The node's ed25519 key (`<data-dir>/node.key`), created on first start.
    pub key_file: PathBuf,
    /// The network to join before dialing, when the node already knows its genesis.
    /// A fresh node leaves it `None`, learns the genesis from a peer, then calls `join`.
    pub genesis: Option<BlockHash>,
    /// At most this many inbound peers (the least useful is evicted to make room).
    pub max_peers: u32,
    /// Outbound full-relay connections the node keeps (Core: 8), found through the DHT.
    pub outbound_full_relay: u32,
    /// Outbound block-relay-only connections the node keeps (Core: 2).
    pub outbound_block_relay: u32,
    /// Where the block-relay peers are kept across restarts (`<data-dir>/anchors.json`);
    /// `None` keeps no anchors.
    pub anchors_file: Option<PathBuf>,
    /// How long an outbound request may take, and how long the node may take to answer one.
    pub request_timeout: Duration,
    /// Sustained inbound request rate allowed per peer (with a burst of as many).
    pub requests_per_second_per_peer: u32,
    /// Find peers through the DHT (kad) and dial them. Off, the node only talks to the peers it
    /// dials or that dial it (tests use that to build exact topologies).
    pub discovery: bool,
    /// How often discovery looks for peers (kad bootstrap) and redials the bootstrap peers
    /// when the node is alone.
    pub discovery_interval: Duration,
    /// The gossipsub heartbeat: mesh maintenance and gossip emission.
    pub heartbeat: Duration,
    /// How long a ban lasts (the peer id, and the IP of a non-local peer).
    pub ban_duration: Duration,
    /// Where the bans in force are kept across restarts (`<data-dir>/banlist.json`); `None`
    /// keeps them in memory only.
    pub ban_file: Option<PathBuf>,
    /// Gossip blocks larger than this are rejected before decoding: the chain's max block
    /// size (at most the protocol's `MAX_BLOCK_BYTES`).
    pub max_block_bytes: usize,
    /// What all peers together may draw from us in answers, bytes per second (the total
    /// upload budget; each network group also gets at most one peer's share).
    pub max_upload_bytes_per_sec: u64,
}

impl NetConfig {
    /// Defaults for a node whose key lives at `key_file`: listen on a free loopback port,
    /// no bootstrap peers, discovery on.
    pub fn new(key_file: impl Into<PathBuf>) -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".to_owned()],
            bootstrap: Vec::new(),
            key_file: key_file.into(),
            genesis: None,
            max_peers: 117,
            outbound_full_relay: 8,
            outbound_block_relay: 2,
            anchors_file: None,
            request_timeout: Duration::from_secs(30),
            requests_per_second_per_peer: 20,
            discovery: true,
            discovery_interval: Duration::from_secs(30),
            heartbeat: Duration::from_millis(500),
            ban_duration: Duration::from_secs(24 * 3600),
            ban_file: None,
            max_block_bytes: MAX_BLOCK_BYTES,
            max_upload_bytes_per_sec: super::budgets::DEFAULT_UPLOAD_BYTES_PER_SEC,
        }
    }

    /// Checks the numbers; the addresses are checked by [`parse_addrs`].
    pub(super) fn validate(&self) -> Result<(), NetError> {
        let fail = |what: &str| Err(NetError::Config(what.to_owned()));
        if self.max_peers == 0 {
            return fail("max_peers must be at least 1");
        }
        if self.outbound_full_relay == 0 || self.outbound_full_relay > 64 {
            return fail("outbound_full_relay must be between 1 and 64");
        }
        if self.outbound_block_relay > 16 {
            return fail("outbound_block_relay must be at most 16");
        }
        if self.requests_per_second_per_peer == 0 {
            return fail("requests_per_second_per_peer must be at least 1");
        }
        if self.request_timeout.is_zero() {
            return fail("request_timeout must be positive");
        }
        if self.discovery_interval < Duration::from_millis(100) {
            return fail("discovery_interval must be at least 100 ms");
        }
        if self.heartbeat < Duration::from_millis(50) || self.heartbeat > Duration::from_secs(10) {
            return fail("heartbeat must be between 50 ms and 10 s");
        }
        if self.ban_duration.is_zero() {
            return fail("ban_duration must be positive");
        }
        if !(1024..=MAX_BLOCK_BYTES).contains(&self.max_block_bytes) {
            return fail(
                "max_block_bytes must be between 1 KiB and the protocol's MAX_BLOCK_BYTES",
            );
        }
        Ok(())
    }
}

/// Parses multiaddr strings, naming the bad one.
pub(super) fn parse_addrs(addrs: &[String]) -> Result<Vec<Multiaddr>, NetError> {
    addrs.iter().map(|a| parse_addr(a)).collect()
}

/// Parses one multiaddr string.
pub(super) fn parse_addr(addr: &str) -> Result<Multiaddr, NetError> {
    addr.parse().map_err(|e| NetError::InvalidAddress {
        addr: addr.to_owned(),
        reason: format!("{e}"),
    })
}

/// Fails when another process already listens on the TCP port of `addr`.
///
/// libp2p-tcp sets `SO_REUSEPORT` on its listeners, so a second node on the same port would
/// bind without error and the kernel would split incoming connections between the two. A plain
/// socket (`SO_REUSEADDR` only, as std binds) cannot share a port with a listener: binding one
/// first and closing it again tells whether the port is free. Port 0 and non-TCP addresses
/// pass.
pub(super) fn check_port_free(addr: &Multiaddr) -> Result<(), NetError> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(NetError::Listen {
            addr: addr.to_string(),
            reason: format!(
                "port {port} is in use ({e}): another node or program listens there; \
                 choose another with --listen (for example /ip4/{ip}/tcp/0 picks a free one)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        let config = NetConfig::new("/tmp/node.key");
        config.validate().unwrap();
        let zero = NetConfig {
            max_peers: 0,
            ..config.clone()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("max_peers")
        );
        let slow = NetConfig {
            heartbeat: Duration::from_secs(60),
            ..config.clone()
        };
        assert!(slow.validate().is_err());
        let huge = NetConfig {
            max_block_bytes: MAX_BLOCK_BYTES + 1,
            ..config
        };
        assert!(huge.validate().is_err());
    }

    #[test]
    fn addresses_parse_or_name_the_culprit() {
        let ok = parse_addrs(&["/ip4/127.0.0.1/tcp/3000".to_owned()]).unwrap();
        assert_eq!(ok[0].to_string(), "/ip4/127.0.0.1/tcp/3000");
        let err = parse_addr("127.0.0.1:3000").unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:3000"), "{err}");
    }
}
