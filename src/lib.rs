//! gossipcoin: a small Bitcoin-style UTXO node, built to be read.
//!
//! Bird's-eye view (see README "Architecture"):
//! - [`params`]: chain parameters loaded from `config/devnet.toml`
//! - [`keys`]: secp256k1 keys, signing and verification
//! - `consensus`: every validity rule, as pure functions (no I/O)
//! - `store`: the LMDB chain store (blocks, index, UTXO set, address index, undo)
//! - `chain`: the only writer: accepts blocks, picks the most-work tip, reorganises
//! - `wallet`: keys in `wallet.dat`, unconfirmed spends, coin selection and signing
//! - `miner`: block assembly and the proof-of-work search
//! - `mempool`: unconfirmed transactions, conflict-free, ordered by fee rate, bounded
//! - `net`: the libp2p swarm (the only code that knows libp2p), behind `NetHandle`
//! - `node`: the daemon's wiring: router, chain task, sync, miner role
//! - `config`: role files layered under command-line flags
//! - `client`: submits a transaction to a running node
//! - `testnet`: a local network of node processes: up, status, logs, down
//! - `datadir`: who owns a data directory (the daemon's lock, its address file)
//! - `atomic_file`: replacing a file atomically (temp file, fsync, rename, fsync of the directory)
//! - `cli`, `commands`, `demo`, `logging`: the command line

pub mod api;
pub mod atomic_file;
pub mod chain;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod consensus;
pub mod datadir;
pub mod demo;
pub mod keys;
pub mod logging;
pub mod mempool;
pub mod metrics;
pub mod miner;
pub mod net;
pub mod node;
pub mod params;
pub mod store;
pub mod testnet;
pub mod wallet;
