//! The log's public keys: which keys sign it, and changing them.
//!
//! The secret is never here (see [`crate::signer`]); the store keeps the
//! public half of every key that ever signed the log, in `ledger_keys`, as
//! C2SP verifier keys (`name+id+base64`), the active one unretired. On
//! open, [`activate`] compares the configured key with the active one:
//!
//! - none yet: the key is registered (a fresh log);
//! - another one: a *rotation*. A `key` record naming the new key and the
//!   one it replaces is appended, and a checkpoint over it is signed at
//!   once, so the change is part of the log it changes;
//! - an earlier version's secret still in the store (`ledger_signing_key`):
//!   that key is retired, not moved to a file. A secret that lived in the
//!   database is in every backup and readable by whoever could rewrite the
//!   log, which is exactly who must not be able to re-sign it; copying it
//!   to a file would keep every such copy valid. So a new key (the
//!   configured one) takes over: the rotation is recorded as above, the
//!   old key signs that first checkpoint beside the new one (so an auditor
//!   who pinned the old public key can follow the handover), the old
//!   public key stays listed as retired, and the secret is deleted from
//!   the store.
//!
//! The public key is shown as a verifier key by `treaty ledger pubkey`;
//! `--pubkey FILE` also takes the 64 hex characters earlier versions
//! printed. This module never prints or logs a secret.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use treaty_store::Store;
#[cfg(feature = "net")]
use treaty_store::{LedgerKeyRow, LedgerRow};

use crate::LedgerError;
#[cfg(any(feature = "net", test))]
use crate::note::SecretKey;
use crate::note::VerifierKey;
#[cfg(feature = "net")]
use crate::{
    now_ms,
    record::{Entry, KeyRecord, Kind},
    writer::Writer,
};

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

    /// The 64 hex characters or a verifier key (`name+id+base64`).
    pub fn parse(text: &str) -> Result<PublicKey, LedgerError> {
        match VerifierKey::parse(text) {
            Ok(v) => Ok(PublicKey(v.key)),
            Err(_) => PublicKey::from_hex(text),
        }
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

/// Every key that signs or signed the log (the active one last), as
/// verifier keys; with none registered yet, an earlier version's stored
/// key under `origin`-less name `legacy`.
pub async fn log_keys(store: &Store) -> Result<Vec<VerifierKey>, LedgerError> {
    let mut keys = Vec::new();
    let mut active = None;
    for row in store.ledger_keys().await? {
        let key = VerifierKey::parse(&row.vkey)
            .map_err(|e| LedgerError::Key(format!("stored key {}: {e}", row.vkey)))?;
        if row.retired_at.is_none() {
            active = Some(key);
        } else {
            keys.push(key);
        }
    }
    keys.extend(active);
    if keys.is_empty()
        && let Some(row) = store.ledger_signing_key().await?
        && let Ok(key) = <[u8; 32]>::try_from(row.public_key.as_slice())
    {
        keys.push(
            VerifierKey::new("legacy", crate::note::SIG_ED25519, key)
                .map_err(|e| LedgerError::Key(e.to_string()))?,
        );
    }
    Ok(keys)
}

/// The key signing the log now, if any.
pub async fn active_key(store: &Store) -> Result<Option<VerifierKey>, LedgerError> {
    Ok(log_keys(store).await?.pop())
}

/// The public half of the key signing the log now.
pub async fn pubkey(store: &Store) -> Result<PublicKey, LedgerError> {
    active_key(store)
        .await?
        .map(|k| PublicKey(k.key))
        .ok_or_else(|| LedgerError::Key("the log has no signing key yet: start it once".into()))
}

/// Registers the writer's key; records a rotation; retires a secret an
/// earlier version kept in the store (see the module's notes).
#[cfg(feature = "net")]
pub(crate) async fn activate(writer: &mut Writer) -> Result<(), LedgerError> {
    let store = writer.store.clone();
    let vkey = writer.signer.verifier().clone();
    let rows = store.ledger_keys().await?;
    let active = rows.iter().find(|r| r.retired_at.is_none());
    let legacy = match store.ledger_signing_key().await? {
        Some(row) if !row.secret_key.is_empty() => {
            let seed: [u8; 32] = row.secret_key.as_slice().try_into().map_err(|_| {
                LedgerError::Key("the stored ledger key is not a 32-byte ed25519 seed".into())
            })?;
            Some(
                SecretKey::from_seed(&vkey.name, seed)
                    .map_err(|e| LedgerError::Key(e.to_string()))?,
            )
        }
        _ => None,
    };
    let now = now_ms();
    let row_of = |k: &VerifierKey| LedgerKeyRow {
        vkey: k.to_string(),
        public_key: k.key.to_vec(),
        created_at: now,
        retired_at: None,
    };
    let (previous, reason) = match (&legacy, active) {
        (Some(old), _) if old.public_key() == vkey.key => {
            return Err(LedgerError::Key(
                "the configured ledger key is the one an earlier version kept in the store: \
                 that key is compromised by design; create a new one with `treaty ledger keygen`"
                    .into(),
            ));
        }
        (Some(old), _) => {
            store.ledger_activate_key(&row_of(&old.verifier())).await?;
            (
                Some(old.verifier().to_string()),
                "an earlier version kept the signing secret in the store, where whoever can \
                 rewrite the log can also re-sign it; that key is retired and its secret deleted"
                    .to_owned(),
            )
        }
        (None, None) => {
            store.ledger_activate_key(&row_of(&vkey)).await?;
            tracing::info!(key = %vkey, "the ledger's signing key is registered");
            return Ok(());
        }
        (None, Some(a)) if a.vkey == vkey.to_string() => return Ok(()),
        (None, Some(a)) => (
            Some(a.vkey.clone()),
            "the operator configured another key".to_owned(),
        ),
    };
    store.ledger_activate_key(&row_of(&vkey)).await?;
    let record = Entry::Key(KeyRecord {
        at_ms: now,
        key: vkey.to_string(),
        previous: previous.clone(),
        reason,
    });
    let mut rows = [LedgerRow {
        seq: 0,
        kind: Kind::Key.as_str().to_owned(),
        request_id: record.request_id(),
        at_ms: now,
        payload: record.canonical()?,
        hash: Vec::new(),
    }];
    let seq = writer
        .write(&[Kind::Key], &mut rows, true, legacy.as_ref())
        .await
        .map_err(|e| LedgerError::Commit(std::sync::Arc::new(e)))?;
    if legacy.is_some() {
        store.ledger_forget_signing_secret().await?;
    }
    tracing::warn!(
        seq,
        key = %vkey,
        previous = previous.as_deref().unwrap_or("none"),
        "the ledger's signing key changed; the change is record {seq}; publish the new public key"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_parse_from_hex_only() {
        let key = SecretKey::from_seed("x", [9; 32]).unwrap();
        let pk = PublicKey(key.public_key());
        assert_eq!(PublicKey::parse(&key.verifier().to_string()).unwrap(), pk);
        assert_eq!(
            PublicKey::from_hex(&format!(" {}\n", pk.to_hex())).unwrap(),
            pk
        );
        assert!(PublicKey::from_hex("abcd").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
