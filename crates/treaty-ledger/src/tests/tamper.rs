//! The 17 tamperings of issue 14, each detected on SQLite and PostgreSQL
//! by an auditor who pinned the log's public key and holds one checkpoint
//! from outside the store (the last one published before the tampering,
//! as a witness would hold it).
//!
//! Every test builds a 40-record log with checkpoints at 10, 20, 30, 40,
//! takes the checkpoint note at 40 out of the store, tampers with the
//! tables directly (as someone with database access would, up to
//! re-chaining, rebuilding the Merkle tree and re-signing with a key of
//! their own), and checks what `verify` names.

use treaty_store::Store;

use super::{Db, build_chain, on_both, test_key};
use crate::chain::{self, GENESIS};
use crate::merkle::{self, Frontier};
use crate::note::{self, Note, SecretKey};
use crate::{ProblemKind, VerifyOptions, VerifyReport, link, verify};

async fn exec(store: &Store, sql: &'static str) {
    sqlx::query(sql).execute(store.test_pool()).await.unwrap();
}

async fn stored_hash(store: &Store, seq: i64) -> [u8; 32] {
    let rows = store.ledger_records(seq - 1, seq, 1).await.unwrap();
    rows[0].hash.as_slice().try_into().unwrap()
}

/// What the auditor holds: the pinned key and the note at 40.
struct Auditor {
    held: String,
}

impl Auditor {
    async fn check(&self, store: &Store) -> VerifyReport {
        verify(
            store,
            VerifyOptions {
                keys: vec![test_key().verifier()],
                checkpoints: vec![("held/checkpoint-40".into(), self.held.clone())],
                ..VerifyOptions::default()
            },
            |_, _| {},
        )
        .await
        .unwrap()
    }
}

#[track_caller]
fn assert_problem(report: &VerifyReport, seq: u64, kind: ProblemKind) {
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    let p = report.problem.as_ref().unwrap();
    assert_eq!((p.seq, p.kind), (seq, kind), "{}", p.detail);
}

async fn fresh(db: &Db) -> (Store, Auditor) {
    let store = db.store().await;
    build_chain(&store, 40, 10).await;
    let held = store
        .ledger_checkpoint(40)
        .await
        .unwrap()
        .unwrap()
        .note
        .unwrap();
    let auditor = Auditor { held };
    let report = auditor.check(&store).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.external_checkpoints, 1);
    (store, auditor)
}

/// Shifts every record with seq >= `from` by `by` (keys stay unique
/// through a pass over negative numbers).
async fn shift(store: &Store, from: i64, by: i64) {
    sqlx::query("UPDATE ledger_records SET seq = -(seq + $1) WHERE seq >= $2")
        .bind(by)
        .bind(from)
        .execute(store.test_pool())
        .await
        .unwrap();
    exec(store, "UPDATE ledger_records SET seq = -seq WHERE seq < 0").await;
}

async fn insert_row(store: &Store, seq: i64, payload: &str, hash: &[u8]) {
    sqlx::query(
        "INSERT INTO ledger_records (seq, kind, request_id, at_ms, payload, hash) \
         VALUES ($1, 'decision', 'req_forged', 0, $2, $3)",
    )
    .bind(seq)
    .bind(payload)
    .bind(hash)
    .execute(store.test_pool())
    .await
    .unwrap();
}

async fn edit(store: &Store, seq: i64) {
    sqlx::query(
        "UPDATE ledger_records SET payload = REPLACE(payload, 'acme', 'evil') WHERE seq = $1",
    )
    .bind(seq)
    .execute(store.test_pool())
    .await
    .unwrap();
}

/// The forger's key: not the log's (which never was in the store).
fn forger() -> SecretKey {
    SecretKey::from_seed("test.example/ledger", [66; 32]).unwrap()
}

