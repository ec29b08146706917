//! Key secrets: how they look and how they are hashed.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every Treaty key secret starts with this, so secret scanners and people
/// can recognise one.
pub const SECRET_PREFIX: &str = "tk-";

/// A freshly minted key: `secret` is shown to the user once and never
/// stored.
#[derive(Clone)]
pub struct MintedKey {
    pub id: String,
    pub secret: String,
    pub secret_hash: String,
    /// The first 8 characters of the secret, safe to display.
    pub prefix: String,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Mints a key with 256 random bits from `rand`'s thread generator (a CSPRNG
/// seeded from the OS).
pub fn mint() -> MintedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let mut id_bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut id_bytes);
    MintedKey {
        id: format!("key_{}", hex::encode(id_bytes)),
        secret_hash: hash_secret(&secret),
        prefix: secret.chars().take(8).collect(),
        secret,
    }
}

/// The stored form of a secret: lowercase hex SHA-256 (see the crate docs
/// for why a fast hash is right here).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_unique_and_hash_to_what_is_stored() {
        let a = mint();
        let b = mint();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert!(a.secret.starts_with(SECRET_PREFIX));
        assert_eq!(a.secret.len(), 3 + 43);
        assert_eq!(hash_secret(&a.secret), a.secret_hash);
        assert_eq!(a.secret_hash.len(), 64);
        assert!(a.secret.starts_with(&a.prefix));
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
