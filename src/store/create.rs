//! Creating a store atomically, and recognising what an interrupted creation left behind.
//!
//! Opening an LMDB environment creates `data.mdb` before any table exists, so a store built in
//! place and killed before its first commit is a valid but empty file that every later open
//! refuses. Instead a new store is built in a sibling staging directory (`chain.new` beside
//! `chain`): tables created, the caller's first writes (the genesis block) committed and
//! fsynced, the environment closed, the directory fsynced, then renamed to its final name and
//! the parent directory fsynced. A kill at any moment leaves either no `chain/` or a complete
//! one; a leftover staging directory is removed by the next creation or by
//! [`Store::remove_incomplete`].
//!
//! A store with no chain in it at all (no tables, or tables but no genesis and no block — what
//! versions before atomic creation left when killed while adopting a genesis block) holds no
//! data: [`Store::remove_incomplete`] deletes it with a warning so the node can start over. A
//! store that has a chain and is damaged otherwise is never deleted: opening it fails as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use heed::{Env, WithoutTls};
use tracing::{info, warn};

use super::error::{LmdbResultExt, StoreError};
use super::tables::{META_GENESIS, META_TIP, Tables};
use super::{DATA_FILE, DEFAULT_MAP_SIZE, Store, not_a_file, open_env};
use crate::atomic_file::{FileError, sync_dir};

/// LMDB's lock file inside the store directory.
const LOCK_FILE: &str = "lock.mdb";
/// How long closing a staged environment may wait for the last handle to go.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Creates a store in `dir` atomically, runs `fill` on it (its writes are part of the new
    /// store: a chain store is created with its genesis block) and only then moves it into
    /// place; see the module docs. `fill` must not keep a clone of the store it is given.
    /// Fails with [`StoreError::AlreadyExists`] if `dir` holds a store; if `fill` fails,
    /// nothing is left behind.
    pub fn create_filled<E>(
        dir: impl AsRef<Path>,
        fill: impl FnOnce(&Store) -> Result<(), E>,
    ) -> Result<Self, E>
    where
        E: From<StoreError>,
    {
        Self::create_filled_with(dir.as_ref(), DEFAULT_MAP_SIZE, fill)
    }

    pub(crate) fn create_filled_with<E>(
        dir: &Path,
        map_size: usize,
        fill: impl FnOnce(&Store) -> Result<(), E>,
    ) -> Result<Self, E>
    where
        E: From<StoreError>,
    {
        not_a_file(dir)?;
        if dir.join(DATA_FILE).exists() {
            return Err(StoreError::AlreadyExists { path: dir.into() }.into());
        }
        let staging = staging_dir(dir)?;
        let parent = staging.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| {
            io(
                format!("cannot create the directory {}", parent.display()),
                e,
            )
        })?;
        remove_staging(&staging)?;
        if dir.exists() {
            // No data.mdb: an empty directory, or LMDB's lock file alone (a kill before the
            // environment was created). data.mdb is never removed here: only a store found
            // incomplete is ([`Store::remove_incomplete`]).
            remove_store_dir(dir, &[LOCK_FILE])?;
        }
        std::fs::create_dir(&staging).map_err(|e| {
            io(
                format!(
                    "cannot create the chain store directory {}",
                    staging.display()
                ),
                e,
            )
        })?;
        let staged = build(&staging, map_size, fill);
        let moved = staged.and_then(|()| Ok(move_into_place(&staging, dir)?));
        if let Err(e) = moved {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(Self::open_with(dir, map_size, false)?)
    }

    /// Removes what an interrupted creation left in `dir`'s place: the staging directory, and
    /// a store in `dir` that holds no chain (no tables at all, or tables without a genesis
    /// block and with an empty block index). Returns whether `dir` was removed (with a
    /// warning). A store that holds a chain, or that cannot be read, is left alone.
    ///
    /// Only for a process about to create the store (the daemon at start, `createblockchain`):
    /// `dir` must not be open in this process.
    pub fn remove_incomplete(dir: impl AsRef<Path>) -> Result<bool, StoreError> {
        let dir = dir.as_ref();
        remove_staging(&staging_dir(dir)?)?;
        if !dir.join(DATA_FILE).is_file() {
            return Ok(false);
        }
        let env = open_env(dir, DEFAULT_MAP_SIZE, false)?;
        let empty = holds_no_chain(&env);
        close(env, dir)?;
        if !empty? {
            return Ok(false);
        }
        remove_store_dir(dir, &[DATA_FILE, LOCK_FILE])?;
        warn!(target: "store", path = %dir.display(),
              "an incomplete chain store left by an interrupted start was removed");
        Ok(true)
    }
}

