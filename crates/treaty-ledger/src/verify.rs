//! `verify`: recompute the chain and the Merkle tree, and check every
//! signed checkpoint, those in the store and those held outside it.
//!
//! Records are streamed in seq order a page at a time (constant memory);
//! every hash is recomputed from the previous one and compared with the
//! stored hash, every checkpoint in the range is checked against the key
//! (the one given, else the store's) and against the recomputed chain, and
//! the head row is compared with the last record. The first problem stops
//! the run and is reported with its sequence number and a name:
//!
//! | kind | what it means |
//! |---|---|
//! | `edited` | a record's contents no longer match the hash it was written with |
//! | `deleted` | records are missing (a gap in seq, or later records renumbered down) |
//! | `inserted` | a record that was never written by the ledger sits in the chain |
//! | `reordered` | a record sits at another seq than the one it was written at |
//! | `rewritten` | a record does not follow from its predecessor and nothing simpler explains it (edited and re-hashed) |
//! | `truncated` | the head names more records than the chain holds |
//! | `beyond_head` | records follow the seq the head names |
//! | `head_mismatch` | the head's hash is not the last record's |
//! | `checkpoint_forged` | a checkpoint's signature is not the key's |
//! | `checkpoint_foreign_key` | a checkpoint was signed by another key |
//! | `checkpoint_mismatch` | a validly signed checkpoint disagrees with the chain or the tree: the log was rewritten after it was signed |
//! | `checkpoint_deleted` | a checkpoint held outside the store (a file, a witness) is no longer in it |
//! | `tree_mismatch` | the head's Merkle tree does not match the records |
//! | `corrupt` | a row is unreadable (unknown kind, a hash of the wrong size) |
//!
//! Keys: checkpoints must be signed by one of the keys the auditor pinned
//! (`--pubkey FILE`: verifier keys, one a line, or earlier versions' 64
//! hex characters); without any, by one of the keys the store lists, which
//! proves only that the store agrees with itself.
//!
//! Checkpoints held outside the store (`--checkpoint FILE`, a witness's
//! state) are what bind the operator: each must be signed by a pinned key,
//! its root must be the root the records recompute to at its size, and it
//! must still be in the store. A log cut below it is `truncated`; a log
//! rewritten at or below it, however carefully re-chained and re-signed, is
//! a `checkpoint_mismatch` naming that checkpoint, and `checkpoint_deleted`
//! when the store's own copy is gone.
//!
//! Naming is a diagnosis made only on the failure path, by trying where
//! the offending record would fit within a small window around it; the
//! verdict itself (ok or not, and the first bad seq) never depends on it.
//! A whole chain rewritten and re-hashed from some point on is caught only
//! by the first signed checkpoint after that point: checkpoints are what
//! make the chain evidence to a third party, who should pass the public
//! key they pinned (`--pubkey`), since the store holds the secret.
//!
//! A run covers the chain up to the head as read when it starts, so it can
//! run beside gateways that keep appending; records they add meanwhile are
//! left for the next run, and only what lies beyond the head at the end of
//! the run is reported as `beyond_head`.
//!
//! A range (`from`) starts from the latest valid signed checkpoint before
//! it when there is one (the records between are verified too), else from
//! the stored hash of the record before it, as the report's `anchor` says.
//! Verification only reads; it never repairs.

use std::collections::VecDeque;

use serde::Serialize;
use treaty_store::{CheckpointRow, LedgerRow, Store};

use crate::LedgerError;
use crate::chain::{self, GENESIS, hash32};
use crate::key::{self, PublicKey};
use crate::merkle::{self, Frontier};
use crate::note::{self, Note, SignedCheckpoint, VerifierKey};
use crate::record::Kind;

