//! Command-line types (clap). Only this file knows about clap; `commands` turns these into calls
//! on the core with plain config values.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// gossipcoin: a small Bitcoin-style node. Commands keep the names of the blockchain_go tutorial.
#[derive(Debug, Parser)]
#[command(name = "gossipcoin", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (wallet.dat, chain/). Default: ./node_<NODE_ID>.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Node id, as in the tutorial's `export NODE_ID=3000`: picks ./node_<id> as data directory.
    #[arg(long, global = true, env = "NODE_ID", value_name = "ID")]
    pub node_id: Option<u16>,

    /// Chain parameters file (TOML). Default: the built-in config/devnet.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub params: Option<PathBuf>,

    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = crate::logging::LogFormat::Pretty)]
    pub log_format: crate::logging::LogFormat,

    /// The node API to talk to (status, peers, mempool, mine). Default: the API of the node
    /// running on the data directory (its api.addr).
    #[arg(long, global = true, value_name = "URL")]
    pub api: Option<String>,

    /// Append logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// `--role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Central,
    Miner,
    Wallet,
}

impl From<RoleArg> for gossipcoin_proto::message::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Central => Self::Central,
            RoleArg::Miner => Self::Miner,
            RoleArg::Wallet => Self::Wallet,
        }
    }
}

/// `setban` commands, as Bitcoin Core spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BanCommand {
    Add,
    Remove,
}

