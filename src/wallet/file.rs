//! `wallet.dat`: an ordered list of private keys, its binary format and how it reaches disk.
//!
//! Format (all of it, in order):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `GCWALLET` |
//! | 1 | format version ([`FORMAT_VERSION`]) |
//! | n | postcard encoding of `Vec<[u8; 32]>`: the private keys, oldest first |
//! | 4 | the first 4 bytes of SHA-256d of everything before |
//!
//! Saves are atomic: a temporary file in the same directory is written, synced and set to mode
//! 0600, then renamed over `wallet.dat`, then the directory is synced. A reader therefore sees the
//! old wallet or the new one, never half of one, and needs no lock. Read-modify-write cycles
//! ([`Wallet::create_address`]) hold an exclusive lock on `wallet.lock` so concurrent processes
//! never lose each other's keys.
//!
//! A file that fails any check is reported as [`WalletError::Corrupt`] and never rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use gossipcoin_proto::{Address, PubkeyHash, encode, sha256d};
use zeroize::Zeroizing;

use super::WalletError;
use crate::keys::PrivateKey;

/// The wallet's file name inside the data directory.
pub const WALLET_FILE: &str = "wallet.dat";
/// The lock file serialising read-modify-write cycles of [`WALLET_FILE`].
pub const LOCK_FILE: &str = "wallet.lock";
/// The format version this program writes and reads.
pub const FORMAT_VERSION: u8 = 1;

const MAGIC: &[u8; 8] = b"GCWALLET";
const CHECKSUM_LEN: usize = 4;
/// No wallet is this large (about 130,000 keys); a larger file is refused before it is read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The wallet: private keys in the order they were created.
#[derive(Clone, Debug, Default)]
pub struct Wallet {
    keys: Vec<PrivateKey>,
}

