//! [`Keyring`]: the daemon's keys in memory, loaded once from `wallet.dat` and indexed by public
//! key hash, so a payment finds its key without reading the file or deriving a public key.
//!
//! Private keys are k256 `SigningKey`s, which zeroize their scalar when dropped (ecdsa's
//! `impl Drop for SigningKey`); the byte buffers of the file are zeroized too
//! ([`super::file`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use gossipcoin_proto::{Address, PubkeyHash};

use super::WalletError;
use super::file::{WALLET_FILE, Wallet};
use crate::keys::PrivateKey;

/// The wallet's keys, oldest first, with an index by public key hash.
#[derive(Default)]
pub struct Keyring {
    keys: Vec<PrivateKey>,
    by_pkh: HashMap<PubkeyHash, usize>,
    /// `wallet.dat`'s modification time when it was read.
    modified: Option<SystemTime>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// Reads `<dir>/wallet.dat` (an empty keyring when there is none).
    pub fn load(dir: &Path) -> Result<Self, WalletError> {
        let modified = modified(dir);
        Ok(Self::of(Wallet::load(dir)?, modified))
    }

    fn of(wallet: Wallet, modified: Option<SystemTime>) -> Self {
        let keys = wallet.into_keys();
        let by_pkh = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.pubkey_hash(), i))
            .collect();
        Self {
            keys,
            by_pkh,
            modified,
        }
    }

    /// The key of `pkh`, if the wallet holds it.
    pub fn key_for(&self, pkh: &PubkeyHash) -> Option<&PrivateKey> {
        self.by_pkh.get(pkh).map(|&i| &self.keys[i])
    }

    /// The public key hashes of every key.
    pub fn pubkey_hashes(&self) -> std::collections::HashSet<PubkeyHash> {
        self.by_pkh.keys().copied().collect()
    }

    /// The addresses of every key, oldest first.
    pub fn addresses(&self) -> Vec<Address> {
        self.keys.iter().map(PrivateKey::address).collect()
    }

    /// The oldest key's address.
    pub fn first_address(&self) -> Option<Address> {
        self.keys.first().map(PrivateKey::address)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `wallet.dat` changed since it was read (another process added a key).
    pub fn stale(&self, dir: &Path) -> bool {
        modified(dir) != self.modified
    }

    /// Adds a fresh key to `wallet.dat` (atomically, under its lock, keeping keys other
    /// processes added) and to memory; returns its address.
    pub fn create_address(&mut self, dir: &Path) -> Result<Address, WalletError> {
        let (wallet, address) = Wallet::add_key_on_disk(dir)?;
        *self = Self::of(wallet, modified(dir));
        Ok(address)
    }
}

fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join(WALLET_FILE))
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_hash_and_reload_after_another_process_adds_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::load(dir.path()).unwrap();
        assert!(ring.is_empty());
        let a = ring.create_address(dir.path()).unwrap();
        assert_eq!(ring.key_for(&a.pubkey_hash()).unwrap().address(), a);
        assert!(!ring.stale(dir.path()));
        // Another process (the CLI's createwallet) adds a key.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = Wallet::create_address(dir.path()).unwrap();
        assert!(ring.key_for(&b.pubkey_hash()).is_none());
        assert!(ring.stale(dir.path()));
        let ring = Keyring::load(dir.path()).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.first_address(), Some(a));
        assert!(ring.key_for(&b.pubkey_hash()).is_some());
    }
}