/// `--api-auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiAuth {
    Cookie,
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generates a new key pair in wallet.dat and prints its address.
    Createwallet,
    /// Lists the addresses in wallet.dat.
    Listaddresses,
    /// Creates a blockchain whose genesis block pays the subsidy to ADDRESS.
    Createblockchain {
        /// Who the genesis block's subsidy pays (an address of `createwallet`).
        #[arg(long)]
        address: String,
    },
    /// Prints the balance of ADDRESS (works while a node runs on the same data directory).
    Getbalance {
        /// Any address (Base58Check, starting with 1). Without it: the running node's wallet,
        /// confirmed, unconfirmed and immature.
        #[arg(long)]
        address: Option<String>,
    },
    /// Prints the fee rate (units/vB) to pay to be mined within BLOCKS blocks, as the node
    /// running on this data directory estimates it (Bitcoin Core's estimatesmartfee).
    Estimatefee {
        /// Blocks to be mined within, 1 to 1008.
        #[arg(default_value_t = 2)]
        blocks: u32,
    },
    /// Sends AMOUNT coins from an address of this wallet to another address.
    Send {
        /// The paying address: one of this data directory's wallet (see listaddresses).
        #[arg(long)]
        from: String,
        /// The address paid.
        #[arg(long)]
        to: String,
        /// Coins, e.g. 10 or 0.5.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Fee in coins, paid to the miner. Default: through a running node, its fee estimate
        /// for the next 2 blocks (never below its minimum relay fee rate); straight to a node,
        /// 2 units/vB; with --mine and no running node, 0 (the payer mines it at once).
        #[arg(long, allow_hyphen_values = true)]
        fee: Option<String>,
        /// Mine a block with this transaction at once, on this node.
        #[arg(long)]
        mine: bool,
        /// With --mine: who gets subsidy + fees (default: the sender, as in the tutorial).
        #[arg(long, requires = "mine")]
        miner_address: Option<String>,
        /// With --mine: mining threads.
        #[arg(long, default_value_t = 1, requires = "mine")]
        threads: usize,
        /// Without --mine: the node to submit to (default: the daemon running on this data
        /// directory, else the central node /ip4/127.0.0.1/tcp/3000).
        #[arg(long, value_name = "MULTIADDR", conflicts_with = "mine")]
        node: Option<String>,
    },
    /// Runs a peer-to-peer node until Ctrl-C / SIGTERM.
    Startnode {
        /// What the node does (default: central).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Role file (default: the built-in config/<role>.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen multiaddr (repeatable). Default: /ip4/127.0.0.1/tcp/<NODE_ID or 3000>.
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Peer to bootstrap from (repeatable). Default: the central node /ip4/127.0.0.1/tcp/3000.
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// The address a miner's blocks pay (required for --role miner).
        #[arg(long, alias = "miner")]
        miner_address: Option<String>,
        /// Only join the network whose genesis block has this hash.
        #[arg(long, value_name = "HASH")]
        genesis: Option<String>,
        /// Mining threads (miner role).
        #[arg(long)]
        threads: Option<usize>,
        /// The mempool's minimum relay fee rate in units/vB (overrides the role file's
        /// `mempool.min_fee_rate`; 0 relays free payments until the pool fills).
        #[arg(long, value_name = "UNITS_PER_VB")]
        min_fee_rate: Option<f64>,
        /// HTTP API socket. Default: 127.0.0.1 at the p2p port + 1000 (3000 → 4000).
        #[arg(long, value_name = "HOST:PORT")]
        api_listen: Option<String>,
        /// `cookie`: state-changing endpoints need <data-dir>/api.cookie; `none`: no auth
        /// (demos only).
        #[arg(long, value_enum, default_value_t = ApiAuth::Cookie)]
        api_auth: ApiAuth,
    },
    /// Mines BLOCKS blocks on top of the tip, each paying the subsidy to ADDRESS (like Bitcoin
    /// Core's `generatetoaddress`): quick chains for experiments and tests.
    Generate {
        /// How many blocks to mine.
        #[arg(long)]
        blocks: u32,
        /// Who each block's subsidy pays.
        #[arg(long)]
        address: String,
    },
    /// Prints every block from the tip down to genesis, with its transactions.
    Printchain,
    /// Rebuilds the UTXO set, address index and transaction index from the blocks.
    Reindexutxo,
    /// Checks that tip, height index, UTXO set, address index and transaction index agree with
    /// the blocks.
    Verifychain,
    /// Shows the running node's status (through its HTTP API).
    Status,
    /// Lists the running node's peers (through its HTTP API).
    Peers,
    /// Shows the running node's mempool (through its HTTP API).
    Mempool,
    /// Makes the running node mine one block of its mempool now (through its HTTP API).
    Mine {
        /// Who gets subsidy + fees (default: the node's --miner-address, else its wallet).
        #[arg(long)]
        address: Option<String>,
    },
    /// Closes the running node's connections to a peer, no penalty (Core's `disconnectnode`).
    Disconnectnode {
        /// The peer id, as `peers` lists it.
        peer: String,
    },
    /// Bans a peer from the running node, or lifts its ban (Core's `setban`).
    Setban {
        /// The peer id, as `peers` lists it.
        peer: String,
        /// `add` bans (drops it, refuses it, never dials it), `remove` lifts the ban.
        #[arg(value_enum)]
        command: BanCommand,
    },
    /// Lists the running node's banned peers and how long each ban still runs (Core's
    /// `listbanned`).
    Listbanned,
    /// Shows one transaction through the running node (like bitcoin-cli gettransaction): in
    /// the mempool or in which block, height and confirmations; inputs, outputs and fee.
    Gettransaction {
        /// The transaction's id (64 hex digits).
        txid: String,
    },
    /// Lists the running node's wallet payments, newest first (like bitcoin-cli
    /// listtransactions): txid, amount, to whom, and pending, confirmed (height,
    /// confirmations) or conflicted (by which transaction).
    Listtransactions {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Reads the whole chain again for the running node's wallet history (for keys added by
    /// copying a wallet file in).
    Rescanwallet,
    /// Shows the built-in configuration: the chain parameters in effect (`--params`, else
    /// config/devnet.toml) and the role files `startnode --role` uses.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Runs the seed's network story on a fresh 3-process testnet (central, wallet, miner),
    /// printing every command and its answer; stops the nodes at the end or on Ctrl-C.
    Demo {
        /// Where the demo's testnet lives (default: a new temporary directory). Data and logs
        /// are kept there afterwards.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// A local network of real node processes (central, miners, wallets) on loopback.
    Testnet {
        #[command(subcommand)]
        command: TestnetCommand,
    },
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Prints the chain parameters and the built-in role files (or only ROLE's).
    Show {
        /// Only this role's file.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
}

/// A hint for flags spelled with one dash, as blockchain_go spells them (`-address`): clap
/// reads `-address` as the short flags `-a -d ...` and says "unexpected argument '-a'".
pub fn single_dash_hint(args: &[String]) -> Option<String> {
    let arg = args.iter().skip(1).find(|a| {
        a.len() > 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a[1..].chars().all(|c| c.is_ascii_alphabetic() || c == '-')
    })?;
    Some(format!(
        "gossipcoin spells flags with two dashes: -{arg} (not {arg}); see `gossipcoin help`"
    ))
}

/// The testnet's directory, shared by the `testnet` subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct TestnetDir {
    /// The testnet's directory (testnet.json and one data directory per node).
    #[arg(long = "dir", default_value = "testnet", value_name = "DIR")]
    pub path: PathBuf,
}

/// `testnet` subcommands.
#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Creates the nodes and starts one process each; returns once all are connected and synced.
    Up {
        #[command(flatten)]
        dir: TestnetDir,
        /// Miner nodes.
        #[arg(long, default_value_t = 1)]
        miners: u16,
        /// Wallet nodes.
        #[arg(long, default_value_t = 2)]
        wallets: u16,
        /// The central node's P2P port; the others take the next ones, APIs listen 1000 higher.
        #[arg(long, default_value_t = 3000, value_name = "PORT")]
        base_port: u16,
        /// Seconds to wait for every node to be connected and synced.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
        /// The block interval ASERT aims at (e.g. 5s; the devnet's is 2s): written with the
        /// other chain parameters to DIR/params.toml for every node.
        #[arg(long, value_name = "SECS", value_parser = crate::testnet::parse_interval)]
        block_interval: Option<u32>,
        #[command(flatten)]
        hosts: HostsArgs,
    },
    /// Stops every node (SIGTERM, then SIGKILL after the timeout); keeps data and logs.
    Down {
        #[command(flatten)]
        dir: TestnetDir,
        /// Seconds the nodes get to stop cleanly.
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
    },
    /// One row per node: process, height, tip, peers, mempool, sync state.
    Status {
        #[command(flatten)]
        dir: TestnetDir,
        /// Redraw every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Every node, however many (by default above 20 nodes: a summary and the unusual ones).
        #[arg(long, conflicts_with = "summary")]
        all: bool,
        /// The summary and only the unusual nodes, however few nodes there are.
        #[arg(long)]
        summary: bool,
    },
    /// Serves the testnet page: every node as a card, the peer graph, and when each of the
    /// latest blocks reached each node. Runs until Ctrl-C.
    Ui {
        #[command(flatten)]
        dir: TestnetDir,
        /// Where the page listens (loopback; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
        listen: std::net::SocketAddr,
    },
    /// Every node's log, merged in time order.
    Logs {
        #[command(flatten)]
        dir: TestnetDir,
        /// Only this node (e.g. miner-1).
        #[arg(long)]
        node: Option<String>,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Only lines containing this text.
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// Only this level and more severe ones.
        #[arg(long, value_enum)]
        level: Option<LevelArg>,
    },
    /// Follows one transaction (or block) across every node, from their logs: where it was
    /// submitted, when each node took it into its mempool and from whom, who mined it into
    /// which block, when each node accepted that block and from whom, with the delays.
    Trace {
        #[command(flatten)]
        dir: TestnetDir,
        /// A txid or a block hash.
        id: String,
    },
    /// Kills one node with SIGKILL, as a crash would (data and logs stay).
    Kill {
        #[command(flatten)]
        dir: TestnetDir,
        #[command(flatten)]
        node: NodeName,
    },
    /// Starts one stopped node again, with the flags `up` gave it.
    Start {
        #[command(flatten)]
        dir: TestnetDir,
        #[command(flatten)]
        node: NodeName,
        /// Seconds to wait for it to listen.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
    /// Cuts the network into groups (`central,miner-1 miner-2,wallet-1`): every node bans the
    /// nodes of the other groups through its API. Nodes in no group stay connected to all.
    Partition {
        #[command(flatten)]
        dir: TestnetDir,
        /// Two or more groups of comma-separated node names.
        #[arg(required = true, num_args = 2.., value_name = "NODES")]
        groups: Vec<String>,
    },
    /// Undoes `partition`: lifts the bans (or, with `--hosts`, removes the firewall rules)
    /// between the testnet's nodes and reconnects them.
    Heal {
        #[command(flatten)]
        dir: TestnetDir,
    },
    /// The user-space router of `up --hosts` with WAN conditions (started by `up`).
    #[command(hide = true)]
    Router {
        #[command(flatten)]
        dir: TestnetDir,
    },
}

/// `testnet up --hosts` and its WAN conditions.
#[derive(Debug, Clone, clap::Args)]
pub struct HostsArgs {
    /// Each node a host of its own: a Linux network namespace with its own address on a bridge
    /// (10.77.0.0/16, nothing leaves the machine). Needs root (CAP_NET_ADMIN), iproute2, nftables.
    #[arg(long)]
    pub hosts: bool,
    /// One-way delay of every packet between two hosts (e.g. 80ms); a ping's round trip is twice it.
    #[arg(long, requires = "hosts", value_name = "MS", value_parser = crate::testnet::hosts::parse_millis)]
    pub latency: Option<u32>,
    /// Uniform jitter added to the latency (± this; e.g. 20ms).
    #[arg(long, requires = "hosts", value_name = "MS", value_parser = crate::testnet::hosts::parse_millis)]
    pub jitter: Option<u32>,
    /// Share of packets lost on every link (e.g. 1%).
    #[arg(long, requires = "hosts", value_name = "PCT", value_parser = crate::testnet::hosts::parse_loss)]
    pub loss: Option<u32>,
    /// A named group of nodes for --latency-between (`eu=central,miner-1,wallet-1..50`); repeatable.
    #[arg(long = "group", requires = "hosts", value_name = "NAME=NODES", value_parser = crate::testnet::hosts::parse_group)]
    pub groups: Vec<(String, Vec<String>)>,
    /// The latency between two groups instead of --latency (`eu,us:150ms`); repeatable.
    #[arg(long, requires = "hosts", value_name = "A,B:MS", value_parser = crate::testnet::hosts::parse_latency_between)]
    pub latency_between: Vec<crate::testnet::hosts::GroupLatency>,
}

impl HostsArgs {
    /// `None` without `--hosts`; else the WAN conditions (all zero when none is given).
    pub fn wan(&self) -> Option<crate::testnet::hosts::Wan> {
        self.hosts.then(|| crate::testnet::hosts::Wan {
            latency_ms: self.latency.unwrap_or(0),
            jitter_ms: self.jitter.unwrap_or(0),
            loss_ppm: self.loss.unwrap_or(0),
            groups: self.groups.clone(),
            between: self.latency_between.clone(),
        })
    }
}

/// Testnet subcommands that act on one node, or cut and heal the network.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeName {
    /// The node (e.g. miner-1, as `testnet status` lists them).
    pub node: String,
}

/// `--level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LevelArg> for crate::testnet::Level {
    fn from(l: LevelArg) -> Self {
        match l {
            LevelArg::Error => Self::Error,
            LevelArg::Warn => Self::Warn,
            LevelArg::Info => Self::Info,
            LevelArg::Debug => Self::Debug,
            LevelArg::Trace => Self::Trace,
        }
    }
}
