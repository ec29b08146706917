//! Signed notes, checkpoints and cosignatures, as the C2SP specifications
//! define them (`signed-note`, `tlog-checkpoint`, `tlog-cosignature`), so
//! that Go's `sumdb/note`, Sigstore's tooling and the public witness
//! network read what Treaty writes byte for byte.
//!
//! - A note is text ending in a newline, a blank line, and signature lines
//!   `— <key name> base64(key id (4 bytes) || signature)`.
//! - An Ed25519 key's id is `SHA-256(name || 0x0A || 0x01 || public key)[:4]`;
//!   a witness's cosigning key uses type `0x04` instead.
//! - Verifier keys are `name+<key id hex>+base64(type || public key)` and
//!   secret keys `PRIVATE+KEY+name+<key id hex>+base64(0x01 || seed)`, the
//!   forms Go's `note.NewVerifier` / `note.NewSigner` take.
//! - A checkpoint's text is `origin\nsize\nbase64(root)\n`; a cosignature
//!   signs `cosignature/v1\ntime <t>\n` followed by that text and carries
//!   `t` as 8 big-endian bytes before the signature.
//!
//! This module parses, formats, signs and verifies; it never reads the store
//! or a file, and never prints a secret (`SecretKey`'s `Debug` hides it).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Signature type of an Ed25519 note signature.
pub const SIG_ED25519: u8 = 0x01;
/// Signature type of a timestamped Ed25519 witness cosignature.
pub const SIG_COSIGNATURE_V1: u8 = 0x04;
const EM_DASH: &str = "\u{2014}";
/// The most signature lines a note may carry (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("malformed key: {0}")]
    Key(String),
    #[error("no signature by a known key ({0})")]
    Unsigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
}

/// `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, sig_type: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([sig_type]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::Key(format!(
            "a key name is non-empty, without spaces or '+': {name:?}"
        )));
    }
    Ok(())
}

/// A public key that verifies note signatures (or cosignatures).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    pub name: String,
    pub sig_type: u8,
    pub key: [u8; 32],
    pub id: [u8; 4],
}

impl VerifierKey {
    pub fn new(name: &str, sig_type: u8, key: [u8; 32]) -> Result<VerifierKey, NoteError> {
        check_name(name)?;
        VerifyingKey::from_bytes(&key)
            .map_err(|e| NoteError::Key(format!("not an Ed25519 public key: {e}")))?;
        Ok(VerifierKey {
            name: name.to_owned(),
            sig_type,
            key,
            id: key_id(name, sig_type, &key),
        })
    }

    /// Parses `name+hash+base64(type || key)`.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let text = text.trim();
        // base64 may hold '+'; the name and the id never do.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::Key(
                "a verifier key is name+keyid+base64 (as `treaty ledger pubkey` prints)".into(),
            ));
        };
        let data = B64
            .decode(data)
            .map_err(|e| NoteError::Key(format!("the key data is not base64: {e}")))?;
        let (&sig_type, key) = data
            .split_first()
            .ok_or_else(|| NoteError::Key("empty key data".into()))?;
        if sig_type != SIG_ED25519 && sig_type != SIG_COSIGNATURE_V1 {
            return Err(NoteError::Key(format!(
                "unsupported signature type {sig_type:#04x} (Ed25519 0x01 or a cosigner 0x04)"
            )));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| {
            NoteError::Key(format!("an Ed25519 key is 32 bytes, not {}", key.len()))
        })?;
        let vk = VerifierKey::new(name, sig_type, key)?;
        if id != hex::encode(vk.id) {
            return Err(NoteError::Key(format!(
                "the key id {id} does not match the key (expected {})",
                hex::encode(vk.id)
            )));
        }
        Ok(vk)
    }

    /// The key id as 8 hex digits.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    fn verifying(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.key).ok()
    }

    /// Whether `line` is by this key (name and id match).
    pub fn names(&self, line: &SignatureLine) -> bool {
        line.name == self.name && line.id == self.id
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(33);
        data.push(self.sig_type);
        data.extend_from_slice(&self.key);
        write!(f, "{}+{}+{}", self.name, self.id_hex(), B64.encode(data))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// An Ed25519 secret key with its name, as Go's `PRIVATE+KEY+...` text.
#[derive(Clone)]
pub struct SecretKey {
    pub name: String,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.name)
    }
}

impl SecretKey {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SecretKey, NoteError> {
        check_name(name)?;
        Ok(SecretKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<SecretKey, NoteError> {
        use rand::TryRngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| NoteError::Key(format!("no random source for the key: {e}")))?;
        SecretKey::from_seed(name, seed)
    }

    /// Parses `PRIVATE+KEY+name+hash+base64(0x01 || seed)`.
    pub fn parse(text: &str) -> Result<SecretKey, NoteError> {
        let bad = || {
            NoteError::Key(
                "a ledger signing key is PRIVATE+KEY+name+keyid+base64 (as `treaty ledger keygen` writes)"
                    .into(),
            )
        };
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let data = B64.decode(data).map_err(|_| bad())?;
        let (&t, seed) = data.split_first().ok_or_else(bad)?;
        if t != SIG_ED25519 {
            return Err(NoteError::Key(format!(
                "unsupported signing key type {t:#04x} (Ed25519 is 0x01)"
            )));
        }
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad())?;
        let key = SecretKey::from_seed(name, seed)?;
        if id != key.verifier().id_hex() {
            return Err(NoteError::Key("the key id does not match the key".into()));
        }
        Ok(key)
    }

