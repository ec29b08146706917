//! Each kind of tampering is detected and named with the first bad seq.
//!
//! Every test builds a 40-record chain with checkpoints at 10, 20, 30, 40,
//! tampers with the tables directly (as someone with database access
//! would), and checks what `verify` reports.

use ed25519_dalek::SigningKey;
use treaty_store::Store;

use super::{Db, build_chain, on_both};
use crate::{
    ProblemKind, PublicKey, VerifyOptions, VerifyReport, checkpoint_message, link, verify,
};

async fn exec(store: &Store, sql: &'static str) {
    sqlx::query(sql).execute(store.test_pool()).await.unwrap();
}

async fn stored_hash(store: &Store, seq: i64) -> [u8; 32] {
    let rows = store.ledger_records(seq - 1, seq, 1).await.unwrap();
    rows[0].hash.as_slice().try_into().unwrap()
}

async fn check(store: &Store) -> VerifyReport {
    verify(store, VerifyOptions::default(), |_, _| {})
        .await
        .unwrap()
}

#[track_caller]
fn assert_problem(report: &VerifyReport, seq: u64, kind: ProblemKind) {
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    let p = report.problem.as_ref().unwrap();
    assert_eq!((p.seq, p.kind), (seq, kind), "{}", p.detail);
}

async fn fresh(db: &Db) -> Store {
    let store = db.store().await;
    build_chain(&store, 40, 10).await;
    assert!(check(&store).await.ok);
    store
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

async fn edited_payload(db: Db) {
    let store = fresh(&db).await;
    exec(
        &store,
        "UPDATE ledger_records SET payload = REPLACE(payload, 'acme', 'evil') WHERE seq = 17",
    )
    .await;
    let report = check(&store).await;
    assert_problem(&report, 17, ProblemKind::Edited);
    assert!(report.problem.unwrap().detail.contains("17"));
    db.finish().await;
}
on_both!(edited_payload);

async fn deleted_record_leaves_a_gap(db: Db) {
    let store = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq = 17").await;
    assert_problem(&check(&store).await, 17, ProblemKind::Deleted);
    db.finish().await;
}
on_both!(deleted_record_leaves_a_gap);

async fn deleted_record_with_renumbering(db: Db) {
    let store = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq = 17").await;
    shift(&store, 18, -1).await;
    exec(&store, "UPDATE ledger_head SET seq = 39 WHERE id = 1").await;
    assert_problem(&check(&store).await, 17, ProblemKind::Deleted);
    db.finish().await;
}
on_both!(deleted_record_with_renumbering);

async fn inserted_record(db: Db) {
    let store = fresh(&db).await;
    shift(&store, 17, 1).await;
    insert_row(&store, 17, "{\"forged\":true}", &[0u8; 32]).await;
    assert_problem(&check(&store).await, 17, ProblemKind::Inserted);
    db.finish().await;
}
on_both!(inserted_record);

async fn inserted_record_with_a_correct_hash(db: Db) {
    // The forger knows the algorithm and chains the new record properly;
    // the record after it no longer follows.
    let store = fresh(&db).await;
    let prev = stored_hash(&store, 16).await;
    shift(&store, 17, 1).await;
    let payload = "{\"forged\":true}";
    let hash = link(&prev, 17, crate::Kind::Decision, payload.as_bytes());
    insert_row(&store, 17, payload, &hash).await;
    assert_problem(&check(&store).await, 17, ProblemKind::Inserted);
    db.finish().await;
}
on_both!(inserted_record_with_a_correct_hash);

async fn swapped_records(db: Db) {
    let store = fresh(&db).await;
    exec(&store, "UPDATE ledger_records SET seq = -1 WHERE seq = 17").await;
    exec(&store, "UPDATE ledger_records SET seq = 17 WHERE seq = 18").await;
    exec(&store, "UPDATE ledger_records SET seq = 18 WHERE seq = -1").await;
    assert_problem(&check(&store).await, 17, ProblemKind::Reordered);

    // Two records further apart.
    let db2 = if db.pg {
        Db::postgres().await.unwrap()
    } else {
        Db::sqlite().await
    };
    let store = fresh(&db2).await;
    exec(&store, "UPDATE ledger_records SET seq = -1 WHERE seq = 12").await;
    exec(&store, "UPDATE ledger_records SET seq = 12 WHERE seq = 25").await;
    exec(&store, "UPDATE ledger_records SET seq = 25 WHERE seq = -1").await;
    assert_problem(&check(&store).await, 12, ProblemKind::Reordered);
    db2.finish().await;
    db.finish().await;
}
on_both!(swapped_records);

async fn truncated_tail(db: Db) {
    let store = fresh(&db).await;
    exec(&store, "DELETE FROM ledger_records WHERE seq > 35").await;
    assert_problem(&check(&store).await, 36, ProblemKind::Truncated);
    db.finish().await;
}
on_both!(truncated_tail);

async fn head_moved_back(db: Db) {
    let store = fresh(&db).await;
    let h30 = stored_hash(&store, 30).await;
    sqlx::query("UPDATE ledger_head SET seq = 30, hash = $1 WHERE id = 1")
        .bind(h30.as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(&check(&store).await, 31, ProblemKind::BeyondHead);
    db.finish().await;
}
on_both!(head_moved_back);

async fn head_hash_changed(db: Db) {
    let store = fresh(&db).await;
    sqlx::query("UPDATE ledger_head SET hash = $1 WHERE id = 1")
        .bind([9u8; 32].as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(&check(&store).await, 40, ProblemKind::HeadMismatch);
    db.finish().await;
}
on_both!(head_hash_changed);

async fn forged_checkpoint_signature(db: Db) {
    let store = fresh(&db).await;
    sqlx::query("UPDATE ledger_checkpoints SET signature = $1 WHERE seq = 20")
        .bind([7u8; 64].as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(&check(&store).await, 20, ProblemKind::CheckpointForged);
    db.finish().await;
}
on_both!(forged_checkpoint_signature);

async fn checkpoint_replayed_from_another_key(db: Db) {
    let store = fresh(&db).await;
    // A checkpoint as another deployment (another key) would sign it.
    let other = SigningKey::from_bytes(&[42; 32]);
    let hash = stored_hash(&store, 20).await;
    let sig = ed25519_dalek::Signer::sign(&other, &checkpoint_message(20, &hash));
    sqlx::query("UPDATE ledger_checkpoints SET public_key = $1, signature = $2 WHERE seq = 20")
        .bind(other.verifying_key().to_bytes().as_slice())
        .bind(sig.to_bytes().as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(&check(&store).await, 20, ProblemKind::CheckpointForeignKey);
    // Claiming the ledger's key for it makes the signature wrong instead.
    let ours = crate::pubkey(&store).await.unwrap();
    sqlx::query("UPDATE ledger_checkpoints SET public_key = $1 WHERE seq = 20")
        .bind(ours.0.as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    assert_problem(&check(&store).await, 20, ProblemKind::CheckpointForged);
    db.finish().await;
}
on_both!(checkpoint_replayed_from_another_key);

async fn replaced_store_key_is_caught_by_a_pinned_pubkey(db: Db) {
    let store = fresh(&db).await;
    let pinned = crate::pubkey(&store).await.unwrap();
    // Someone replaces the key in the store and re-signs every checkpoint.
    let evil = SigningKey::from_bytes(&[5; 32]);
    sqlx::query("UPDATE ledger_signing_key SET public_key = $1, secret_key = $2 WHERE id = 1")
        .bind(evil.verifying_key().to_bytes().as_slice())
        .bind([5u8; 32].as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    for seq in [10i64, 20, 30, 40] {
        let hash = stored_hash(&store, seq).await;
        let sig = ed25519_dalek::Signer::sign(&evil, &checkpoint_message(seq as u64, &hash));
        sqlx::query("UPDATE ledger_checkpoints SET public_key = $1, signature = $2 WHERE seq = $3")
            .bind(evil.verifying_key().to_bytes().as_slice())
            .bind(sig.to_bytes().as_slice())
            .bind(seq)
            .execute(store.test_pool())
            .await
            .unwrap();
    }
    // Against the store's own (replaced) key everything looks fine...
    assert!(check(&store).await.ok);
    // ...but not against the key the auditor pinned.
    let report = verify(
        &store,
        VerifyOptions {
            pubkey: Some(pinned),
            ..VerifyOptions::default()
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(report.stored_key_differs);
    assert_problem(&report, 10, ProblemKind::CheckpointForeignKey);
    // And a key that never signed anything is refused the same way.
    let stranger = PublicKey(SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes());
    let report = verify(
        &store,
        VerifyOptions {
            pubkey: Some(stranger),
            ..VerifyOptions::default()
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_problem(&report, 10, ProblemKind::CheckpointForeignKey);
    db.finish().await;
}
on_both!(replaced_store_key_is_caught_by_a_pinned_pubkey);

async fn rewritten_chain_is_caught_by_the_next_checkpoint(db: Db) {
    // Edit record 23 and re-hash everything after it, head included: the
    // chain is self-consistent again, but the signed checkpoint at 30 is not.
    let store = fresh(&db).await;
    exec(
        &store,
        "UPDATE ledger_records SET payload = REPLACE(payload, 'acme', 'evil') WHERE seq = 23",
    )
    .await;
    let mut prev = stored_hash(&store, 22).await;
    for row in store.ledger_records(22, 40, 100).await.unwrap() {
        let kind = crate::Kind::parse(&row.kind).unwrap();
        prev = link(&prev, row.seq as u64, kind, row.payload.as_bytes());
        sqlx::query("UPDATE ledger_records SET hash = $1 WHERE seq = $2")
            .bind(prev.as_slice())
            .bind(row.seq)
            .execute(store.test_pool())
            .await
            .unwrap();
    }
    sqlx::query("UPDATE ledger_head SET hash = $1 WHERE id = 1")
        .bind(prev.as_slice())
        .execute(store.test_pool())
        .await
        .unwrap();
    let report = check(&store).await;
    assert_problem(&report, 30, ProblemKind::CheckpointMismatch);
    assert!(
        report
            .problem
            .unwrap()
            .detail
            .contains("between seq 21 and 30"),
        "names the window since the last good checkpoint"
    );
    db.finish().await;
}
on_both!(rewritten_chain_is_caught_by_the_next_checkpoint);

async fn ranges_report_problems_inside_them_only(db: Db) {
    let store = fresh(&db).await;
    exec(
        &store,
        "UPDATE ledger_records SET payload = REPLACE(payload, 'acme', 'evil') WHERE seq = 35",
    )
    .await;
    let range = |from, to| VerifyOptions {
        from: Some(from),
        to: Some(to),
        pubkey: None,
    };
    assert!(verify(&store, range(5, 30), |_, _| {}).await.unwrap().ok);
    let report = verify(&store, range(31, 38), |_, _| {}).await.unwrap();
    assert_problem(&report, 35, ProblemKind::Edited);
    assert!(verify(&store, range(9, 3), |_, _| {}).await.is_err());
    db.finish().await;
}
on_both!(ranges_report_problems_inside_them_only);
