//! Node configuration: built-in defaults < role file (`config/<role>.toml`, or `--config FILE`)
//! < command-line flags. Parsed and validated once; the core takes these structs, never CLI types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gossipcoin_proto::{Address, BlockHash, message::Role};
use serde::Deserialize;

use crate::mempool::{FeeRate, MempoolLimits};

/// The built-in role files.
const CENTRAL_TOML: &str = include_str!("../config/central.toml");
const MINER_TOML: &str = include_str!("../config/miner.toml");
const WALLET_TOML: &str = include_str!("../config/wallet.toml");

/// The default port of the central node, and of `--listen auto` without `NODE_ID`.
pub const CENTRAL_PORT: u16 = 3000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A role file as written (every field optional: missing ones keep their defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    role: Option<String>,
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    #[serde(default)]
    mempool: MempoolConfig,
    #[serde(default)]
    net: NetSettings,
    #[serde(default)]
    mining: MiningConfig,
    #[serde(default)]
    wallet: WalletConfig,
}

/// Mempool bounds and relay policy (see [`crate::mempool::MempoolLimits`]). Fee rates are in
/// units/vB (base units per encoded byte), fractions allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Memory the pool's transactions may take, bytes (Core's `-maxmempool`).
    pub max_bytes: usize,
    /// The lowest fee rate accepted and relayed (Core's `-minrelaytxfee`).
    pub min_fee_rate: f64,
    /// What a replacement adds over the fees it replaces, per byte, and the step of the rolling
    /// minimum (Core's `-incrementalrelayfee`).
    pub incremental_fee_rate: f64,
    /// Outputs worth less than spending them costs at this rate are refused (`-dustrelayfee`).
    pub dust_fee_rate: f64,
    pub max_ancestors: usize,
    pub max_ancestor_bytes: usize,
    pub max_descendants: usize,
    pub max_descendant_bytes: usize,
    /// Seconds a transaction may stay unconfirmed (Core's `-mempoolexpiry`, 14 days).
    pub expiry_secs: u64,
    /// Half-life of the rolling minimum fee rate after the pool was full, seconds.
    pub rolling_fee_halflife_secs: u64,
    /// How often the mempool is written to `mempool.dat` when it changed (it is also written
    /// at shutdown), in seconds.
    pub save_interval_secs: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        let core = MempoolLimits::core(50_000_000);
        Self {
            max_bytes: core.max_bytes,
            min_fee_rate: core.min_fee_rate.units_per_vb(),
            incremental_fee_rate: core.incremental_fee_rate.units_per_vb(),
            dust_fee_rate: core.dust_fee_rate.units_per_vb(),
            max_ancestors: core.max_ancestors,
            max_ancestor_bytes: core.max_ancestor_bytes,
            max_descendants: core.max_descendants,
            max_descendant_bytes: core.max_descendant_bytes,
            expiry_secs: core.expiry_secs,
            rolling_fee_halflife_secs: core.rolling_fee_halflife_secs,
            save_interval_secs: 60,
        }
    }
}

impl MempoolConfig {
    /// The pool's limits, or which setting is out of range.
    pub fn limits(&self) -> Result<MempoolLimits, ConfigError> {
        let rate = |name: &str, v: f64| {
            FeeRate::from_config(v).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "mempool.{name} must be a fee rate of 0 to 100000000 units/vB, not {v}"
                ))
            })
        };
        let limits = MempoolLimits {
            max_bytes: self.max_bytes,
            min_fee_rate: rate("min_fee_rate", self.min_fee_rate)?,
            incremental_fee_rate: rate("incremental_fee_rate", self.incremental_fee_rate)?,
            dust_fee_rate: rate("dust_fee_rate", self.dust_fee_rate)?,
            max_ancestors: self.max_ancestors,
            max_ancestor_bytes: self.max_ancestor_bytes,
            max_descendants: self.max_descendants,
            max_descendant_bytes: self.max_descendant_bytes,
            expiry_secs: self.expiry_secs,
            rolling_fee_halflife_secs: self.rolling_fee_halflife_secs,
        };
        if limits.max_ancestors == 0 || limits.max_descendants == 0 {
            return Err(ConfigError::Invalid(
                "mempool.max_ancestors and mempool.max_descendants must be at least 1".into(),
            ));
        }
        let max = gossipcoin_proto::MAX_TX_BYTES;
        if limits.max_ancestor_bytes < max || limits.max_descendant_bytes < max {
            return Err(ConfigError::Invalid(format!(
                "mempool.max_ancestor_bytes and mempool.max_descendant_bytes must be at least {max}"
            )));
        }
        if limits.expiry_secs < 60 || limits.rolling_fee_halflife_secs < 10 {
            return Err(ConfigError::Invalid(
                "mempool.expiry_secs must be at least 60 and mempool.rolling_fee_halflife_secs at least 10".into(),
            ));
        }
        Ok(limits)
    }

    pub fn save_interval(&self) -> Duration {
        Duration::from_secs(self.save_interval_secs)
    }
}