    /// The text form, to be written to a file only the operator can read.
    pub fn encode(&self) -> String {
        let mut data = Vec::with_capacity(33);
        data.push(SIG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            self.verifier().id_hex(),
            B64.encode(data)
        )
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The matching note verifier key (type 0x01).
    pub fn verifier(&self) -> VerifierKey {
        let key = self.public_key();
        VerifierKey {
            name: self.name.clone(),
            sig_type: SIG_ED25519,
            id: key_id(&self.name, SIG_ED25519, &key),
            key,
        }
    }

    /// The matching cosigner verifier key (type 0x04), for a witness.
    pub fn cosigner(&self) -> VerifierKey {
        let key = self.public_key();
        VerifierKey {
            name: self.name.clone(),
            sig_type: SIG_COSIGNATURE_V1,
            id: key_id(&self.name, SIG_COSIGNATURE_V1, &key),
            key,
        }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub id: [u8; 4],
    /// The signature bytes after the key id.
    pub sig: Vec<u8>,
}

impl SignatureLine {
    /// Parses `— name base64` (without the newline).
    pub fn parse(line: &str) -> Result<SignatureLine, NoteError> {
        let rest = line
            .strip_prefix(EM_DASH)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| NoteError::Malformed(format!("not a signature line: {line:?}")))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| NoteError::Malformed(format!("not a signature line: {line:?}")))?;
        check_name(name).map_err(|e| NoteError::Malformed(e.to_string()))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| NoteError::Malformed(format!("a signature is not base64: {e}")))?;
        if bytes.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short".into()));
        }
        Ok(SignatureLine {
            name: name.to_owned(),
            id: [bytes[0], bytes[1], bytes[2], bytes[3]],
            sig: bytes[4..].to_vec(),
        })
    }

    pub fn new(key: &VerifierKey, sig: Vec<u8>) -> SignatureLine {
        SignatureLine {
            name: key.name.clone(),
            id: key.id,
            sig,
        }
    }
}

impl fmt::Display for SignatureLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = self.id.to_vec();
        data.extend_from_slice(&self.sig);
        write!(f, "{EM_DASH} {} {}", self.name, B64.encode(data))
    }
}

/// A note: its text (ending in a newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub sigs: Vec<SignatureLine>,
}

