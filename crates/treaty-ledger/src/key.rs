//! The deployment's checkpoint key: created once, kept in the store.
//!
//! The first ledger to open a store generates an ed25519 key from the
//! operating system's random source and stores it (the store's insert
//! keeps the first key when replicas race, so every replica signs with the
//! same key). The public key is shown as 64 lowercase hex characters; that
//! is the form `treaty ledger pubkey` prints and `--pubkey FILE` reads.
//!
//! The secret lives in the store, so anyone who can rewrite the store can
//! also re-sign it: checkpoints prove the chain to a third party only
//! against a public key that party pinned earlier (`verify --pubkey`).
//! This module never prints or logs the secret.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::TryRngCore;
use treaty_store::{SigningKeyRow, Store};

use crate::LedgerError;

/// An ed25519 public key, shown and parsed as 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<PublicKey, LedgerError> {
        let text = text.trim();
        let bytes = hex::decode(text).map_err(|e| {
            LedgerError::Key(format!(
                "a ledger public key is 64 hex characters (as `treaty ledger pubkey` prints): {e}"
            ))
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            LedgerError::Key(format!(
                "a ledger public key is 32 bytes (64 hex characters), not {}",
                b.len()
            ))
        })?;
        VerifyingKey::from_bytes(&key)
            .map_err(|e| LedgerError::Key(format!("not an ed25519 public key: {e}")))?;
        Ok(PublicKey(key))
    }

    pub(crate) fn verifying(&self) -> Result<VerifyingKey, LedgerError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|e| LedgerError::Key(format!("not an ed25519 public key: {e}")))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The stored key, created now if the store has none.
pub(crate) async fn load_or_create(store: &Store) -> Result<SigningKey, LedgerError> {
    let row = match store.ledger_signing_key().await? {
        Some(row) => row,
        None => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut seed)
                .map_err(|e| LedgerError::Key(format!("no random source for the key: {e}")))?;
            let key = SigningKey::from_bytes(&seed);
            let candidate = SigningKeyRow {
                public_key: key.verifying_key().to_bytes().to_vec(),
                secret_key: seed.to_vec(),
                created_at: crate::now_ms(),
            };
            let row = store.ledger_init_signing_key(&candidate).await?;
            if row.public_key == candidate.public_key {
                tracing::info!(
                    public_key = %hex::encode(&row.public_key),
                    "created the ledger's checkpoint key"
                );
            }
            row
        }
    };
    let seed: [u8; 32] = row.secret_key.as_slice().try_into().map_err(|_| {
        LedgerError::Key("the stored ledger key is not a 32-byte ed25519 seed".into())
    })?;
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().to_bytes().as_slice() != row.public_key.as_slice() {
        return Err(LedgerError::Key(
            "the stored ledger key's public half does not match its secret".into(),
        ));
    }
    Ok(key)
}

/// The deployment's public key, creating the key pair if the store has
/// none yet (so it can be published before the first request).
pub async fn pubkey(store: &Store) -> Result<PublicKey, LedgerError> {
    Ok(PublicKey(
        load_or_create(store).await?.verifying_key().to_bytes(),
    ))
}

/// The stored public key, without creating one.
pub(crate) async fn stored_pubkey(store: &Store) -> Result<Option<PublicKey>, LedgerError> {
    let Some(row) = store.ledger_signing_key().await? else {
        return Ok(None);
    };
    let key: [u8; 32] = row
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| LedgerError::Key("the stored ledger public key is not 32 bytes".into()))?;
    Ok(Some(PublicKey(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_parse_from_hex_only() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pk = PublicKey(key.verifying_key().to_bytes());
        assert_eq!(
            PublicKey::from_hex(&format!(" {}\n", pk.to_hex())).unwrap(),
            pk
        );
        assert!(PublicKey::from_hex("abcd").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