/// What a forger with database access and a key of their own does after
/// changing records: re-chain every record, rebuild the Merkle tree and
/// the head, re-sign every checkpoint from `resign_from` on (dropping those
/// past the head) with `key`, and list `key` as the log's key.
pub(crate) async fn forge(store: &Store, key: &SecretKey, resign_from: i64) {
    let pool = store.test_pool();
    let rows = store.ledger_records(0, i64::MAX, 10_000).await.unwrap();
    let mut prev = GENESIS;
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    let mut roots = vec![merkle::empty_root()];
    for row in &rows {
        let seq = row.seq as u64;
        let kind = crate::Kind::parse(&row.kind).unwrap();
        prev = link(&prev, seq, kind, row.payload.as_bytes());
        frontier.push(
            merkle::record_leaf(seq, kind, row.payload.as_bytes()),
            &mut |i, h| nodes.push((i as i64, h)),
        );
        roots.push(frontier.root());
        sqlx::query("UPDATE ledger_records SET hash = $1 WHERE seq = $2")
            .bind(prev.as_slice())
            .bind(row.seq)
            .execute(pool)
            .await
            .unwrap();
    }
    exec(store, "DELETE FROM ledger_tree").await;
    for (id, h) in &nodes {
        sqlx::query("INSERT INTO ledger_tree (id, hash) VALUES ($1, $2)")
            .bind(*id)
            .bind(h.as_slice())
            .execute(pool)
            .await
            .unwrap();
    }
    let n = rows.len() as i64;
    sqlx::query(
        "UPDATE ledger_head SET seq = $1, hash = $2, tree_size = $1, frontier = $3 WHERE id = 1",
    )
    .bind(n)
    .bind(prev.as_slice())
    .bind(frontier.to_bytes())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM ledger_checkpoints WHERE seq > $1")
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
    for cp in store
        .ledger_checkpoints(resign_from - 1, n, 100)
        .await
        .unwrap()
    {
        let seq = cp.seq as u64;
        let hash = stored_hash(store, cp.seq).await;
        let text = note::Checkpoint {
            origin: key.name.clone(),
            size: seq,
            root: roots[seq as usize],
        }
        .text();
        let note = Note::sign(&text, &key.verifier(), |m| Ok(key.sign(m))).unwrap();
        sqlx::query(
            "UPDATE ledger_checkpoints SET hash = $1, public_key = $2, signature = $3, note = $4 WHERE seq = $5",
        )
        .bind(hash.as_slice())
        .bind(key.public_key().as_slice())
        .bind(key.sign(&chain::checkpoint_message(seq, &hash)).as_slice())
        .bind(note.to_string())
        .bind(cp.seq)
        .execute(pool)
        .await
        .unwrap();
    }
    exec(store, "DELETE FROM ledger_keys").await;
    sqlx::query("INSERT INTO ledger_keys (vkey, public_key, created_at) VALUES ($1, $2, 0)")
        .bind(key.verifier().to_string())
        .bind(key.public_key().as_slice())
        .execute(pool)
        .await
        .unwrap();
}

/// Cuts the log after `keep`: records, later checkpoints and tree nodes
/// gone, the head (and its tree) moved back to `keep`, without any key.
async fn cut(store: &Store, keep: i64, move_head: bool, drop_checkpoints: bool) {
    let rows = store.ledger_records(0, keep, 10_000).await.unwrap();
    sqlx::query("DELETE FROM ledger_records WHERE seq > $1")
        .bind(keep)
        .execute(store.test_pool())
        .await
        .unwrap();
    if drop_checkpoints {
        sqlx::query("DELETE FROM ledger_checkpoints WHERE seq > $1")
            .bind(keep)
            .execute(store.test_pool())
            .await
            .unwrap();
    }
    if move_head {
        let mut frontier = Frontier::new();
        let mut last = 0;
        for row in &rows {
            let kind = crate::Kind::parse(&row.kind).unwrap();
            frontier.push(
                merkle::record_leaf(row.seq as u64, kind, row.payload.as_bytes()),
                &mut |i, _| last = i,
            );
        }
        sqlx::query("DELETE FROM ledger_tree WHERE id > $1")
            .bind(last as i64)
            .execute(store.test_pool())
            .await
            .unwrap();
        sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2, tree_size = $1, frontier = $3 WHERE id = 1")
            .bind(keep)
            .bind(stored_hash(store, keep).await.as_slice())
            .bind(frontier.to_bytes())
            .execute(store.test_pool())
            .await
            .unwrap();
    }
}

// ---- the five that passed before ------------------------------------------

async fn t01_cut_tail_head_moved_later_checkpoints_deleted(db: Db) {
    let (store, auditor) = fresh(&db).await;
    cut(&store, 30, true, true).await;
    let report = auditor.check(&store).await;
    assert_problem(&report, 31, ProblemKind::Truncated);
    assert!(
        report
            .problem
            .unwrap()
            .detail
            .contains("held/checkpoint-40")
    );
    db.finish().await;
}
on_both!(t01_cut_tail_head_moved_later_checkpoints_deleted);

