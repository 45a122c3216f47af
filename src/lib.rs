//! gossipcoin: a small Bitcoin-style UTXO node, built to be read.
//!
//! Bird's-eye view (see README "Architecture"):
//! - [`params`]: chain parameters loaded from `config/devnet.toml`
//! - [`keys`]: secp256k1 keys, signing and verification
//! - `consensus`: every validity rule, as pure functions (no I/O)
//! - `store`: the LMDB chain store (blocks, index, UTXO set, address index, undo)
//! - `chain`: the only writer: accepts blocks, picks the most-work tip, reorganises
//! - `wallet`: keys in `wallet.dat`, coin selection and signing
//! - `miner`: block assembly and the proof-of-work search
//! - `cli`, `commands`: the command line

pub mod chain;
pub mod cli;
pub mod commands;
pub mod consensus;
pub mod demo;
pub mod keys;
pub mod logging;
pub mod mempool;
pub mod miner;
pub mod net;
pub mod params;
pub mod store;
pub mod wallet;
