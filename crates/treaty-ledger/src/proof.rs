//! Proofs out of the store: inclusion proofs for a record (by sequence
//! number, or by request id for one tenant) and consistency proofs between
//! two tree sizes, each read as the O(log n) stored subtrees it needs in
//! one query.
//!
//! An [`InclusionProof`] is self-contained: the record's canonical bytes
//! (so the leaf hash can be recomputed), the RFC 9162 audit path, and the
//! signed checkpoint (with any witness cosignatures) whose root it leads
//! to. Its JSON form is what `GET /v1/ledger/proofs/{request_id}` and
//! `treaty ledger proof` return and `treaty receipt verify --proof` reads.
//!
//! A tenant asking for another tenant's request id gets exactly what an
//! unknown id gets ([`ProofError::NotFound`]): the store is asked the
//! same, the answer is compared after. This module only reads.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use treaty_store::Store;

use crate::LedgerError;
use crate::merkle::{self, Hash, ProofPlan};
use crate::note::{self, Note, SignedCheckpoint, VerifierKey};
use crate::record::{Entry, Kind};

/// Reads the subtree hashes a plan needs and builds the proof.
async fn hashes(store: &Store, plan: &ProofPlan) -> Result<Vec<Hash>, LedgerError> {
    let nodes = plan.nodes();
    let ids: Vec<i64> = nodes.iter().map(|n| n.stored_index() as i64).collect();
    let mut got: HashMap<u64, Hash> = HashMap::with_capacity(ids.len());
    for (id, h) in store.ledger_tree_nodes(&ids).await? {
        if let Ok(h) = Hash::try_from(h.as_slice()) {
            got.insert(id as u64, h);
        }
    }
    plan.hashes(&|n| got.get(&n.stored_index()).copied())
        .ok_or_else(|| LedgerError::Corrupt {
            seq: 0,
            detail: "a Merkle tree node the proof needs is missing".into(),
        })
}

/// The consistency proof from the tree of `old` records to the tree of
/// `new` records.
#[cfg(feature = "net")]
pub async fn consistency(store: &Store, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
    let plan = ProofPlan::consistency(old, new)
        .ok_or_else(|| LedgerError::Range(format!("{old} is larger than {new}")))?;
    hashes(store, &plan).await
}

/// The inclusion proof of record `seq` in the tree of `size` records.
pub async fn inclusion(store: &Store, seq: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
    let plan = seq
        .checked_sub(1)
        .and_then(|i| ProofPlan::inclusion(i, size))
        .ok_or_else(|| LedgerError::Range(format!("record {seq} is not in a tree of {size}")))?;
    hashes(store, &plan).await
}