const PAGE: i64 = 5_000;
/// How far around a bad record the diagnosis looks for where it belongs.
const WINDOW: u64 = 64;

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// First seq to verify (default 1).
    pub from: Option<u64>,
    /// Last seq to verify (default: to the end, and check the head).
    pub to: Option<u64>,
    /// The keys checkpoints must be signed with (pinned by the auditor);
    /// empty: the keys the store lists.
    pub keys: Vec<VerifierKey>,
    /// Checkpoint notes held outside the store, with where each came from.
    pub checkpoints: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Edited,
    Deleted,
    Inserted,
    Reordered,
    Rewritten,
    Truncated,
    BeyondHead,
    HeadMismatch,
    CheckpointForged,
    CheckpointForeignKey,
    CheckpointMismatch,
    CheckpointDeleted,
    TreeMismatch,
    Corrupt,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Rewritten => "rewritten",
            ProblemKind::Truncated => "truncated",
            ProblemKind::BeyondHead => "beyond_head",
            ProblemKind::HeadMismatch => "head_mismatch",
            ProblemKind::CheckpointForged => "checkpoint_forged",
            ProblemKind::CheckpointForeignKey => "checkpoint_foreign_key",
            ProblemKind::CheckpointMismatch => "checkpoint_mismatch",
            ProblemKind::CheckpointDeleted => "checkpoint_deleted",
            ProblemKind::TreeMismatch => "tree_mismatch",
            ProblemKind::Corrupt => "corrupt",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The first bad sequence number.
    pub seq: u64,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    /// The chain's start: 32 zero bytes.
    Genesis,
    /// A checkpoint whose signature verified.
    Checkpoint,
    /// The stored hash of the record before the range, trusted unsigned.
    StoredHash,
}

/// Where verification started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub seq: u64,
    pub kind: AnchorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Given,
    Stored,
    /// Neither: the store has no key yet (no ledger ever opened it).
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub anchor: Anchor,
    /// The seq range whose hashes were recomputed (`first > last` when
    /// none was).
    pub first: u64,
    pub last: u64,
    pub records: u64,
    /// Checkpoints checked and found good.
    pub checkpoints: u64,
    /// The last good checkpoint's seq.
    pub last_checkpoint: Option<u64>,
    pub head_seq: u64,
    /// Hex.
    pub head_hash: String,
    /// Base64 of the Merkle root the records recompute to (when verified
    /// from the first record).
    pub tree_root: Option<String>,
    /// The keys checkpoints were checked against (verifier keys).
    pub keys: Vec<String>,
    pub key_source: KeySource,
    /// Keys were given and the store's active key is not among them.
    pub stored_key_differs: bool,
    /// Checkpoints held outside the store that were matched.
    pub external_checkpoints: u64,
    pub problem: Option<Problem>,
}

fn problem(seq: u64, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        kind,
        detail: detail.into(),
    }
}

