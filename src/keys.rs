//! secp256k1 keys: generating, signing and verifying 32-byte signature hashes.
//!
//! Signatures are 64-byte compact (r ‖ s) and low-S: k256 signs deterministically (RFC 6979) and
//! normalises s, and its verifier rejects high-S, so a third party cannot change a signature and
//! with it a txid.

use gossipcoin_proto::{Address, PubkeyHash, PublicKey, Signature};
use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{SigningKey, VerifyingKey};

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("public key is not a valid compressed secp256k1 point")]
    BadPublicKey,
    #[error("signature is not a valid (r, s) pair")]
    BadEncoding,
    #[error("signature has a high S value (malleable)")]
    HighS,
    #[error("signature does not match the key and message")]
    Mismatch,
}

/// A private key, as the wallet keeps it.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

/// Why bytes are not a private key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid private key (zero or not below the curve order)")]
pub struct BadPrivateKey;

impl PrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        loop {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).expect("the OS random source is available");
            if let Ok(k) = Self::from_bytes(&b) {
                return k;
            }
        }
    }

    /// The key with this 32-byte big-endian scalar.
    pub fn from_bytes(b: &[u8; 32]) -> Result<Self, BadPrivateKey> {
        SigningKey::from_slice(b)
            .map(Self)
            .map_err(|_| BadPrivateKey)
    }

    /// The 32-byte scalar.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The compressed public key.
    pub fn public_key(&self) -> PublicKey {
        let point = self.0.verifying_key().to_sec1_point(true);
        PublicKey(
            point
                .as_bytes()
                .try_into()
                .expect("compressed SEC1 point is 33 bytes"),
        )
    }

    /// HASH160 of the compressed public key.
    pub fn pubkey_hash(&self) -> PubkeyHash {
        PubkeyHash::of_pubkey(&self.public_key())
    }

    /// The address paying this key.
    pub fn address(&self) -> Address {
        Address(self.pubkey_hash())
    }

    /// Signs a 32-byte signature hash: deterministic and low-S.
    pub fn sign(&self, sighash: &[u8; 32]) -> Signature {
        let sig: k256::ecdsa::Signature = self
            .0
            .sign_prehash(sighash)
            .expect("a 32-byte prehash always signs");
        let sig = sig.normalize_s();
        Signature(sig.to_bytes().into())
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <secret>)", self.address())
    }
}

/// Parses a compressed public key; parsing costs about as much as a hash, so callers that verify
/// many signatures by one key may keep the result.
pub fn parse_public_key(pubkey: &PublicKey) -> Result<VerifyingKey, SigError> {
    if !matches!(pubkey.0[0], 0x02 | 0x03) {
        return Err(SigError::BadPublicKey);
    }
    VerifyingKey::from_sec1_bytes(&pubkey.0).map_err(|_| SigError::BadPublicKey)
}

/// Checks that `sig` is a valid low-S signature of `sighash` by `pubkey`.
pub fn verify(sighash: &[u8; 32], sig: &Signature, pubkey: &PublicKey) -> Result<(), SigError> {
    let key = parse_public_key(pubkey)?;
    let sig = k256::ecdsa::Signature::from_slice(&sig.0).map_err(|_| SigError::BadEncoding)?;
    if sig.normalize_s() != sig {
        return Err(SigError::HighS);
    }
    key.verify_prehash(sighash, &sig)
        .map_err(|_| SigError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_one_gives_the_known_address() {
        let mut b = [0u8; 32];
        b[31] = 1;
        let k = PrivateKey::from_bytes(&b).unwrap();
        assert_eq!(
            k.address().to_string(),
            "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
        );
    }

    #[test]
    fn sign_verify_and_failures() {
        let k = PrivateKey::generate();
        let msg = [9u8; 32];
        let sig = k.sign(&msg);
        assert_eq!(verify(&msg, &sig, &k.public_key()), Ok(()));
        assert_eq!(
            verify(&[8u8; 32], &sig, &k.public_key()),
            Err(SigError::Mismatch)
        );
        let other = PrivateKey::generate();
        assert_eq!(
            verify(&msg, &sig, &other.public_key()),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(&msg, &sig, &PublicKey([0; 33])),
            Err(SigError::BadPublicKey)
        );
        assert_eq!(
            verify(&msg, &Signature([0; 64]), &k.public_key()),
            Err(SigError::BadEncoding)
        );
    }

    #[test]
    fn high_s_is_rejected() {
        let k = PrivateKey::generate();
        let msg = [1u8; 32];
        let sig = k256::ecdsa::Signature::from_slice(&k.sign(&msg).0).unwrap();
        let (r, s) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        let high = Signature(high.to_bytes().into());
        assert_eq!(verify(&msg, &high, &k.public_key()), Err(SigError::HighS));
    }

    #[test]
    fn zero_and_order_are_not_keys() {
        assert!(PrivateKey::from_bytes(&[0; 32]).is_err());
        assert!(PrivateKey::from_bytes(&[0xff; 32]).is_err());
    }
}