async fn t02_cut_just_before_the_last_checkpoint(db: Db) {
    let (store, auditor) = fresh(&db).await;
    cut(&store, 39, true, true).await;
    assert_problem(&auditor.check(&store).await, 40, ProblemKind::Truncated);
    db.finish().await;
}
on_both!(t02_cut_just_before_the_last_checkpoint);

async fn t03_edit_rechain_resign(db: Db) {
    let (store, auditor) = fresh(&db).await;
    edit(&store, 23).await;
    forge(&store, &forger(), 30).await;
    // The re-signed checkpoint at 30 is the first the pinned key refuses.
    assert_problem(
        &auditor.check(&store).await,
        30,
        ProblemKind::CheckpointForeignKey,
    );
    // Even re-signing every checkpoint, or none, leaves the one held
    // outside contradicting the records.
    forge(&store, &forger(), 1).await;
    exec(&store, "DELETE FROM ledger_checkpoints").await;
    let report = auditor.check(&store).await;
    assert_problem(&report, 40, ProblemKind::CheckpointMismatch);
    assert!(
        report
            .problem
            .unwrap()
            .detail
            .contains("rewritten at or before seq 40")
    );
    db.finish().await;
}
on_both!(t03_edit_rechain_resign);

async fn t04_delete_renumber_rechain_resign(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq = 17").await;
    shift(&store, 18, -1).await;
    forge(&store, &forger(), 20).await;
    assert_problem(
        &auditor.check(&store).await,
        20,
        ProblemKind::CheckpointForeignKey,
    );
    db.finish().await;
}
on_both!(t04_delete_renumber_rechain_resign);

async fn t05_every_checkpoint_deleted(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_checkpoints").await;
    let report = auditor.check(&store).await;
    assert_problem(&report, 40, ProblemKind::CheckpointDeleted);
    db.finish().await;
}
on_both!(t05_every_checkpoint_deleted);

// ---- the twelve caught before, still caught with the same evidence --------

async fn t06_edited_field(db: Db) {
    let (store, auditor) = fresh(&db).await;
    edit(&store, 17).await;
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Edited);
    db.finish().await;
}
on_both!(t06_edited_field);

async fn t07_edit_rehashed_in_place(db: Db) {
    let (store, auditor) = fresh(&db).await;
    edit(&store, 17).await;
    let prev = stored_hash(&store, 16).await;
    let row = store.ledger_records(16, 17, 1).await.unwrap().remove(0);
    let h = link(&prev, 17, crate::Kind::Decision, row.payload.as_bytes());
    sqlx::query("UPDATE ledger_records SET hash = $1 WHERE seq = 17")
        .bind(h.as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    let report = auditor.check(&store).await;
    assert_problem(&report, 17, ProblemKind::Edited);
    db.finish().await;
}
on_both!(t07_edit_rehashed_in_place);

async fn t08_deleted_record_leaves_a_gap(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq = 17").await;
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Deleted);
    db.finish().await;
}
on_both!(t08_deleted_record_leaves_a_gap);

async fn t09_deleted_record_with_renumbering(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq = 17").await;
    shift(&store, 18, -1).await;
    exec(&store, "UPDATE ledger_head SET seq = 39 WHERE id = 1").await;
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Deleted);
    db.finish().await;
}
on_both!(t09_deleted_record_with_renumbering);

async fn t10_swapped_rows(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "UPDATE ledger_records SET seq = -1 WHERE seq = 17").await;
    exec(&store, "UPDATE ledger_records SET seq = 17 WHERE seq = 18").await;
    exec(&store, "UPDATE ledger_records SET seq = 18 WHERE seq = -1").await;
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Reordered);
    db.finish().await;
}
on_both!(t10_swapped_rows);

async fn t11_swapped_payloads(db: Db) {
    let (store, auditor) = fresh(&db).await;
    let rows = store.ledger_records(16, 19, 3).await.unwrap();
    // Two decisions (17 and 19) trade contents, seq and hash kept.
    for (seq, payload) in [(17, &rows[2].payload), (19, &rows[0].payload)] {
        sqlx::query("UPDATE ledger_records SET payload = $1 WHERE seq = $2")
            .bind(payload.as_str())
            .bind(seq)
            .execute(store.test_pool())
            .await
            .unwrap();
    }
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Edited);
    db.finish().await;
}
on_both!(t11_swapped_payloads);