fn base64_of(h: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// Verifies the chain; `progress(done, total)` is called after each page.
pub async fn verify(
    store: &Store,
    options: VerifyOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, LedgerError> {
    let head = store.ledger_head().await?;
    let stored = key::log_keys(store).await?;
    let (keys, key_source) = if !options.keys.is_empty() {
        (options.keys.clone(), KeySource::Given)
    } else if !stored.is_empty() {
        (stored.clone(), KeySource::Stored)
    } else {
        (Vec::new(), KeySource::None)
    };
    let stored_key_differs = key_source == KeySource::Given
        && stored
            .last()
            .is_some_and(|active| !keys.iter().any(|k| k.key == active.key));
    let mut external = Vec::new();
    for (source, text) in &options.checkpoints {
        if keys.is_empty() {
            return Err(LedgerError::Key(
                "checkpoints held outside the store need the log's public key (--pubkey FILE)"
                    .into(),
            ));
        }
        let cp = SignedCheckpoint::open(text, &keys).map_err(|e| {
            LedgerError::Key(format!(
                "the checkpoint in {source} is not signed by the given key: {e}"
            ))
        })?;
        external.push(External {
            source: source.clone(),
            cp,
        });
    }
    external.sort_by_key(|e| e.cp.checkpoint.size);
    let head_seq = head.seq.max(0) as u64;
    let mut v = Verifier {
        store,
        keys: keys.clone(),
        external: external.into(),
        frontier: None,
        report: VerifyReport {
            ok: false,
            anchor: Anchor {
                seq: 0,
                kind: AnchorKind::Genesis,
            },
            first: 1,
            last: 0,
            records: 0,
            checkpoints: 0,
            last_checkpoint: None,
            head_seq,
            head_hash: hex::encode(&head.hash),
            tree_root: None,
            keys: keys.iter().map(ToString::to_string).collect(),
            key_source,
            stored_key_differs,
            external_checkpoints: 0,
            problem: None,
        },
    };
    if !v.external.is_empty() && options.from.is_some_and(|f| f > 1) {
        return Err(LedgerError::Range(
            "checkpoints held outside the store are checked from the first record: drop --from"
                .into(),
        ));
    }
    let run = v.run(&options, head_seq, &head.hash, &mut progress).await?;
    let run = match run {
        Some(p) => Some(p),
        None => match v.finish(&head).await? {
            Some(p) => Some(p),
            None => v.externals_kept(&options).await?,
        },
    };
    if let Some(p) = run {
        v.report.problem = Some(p);
    } else {
        v.report.ok = true;
    }
    Ok(v.report)
}

struct Verifier<'s> {
    store: &'s Store,
    keys: Vec<VerifierKey>,
    /// Checkpoints held outside the store not yet reached, smallest first.
    external: VecDeque<External>,
    /// The tree over the records verified so far (from the first record).
    frontier: Option<Frontier>,
    report: VerifyReport,
}

struct External {
    source: String,
    cp: SignedCheckpoint,
}

/// Checkpoints in a seq range, fetched a page at a time.
struct Checkpoints<'s> {
    store: &'s Store,
    after: i64,
    to: i64,
    buf: VecDeque<CheckpointRow>,
    done: bool,
}

impl Checkpoints<'_> {
    /// The next checkpoint, if its seq is at most `seq`.
    async fn next_upto(&mut self, seq: u64) -> Result<Option<CheckpointRow>, LedgerError> {
        if self.buf.is_empty() && !self.done {
            let page = self
                .store
                .ledger_checkpoints(self.after, self.to, PAGE)
                .await?;
            self.done = (page.len() as i64) < PAGE;
            if let Some(last) = page.last() {
                self.after = last.seq;
            }
            self.buf.extend(page);
        }
        match self.buf.front() {
            Some(cp) if cp.seq <= seq as i64 => Ok(self.buf.pop_front()),
            _ => Ok(None),
        }
    }
}

