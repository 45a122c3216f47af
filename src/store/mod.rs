//! The LMDB chain store: blocks, the block index, the main chain by height, the UTXO set, the
//! address index, undo data and the transaction index, in one environment at
//! `<data-dir>/chain`.
//!
//! - [`Store::create`] / [`Store::open`] / [`Store::open_read_only`] open it; the CLI may read
//!   (read-only) while the daemon writes, from another process. Creation is atomic
//!   ([`Store::create_filled`]: built beside, renamed into place), and
//!   [`Store::remove_incomplete`] clears what an interrupted creation left (`create.rs`).
//! - [`Store::read`] gives a [`ReadView`]: one consistent snapshot ([`ChainRead`] methods).
//! - [`Store::write`] runs a closure over a [`WriteView`] in one write transaction, committed
//!   only if the closure returns `Ok`: a block, or a whole reorg, lands entirely or not at all,
//!   and `kill -9` at any moment leaves a consistent store (commits are fsynced).
//! - [`Store::check_consistency`] verifies every cross-table invariant (`verifychain`).
//! - Every block in the index has a [`BlockStatus`] ([`ChainRead::status`]): header only, data
//!   stored, fully valid, failed or descendant of failed; `status.rs` records headers and
//!   failures.
//!
//! This is the only module that knows heed: no heed type appears in its public API. The table
//! layout is in `tables.rs`; how a block changes the UTXO set is in `utxo.rs`; upgrading an
//! older store's layout is in `migrate.rs`.

mod check;
mod create;
mod error;
mod gate;
mod migrate;
mod status;
mod tables;
#[cfg(test)]
mod tests;
mod utxo;
mod view;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use heed::{Env, EnvFlags, EnvOpenOptions, FlagSetMode, WithoutTls};

pub use check::ConsistencyReport;
pub use error::StoreError;
pub use view::{BlockStatus, ChainRead, IndexEntry, ReadView, Tip, TxLocation};
pub use write::WriteView;

use error::{LmdbResultExt, from_heed, is_map_full, is_map_resized};
use gate::{Gate, RESIZE_WAIT};
use tables::Tables;

/// Virtual address space reserved for the map (the file grows only as data is written).
const DEFAULT_MAP_SIZE: usize = 64 << 30;
/// Named databases the environment may hold (9 used; room to add tables).
const MAX_DBS: u32 = 16;
/// LMDB's data file inside the store directory.
const DATA_FILE: &str = "data.mdb";
/// Consecutive "another process grew the map" answers tolerated before giving up.
const MAX_ADOPTIONS: u32 = 3;

/// The chain store. Cheap to clone (clones share one environment); `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    env: Env<WithoutTls>,
    tables: Tables,
    gate: Arc<Gate>,
    read_only: bool,
    /// LMDB allows one thread at a time to change the env flags.
    flags_lock: Arc<Mutex<()>>,
}

/// How one attempt at a write transaction ended.
enum Attempt<T, E> {
    Done(Result<T, E>),
    MapFull,
    MapResized,
}

