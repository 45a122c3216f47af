//! Addresses: Base58Check(version 0x00 ‖ 20-byte pubkey hash ‖ 4-byte SHA-256d checksum).

use crate::hash::{PubkeyHash, sha256d};

/// The one address version gossipcoin uses (Bitcoin's P2PKH mainnet byte).
pub const ADDRESS_VERSION: u8 = 0x00;

/// A pay-to-pubkey-hash address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub PubkeyHash);

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("invalid address {0:?}: not Base58")]
    NotBase58(String),
    #[error("invalid address {0:?}: wrong length")]
    WrongLength(String),
    #[error("invalid address {0:?}: checksum mismatch (a typo?)")]
    BadChecksum(String),
    #[error("invalid address {addr:?}: unknown version byte {version:#04x}")]
    UnknownVersion { addr: String, version: u8 },
}

impl Address {
    /// The pubkey hash this address pays.
    pub fn pubkey_hash(&self) -> PubkeyHash {
        self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut payload = Vec::with_capacity(25);
        payload.push(ADDRESS_VERSION);
        payload.extend_from_slice(&self.0.0);
        let check = sha256d(&payload);
        payload.extend_from_slice(&check[..4]);
        f.write_str(&bs58::encode(payload).into_string())
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({self})")
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = bs58::decode(s)
            .into_vec()
            .map_err(|_| AddressError::NotBase58(s.into()))?;
        if raw.len() != 25 {
            return Err(AddressError::WrongLength(s.into()));
        }
        let (payload, check) = raw.split_at(21);
        if sha256d(payload)[..4] != *check {
            return Err(AddressError::BadChecksum(s.into()));
        }
        if payload[0] != ADDRESS_VERSION {
            return Err(AddressError::UnknownVersion {
                addr: s.into(),
                version: payload[0],
            });
        }
        Ok(Self(
            PubkeyHash::from_slice(&payload[1..]).expect("20 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_vector_private_key_one() {
        // Compressed public key of private key 1 and its well-known P2PKH address.
        let pubkey =
            hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
                .unwrap();
        let pkh = PubkeyHash(crate::hash160(&pubkey));
        assert_eq!(pkh.to_string(), "751e76e8199196d454941c45d1b3a323f1433bd6");
        let a = Address(pkh);
        assert_eq!(a.to_string(), "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH");
        assert_eq!(
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
                .parse::<Address>()
                .unwrap(),
            a
        );
    }

    #[test]
    fn bad_addresses_are_clear_errors() {
        let good = Address(PubkeyHash([3; 20])).to_string();
        assert!(matches!(
            "0OIl".parse::<Address>(),
            Err(AddressError::NotBase58(_))
        ));
        assert!(matches!(
            "abc".parse::<Address>(),
            Err(AddressError::WrongLength(_))
        ));
        assert!(matches!(
            "".parse::<Address>(),
            Err(AddressError::WrongLength(_))
        ));
        let mut typo: Vec<char> = good.chars().collect();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == 'z' { 'y' } else { 'z' };
        let typo: String = typo.into_iter().collect();
        assert!(matches!(
            typo.parse::<Address>(),
            Err(AddressError::BadChecksum(_))
        ));
        let mut payload = vec![0x05];
        payload.extend_from_slice(&[3; 20]);
        let c = sha256d(&payload);
        payload.extend_from_slice(&c[..4]);
        let p2sh = bs58::encode(payload).into_string();
        assert!(matches!(
            p2sh.parse::<Address>(),
            Err(AddressError::UnknownVersion { version: 5, .. })
        ));
    }
}