impl Verifier<'_> {
    async fn run(
        &mut self,
        options: &VerifyOptions,
        head_seq: u64,
        head_hash: &[u8],
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<Option<Problem>, LedgerError> {
        let from = options.from.unwrap_or(1).max(1);
        if let Some(to) = options.to
            && to < from
        {
            return Err(LedgerError::Range(format!(
                "--to {to} is before --from {from}"
            )));
        }
        let Some(head_hash) = hash32(head_hash) else {
            return Ok(Some(problem(
                head_seq,
                ProblemKind::Corrupt,
                format!("the head's hash is {} bytes, not 32", head_hash.len()),
            )));
        };
        if from > head_seq + 1 {
            return Err(LedgerError::Range(format!(
                "--from {from} is past the head (seq {head_seq})"
            )));
        }
        let (lo, _) = self.store.ledger_seq_bounds().await?;
        if let Some(lo) = lo
            && lo < 1
        {
            return Ok(Some(problem(
                0,
                ProblemKind::Inserted,
                format!("a record with seq {lo} precedes the chain's first record (seq 1)"),
            )));
        }
        let (anchor, mut prev) = match self.anchor(from).await? {
            Ok(a) => a,
            Err(p) => return Ok(Some(p)),
        };
        self.report.anchor = anchor;
        if anchor.kind == AnchorKind::Genesis {
            self.frontier = Some(Frontier::new());
        }
        let start = anchor.seq + 1;
        self.report.first = start;
        // Up to the head as read at the start: records a running gateway
        // commits meanwhile are not part of this run (see the end).
        let end = options.to.map_or(head_seq, |to| to.min(head_seq));
        let reaches_head = options.to.is_none_or(|to| to >= head_seq);
        let total = end.saturating_sub(start - 1);
        let mut checkpoints = Checkpoints {
            store: self.store,
            after: start as i64 - 1,
            to: end as i64,
            buf: VecDeque::new(),
            done: false,
        };
        // The last verified hashes, for the diagnosis of a bad record.
        let mut recent: VecDeque<(u64, [u8; 32])> = VecDeque::with_capacity(WINDOW as usize + 1);
        recent.push_back((anchor.seq, prev));
        let mut expected = start;
        loop {
            let page = self
                .store
                .ledger_records(expected as i64 - 1, end as i64, PAGE)
                .await?;
            let Some(last_row) = page.last() else { break };
            let full = page.len() as i64 == PAGE;
            let _ = last_row;
            for row in &page {
                let seq = row.seq as u64;
                if seq != expected {
                    return Ok(Some(problem(
                        expected,
                        ProblemKind::Deleted,
                        if seq == expected + 1 {
                            format!("record {expected} is missing")
                        } else {
                            format!("records {expected} to {} are missing", seq - 1)
                        },
                    )));
                }
                let Some(kind) = Kind::parse(&row.kind) else {
                    return Ok(Some(problem(
                        seq,
                        ProblemKind::Corrupt,
                        format!("unknown record kind {:?}", row.kind),
                    )));
                };
                let Some(stored) = hash32(&row.hash) else {
                    return Ok(Some(problem(
                        seq,
                        ProblemKind::Corrupt,
                        format!("the stored hash is {} bytes, not 32", row.hash.len()),
                    )));
                };
                let hash = chain::link(&prev, seq, kind, row.payload.as_bytes());
                if hash != stored {
                    return Ok(Some(
                        self.diagnose(row, &recent, head_seq, &head_hash).await?,
                    ));
                }
                if let Some(f) = &mut self.frontier {
                    f.push(
                        merkle::record_leaf(seq, kind, row.payload.as_bytes()),
                        &mut |_, _| {},
                    );
                }
                if let Some(p) = self.external_at(seq) {
                    return Ok(Some(p));
                }
                while let Some(cp) = checkpoints.next_upto(seq).await? {
                    if let Some(p) =
                        self.checkpoint(&cp, (cp.seq as u64 == seq).then_some(&hash))?
                    {
                        return Ok(Some(p));
                    }
                }
                prev = hash;
                if recent.len() > WINDOW as usize {
                    recent.pop_front();
                }
                recent.push_back((seq, hash));
                expected += 1;
                self.report.records += 1;
                self.report.last = seq;
            }
            progress(self.report.records, total);
            if !full {
                break;
            }
        }
        let last = expected - 1;
        // Records the range should hold but does not.
        if last < end {
            return Ok(Some(if reaches_head {
                problem(
                    last + 1,
                    ProblemKind::Truncated,
                    format!(
                        "the head names seq {head_seq} but the chain ends at seq {last}: records {} to {head_seq} are missing",
                        last + 1
                    ),
                )
            } else {
                problem(
                    last + 1,
                    ProblemKind::Deleted,
                    format!("records {} to {end} are missing", last + 1),
                )
            }));
        }
        if !reaches_head {
            return Ok(None);
        }
        if let Some(ext) = self.external.front() {
            let size = ext.cp.checkpoint.size;
            return Ok(Some(problem(
                last + 1,
                ProblemKind::Truncated,
                format!(
                    "the checkpoint held outside the store ({}) names {size} records, signed by the log; the log holds {last}: records {} to {size} were cut",
                    ext.source,
                    last + 1
                ),
            )));
        }
        if prev != head_hash {
            return Ok(Some(problem(
                head_seq,
                ProblemKind::HeadMismatch,
                format!(
                    "the head's hash {} is not record {head_seq}'s hash {}",
                    hex::encode(head_hash),
                    hex::encode(prev)
                ),
            )));
        }
        // Nothing may lie beyond the head. Records, checkpoints and the head
        // move in one transaction, so reading the last record and checkpoint
        // *before* the head again sees nothing the head does not cover, even
        // while a gateway appends.
        let (_, hi) = self.store.ledger_seq_bounds().await?;
        let last_cp = self
            .store
            .ledger_checkpoint_at_or_before(i64::MAX)
            .await?
            .map(|cp| cp.seq);
        let head_now = self.store.ledger_head().await?.seq;
        if let Some(hi) = hi
            && hi > head_now
        {
            let after = head_now.max(0) as u64 + 1;
            return Ok(Some(problem(
                after,
                ProblemKind::BeyondHead,
                format!(
                    "records {after} to {hi} follow the head (seq {head_now}): inserted after the head, or the head was moved back"
                ),
            )));
        }
        if let Some(cp) = last_cp
            && cp > head_now
        {
            return Ok(Some(problem(
                cp as u64,
                ProblemKind::CheckpointMismatch,
                format!("a checkpoint names seq {cp}, past the head (seq {head_now})"),
            )));
        }
        Ok(None)
    }

    /// Where to start: the genesis, a signed checkpoint before `from`, or
    /// the stored hash of record `from - 1`.
    async fn anchor(
        &mut self,
        from: u64,
    ) -> Result<Result<(Anchor, [u8; 32]), Problem>, LedgerError> {
        if from == 1 {
            return Ok(Ok((
                Anchor {
                    seq: 0,
                    kind: AnchorKind::Genesis,
                },
                GENESIS,
            )));
        }
        let before = from - 1;
        let row_at =
            |rows: Vec<LedgerRow>, seq: u64| rows.into_iter().find(|r| r.seq as u64 == seq);
        if let Some(cp) = self
            .store
            .ledger_checkpoint_at_or_before(before as i64)
            .await?
            && cp.seq >= 1
            && let Some(hash) = hash32(&cp.hash)
            && let Some(key) = self
                .keys
                .iter()
                .find(|k| k.key.as_slice() == cp.public_key.as_slice())
            && chain::checkpoint_signed_by(
                &PublicKey(key.key).verifying()?,
                cp.seq as u64,
                &hash,
                &cp.signature,
            )
        {
            let seq = cp.seq as u64;
            let rows = self.store.ledger_records(cp.seq - 1, cp.seq, 1).await?;
            return Ok(match row_at(rows, seq) {
                None => Err(problem(
                    seq,
                    ProblemKind::Deleted,
                    format!("record {seq}, named by a signed checkpoint, is missing"),
                )),
                Some(r) if r.hash != cp.hash => Err(problem(
                    seq,
                    ProblemKind::CheckpointMismatch,
                    format!(
                        "record {seq}'s stored hash is not the one its signed checkpoint names"
                    ),
                )),
                Some(_) => {
                    self.report.checkpoints += 1;
                    self.report.last_checkpoint = Some(seq);
                    Ok((
                        Anchor {
                            seq,
                            kind: AnchorKind::Checkpoint,
                        },
                        hash,
                    ))
                }
            });
        }
        let rows = self
            .store
            .ledger_records(before as i64 - 1, before as i64, 1)
            .await?;
        Ok(match row_at(rows, before).map(|r| hash32(&r.hash)) {
            None => Err(problem(
                before,
                ProblemKind::Deleted,
                format!("record {before}, the one before the range, is missing"),
            )),
            Some(None) => Err(problem(
                before,
                ProblemKind::Corrupt,
                "the stored hash is not 32 bytes",
            )),
            Some(Some(hash)) => Ok((
                Anchor {
                    seq: before,
                    kind: AnchorKind::StoredHash,
                },
                hash,
            )),
        })
    }

    /// Checks one checkpoint against the keys and the recomputed hash (and
    /// tree root) at its seq (`None`: the chain has no record there).
    fn checkpoint(
        &mut self,
        cp: &CheckpointRow,
        chain_hash: Option<&[u8; 32]>,
    ) -> Result<Option<Problem>, LedgerError> {
        let seq = cp.seq.max(0) as u64;
        if self.keys.is_empty() {
            return Ok(Some(problem(
                seq,
                ProblemKind::CheckpointForeignKey,
                "the store holds checkpoints but no key: pass the log's public key (--pubkey)",
            )));
        }
        let Some(key) = self
            .keys
            .iter()
            .find(|k| k.key.as_slice() == cp.public_key.as_slice())
        else {
            return Ok(Some(problem(
                seq,
                ProblemKind::CheckpointForeignKey,
                format!(
                    "the checkpoint at seq {seq} was signed by key {}, not by the log's key ({})",
                    hex::encode(&cp.public_key),
                    self.keys
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )));
        };
        let key = PublicKey(key.key);
        let Some(hash) = hash32(&cp.hash) else {
            return Ok(Some(problem(
                seq,
                ProblemKind::Corrupt,
                format!(
                    "the checkpoint at seq {seq} holds a hash of {} bytes",
                    cp.hash.len()
                ),
            )));
        };
        if !chain::checkpoint_signed_by(&key.verifying()?, seq, &hash, &cp.signature) {
            return Ok(Some(problem(
                seq,
                ProblemKind::CheckpointForged,
                format!("the checkpoint at seq {seq} is not signed by the log's key {key}"),
            )));
        }
        if let Some(text) = &cp.note
            && let Some(p) = self.note(seq, text)
        {
            return Ok(Some(p));
        }
        match chain_hash {
            Some(h) if *h == hash => {
                self.report.checkpoints += 1;
                self.report.last_checkpoint = Some(seq);
                Ok(None)
            }
            Some(_) => Ok(Some(problem(
                seq,
                ProblemKind::CheckpointMismatch,
                format!(
                    "the signed checkpoint at seq {seq} names another hash than the chain: the chain was rewritten {}",
                    match self.report.last_checkpoint {
                        Some(good) => format!("between seq {} and {seq}", good + 1),
                        None => format!("at or before seq {seq}"),
                    }
                ),
            ))),
            None => Ok(Some(problem(
                seq,
                ProblemKind::CheckpointMismatch,
                format!(
                    "the signed checkpoint at seq {seq} names a record the chain does not hold"
                ),
            ))),
        }
    }

    /// Checks a stored checkpoint's note: signed by a trusted key, of this
    /// size, with the root the records recompute to.
    fn note(&self, seq: u64, text: &str) -> Option<Problem> {
        let note = match Note::parse(text) {
            Ok(n) => n,
            Err(e) => {
                return Some(problem(
                    seq,
                    ProblemKind::Corrupt,
                    format!("the checkpoint note at seq {seq}: {e}"),
                ));
            }
        };
        match note.verify(&self.keys) {
            Ok(_) => {}
            Err(note::NoteError::Unsigned(who)) => {
                return Some(problem(
                    seq,
                    ProblemKind::CheckpointForeignKey,
                    format!(
                        "the checkpoint note at seq {seq} is not signed by the log's key ({who})"
                    ),
                ));
            }
            Err(e) => {
                return Some(problem(
                    seq,
                    ProblemKind::CheckpointForged,
                    format!("the checkpoint note at seq {seq}: {e}"),
                ));
            }
        }
        let cp = match note::Checkpoint::parse(&note.text) {
            Ok(cp) => cp,
            Err(e) => {
                return Some(problem(
                    seq,
                    ProblemKind::Corrupt,
                    format!("the checkpoint note at seq {seq}: {e}"),
                ));
            }
        };
        if cp.size != seq {
            return Some(problem(
                seq,
                ProblemKind::CheckpointMismatch,
                format!(
                    "the checkpoint stored at seq {seq} is signed for {} records",
                    cp.size
                ),
            ));
        }
        if let Some(f) = &self.frontier
            && f.size() == seq
            && f.root() != cp.root
        {
            return Some(problem(
                seq,
                ProblemKind::CheckpointMismatch,
                format!(
                    "the signed checkpoint at seq {seq} names another Merkle root than the records: the log was rewritten at or before seq {seq}"
                ),
            ));
        }
        None
    }

    /// Checks every checkpoint held outside the store of size `seq`
    /// against the tree the records recompute to.
    fn external_at(&mut self, seq: u64) -> Option<Problem> {
        while let Some(ext) = self.external.front() {
            if ext.cp.checkpoint.size > seq {
                return None;
            }
            let Some(f) = &self.frontier else { return None };
            if ext.cp.checkpoint.root != f.root() {
                return Some(problem(
                    seq,
                    ProblemKind::CheckpointMismatch,
                    format!(
                        "the checkpoint held outside the store ({}) was signed by the log for {seq} records with root {}; the first {seq} records now hash to {}: the log was rewritten at or before seq {seq}",
                        ext.source,
                        base64_of(&ext.cp.checkpoint.root),
                        base64_of(&f.root())
                    ),
                ));
            }
            self.report.external_checkpoints += 1;
            self.external.pop_front();
        }
        None
    }

    /// After a clean scan to the head: the head's tree, and every
    /// checkpoint held outside the store still in it.
    async fn finish(
        &mut self,
        head: &treaty_store::LedgerHead,
    ) -> Result<Option<Problem>, LedgerError> {
        let Some(f) = &self.frontier else {
            return Ok(None);
        };
        if f.size() != head.seq.max(0) as u64 {
            return Ok(None);
        }
        self.report.tree_root = Some(base64_of(&f.root()));
        let stored = Frontier::from_bytes(head.tree_size.max(0) as u64, &head.frontier);
        if stored.as_ref().map(Frontier::root) != Some(f.root()) {
            return Ok(Some(problem(
                head.seq.max(0) as u64,
                ProblemKind::TreeMismatch,
                "the head's Merkle tree is not the tree of the records",
            )));
        }
        Ok(None)
    }

    /// Every checkpoint held outside the store must still be in it.
    async fn externals_kept(
        &self,
        options: &VerifyOptions,
    ) -> Result<Option<Problem>, LedgerError> {
        for (source, text) in &options.checkpoints {
            let Ok(ext) = SignedCheckpoint::open(text, &self.keys) else {
                continue;
            };
            let size = ext.checkpoint.size;
            let kept = self.store.ledger_checkpoint(size as i64).await?;
            let same = kept
                .and_then(|k| k.note)
                .and_then(|n| Note::parse(&n).ok())
                .is_some_and(|n| n.text == ext.note.text);
            if !same && size > 0 {
                return Ok(Some(problem(
                    size,
                    ProblemKind::CheckpointDeleted,
                    format!(
                        "the checkpoint of {size} records held outside the store ({source}) is no longer in the store: its checkpoints were deleted or replaced"
                    ),
                )));
            }
        }
        Ok(None)
    }

    /// Names what is wrong with record `row`, whose hash does not follow
    /// from the verified `recent` ones.
    async fn diagnose(
        &self,
        row: &LedgerRow,
        recent: &VecDeque<(u64, [u8; 32])>,
        head_seq: u64,
        head_hash: &[u8; 32],
    ) -> Result<Problem, LedgerError> {
        let k = row.seq as u64;
        let prev = recent.back().map_or(GENESIS, |(_, h)| *h);
        let window = self
            .store
            .ledger_records(row.seq, (k + WINDOW) as i64, WINDOW as i64)
            .await?;
        let parsed = |r: &LedgerRow| Some((Kind::parse(&r.kind)?, hash32(&r.hash)?));
        let Some((kind, stored)) = parsed(row) else {
            return Ok(problem(k, ProblemKind::Corrupt, "unreadable row"));
        };
        let candidates: Vec<[u8; 32]> = recent
            .iter()
            .map(|(_, h)| *h)
            .chain(window.iter().filter_map(|r| hash32(&r.hash)))
            .collect();
        let written_at = |kind: Kind,
                          payload: &[u8],
                          stored: &[u8; 32],
                          mut seqs: std::ops::RangeInclusive<u64>| {
            seqs.find(|&j| {
                candidates
                    .iter()
                    .any(|q| chain::link(q, j, kind, payload) == *stored)
            })
        };
        // 1. The record belongs at another seq.
        let lo = k.saturating_sub(WINDOW).max(1);
        let payload = row.payload.as_bytes();
        let found = written_at(kind, payload, &stored, lo..=k - 1)
            .or_else(|| written_at(kind, payload, &stored, k + 1..=k + WINDOW));
        if let Some(j) = found {
            return Ok(if j < k {
                problem(
                    j,
                    ProblemKind::Inserted,
                    format!(
                        "record {k} was written as seq {j}: {} record(s) were inserted at seq {j}",
                        k - j
                    ),
                )
            } else {
                problem(
                    k,
                    ProblemKind::Reordered,
                    format!("the record at seq {k} was written as seq {j}: records were reordered"),
                )
            });
        }
        let next = window
            .iter()
            .find(|r| r.seq as u64 == k + 1)
            .and_then(|r| Some((r, parsed(r)?)));
        if let Some((next, (next_kind, next_stored))) = next {
            let payload = next.payload.as_bytes();
            // 2. The next record was written at this seq: this one was put in.
            if chain::link(&prev, k, next_kind, payload) == next_stored {
                return Ok(problem(
                    k,
                    ProblemKind::Inserted,
                    format!(
                        "record {k} is not part of the chain: the record after it was written as seq {k}"
                    ),
                ));
            }
            // The record before may have been edited and its hash recomputed
            // in place: its chain hash then verifies, but the Merkle tree
            // still holds the leaf it was written with.
            if k > 1
                && let Some(before) = self
                    .store
                    .ledger_records(k as i64 - 2, k as i64 - 1, 1)
                    .await?
                    .into_iter()
                    .next()
                && let Some(kind) = Kind::parse(&before.kind)
            {
                let id = merkle::stored_index(0, k - 2) as i64;
                let stored = self.store.ledger_tree_nodes(&[id]).await?;
                let leaf = merkle::record_leaf(k - 1, kind, before.payload.as_bytes());
                if let Some((_, h)) = stored.first()
                    && h.as_slice() != leaf.as_slice()
                {
                    return Ok(problem(
                        k - 1,
                        ProblemKind::Edited,
                        format!(
                            "record {}'s contents were edited and its chain hash recomputed in place: the Merkle tree still holds the leaf it was written with",
                            k - 1
                        ),
                    ));
                }
            }
            // 3. The chain goes on from this record's hash, but at a later seq.
            if let Some(d) = (1..=WINDOW)
                .find(|d| chain::link(&stored, k + 1 + d, next_kind, payload) == next_stored)
            {
                return Ok(problem(
                    k,
                    ProblemKind::Deleted,
                    format!(
                        "{d} record(s) were deleted at seq {k} and the later records renumbered"
                    ),
                ));
            }
            // 4. The chain goes on from the stored hash: only the contents changed.
            if chain::link(&stored, k + 1, next_kind, payload) == next_stored {
                return Ok(problem(
                    k,
                    ProblemKind::Edited,
                    format!("record {k}'s contents do not match the hash it was written with"),
                ));
            }
        } else if head_seq == k && *head_hash == stored {
            return Ok(problem(
                k,
                ProblemKind::Edited,
                format!("record {k}'s contents do not match the hash it was written with"),
            ));
        }
        Ok(problem(
            k,
            ProblemKind::Rewritten,
            format!(
                "record {k} does not follow from record {}: edited and re-hashed, or forged",
                k.saturating_sub(1)
            ),
        ))
    }
}
