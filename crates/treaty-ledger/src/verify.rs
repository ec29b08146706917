//! `verify`: recompute the chain and check every signed checkpoint.
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
//! | `checkpoint_mismatch` | a validly signed checkpoint disagrees with the chain: the chain was rewritten after it was signed |
//! | `corrupt` | a row is unreadable (unknown kind, a hash of the wrong size) |
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
    /// The key checkpoints must be signed with; default the store's.
    pub pubkey: Option<PublicKey>,
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
    pub key: Option<PublicKey>,
    pub key_source: KeySource,
    /// A key was given and the store holds another one.
    pub stored_key_differs: bool,
    pub problem: Option<Problem>,
}

fn problem(seq: u64, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        kind,
        detail: detail.into(),
    }
}

/// Verifies the chain; `progress(done, total)` is called after each page.
pub async fn verify(
    store: &Store,
    options: VerifyOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, LedgerError> {
    let head = store.ledger_head().await?;
    let stored_key = key::stored_pubkey(store).await?;
    let (key, key_source) = match (options.pubkey, stored_key) {
        (Some(k), _) => (Some(k), KeySource::Given),
        (None, Some(k)) => (Some(k), KeySource::Stored),
        (None, None) => (None, KeySource::None),
    };
    let head_seq = head.seq.max(0) as u64;
    let mut v = Verifier {
        store,
        key,
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
            key,
            key_source,
            stored_key_differs: matches!((options.pubkey, stored_key), (Some(a), Some(b)) if a != b),
            problem: None,
        },
    };
    if let Some(p) = v.run(&options, head_seq, &head.hash, &mut progress).await? {
        v.report.problem = Some(p);
    } else {
        v.report.ok = true;
    }
    Ok(v.report)
}

struct Verifier<'s> {
    store: &'s Store,
    key: Option<PublicKey>,
    report: VerifyReport,
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
        if let (Some(key), Some(cp)) = (
            self.key,
            self.store
                .ledger_checkpoint_at_or_before(before as i64)
                .await?,
        ) && cp.seq >= 1
            && let Some(hash) = hash32(&cp.hash)
            && cp.public_key == key.0
            && chain::checkpoint_signed_by(&key.verifying()?, cp.seq as u64, &hash, &cp.signature)
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

    /// Checks one checkpoint against the key and the recomputed hash at
    /// its seq (`None`: the chain has no record there).
    fn checkpoint(
        &mut self,
        cp: &CheckpointRow,
        chain_hash: Option<&[u8; 32]>,
    ) -> Result<Option<Problem>, LedgerError> {
        let seq = cp.seq.max(0) as u64;
        let Some(key) = self.key else {
            return Ok(Some(problem(
                seq,
                ProblemKind::CheckpointForeignKey,
                "the store holds checkpoints but no checkpoint key: pass the deployment's public key (--pubkey)",
            )));
        };
        if cp.public_key != key.0 {
            return Ok(Some(problem(
                seq,
                ProblemKind::CheckpointForeignKey,
                format!(
                    "the checkpoint at seq {seq} was signed by key {}, not by the ledger's key {key}",
                    hex::encode(&cp.public_key)
                ),
            )));
        }
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
                format!("the checkpoint at seq {seq} is not signed by the ledger's key {key}"),
            )));
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