async fn t12_cut_tail_head_untouched(db: Db) {
    let (store, auditor) = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq > 35").await;
    assert_problem(&auditor.check(&store).await, 36, ProblemKind::Truncated);
    db.finish().await;
}
on_both!(t12_cut_tail_head_untouched);

async fn t13_cut_tail_head_moved_later_checkpoints_kept(db: Db) {
    let (store, auditor) = fresh(&db).await;
    cut(&store, 30, true, false).await;
    assert_problem(&auditor.check(&store).await, 31, ProblemKind::Truncated);
    db.finish().await;
}
on_both!(t13_cut_tail_head_moved_later_checkpoints_kept);

async fn t14_resigned_with_a_new_key(db: Db) {
    let (store, auditor) = fresh(&db).await;
    forge(&store, &forger(), 1).await;
    let report = auditor.check(&store).await;
    assert!(report.stored_key_differs);
    assert_problem(&report, 10, ProblemKind::CheckpointForeignKey);
    db.finish().await;
}
on_both!(t14_resigned_with_a_new_key);

async fn t15_zeroed_signature(db: Db) {
    let (store, auditor) = fresh(&db).await;
    sqlx::query("UPDATE ledger_checkpoints SET signature = $1 WHERE seq = 20")
        .bind([0u8; 64].as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(
        &auditor.check(&store).await,
        20,
        ProblemKind::CheckpointForged,
    );
    db.finish().await;
}
on_both!(t15_zeroed_signature);

async fn t16_record_appended_past_the_head(db: Db) {
    let (store, auditor) = fresh(&db).await;
    let prev = stored_hash(&store, 40).await;
    let payload = "{\"forged\":true}";
    let h = link(&prev, 41, crate::Kind::Decision, payload.as_bytes());
    insert_row(&store, 41, payload, &h).await;
    assert_problem(&auditor.check(&store).await, 41, ProblemKind::BeyondHead);
    db.finish().await;
}
on_both!(t16_record_appended_past_the_head);

async fn t17_inserted_record(db: Db) {
    let (store, auditor) = fresh(&db).await;
    let prev = stored_hash(&store, 16).await;
    shift(&store, 17, 1).await;
    let payload = "{\"forged\":true}";
    let hash = link(&prev, 17, crate::Kind::Decision, payload.as_bytes());
    insert_row(&store, 17, payload, &hash).await;
    assert_problem(&auditor.check(&store).await, 17, ProblemKind::Inserted);
    db.finish().await;
}
on_both!(t17_inserted_record);

// ---- around the seventeen --------------------------------------------------

async fn a_checkpoint_signed_by_another_key_is_refused_as_evidence(db: Db) {
    let (store, auditor) = fresh(&db).await;
    // A "checkpoint" the forger signed is not evidence for the pinned key.
    let text = note::Checkpoint {
        origin: "test.example/ledger".into(),
        size: 40,
        root: [1; 32],
    }
    .text();
    let forged = Note::sign(&text, &forger().verifier(), |m| Ok(forger().sign(m))).unwrap();
    let r = verify(
        &store,
        VerifyOptions {
            keys: vec![test_key().verifier()],
            checkpoints: vec![("forged".into(), forged.to_string())],
            ..VerifyOptions::default()
        },
        |_, _| {},
    )
    .await;
    assert!(
        r.is_err(),
        "an unsigned checkpoint cannot vouch for anything"
    );
    let _ = auditor;
    db.finish().await;
}
on_both!(a_checkpoint_signed_by_another_key_is_refused_as_evidence);

async fn ranges_report_problems_inside_them_only(db: Db) {
    let (store, _) = fresh(&db).await;
    edit(&store, 35).await;
    let range = |from, to| VerifyOptions {
        from: Some(from),
        to: Some(to),
        ..VerifyOptions::default()
    };
    assert!(verify(&store, range(5, 30), |_, _| {}).await.unwrap().ok);
    let report = verify(&store, range(31, 38), |_, _| {}).await.unwrap();
    assert_problem(&report, 35, ProblemKind::Edited);
    assert!(verify(&store, range(9, 3), |_, _| {}).await.is_err());
    db.finish().await;
}
on_both!(ranges_report_problems_inside_them_only);