/// Peer-to-peer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSettings {
    /// Inbound peers at most (the least useful is evicted to make room).
    pub max_peers: u32,
    /// Outbound full-relay peers the node keeps (found through the DHT).
    pub outbound_full_relay: u32,
    /// Outbound block-relay-only peers the node keeps.
    pub outbound_block_relay: u32,
    pub request_timeout_secs: u64,
    pub requests_per_second: u32,
    /// What all peers together may download from us, bytes per second.
    pub max_upload_bytes_per_sec: u64,
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            max_peers: 117,
            outbound_full_relay: 8,
            outbound_block_relay: 2,
            request_timeout_secs: 10,
            requests_per_second: 200,
            max_upload_bytes_per_sec: crate::net::DEFAULT_UPLOAD_BYTES_PER_SEC,
        }
    }
}

/// When and how a miner mines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningConfig {
    pub min_txs: usize,
    pub max_wait_secs: u64,
    pub threads: usize,
    /// Mine without waiting for transactions, empty blocks included: a block every target
    /// spacing on an ASERT chain (to study intervals, forks and difficulty).
    pub empty_blocks: bool,
}

impl Default for MiningConfig {
    fn default() -> Self {
        Self {
            min_txs: 2,
            max_wait_secs: 10,
            threads: 1,
            empty_blocks: false,
        }
    }
}

impl MiningConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }
}

/// The node's wallet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Seconds between two rounds of offering pending payments again (and following them to
    /// confirmed or conflicted); Bitcoin Core's wallet resend. A round also runs at start.
    pub resend_secs: u64,
}

impl Default for WalletConfig {
    fn default() -> Self {
        Self { resend_secs: 30 }
    }
}

impl WalletConfig {
    pub fn resend_interval(&self) -> Duration {
        Duration::from_secs(self.resend_secs)
    }
}

/// What the command line may override.
#[derive(Debug, Default)]
pub struct Overrides {
    pub role: Option<Role>,
    pub config_file: Option<PathBuf>,
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub miner_address: Option<String>,
    pub genesis: Option<String>,
    pub threads: Option<usize>,
    /// `--min-fee-rate`, units/vB.
    pub min_fee_rate: Option<f64>,
    pub node_id: Option<u16>,
    /// `--api-listen HOST:PORT`.
    pub api_listen: Option<String>,
    /// `--api-auth none`: no cookie needed (demos only).
    pub api_auth_none: bool,
}

/// The HTTP API's socket and whether state-changing endpoints need the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: std::net::SocketAddr,
    pub require_cookie: bool,
}

/// The API port that goes with a p2p port: +1000 (3000 → 4000), or 0 (any free port) when the
/// p2p port is 0.
pub fn api_port_for(p2p_port: u16) -> Option<u16> {
    if p2p_port == 0 {
        Some(0)
    } else {
        p2p_port.checked_add(API_PORT_OFFSET)
    }
}

/// How far the API port is from the p2p port by default.
pub const API_PORT_OFFSET: u16 = 1000;

/// The TCP port of a `/ip4/../tcp/PORT` multiaddr.
fn tcp_port(multiaddr: &str) -> Option<u16> {
    let mut parts = multiaddr.split('/');
    while let Some(part) = parts.next() {
        if part == "tcp" {
            return parts.next()?.parse().ok();
        }
    }
    None
}

/// The validated configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub role: Role,
    pub data_dir: PathBuf,
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub miner_address: Option<Address>,
    pub genesis: Option<BlockHash>,
    pub mempool: MempoolConfig,
    pub net: NetSettings,
    pub mining: MiningConfig,
    pub wallet: WalletConfig,
    pub api: ApiSettings,
}