/// A record, its audit path and the signed checkpoint it leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub request_id: String,
    pub seq: u64,
    /// `decision` (or `outcome`, `key`).
    pub kind: String,
    /// The record's canonical JSON, exactly as hashed.
    pub record: String,
    /// `seq - 1`.
    pub leaf_index: u64,
    /// Base64 of `SHA-256(0x00 || seq (8 bytes BE) || kind code || record)`.
    pub leaf_hash: String,
    pub tree_size: u64,
    /// The audit path, base64, from the leaf up (RFC 9162 2.1.3).
    pub hashes: Vec<String>,
    /// The C2SP checkpoint note of `tree_size` records, with the log's
    /// signature and the witnesses' cosignatures.
    pub checkpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// No such request for this tenant (unknown, or another tenant's).
    #[error("no ledger record for this request")]
    NotFound,
    /// The record is newer than the latest checkpoint: ask again shortly.
    #[error("the record is not under a signed checkpoint yet")]
    NotYetCheckpointed,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What an inclusion proof must say for [`InclusionProof::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenRecord {
    pub seq: u64,
    pub leaf_hash: Hash,
    pub checkpoint: note::Checkpoint,
    /// The witnesses among the given ones whose cosignature verified.
    pub witnesses: Vec<String>,
}

impl InclusionProof {
    /// Checks the proof offline: the record's bytes give the leaf hash, the
    /// path leads to the checkpoint's root, and the checkpoint is signed by
    /// one of `log_keys`. `witnesses` (type 0x04 keys) are checked too when
    /// given.
    pub fn verify(
        &self,
        log_keys: &[VerifierKey],
        witnesses: &[VerifierKey],
    ) -> Result<ProvenRecord, String> {
        let kind =
            Kind::parse(&self.kind).ok_or_else(|| format!("unknown kind {:?}", self.kind))?;
        if self.seq == 0 || self.leaf_index != self.seq - 1 {
            return Err("the leaf index is not seq - 1".into());
        }
        let leaf = merkle::record_leaf(self.seq, kind, self.record.as_bytes());
        if B64.encode(leaf) != self.leaf_hash {
            return Err("the record's bytes do not hash to the leaf hash".into());
        }
        let path = self
            .hashes
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|b| Hash::try_from(b.as_slice()).ok())
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or("a proof hash is not 32 bytes of base64")?;
        let cp = SignedCheckpoint::open(&self.checkpoint, log_keys)
            .map_err(|e| format!("the checkpoint: {e}"))?;
        if cp.checkpoint.size != self.tree_size {
            return Err(format!(
                "the checkpoint is of {} records, the proof of {}",
                cp.checkpoint.size, self.tree_size
            ));
        }
        if !merkle::verify_inclusion(
            self.leaf_index,
            self.tree_size,
            &leaf,
            &path,
            &cp.checkpoint.root,
        ) {
            return Err("the audit path does not lead to the checkpoint's root".into());
        }
        let witnessed = witnesses
            .iter()
            .filter(|w| {
                cp.note
                    .sigs
                    .iter()
                    .any(|s| note::verify_cosignature(w, &cp.note.text, s).is_some())
            })
            .map(|w| w.name.clone())
            .collect();
        Ok(ProvenRecord {
            seq: self.seq,
            leaf_hash: leaf,
            checkpoint: cp.checkpoint,
            witnesses: witnessed,
        })
    }
}

/// The inclusion proof of record `seq` against the latest signed
/// checkpoint.
pub async fn prove_seq(store: &Store, seq: u64) -> Result<InclusionProof, ProofError> {
    let rows = store
        .ledger_records(seq as i64 - 1, seq as i64, 1)
        .await
        .map_err(LedgerError::from)?;
    let row = rows.into_iter().next().ok_or(ProofError::NotFound)?;
    prove_row(store, row).await
}

/// The inclusion proof of `tenant`'s decision record for `request_id`;
/// [`ProofError::NotFound`] when there is none *or it is another
/// tenant's*, indistinguishably.
pub async fn prove_request(
    store: &Store,
    tenant: &str,
    request_id: &str,
) -> Result<InclusionProof, ProofError> {
    let rows = store
        .ledger_records_of_request(request_id)
        .await
        .map_err(LedgerError::from)?;
    let decision = rows.into_iter().find(|r| {
        r.kind == Kind::Decision.as_str()
            && matches!(
                Entry::decode(Kind::Decision, &r.payload),
                Ok(Entry::Decision(d)) if d.tenant == tenant
            )
    });
    prove_row(store, decision.ok_or(ProofError::NotFound)?).await
}

async fn prove_row(
    store: &Store,
    row: treaty_store::LedgerRow,
) -> Result<InclusionProof, ProofError> {
    let seq = row.seq as u64;
    let kind = Kind::parse(&row.kind).ok_or_else(|| LedgerError::Corrupt {
        seq: row.seq,
        detail: format!("unknown record kind {:?}", row.kind),
    })?;
    let cp = store
        .ledger_latest_note_checkpoint()
        .await
        .map_err(LedgerError::from)?;
    let Some(cp) = cp.filter(|cp| cp.seq as u64 >= seq) else {
        return Err(ProofError::NotYetCheckpointed);
    };
    let size = cp.seq as u64;
    let path = inclusion(store, seq, size).await?;
    let mut checkpoint = cp.note.unwrap_or_default();
    for line in store
        .ledger_cosignatures(cp.seq)
        .await
        .map_err(LedgerError::from)?
    {
        checkpoint.push_str(&line);
        checkpoint.push('\n');
    }
    // Cosignature lines are appended to the note as they were collected;
    // re-parse so a malformed one can never reach the client.
    if Note::parse(&checkpoint).is_err() {
        return Err(LedgerError::Corrupt {
            seq: cp.seq,
            detail: "the stored checkpoint note is malformed".into(),
        }
        .into());
    }
    Ok(InclusionProof {
        request_id: row.request_id,
        seq,
        kind: kind.as_str().to_owned(),
        leaf_index: seq - 1,
        leaf_hash: B64.encode(merkle::record_leaf(seq, kind, row.payload.as_bytes())),
        record: row.payload,
        tree_size: size,
        hashes: path.iter().map(|h| B64.encode(h)).collect(),
        checkpoint,
    })
}
