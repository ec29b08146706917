//! Signed placement receipts: what a client keeps to prove where its
//! request ran (or that it was refused, and by which clauses).
//!
//! A receipt names the request, its ledger sequence number and the leaf
//! hash of its decision record (so an inclusion proof ties it to a signed
//! checkpoint), the tenant, the host that served, the workload class, the
//! contract reading and clauses, the time, and the signing key, and is
//! signed by the log's key.
//!
//! Wire form (fits an HTTP header and one SSE `data:` line; only
//! `[A-Za-z0-9_-.]`):
//!
//! ```text
//! base64url(JSON) "." base64url(Ed25519 signature)      (no padding)
//! ```
//!
//! where the JSON is the [`Receipt`] with its fields in declaration order
//! and the signature covers `treaty-receipt/v1\n` followed by the JSON
//! bytes exactly as sent (the verifier never re-serialises). The `key`
//! field is the signer's `name+id` (the first two parts of its verifier
//! key), so a verifier picks the key without trying each.
//!
//! Cost: one Ed25519 signature per receipt (the `receipt_sign` bench). This
//! module signs and verifies; it never reads the store.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::LedgerError;
use crate::merkle;
use crate::note::VerifierKey;
use crate::record::{DecisionRecord, Kind};
use crate::signer::Signer;

/// Domain separation: a receipt signature is never valid as anything else
/// the log key signs (notes start with the origin, chain checkpoints with
/// their own prefix).
pub const RECEIPT_DOMAIN: &[u8] = b"treaty-receipt/v1\n";

/// One placement receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Format version: 1.
    pub v: u8,
    pub request_id: String,
    /// The decision record's ledger sequence number.
    pub seq: u64,
    /// Base64 of the decision record's RFC 9162 leaf hash.
    pub leaf_hash: String,
    pub tenant: String,
    /// The host that served; `None` when none did (a refusal).
    pub host: Option<String>,
    pub class: String,
    /// The contract reading in force (`None` without contracts).
    pub reading: Option<String>,
    /// The admission clauses, then the serving host's clauses (permitting);
    /// for a refusal, the refusing clauses.
    pub clauses: Vec<String>,
    /// The refusal's error code, when refused.
    pub refused: Option<String>,
    /// Unix milliseconds when the receipt was issued.
    pub at_ms: i64,
    /// The signing key's `name+id`.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a receipt: {0}")]
    Malformed(String),
    #[error("the receipt names key {0}, which is not one of the given keys")]
    UnknownKey(String),
    #[error("the receipt's signature does not verify: it was altered or not signed by its key")]
    BadSignature,
}

/// The leaf hash of decision record `seq`, from its canonical bytes.
pub fn decision_leaf(seq: u64, decision: &DecisionRecord) -> Result<merkle::Hash, LedgerError> {
    let payload =
        serde_json::to_string(decision).map_err(|e| LedgerError::Encode(e.to_string()))?;
    Ok(merkle::record_leaf(seq, Kind::Decision, payload.as_bytes()))
}

impl Receipt {
    /// The receipt for `decision` (ledger record `seq`), served by
    /// `served_by` (`None`: refused, or no host answered).
    pub fn for_decision(
        decision: &DecisionRecord,
        seq: u64,
        served_by: Option<&str>,
        key: &VerifierKey,
        at_ms: i64,
    ) -> Result<Receipt, LedgerError> {
        let mut clauses = decision.admit_clauses.clone();
        if let Some(host) = served_by
            && let Some(v) = decision.hosts.iter().find(|h| h.host == host)
        {
            for c in &v.clauses {
                if !clauses.contains(c) {
                    clauses.push(c.clone());
                }
            }
        }
        Ok(Receipt {
            v: 1,
            request_id: decision.request_id.clone(),
            seq,
            leaf_hash: B64.encode(decision_leaf(seq, decision)?),
            tenant: decision.tenant.clone(),
            host: served_by.map(str::to_owned),
            class: decision.workload_class.clone(),
            reading: decision.reading.clone(),
            clauses,
            refused: decision.refused.clone(),
            at_ms,
            key: format!("{}+{}", key.name, key.id_hex()),
        })
    }