impl Store {
    /// Creates a new, empty store in `dir` (created if needed), atomically (see
    /// [`Store::create_filled`]). Fails if `dir` already holds a store, is a file, or cannot be
    /// written.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::create_with(dir.as_ref(), DEFAULT_MAP_SIZE)
    }

    pub(crate) fn create_with(dir: &Path, map_size: usize) -> Result<Self, StoreError> {
        Self::create_filled_with(dir, map_size, |_| Ok::<(), StoreError>(()))
    }

    /// Whether `dir` holds a store (without opening it).
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        dir.as_ref().join(DATA_FILE).is_file()
    }

    /// Opens an existing store for reading and writing; [`StoreError::NotFound`] if `dir`
    /// holds none. A store of schema version 1 (before the transaction index) or 2 (before
    /// block statuses) is upgraded first: what it lacks is built (the transaction index from
    /// the main chain; a status for every indexed block) and version 3 written, in one
    /// committed write transaction. Any other version but the current one is
    /// [`StoreError::SchemaMismatch`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir.as_ref(), DEFAULT_MAP_SIZE, false)
    }

    /// Opens an existing store for reading only. Works while another process (the daemon)
    /// writes to it; [`Store::write`] then fails with [`StoreError::ReadOnly`]. The process
    /// still needs write access to `lock.mdb` (LMDB records its readers there).
    ///
    /// A store of schema version 1 is opened as it is, without a transaction index:
    /// everything works, but [`ChainRead::tx_location`] and [`ChainRead::transaction`] answer
    /// `Ok(None)` (see [`ChainRead::has_tx_index`]), and the consistency check skips the
    /// index. A store of schema 1 or 2 has no status table: [`ChainRead::status`] derives the
    /// status from the index instead. Opening it writable once ([`Store::open`]) builds both.
    /// Likewise, a reader that opened such a store before a writer upgraded it keeps seeing
    /// no index and derived statuses.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir.as_ref(), DEFAULT_MAP_SIZE, true)
    }

    pub(crate) fn open_with(
        dir: &Path,
        map_size: usize,
        read_only: bool,
    ) -> Result<Self, StoreError> {
        not_a_file(dir)?;
        if !dir.join(DATA_FILE).is_file() {
            return Err(StoreError::NotFound { path: dir.into() });
        }
        let env = open_env(dir, map_size, read_only)?;
        let (mut tables, version) = Tables::open(&env)?;
        if version != tables::SCHEMA_VERSION && !read_only {
            tables = migrate::upgrade(&env, tables)?;
        }
        Ok(Self::assemble(env, tables, read_only))
    }

    fn assemble(env: Env<WithoutTls>, tables: Tables, read_only: bool) -> Self {
        Self {
            env,
            tables,
            gate: Arc::default(),
            read_only,
            flags_lock: Arc::default(),
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.env.path()
    }

    /// Whether the store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The current size of the memory map in bytes (virtual; the file is smaller).
    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// A snapshot of the whole store. Later commits do not change it.
    pub fn read(&self) -> Result<ReadView, StoreError> {
        let mut adoptions = 0;
        loop {
            let pass = self.gate.enter();
            match self.env.clone().static_read_txn() {
                Ok(txn) => return Ok(ReadView::new(txn, self.tables, pass)),
                Err(e) if is_map_resized(&e) && adoptions < MAX_ADOPTIONS => {
                    drop(pass);
                    self.adopt_map_size()?;
                    adoptions += 1;
                }
                Err(e) => return Err(from_heed(e)),
            }
        }
    }

    /// Runs `f` in one write transaction and commits only if it returns `Ok`; an `Err` leaves
    /// the store unchanged. If the map fills up (at any write or at commit), the transaction is
    /// aborted, the map doubled and `f` run again from the start, so `f` must be repeatable.
    ///
    /// One write transaction at a time: a second `write` (from another thread, or another
    /// process) waits for this one. Never call `write` from inside `f` (it would wait for
    /// itself), and do not hold a [`ReadView`] in the calling thread: growing the map waits for
    /// every transaction of this process to end, and fails with [`StoreError::MapGrowth`] after
    /// a while if one stays open.
    pub fn write<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut WriteView<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        if self.read_only {
            return Err(StoreError::ReadOnly.into());
        }
        let mut adoptions = 0;
        loop {
            let seen = self.map_size();
            match self.try_write(&mut f) {
                Attempt::Done(result) => return result,
                Attempt::MapFull => self.grow_map(seen)?,
                Attempt::MapResized if adoptions < MAX_ADOPTIONS => {
                    self.adopt_map_size()?;
                    adoptions += 1;
                }
                Attempt::MapResized => {
                    return Err(StoreError::MapGrowth(
                        "another process keeps growing the map".into(),
                    )
                    .into());
                }
            }
        }
    }

    fn try_write<T, E, F>(&self, f: &mut F) -> Attempt<T, E>
    where
        F: FnMut(&mut WriteView<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        // Declared first, dropped last: the pass outlives the transaction.
        let _pass = self.gate.enter();
        let txn = match self.env.write_txn() {
            Ok(txn) => txn,
            Err(e) if is_map_resized(&e) => return Attempt::MapResized,
            Err(e) => return Attempt::Done(Err(from_heed(e).into())),
        };
        let mut view = WriteView::new(txn, &self.env, self.tables);
        let result = f(&mut view);
        let (txn, map_full) = view.finish();
        if map_full {
            txn.abort();
            return Attempt::MapFull;
        }
        match result {
            Ok(value) => match txn.commit() {
                Ok(()) => Attempt::Done(Ok(value)),
                Err(e) if is_map_full(&e) => Attempt::MapFull,
                Err(e) => Attempt::Done(Err(from_heed(e).into())),
            },
            Err(e) => {
                txn.abort();
                Attempt::Done(Err(e))
            }
        }
    }

    /// Doubles the map (unless another thread already grew it past `seen`).
    fn grow_map(&self, seen: usize) -> Result<(), StoreError> {
        let new_size = seen
            .checked_mul(2)
            .ok_or_else(|| StoreError::MapGrowth(format!("cannot double {seen} bytes")))?;
        self.gate.exclusive(RESIZE_WAIT, || {
            if self.map_size() > seen {
                return Ok(());
            }
            tracing::info!(
                from = seen,
                to = new_size,
                "chain store map full: growing it"
            );
            // SAFETY: the gate guarantees no transaction of this process is alive.
            unsafe { self.env.resize(new_size) }.lmdb()
        })?
    }

    /// Adopts the map size another process grew the file to.
    fn adopt_map_size(&self) -> Result<(), StoreError> {
        // SAFETY: the gate guarantees no transaction of this process is alive.
        self.gate
            .exclusive(RESIZE_WAIT, || unsafe { self.env.resize(0) }.lmdb())?
    }

    /// Bulk mode (initial sync): commits stop waiting for fsync. A `kill -9` stays safe, but an
    /// OS crash or power loss may lose the last commits. Turning it off syncs to disk.
    pub fn set_bulk_mode(&self, on: bool) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let _one_at_a_time = self.flags_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mode = if on {
            FlagSetMode::Enable
        } else {
            FlagSetMode::Disable
        };
        // SAFETY: NO_SYNC without WRITE_MAP cannot corrupt the file on a process crash (it only
        // drops durability across OS crashes, which bulk mode accepts); flags_lock makes this
        // the only thread changing flags.
        unsafe { self.env.set_flags(EnvFlags::NO_SYNC, mode) }.lmdb()?;
        if !on {
            self.sync()?;
        }
        Ok(())
    }

    /// Frees reader slots left by killed processes (each pins old pages, so the file grows).
    /// Done at open; a long-running daemon may call it now and then. Returns how many.
    pub fn clear_stale_readers(&self) -> Result<usize, StoreError> {
        self.env.clear_stale_readers().lmdb()
    }

    /// Flushes every commit to disk (useful in bulk mode).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.env.force_sync().lmdb()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path())
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// A clear error if `dir` exists but is not a directory.
fn not_a_file(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::io(
            format!("{} is not a directory", dir.display()),
            std::io::ErrorKind::NotADirectory.into(),
        ));
    }
    Ok(())
}

fn open_env(dir: &Path, map_size: usize, read_only: bool) -> Result<Env<WithoutTls>, StoreError> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(map_size).max_dbs(MAX_DBS);
    if read_only {
        // SAFETY: READ_ONLY is a safe flag (unlike NO_LOCK / NO_SYNC).
        unsafe { options.flags(EnvFlags::READ_ONLY) };
    }
    // SAFETY: the memory map is only unsafe if the file is changed outside LMDB's locking;
    // every process goes through LMDB (and its lock file) to open the store.
    let env = unsafe { options.open(dir) }.map_err(|e| match e {
        heed::Error::EnvAlreadyOpened => StoreError::AlreadyOpen {
            path: PathBuf::from(dir),
        },
        heed::Error::Io(source) => StoreError::io(
            format!("cannot open the chain store in {}", dir.display()),
            source,
        ),
        other => from_heed(other),
    })?;
    let cleared = env.clear_stale_readers().lmdb()?;
    if cleared > 0 {
        tracing::info!(cleared, "cleared stale LMDB reader slots");
    }
    Ok(env)
}