/// `<dir>.new`, beside `dir`.
fn staging_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    let name = dir.file_name().ok_or_else(|| {
        io(
            format!(
                "{} cannot hold a chain store (no directory name)",
                dir.display()
            ),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let mut staged = name.to_os_string();
    staged.push(".new");
    Ok(dir.with_file_name(staged))
}

/// Creates the tables in `staging`, runs `fill`, syncs and closes the environment.
fn build<E>(
    staging: &Path,
    map_size: usize,
    fill: impl FnOnce(&Store) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<StoreError>,
{
    let env = open_env(staging, map_size, false)?;
    let tables = Tables::create(&env)?;
    let store = Store::assemble(env.clone(), tables, false);
    fill(&store)?;
    store.sync()?;
    drop(store);
    Ok(close(env, staging)?)
}

/// Makes the staged store durable under its final name.
fn move_into_place(staging: &Path, dir: &Path) -> Result<(), StoreError> {
    sync_dir(staging).map_err(file_error)?;
    // Replaces an empty `dir`, never a non-empty one: a store another creator moved there
    // meanwhile is kept (the rename fails).
    std::fs::rename(staging, dir).map_err(|e| {
        if dir.join(DATA_FILE).exists() {
            StoreError::AlreadyExists { path: dir.into() }
        } else {
            io(
                format!(
                    "cannot move the new chain store {} to {}",
                    staging.display(),
                    dir.display()
                ),
                e,
            )
        }
    })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    sync_dir(parent).map_err(file_error)
}

/// Removes a leftover staging directory.
fn remove_staging(staging: &Path) -> Result<(), StoreError> {
    if !staging.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(staging).map_err(|e| {
        io(
            format!(
                "cannot remove the unfinished chain store {}",
                staging.display()
            ),
            e,
        )
    })?;
    info!(target: "store", path = %staging.display(),
          "removed an unfinished chain store left by an interrupted creation");
    Ok(())
}

/// Removes `files` (LMDB's) from `dir`, then `dir` itself, which must then be empty: anything
/// else in it is not ours to delete.
fn remove_store_dir(dir: &Path, files: &[&str]) -> Result<(), StoreError> {
    for &name in files {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("cannot remove {}", dir.join(name).display()), e));
            }
            _ => {}
        }
    }
    std::fs::remove_dir(dir).map_err(|e| {
        io(
            format!(
                "cannot remove the incomplete chain store directory {} (does it hold other \
                 files?)",
                dir.display()
            ),
            e,
        )
    })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    sync_dir(parent).map_err(file_error)
}

/// Whether the environment holds no chain: no tables, or the tables of a store whose creation
/// stopped before its genesis block (no genesis, no tip, nothing indexed or stored).
fn holds_no_chain(env: &Env<WithoutTls>) -> Result<bool, StoreError> {
    if env.unnamed_database_stat().entries == 0 {
        return Ok(true);
    }
    let Ok((tables, _)) = Tables::open(env) else {
        return Ok(false); // damaged or foreign: opening it will say why
    };
    let rtxn = env.read_txn().lmdb()?;
    Ok(tables.meta.get(&rtxn, META_GENESIS).lmdb()?.is_none()
        && tables.meta.get(&rtxn, META_TIP).lmdb()?.is_none()
        && tables.block_index.is_empty(&rtxn).lmdb()?
        && tables.blocks.is_empty(&rtxn).lmdb()?)
}

/// Closes `env` (the caller's is the last handle) and waits until LMDB has.
fn close(env: Env<WithoutTls>, dir: &Path) -> Result<(), StoreError> {
    if env.prepare_for_closing().wait_timeout(CLOSE_WAIT) {
        Ok(())
    } else {
        Err(StoreError::Lmdb(format!(
            "the chain store in {} stayed open for {CLOSE_WAIT:?}",
            dir.display()
        )))
    }
}

fn io(context: String, source: std::io::Error) -> StoreError {
    StoreError::io(context, source)
}

fn file_error(e: FileError) -> StoreError {
    StoreError::io(
        format!("cannot {} {}", e.action, e.path.display()),
        e.source,
    )
}