impl Note {
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed(
                "a note holds no control characters but newlines".into(),
            ));
        }
        let body = note
            .strip_suffix('\n')
            .ok_or_else(|| NoteError::Malformed("a note ends with a newline".into()))?;
        // The text is separated from the signatures by the last blank line.
        let split = body.rfind("\n\n").ok_or_else(|| {
            NoteError::Malformed("a note has a blank line before its signatures".into())
        })?;
        let text = &body[..split + 1];
        let sigs = body[split + 2..]
            .split('\n')
            .map(SignatureLine::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if sigs.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        Ok(Note {
            text: text.to_owned(),
            sigs,
        })
    }

    /// Signs `text` (which must end in a newline) with `sign`.
    pub fn sign(
        text: &str,
        key: &VerifierKey,
        sign: impl FnOnce(&[u8]) -> Result<[u8; 64], NoteError>,
    ) -> Result<Note, NoteError> {
        if !text.ends_with('\n') || text.contains("\n\n") {
            return Err(NoteError::Malformed(
                "a note's text ends with a newline and has no blank line".into(),
            ));
        }
        let sig = sign(text.as_bytes())?;
        Ok(Note {
            text: text.to_owned(),
            sigs: vec![SignatureLine::new(key, sig.to_vec())],
        })
    }

    /// Verifies the note against `keys` as the spec says: every line from a
    /// known key must verify, and at least one must. Returns the keys that
    /// signed.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut good = Vec::new();
        for line in &self.sigs {
            let Some(key) = keys
                .iter()
                .find(|k| k.sig_type == SIG_ED25519 && k.names(line))
            else {
                continue;
            };
            let ok = key.verifying().is_some_and(|vk| {
                Signature::from_slice(&line.sig)
                    .is_ok_and(|s| vk.verify(self.text.as_bytes(), &s).is_ok())
            });
            if !ok {
                return Err(NoteError::BadSignature(key.to_string()));
            }
            good.push(key);
        }
        if good.is_empty() {
            let names: Vec<String> = self
                .sigs
                .iter()
                .map(|s| format!("{}+{}", s.name, hex::encode(s.id)))
                .collect();
            return Err(NoteError::Unsigned(format!(
                "signed by {}",
                if names.is_empty() {
                    "nobody".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        Ok(good)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.sigs {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// A checkpoint's text: the log's origin, tree size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: &str| NoteError::Checkpoint(m.to_owned());
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad("the tree size is a decimal without leading zeroes"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad("the tree size is a decimal without leading zeroes"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// A checkpoint note whose log signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: Note,
}

impl SignedCheckpoint {
    /// Parses a checkpoint note and verifies its log signature against
    /// `keys` (the log's own keys, never a witness's).
    pub fn open(note: &str, keys: &[VerifierKey]) -> Result<SignedCheckpoint, NoteError> {
        let note = Note::parse(note)?;
        note.verify(keys)?;
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint::parse(&note.text)?,
            note,
        })
    }
}

/// The message a v1 cosignature signs.
pub fn cosignature_message(timestamp: u64, checkpoint_text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// A witness's cosignature line on `checkpoint_text` at `timestamp`.
pub fn cosign(key: &SecretKey, timestamp: u64, checkpoint_text: &str) -> SignatureLine {
    let mut sig = timestamp.to_be_bytes().to_vec();
    sig.extend_from_slice(&key.sign(&cosignature_message(timestamp, checkpoint_text)));
    SignatureLine::new(&key.cosigner(), sig)
}

/// The timestamp of `line` if it is `key`'s valid cosignature of
/// `checkpoint_text`.
pub fn verify_cosignature(
    key: &VerifierKey,
    checkpoint_text: &str,
    line: &SignatureLine,
) -> Option<u64> {
    if key.sig_type != SIG_COSIGNATURE_V1 || !key.names(line) || line.sig.len() != 72 {
        return None;
    }
    let ts = u64::from_be_bytes(line.sig[..8].try_into().ok()?);
    let sig = Signature::from_slice(&line.sig[8..]).ok()?;
    key.verifying()?
        .verify(&cosignature_message(ts, checkpoint_text), &sig)
        .ok()?;
    Some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Go's sumdb/note documentation.
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn keys_and_signatures_match_gos_reference_note() {
        let skey = SecretKey::parse(SKEY).unwrap();
        assert_eq!(skey.encode(), SKEY);
        assert_eq!(skey.verifier().to_string(), VKEY);
        let vkey = VerifierKey::parse(VKEY).unwrap();
        assert_eq!(vkey, skey.verifier());
        let note = Note::sign(TEXT, &vkey, |m| Ok(skey.sign(m))).unwrap();
        assert_eq!(note.to_string(), SIGNED);
        let parsed = Note::parse(SIGNED).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(parsed.verify(std::slice::from_ref(&vkey)).unwrap(), [&vkey]);
        assert!(
            !format!("{skey:?}").contains("AYEK"),
            "Debug hides the secret"
        );
    }

    #[test]
    fn altered_notes_and_unknown_keys_are_refused() {
        let vkey = VerifierKey::parse(VKEY).unwrap();
        let altered = SIGNED.replacen("cryptography", "cryptocurrency", 1);
        assert!(matches!(
            Note::parse(&altered)
                .unwrap()
                .verify(std::slice::from_ref(&vkey)),
            Err(NoteError::BadSignature(_))
        ));
        let other = SecretKey::from_seed("PeterNeumann", [3; 32]).unwrap();
        assert!(matches!(
            Note::parse(SIGNED).unwrap().verify(&[other.verifier()]),
            Err(NoteError::Unsigned(_))
        ));
        for bad in [
            "",
            "no newline",
            "text\n",
            "text\n\n\u{2014} x\n",
            "te\u{7}xt\n\n\u{2014} PeterNeumann x08go/ZJ=\n",
        ] {
            assert!(Note::parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SecretKey::parse(&SKEY.replace("c74f20a3", "00000000")).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_cosignatures_verify() {
        let log = SecretKey::from_seed("example.com/log", [1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 20852163,
            root: [9; 32],
        };
        let note = Note::sign(&cp.text(), &log.verifier(), |m| Ok(log.sign(m))).unwrap();
        let opened = SignedCheckpoint::open(&note.to_string(), &[log.verifier()]).unwrap();
        assert_eq!(opened.checkpoint, cp);
        assert!(Checkpoint::parse("o\n012\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n12\nAAAA\n").is_err());

        let witness = SecretKey::from_seed("witness.example/w1", [2; 32]).unwrap();
        let line = cosign(&witness, 1_679_315_147, &cp.text());
        let reparsed = SignatureLine::parse(&line.to_string()).unwrap();
        assert_eq!(
            verify_cosignature(&witness.cosigner(), &cp.text(), &reparsed),
            Some(1_679_315_147)
        );
        // The cosigner's key id differs from a log key id for the same key.
        assert_ne!(witness.cosigner().id, witness.verifier().id);
        assert_eq!(
            verify_cosignature(
                &witness.cosigner(),
                &cp.text().replace("3\n", "4\n"),
                &reparsed
            ),
            None
        );
        // A cosigned note still verifies for the log, the witness line ignored.
        let mut cosigned = note.clone();
        cosigned.sigs.push(reparsed);
        assert!(SignedCheckpoint::open(&cosigned.to_string(), &[log.verifier()]).is_ok());
    }
}