    /// Signs the receipt; returns its wire form.
    pub fn sign(&self, signer: &dyn Signer) -> Result<String, LedgerError> {
        let json = serde_json::to_vec(self).map_err(|e| LedgerError::Encode(e.to_string()))?;
        let mut message = Vec::with_capacity(RECEIPT_DOMAIN.len() + json.len());
        message.extend_from_slice(RECEIPT_DOMAIN);
        message.extend_from_slice(&json);
        let sig = signer.sign(&message)?;
        let mut wire = B64URL.encode(&json);
        wire.push('.');
        wire.push_str(&B64URL.encode(sig));
        Ok(wire)
    }

    /// Parses a wire receipt and checks its signature against the key it
    /// names among `keys`.
    pub fn verify(wire: &str, keys: &[VerifierKey]) -> Result<Receipt, ReceiptError> {
        let (json, sig) = wire.trim().split_once('.').ok_or_else(|| {
            ReceiptError::Malformed("expected two base64url parts joined by '.'".into())
        })?;
        let json = B64URL
            .decode(json)
            .map_err(|e| ReceiptError::Malformed(format!("the body is not base64url: {e}")))?;
        let sig = B64URL
            .decode(sig)
            .map_err(|e| ReceiptError::Malformed(format!("the signature is not base64url: {e}")))?;
        let receipt: Receipt = serde_json::from_slice(&json)
            .map_err(|e| ReceiptError::Malformed(format!("the body is not a receipt: {e}")))?;
        if receipt.v != 1 {
            return Err(ReceiptError::Malformed(format!(
                "unknown version {}",
                receipt.v
            )));
        }
        let key = keys
            .iter()
            .find(|k| format!("{}+{}", k.name, k.id_hex()) == receipt.key)
            .ok_or_else(|| ReceiptError::UnknownKey(receipt.key.clone()))?;
        let vk = VerifyingKey::from_bytes(&key.key).map_err(|_| ReceiptError::BadSignature)?;
        let sig = Signature::from_slice(&sig).map_err(|_| ReceiptError::BadSignature)?;
        let mut message = RECEIPT_DOMAIN.to_vec();
        message.extend_from_slice(&json);
        vk.verify(&message, &sig)
            .map_err(|_| ReceiptError::BadSignature)?;
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::SecretKey;
    use crate::record::fixtures::decision;
    use crate::signer::KeySigner;

    #[test]
    fn receipts_verify_and_altered_ones_do_not() {
        let key = SecretKey::from_seed("example.com/treaty", [4; 32]).unwrap();
        let signer = KeySigner::new(key.clone(), "test");
        let d = decision(3);
        let r = Receipt::for_decision(&d, 5, Some("azure-eastus"), &key.verifier(), 1_000).unwrap();
        assert_eq!(r.clauses, ["C2", "C1"]);
        assert_eq!(r.leaf_hash, B64.encode(decision_leaf(5, &d).unwrap()));
        let wire = r.sign(&signer).unwrap();
        assert!(wire.len() < 1024, "fits a header: {} bytes", wire.len());
        assert!(
            wire.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        assert_eq!(Receipt::verify(&wire, &[key.verifier()]).unwrap(), r);

        // Another host in the body, same signature: refused.
        let (body, sig) = wire.split_once('.').unwrap();
        let json = String::from_utf8(B64URL.decode(body).unwrap()).unwrap();
        let forged = format!(
            "{}.{sig}",
            B64URL.encode(json.replace("azure-eastus", "bedrock-us"))
        );
        assert_eq!(
            Receipt::verify(&forged, &[key.verifier()]),
            Err(ReceiptError::BadSignature)
        );
        let other = SecretKey::from_seed("example.com/treaty", [5; 32]).unwrap();
        assert!(matches!(
            Receipt::verify(&wire, &[other.verifier()]),
            Err(ReceiptError::UnknownKey(_))
        ));
        assert!(matches!(
            Receipt::verify("nonsense", &[key.verifier()]),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