impl Wallet {
    /// Reads `<data_dir>/wallet.dat`. A missing file (or data directory) is an empty wallet:
    /// the first [`Wallet::save`] creates it.
    ///
    /// # Errors
    /// [`WalletError::Corrupt`] or [`WalletError::UnsupportedVersion`] for a file that is not a
    /// wallet this program can read, [`WalletError::DataDirNotADirectory`], or
    /// [`WalletError::Io`].
    pub fn load(data_dir: &Path) -> Result<Self, WalletError> {
        match fs::metadata(data_dir) {
            Ok(m) if !m.is_dir() => {
                return Err(WalletError::DataDirNotADirectory {
                    path: data_dir.to_path_buf(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(WalletError::io("open the data directory", data_dir)(e)),
        }
        let path = data_dir.join(WALLET_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(WalletError::io("open", &path)(e)),
        };
        // The file holds private keys: its bytes are wiped when dropped (sized up front so
        // that no reallocation leaves a copy behind).
        let size = file
            .metadata()
            .map_or(0, |m| m.len())
            .min(MAX_FILE_BYTES + 1);
        let mut bytes = Zeroizing::new(Vec::with_capacity(size as usize + 1));
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(WalletError::io("read", &path))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(WalletError::Corrupt {
                path,
                reason: format!("larger than the limit of {MAX_FILE_BYTES} bytes"),
            });
        }
        Self::decode(&bytes).map_err(|e| e.at(&path))
    }

    /// Writes the wallet to `<data_dir>/wallet.dat` atomically with mode 0600, creating the data
    /// directory (mode 0700) if needed.
    ///
    /// This alone does not guard against a concurrent writer: to add a key to the wallet on disk
    /// use [`Wallet::create_address`].
    pub fn save(&self, data_dir: &Path) -> Result<(), WalletError> {
        ensure_data_dir(data_dir)?;
        write_atomically(&data_dir.join(WALLET_FILE), &self.encode())
    }

    /// Adds a fresh random key to the wallet on disk and returns its address: load, add and save
    /// under an exclusive lock on `<data_dir>/wallet.lock`, so concurrent calls (threads or
    /// processes) never lose a key.
    pub fn create_address(data_dir: &Path) -> Result<Address, WalletError> {
        Self::add_key_on_disk(data_dir).map(|(_, address)| address)
    }

    /// [`Self::create_address`], also returning the wallet as saved.
    pub fn add_key_on_disk(data_dir: &Path) -> Result<(Self, Address), WalletError> {
        ensure_data_dir(data_dir)?;
        let _lock = lock(data_dir)?;
        let mut wallet = Self::load(data_dir)?;
        let address = wallet.add_new_key();
        wallet.save(data_dir)?;
        Ok((wallet, address))
    }

    /// The keys, oldest first, moved out.
    pub fn into_keys(self) -> Vec<PrivateKey> {
        self.keys
    }

    /// Generates a key, appends it and returns its address (in memory only; see [`Self::save`]).
    pub fn add_new_key(&mut self) -> Address {
        let key = PrivateKey::generate();
        let address = key.address();
        self.keys.push(key);
        address
    }

    /// The addresses of all keys, oldest first.
    pub fn addresses(&self) -> Vec<Address> {
        self.keys.iter().map(PrivateKey::address).collect()
    }

    /// All keys, oldest first.
    pub fn keys(&self) -> &[PrivateKey] {
        &self.keys
    }

    /// The key whose public key hashes to `pkh`, if the wallet holds it.
    pub fn key_for(&self, pkh: &PubkeyHash) -> Option<&PrivateKey> {
        self.keys.iter().find(|k| k.pubkey_hash() == *pkh)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the wallet holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The file format described in the module docs.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        // Plain key bytes are wiped when dropped.
        let raw: Zeroizing<Vec<[u8; 32]>> =
            Zeroizing::new(self.keys.iter().map(PrivateKey::to_bytes).collect());
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + 5 + 32 * raw.len() + CHECKSUM_LEN);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&Zeroizing::new(encode::to_bytes(&*raw)));
        let check = sha256d(&out);
        out.extend_from_slice(&check[..CHECKSUM_LEN]);
        Zeroizing::new(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, Invalid> {
        let corrupt = |reason: String| Invalid::Corrupt(reason);
        if bytes.len() < MAGIC.len() + 1 + CHECKSUM_LEN {
            return Err(corrupt(format!("truncated: only {} bytes", bytes.len())));
        }
        if !bytes.starts_with(MAGIC) {
            return Err(corrupt("not a gossipcoin wallet file: bad magic".into()));
        }
        let (body, check) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if sha256d(body)[..CHECKSUM_LEN] != *check {
            return Err(corrupt("checksum mismatch: truncated or damaged".into()));
        }
        let version = body[MAGIC.len()];
        if version != FORMAT_VERSION {
            return Err(Invalid::Version(version));
        }
        let raw: Zeroizing<Vec<[u8; 32]>> =
            encode::from_bytes(&body[MAGIC.len() + 1..], bytes.len())
                .map(Zeroizing::new)
                .map_err(|e| corrupt(format!("bad key list: {e}")))?;
        let keys = raw
            .iter()
            .enumerate()
            .map(|(i, b)| {
                PrivateKey::from_bytes(b)
                    .map_err(|_| corrupt(format!("key #{i} is not a valid secp256k1 private key")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }
}

/// Why file contents are not a wallet, before the path is known.
enum Invalid {
    Corrupt(String),
    Version(u8),
}

impl Invalid {
    fn at(self, path: &Path) -> WalletError {
        let path = path.to_path_buf();
        match self {
            Self::Corrupt(reason) => WalletError::Corrupt { path, reason },
            Self::Version(version) => WalletError::UnsupportedVersion {
                path,
                version,
                supported: FORMAT_VERSION,
            },
        }
    }
}

/// Creates the data directory (mode 0700) if missing; refuses a path that is not a directory.
fn ensure_data_dir(dir: &Path) -> Result<(), WalletError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(WalletError::DataDirNotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(WalletError::io("create the data directory", dir)),
        Err(e) => Err(WalletError::io("open the data directory", dir)(e)),
    }
}

/// Takes the exclusive wallet lock; it is released when the returned file is dropped.
pub(crate) fn lock(dir: &Path) -> Result<File, WalletError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(WalletError::io("open the lock file", &path))?;
    file.lock()
        .map_err(WalletError::io("lock the wallet with", &path))?;
    Ok(file)
}

/// Replaces the file at `path` with `bytes` atomically, mode 0600 (see [`crate::atomic_file`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WalletError> {
    crate::atomic_file::write(path, bytes).map_err(|e| WalletError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[n; 32]).unwrap()
    }

    fn wallet_of(ns: &[u8]) -> Wallet {
        Wallet {
            keys: ns.iter().map(|&n| key(n)).collect(),
        }
    }

    fn read(dir: &Path) -> Vec<u8> {
        fs::read(dir.join(WALLET_FILE)).unwrap()
    }

    /// Frames `body` (the part after magic and version) with a valid checksum.
    fn framed(version: u8, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(version);
        out.extend_from_slice(body);
        let c = sha256d(&out);
        out.extend_from_slice(&c[..CHECKSUM_LEN]);
        out
    }

    #[test]
    fn missing_file_is_an_empty_wallet() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Wallet::load(dir.path()).unwrap().is_empty());
        assert!(Wallet::load(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn round_trip_keeps_keys_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("node_3000");
        let mut w = wallet_of(&[1, 2, 3]);
        let new = w.add_new_key();
        w.save(&data_dir).unwrap();
        let back = Wallet::load(&data_dir).unwrap();
        assert_eq!(back.addresses(), w.addresses());
        assert_eq!(back.addresses()[3], new);
        assert_eq!(back.len(), 4);
        let k = back.key_for(&new.pubkey_hash()).unwrap();
        assert_eq!(k.address(), new);
        assert!(back.key_for(&PubkeyHash([9; 20])).is_none());
        // Saving the same keys again gives the same bytes (the format is deterministic).
        let before = read(&data_dir);
        back.save(&data_dir).unwrap();
        assert_eq!(read(&data_dir), before);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [WALLET_FILE]);
    }

    #[test]
    fn file_layout_is_magic_version_keys_checksum() {
        let bytes = wallet_of(&[1]).encode();
        assert_eq!(&bytes[..8], b"GCWALLET");
        assert_eq!(bytes[8], FORMAT_VERSION);
        assert_eq!(bytes[9], 1, "postcard varint length of the key list");
        assert_eq!(&bytes[10..42], &[1; 32]);
        assert_eq!(bytes.len(), 42 + 4);
        assert_eq!(bytes[42..], sha256d(&bytes[..42])[..4]);
    }

    #[test]
    fn file_and_data_dir_modes_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("new");
        Wallet::create_address(&data_dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data_dir.join(WALLET_FILE)), 0o600);
        assert_eq!(mode(&data_dir.join(LOCK_FILE)), 0o600);
        assert_eq!(mode(&data_dir), 0o700);
        // A later save keeps 0600 even if the file was loosened meanwhile.
        fs::set_permissions(
            data_dir.join(WALLET_FILE),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        Wallet::create_address(&data_dir).unwrap();
        assert_eq!(mode(&data_dir.join(WALLET_FILE)), 0o600);
    }

    #[test]
    fn corrupted_files_are_reported_and_left_untouched() {
        let good = wallet_of(&[1, 2]).encode().to_vec();
        let mut flipped_body = good.clone();
        flipped_body[12] ^= 1;
        let mut flipped_check = good.clone();
        *flipped_check.last_mut().unwrap() ^= 1;
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut trailing = vec![2u8];
        trailing.extend_from_slice(&[1; 32]);
        trailing.extend_from_slice(&[2; 32]);
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("magic only", MAGIC.to_vec()),
            ("truncated", good[..good.len() - 10].to_vec()),
            ("bad magic", bad_magic),
            ("flipped body bit", flipped_body),
            ("flipped checksum bit", flipped_check),
            ("zero key", framed(1, &[&[1u8][..], &[0; 32]].concat())),
            (
                "key above order",
                framed(1, &[&[1u8][..], &[0xff; 32]].concat()),
            ),
            ("short key list", framed(1, &[2u8, 7, 7, 7])),
            ("trailing bytes", framed(1, &trailing)),
            ("huge count", framed(1, &[0xff, 0xff, 0xff, 0xff, 0x0f])),
        ];
        for (name, bytes) in cases {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(WALLET_FILE), &bytes).unwrap();
            let err = Wallet::load(dir.path()).unwrap_err();
            assert!(matches!(err, WalletError::Corrupt { .. }), "{name}: {err}");
            assert!(err.to_string().contains("corrupt"), "{name}: {err}");
            // create_address must refuse too, and not replace the damaged file.
            let err = Wallet::create_address(dir.path()).unwrap_err();
            assert!(matches!(err, WalletError::Corrupt { .. }), "{name}: {err}");
            assert_eq!(read(dir.path()), bytes, "{name}: file changed");
        }
    }

    #[test]
    fn unknown_version_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = framed(2, &[0]);
        fs::write(dir.path().join(WALLET_FILE), &bytes).unwrap();
        let err = Wallet::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, WalletError::UnsupportedVersion { version: 2, .. }),
            "{err}"
        );
        assert!(Wallet::create_address(dir.path()).is_err());
        assert_eq!(read(dir.path()), bytes);
    }

    #[test]
    fn oversized_file_is_refused_before_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join(WALLET_FILE)).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = Wallet::load(dir.path()).unwrap_err();
        assert!(matches!(err, WalletError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn data_dir_that_is_a_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        for err in [
            Wallet::load(&file).unwrap_err(),
            Wallet::create_address(&file).unwrap_err(),
            Wallet::default().save(&file).unwrap_err(),
        ] {
            assert!(
                matches!(err, WalletError::DataDirNotADirectory { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("not a directory"), "{err}");
        }
        // Below a file: creating the data directory fails with the path in the message.
        let err = Wallet::create_address(&file.join("sub")).unwrap_err();
        assert!(matches!(err, WalletError::Io { .. }), "{err}");
        assert!(err.to_string().contains("plain/sub"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn concurrent_create_address_keeps_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let (threads, per_thread) = (4, 5);
        let created: Vec<Address> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        (0..per_thread)
                            .map(|_| Wallet::create_address(dir.path()).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let mut on_disk = Wallet::load(dir.path()).unwrap().addresses();
        let mut created = created;
        on_disk.sort();
        created.sort();
        assert_eq!(on_disk.len(), threads * per_thread);
        assert_eq!(on_disk, created);
    }

    #[test]
    fn debug_does_not_show_key_bytes() {
        let w = wallet_of(&[0x42]);
        let shown = format!("{w:?}");
        assert!(!shown.contains(&hex::encode([0x42; 32])), "{shown}");
        assert!(!shown.contains("66, 66"), "{shown}");
    }
}