fn parse_role(s: &str) -> Result<Role, ConfigError> {
    match s {
        "central" => Ok(Role::Central),
        "miner" => Ok(Role::Miner),
        "wallet" => Ok(Role::Wallet),
        other => Err(ConfigError::Invalid(format!(
            "unknown role {other:?}: expected central, miner or wallet"
        ))),
    }
}

/// The built-in role file of `role` (`config/<role>.toml`, compiled in).
pub fn builtin(role: Role) -> &'static str {
    match role {
        Role::Central => CENTRAL_TOML,
        Role::Miner => MINER_TOML,
        Role::Wallet => WALLET_TOML,
    }
}

fn parse_file(text: &str, path: &str) -> Result<RoleFile, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.into(),
        source,
    })
}

impl NodeConfig {
    /// Layers defaults < role file < overrides and validates the result.
    pub fn load(data_dir: &Path, o: Overrides) -> Result<Self, ConfigError> {
        let file = match &o.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                parse_file(&text, &path.display().to_string())?
            }
            None => {
                let role = o.role.unwrap_or_else(|| default_role(&o).0);
                parse_file(builtin(role), &format!("config/{role}.toml"))?
            }
        };
        let file_role = file.role.as_deref().map(parse_role).transpose()?;
        let role = o.role.or(file_role).unwrap_or_else(|| default_role(&o).0);

        let default_port = o.node_id.unwrap_or(CENTRAL_PORT);
        let listen = if o.listen.is_empty() {
            file.listen.unwrap_or_default()
        } else {
            o.listen
        };
        let listen: Vec<String> = listen
            .into_iter()
            .map(|l| {
                if l == "auto" {
                    format!("/ip4/127.0.0.1/tcp/{default_port}")
                } else {
                    l
                }
            })
            .collect();
        let listen = if listen.is_empty() {
            vec![format!("/ip4/127.0.0.1/tcp/{default_port}")]
        } else {
            listen
        };
        let bootstrap = if o.bootstrap.is_empty() {
            file.bootstrap.unwrap_or_else(|| {
                if role == Role::Central {
                    vec![]
                } else {
                    vec![central_addr()]
                }
            })
        } else {
            o.bootstrap
        };
        let miner_address = o
            .miner_address
            .as_deref()
            .map(str::parse::<Address>)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("--miner-address: {e}")))?;
        let genesis = o
            .genesis
            .as_deref()
            .map(str::parse::<BlockHash>)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("--genesis: {e}")))?;
        let api_listen = match &o.api_listen {
            Some(text) => text.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "--api-listen {text:?} is not HOST:PORT (e.g. 127.0.0.1:4000)"
                ))
            })?,
            None => {
                let p2p = listen
                    .first()
                    .and_then(|l| tcp_port(l))
                    .unwrap_or(CENTRAL_PORT);
                let port = api_port_for(p2p).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "no default API port for p2p port {p2p}: pass --api-listen HOST:PORT"
                    ))
                })?;
                std::net::SocketAddr::from(([127, 0, 0, 1], port))
            }
        };
        let mut mining = file.mining;
        if let Some(t) = o.threads {
            mining.threads = t;
        }
        let config = Self {
            role,
            data_dir: data_dir.to_path_buf(),
            listen,
            bootstrap,
            miner_address,
            genesis,
            mempool: MempoolConfig {
                min_fee_rate: o.min_fee_rate.unwrap_or(file.mempool.min_fee_rate),
                ..file.mempool
            },
            net: file.net,
            mining,
            wallet: file.wallet,
            api: ApiSettings {
                listen: api_listen,
                require_cookie: !o.api_auth_none,
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.role == Role::Miner && self.miner_address.is_none() {
            return bad("a miner needs --miner-address ADDRESS to be paid to");
        }
        for addr in self.listen.iter().chain(&self.bootstrap) {
            if !addr.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "{addr:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/3000)"
                )));
            }
        }
        if self.mining.threads == 0 || self.mining.min_txs == 0 {
            return bad("mining.threads and mining.min_txs must be at least 1");
        }
        if !(1..=64).contains(&self.net.outbound_full_relay) || self.net.outbound_block_relay > 16 {
            return bad(
                "net.outbound_full_relay must be 1 to 64, net.outbound_block_relay 0 to 16",
            );
        }
        if self.net.max_peers == 0 || self.net.requests_per_second == 0 {
            return bad("net.max_peers and net.requests_per_second must be at least 1");
        }
        if self.net.max_upload_bytes_per_sec < 1024 * 1024 {
            return bad("net.max_upload_bytes_per_sec must be at least 1048576 (1 MiB/s)");
        }
        if self.wallet.resend_secs == 0 || self.wallet.resend_secs > 86_400 {
            return bad("wallet.resend_secs must be 1 to 86400");
        }
        if self.mempool.max_bytes < gossipcoin_proto::MAX_TX_BYTES {
            return bad("mempool.max_bytes must hold at least one maximal transaction");
        }
        if self.mempool.save_interval_secs == 0 {
            return bad("mempool.save_interval_secs must be at least 1");
        }
        self.mempool.limits()?;
        Ok(())
    }
}

