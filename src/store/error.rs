//! `StoreError`: everything that can go wrong in the chain store, with no heed type inside.
//!
//! LMDB errors are kept as text ([`StoreError::Lmdb`]); bytes that do not decode become
//! [`StoreError::Corrupt`] naming the table and key, never a panic. A broken chain invariant
//! found by the consistency check is [`StoreError::Inconsistent`] with one line per problem.

use std::path::PathBuf;

use gossipcoin_proto::{BlockHash, OutPoint};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no chain store at {}", path.display())]
    NotFound { path: PathBuf },
    #[error("a chain store already exists at {}", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("LMDB: {0}")]
    Lmdb(String),
    #[error("corrupt chain store: {0}")]
    Corrupt(String),
    /// The environment has no tables at all: what a start interrupted before the first commit
    /// left (by versions before atomic creation). It holds no data.
    #[error(
        "the chain store at {} is incomplete (it has no tables; an interrupted start left it): \
         `startnode` or `createblockchain` removes it and starts over",
        path.display()
    )]
    Incomplete { path: PathBuf },
    #[error("chain store schema version {found} is not the supported version {expected}")]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("no undo data for block {0}")]
    MissingUndo(BlockHash),
    #[error("block {0} is not in the block index")]
    UnknownBlock(BlockHash),
    #[error("coin {0} is not in the UTXO set")]
    MissingCoin(OutPoint),
    #[error("coin {0} is already in the UTXO set")]
    DuplicateCoin(OutPoint),
    #[error("the store refused block {hash}: {reason}")]
    Rejected { hash: BlockHash, reason: String },
    #[error("the chain store at {} is already open in this process; share that Store", path.display())]
    AlreadyOpen { path: PathBuf },
    #[error("the chain is empty: there is no tip to disconnect")]
    EmptyChain,
    #[error("the chain store was opened read-only")]
    ReadOnly,
    #[error("cannot grow the LMDB map: {0}")]
    MapGrowth(String),
    #[error("chain store is inconsistent ({} problem(s)):\n  {}", .0.len(), .0.join("\n  "))]
    Inconsistent(Vec<String>),
}

impl StoreError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Whether a heed error is LMDB's "map full" (the write must be retried in a bigger map).
pub(crate) fn is_map_full(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(heed::MdbError::MapFull))
}

/// Whether a heed error is LMDB's "another process grew the map" (adopt its size and retry).
pub(crate) fn is_map_resized(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(heed::MdbError::MapResized))
}

/// Converts heed results into store results. A private trait rather than `From`, so that no heed
/// type shows in the store's public API (not even in a trait impl).
pub(crate) trait LmdbResultExt<T> {
    /// The result with its heed error turned into a [`StoreError`].
    fn lmdb(self) -> Result<T, StoreError>;
}

impl<T> LmdbResultExt<T> for heed::Result<T> {
    fn lmdb(self) -> Result<T, StoreError> {
        self.map_err(from_heed)
    }
}

/// A heed error as a [`StoreError`]: I/O errors keep their `io::Error`, the rest become text.
pub(crate) fn from_heed(e: heed::Error) -> StoreError {
    match e {
        heed::Error::Io(source) => StoreError::io("LMDB I/O", source),
        other => StoreError::Lmdb(other.to_string()),
    }
}
