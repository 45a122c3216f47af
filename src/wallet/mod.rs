//! The wallet: private keys kept in `<data-dir>/wallet.dat`, and payments built and signed
//! from them.
//!
//! - [`file`]: [`Wallet`], the ordered list of keys, its file format, atomic saves and the lock
//!   that keeps two `createwallet` processes from losing a key
//! - [`builder`]: [`build_payment`], coin selection and signing
//! - [`coins`]: [`coins::spendable`], which coins a payment may spend (one rule for all)
//! - [`pending`]: [`Pending`], the payments made and what became of them (`wallet.pending`)
//! - [`keyring`]: [`Keyring`], the keys held in memory by the daemon, by public key hash
//! - [`ledger`]: [`Ledger`], the wallet's history derived from the chain and the mempool
//!   (send, receive, generate, immature, orphan; pending, confirmed, conflicted)
//! - [`history_file`]: `wallet.history`, the ledger as last saved
//!
//! The wallet never prints or logs a private key: [`crate::keys::PrivateKey`]'s `Debug` shows
//! only its address, and errors name files and amounts, never key bytes.

pub mod builder;
pub mod coins;
pub mod file;
pub mod history_file;
pub mod keyring;
pub mod ledger;
pub mod pending;

use std::path::PathBuf;

use gossipcoin_proto::{Amount, OutPoint};

pub use builder::build_payment;
pub use file::Wallet;
pub use keyring::Keyring;
pub use ledger::Ledger;
pub use pending::{Payment, PaymentState, Pending};

/// Everything that can go wrong reading, writing or spending from a wallet.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The wallet file exists but is not a valid wallet. It is never rewritten in this case.
    #[error(
        "wallet file {path} is corrupt ({reason}); it was left untouched: restore it from a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    /// The file is a well-formed wallet of a format this program does not know.
    #[error(
        "wallet file {path} has format version {version}, this gossipcoin reads version {supported}: use a newer gossipcoin"
    )]
    UnsupportedVersion {
        path: PathBuf,
        version: u8,
        supported: u8,
    },
    #[error("data directory {path} exists but is not a directory: choose another --data-dir")]
    DataDirNotADirectory { path: PathBuf },
    /// A file system operation failed; `action` says which ("read", "lock", ...).
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the amount to send must be greater than zero")]
    ZeroAmount,
    #[error("insufficient funds: have {have} coins, need {need} (amount plus fee)")]
    InsufficientFunds { have: Amount, need: Amount },
    /// The wallet tracks as many payments as it may; older ones must confirm first.
    #[error(
        "the wallet already tracks {limit} payments: wait until older ones are confirmed and pruned"
    )]
    TooManyPayments { limit: usize },
    #[error("amount plus fee exceeds the maximum of 21000000 coins")]
    AmountOverflow,
    /// A coin handed to the builder is locked to another key: a bug in the caller.
    #[error("coin {outpoint} does not belong to the sending key")]
    ForeignCoin { outpoint: OutPoint },
    #[error(
        "the payment needs {inputs} coins and a {size}-byte transaction, above the limit of {limit} bytes: send a smaller amount first"
    )]
    TooLarge {
        inputs: usize,
        size: usize,
        limit: usize,
    },
}

impl WalletError {
    /// A closure turning an `io::Error` into [`WalletError::Io`], for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
