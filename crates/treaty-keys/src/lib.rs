//! Virtual API keys: minting, hashing, and checking them per request.
//!
//! A key is bound to one tenant, one channel and one product. Its secret
//! is shown once, at creation; the store keeps only a SHA-256 digest.
//!
//! Why SHA-256 and not a password hash (argon2, bcrypt): the secret is 32
//! bytes from a CSPRNG, 256 bits of entropy. Slow password hashes exist
//! to make guessing *low-entropy* secrets expensive; nobody can enumerate
//! 2^256 candidates however fast the hash is, so SHA-256's preimage
//! resistance is the whole protection needed. A fast, unsalted digest also
//! lets the gateway find a key by an indexed equality lookup on every
//! request, without spending milliseconds of CPU per call.
//!
//! [`KeyChecker`] is on the hot path: it answers from an in-memory cache and
//! goes to the store only on a miss or after `ttl`; no lock is held across
//! an await.

mod checker;
mod issue;
mod secret;

pub use checker::{AuthError, KeyChecker, VerifiedKey};
pub use issue::{KeyRequest, KeyView, issue, rfc3339};
pub use secret::{MintedKey, hash_secret, mint};

pub use treaty_domain::now_ms;
