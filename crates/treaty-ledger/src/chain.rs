//! The hash chain and the checkpoint signatures, as pure functions.
//!
//! `hash(n) = sha256(hash(n-1) || seq(n) as 8 big-endian bytes || kind
//! code (1 byte) || payload)`, with 32 zero bytes before the first record.
//! Every field in front of the payload has a fixed width, so no two
//! different records can produce the same hashed bytes. A checkpoint signs
//! `CHECKPOINT_DOMAIN || seq as 8 big-endian bytes || hash` with ed25519;
//! the domain prefix keeps a checkpoint signature from ever being valid
//! for any other message the key might sign.
//!
//! This module computes and checks; it never reads or writes the store.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
#[cfg(test)]
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::record::Kind;

/// The hash before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// Prefix of every signed checkpoint message.
pub const CHECKPOINT_DOMAIN: &[u8] = b"treaty-ledger-checkpoint/v1\0";

/// The hash of record `seq` with `kind` and `payload`, following `prev`.
pub fn link(prev: &[u8; 32], seq: u64, kind: Kind, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update([kind.code()]);
    h.update(payload);
    h.finalize().into()
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 40);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

#[cfg(test)]
pub(crate) fn sign_checkpoint(key: &SigningKey, seq: u64, hash: &[u8; 32]) -> [u8; 64] {
    key.sign(&checkpoint_message(seq, hash)).to_bytes()
}

/// Whether `signature` is `key`'s signature of checkpoint `(seq, hash)`.
pub(crate) fn checkpoint_signed_by(
    key: &VerifyingKey,
    seq: u64,
    hash: &[u8; 32],
    signature: &[u8],
) -> bool {
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify(&checkpoint_message(seq, hash), &sig).is_ok()
}

/// A stored 32-byte hash, or `None` when the column holds anything else.
pub(crate) fn hash32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_pinned() {
        // A golden value: changing the chain's layout breaks every ledger.
        let h = link(&GENESIS, 1, Kind::Decision, b"{}");
        assert_eq!(
            hex::encode(h),
            hex::encode({
                let mut s = Sha256::new();
                s.update([0u8; 32]);
                s.update([0, 0, 0, 0, 0, 0, 0, 1]);
                s.update([1]);
                s.update(b"{}");
                let out: [u8; 32] = s.finalize().into();
                out
            })
        );
        assert_ne!(h, link(&GENESIS, 1, Kind::Outcome, b"{}"));
        assert_ne!(h, link(&GENESIS, 2, Kind::Decision, b"{}"));
        assert_ne!(h, link(&h, 1, Kind::Decision, b"{}"));
    }

    #[test]
    fn checkpoints_verify_only_for_their_key_and_message() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let hash = [3u8; 32];
        let sig = sign_checkpoint(&key, 10, &hash);
        assert!(checkpoint_signed_by(&key.verifying_key(), 10, &hash, &sig));
        assert!(!checkpoint_signed_by(
            &other.verifying_key(),
            10,
            &hash,
            &sig
        ));
        assert!(!checkpoint_signed_by(&key.verifying_key(), 11, &hash, &sig));
        assert!(!checkpoint_signed_by(
            &key.verifying_key(),
            10,
            &[4; 32],
            &sig
        ));
        assert!(!checkpoint_signed_by(
            &key.verifying_key(),
            10,
            &hash,
            &sig[..63]
        ));
    }
}