/// The role of a node started without `--role` (and without a role file), and why: a miner
/// when it has a `--miner-address` (the tutorial's `startnode -miner ADDR`), a wallet node when
/// `NODE_ID` names another port than the central node's 3000 (it bootstraps from 3000), else the
/// central node.
pub fn default_role(o: &Overrides) -> (Role, &'static str) {
    if o.miner_address.is_some() {
        (Role::Miner, "--miner-address was given")
    } else if o.node_id.is_some_and(|id| id != CENTRAL_PORT) {
        (
            Role::Wallet,
            "NODE_ID is not the central node's 3000: it bootstraps from the central node",
        )
    } else {
        (Role::Central, "the central node listens on NODE_ID 3000")
    }
}

/// The central node's well-known address.
pub fn central_addr() -> String {
    format!("/ip4/127.0.0.1/tcp/{CENTRAL_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(o: Overrides) -> Result<NodeConfig, ConfigError> {
        NodeConfig::load(Path::new("node_x"), o)
    }

    #[test]
    fn without_a_role_a_miner_address_means_miner_and_another_node_id_wallet() {
        let addr = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2".to_string();
        let miner = Overrides {
            miner_address: Some(addr),
            node_id: Some(3002),
            ..Default::default()
        };
        assert_eq!(default_role(&miner).0, Role::Miner);
        let wallet = Overrides {
            node_id: Some(3001),
            ..Default::default()
        };
        assert_eq!(default_role(&wallet).0, Role::Wallet);
        assert_eq!(load(wallet).unwrap().bootstrap, [central_addr()]);
        for id in [None, Some(3000)] {
            let o = Overrides {
                node_id: id,
                ..Default::default()
            };
            assert_eq!(default_role(&o).0, Role::Central);
        }
    }

    #[test]
    fn the_api_listens_on_loopback_at_the_p2p_port_plus_1000_unless_told() {
        let c = load(Overrides {
            listen: vec!["/ip4/127.0.0.1/tcp/3005".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:4005");
        assert!(c.api.require_cookie);
        let any = load(Overrides {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(any.api.listen.port(), 0);
        let explicit = load(Overrides {
            api_listen: Some("127.0.0.1:9999".into()),
            api_auth_none: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(explicit.api.listen.to_string(), "127.0.0.1:9999");
        assert!(!explicit.api.require_cookie);
        let err = load(Overrides {
            api_listen: Some("localhost".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--api-listen"), "{err}");
        let err = load(Overrides {
            listen: vec!["/ip4/127.0.0.1/tcp/65000".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--api-listen"), "{err}");
    }

    #[test]
    fn built_in_role_files_parse() {
        for role in [Role::Central, Role::Wallet] {
            let c = load(Overrides {
                role: Some(role),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(c.role, role);
        }
        let addr = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH".to_string();
        let miner = load(Overrides {
            role: Some(Role::Miner),
            miner_address: Some(addr),
            node_id: Some(3002),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(miner.listen, ["/ip4/127.0.0.1/tcp/3002"]);
        assert_eq!(miner.bootstrap, [central_addr()]);
        assert_eq!(miner.mining.min_txs, 2);
        assert!(!miner.mining.empty_blocks);
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("m.toml");
        std::fs::write(&f, "role = \"miner\"\n[mining]\nempty_blocks = true\n").unwrap();
        let continuous = load(Overrides {
            config_file: Some(f),
            miner_address: Some("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(continuous.mining.empty_blocks);
        assert_eq!(continuous.mining.min_txs, 2, "the rest from the defaults");
    }

    #[test]
    fn flags_override_the_file() {
        let c = load(Overrides {
            role: Some(Role::Wallet),
            listen: vec!["/ip4/127.0.0.1/tcp/4000".into()],
            bootstrap: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen, ["/ip4/127.0.0.1/tcp/4000"]);
        assert_eq!(c.bootstrap, ["/ip4/127.0.0.1/tcp/4001"]);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let miner_without_address = load(Overrides {
            role: Some(Role::Miner),
            ..Default::default()
        });
        assert!(
            miner_without_address
                .unwrap_err()
                .to_string()
                .contains("--miner-address")
        );
        let bad_listen = load(Overrides {
            listen: vec!["localhost:3000".into()],
            ..Default::default()
        });
        assert!(bad_listen.unwrap_err().to_string().contains("multiaddr"));
        let bad_genesis = load(Overrides {
            genesis: Some("xyz".into()),
            ..Default::default()
        });
        assert!(bad_genesis.unwrap_err().to_string().contains("--genesis"));
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("c.toml");
        std::fs::write(&f, "role = \"miner\"\nsurprise = 1\n").unwrap();
        let unknown_key = load(Overrides {
            config_file: Some(f.clone()),
            ..Default::default()
        });
        assert!(matches!(unknown_key, Err(ConfigError::Parse { .. })));
        std::fs::write(&f, "role = \"boss\"\n").unwrap();
        let unknown_role = load(Overrides {
            config_file: Some(f),
            ..Default::default()
        });
        assert!(
            unknown_role
                .unwrap_err()
                .to_string()
                .contains("unknown role")
        );
    }

    #[test]
    fn the_mempool_save_interval_defaults_to_a_minute_and_is_at_least_one_second() {
        assert_eq!(
            load(Overrides::default()).unwrap().mempool.save_interval(),
            Duration::from_secs(60)
        );
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("c.toml");
        for (secs, ok) in [(2, true), (0, false)] {
            std::fs::write(&f, format!("[mempool]\nsave_interval_secs = {secs}\n")).unwrap();
            let c = load(Overrides {
                config_file: Some(f.clone()),
                ..Default::default()
            });
            match c {
                Ok(c) if ok => assert_eq!(c.mempool.save_interval_secs, secs),
                Err(e) if !ok => assert!(e.to_string().contains("save_interval_secs"), "{e}"),
                other => panic!("{secs}: {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod mempool_tests {
    use super::*;

    fn with_file(text: &str) -> Result<NodeConfig, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        NodeConfig::load(
            tmp.path(),
            Overrides {
                config_file: Some(f),
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_fee_floor_is_1_unit_per_vbyte_unless_the_file_says_and_checked() {
        let default = with_file("role = \"central\"\n").unwrap();
        let limits = default.mempool.limits().unwrap();
        assert_eq!(limits.min_fee_rate, FeeRate::from_units_per_vb(1));
        assert_eq!(limits.max_ancestors, 25);
        assert_eq!(limits.expiry_secs, 14 * 24 * 3600);
        let free = with_file("role = \"central\"\n[mempool]\nmin_fee_rate = 0\n").unwrap();
        assert_eq!(free.mempool.limits().unwrap().min_fee_rate, FeeRate::ZERO);
        let half = with_file("role = \"central\"\n[mempool]\nmin_fee_rate = 0.5\n").unwrap();
        assert_eq!(
            half.mempool.limits().unwrap().min_fee_rate,
            FeeRate::from_milli_units_per_vb(500)
        );
        for bad in [
            "min_fee_rate = -1",
            "dust_fee_rate = 1e12",
            "max_ancestors = 0",
            "expiry_secs = 1",
        ] {
            let e = with_file(&format!("role = \"central\"\n[mempool]\n{bad}\n"));
            assert!(matches!(e, Err(ConfigError::Invalid(_))), "{bad}: {e:?}");
        }
    }
}

#[cfg(test)]
mod wallet_tests {
    use super::*;

    fn with_file(text: &str) -> Result<NodeConfig, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        NodeConfig::load(
            tmp.path(),
            Overrides {
                config_file: Some(f),
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_resend_interval_is_30_s_unless_the_file_says_and_bounded() {
        let default = with_file("role = \"central\"\n").unwrap();
        assert_eq!(default.wallet.resend_interval(), Duration::from_secs(30));
        let short = with_file("role = \"central\"\n[wallet]\nresend_secs = 1\n").unwrap();
        assert_eq!(short.wallet.resend_interval(), Duration::from_secs(1));
        for bad in ["0", "86401"] {
            let e = with_file(&format!(
                "role = \"central\"\n[wallet]\nresend_secs = {bad}\n"
            ));
            assert!(e.unwrap_err().to_string().contains("resend_secs"), "{bad}");
        }
    }
}
