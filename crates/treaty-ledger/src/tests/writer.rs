//! Group commit, durability semantics, failures, shutdown, replicas.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Db, entry, on_both, settings};
use crate::record::fixtures::{decision, outcome};
use crate::{Durability, Entry, Ledger, LedgerError, LedgerSettings, VerifyOptions, verify};

async fn group_commit_batches_concurrent_appends(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    let mut tasks = JoinSet::new();
    for i in 1..=1000u64 {
        let ledger = ledger.clone();
        tasks.spawn(async move { ledger.append(entry(i)).await });
    }
    let mut seqs = BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        assert!(
            seqs.insert(r.unwrap().unwrap()),
            "a seq was handed out twice"
        );
    }
    assert_eq!(seqs, (1..=1000).collect::<BTreeSet<u64>>());
    let stats = ledger.stats();
    assert_eq!(stats.records, 1000);
    assert!(
        stats.batches <= 100,
        "1,000 concurrent appends took {} transactions",
        stats.batches
    );
    ledger.shutdown().await.unwrap();
    let report = verify(&store, VerifyOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 1000);
    db.finish().await;
}
on_both!(group_commit_batches_concurrent_appends);

async fn rows_of(db: &Db) -> Vec<(i64, String)> {
    // A separate pool: only committed rows are visible to it.
    let other = db.store().await;
    let rows = other.ledger_records(0, i64::MAX, 10_000).await.unwrap();
    other.close().await;
    rows.into_iter().map(|r| (r.seq, r.request_id)).collect()
}

async fn strict_appends_are_committed_when_they_resolve(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    assert_eq!(ledger.durability(), Durability::Strict);
    let seq = ledger.append(Entry::Decision(decision(1))).await.unwrap();
    assert_eq!(
        rows_of(&db).await,
        vec![(seq as i64, "req_000001".to_owned())]
    );
    ledger.shutdown().await.unwrap();
    db.finish().await;
}
on_both!(strict_appends_are_committed_when_they_resolve);

async fn batched_outcome_covers_its_decision(db: Db) {
    // Batched mode: the gateway does not wait for the decision, only for
    // the outcome before the response completes. Batches commit in order,
    // so a resolved outcome means its decision is committed too.
    let store = db.store().await;
    let ledger = Ledger::open(
        store.clone(),
        LedgerSettings {
            durability: Durability::Batched,
            ..settings(1000)
        },
    )
    .await
    .unwrap();
    assert_eq!(ledger.durability(), Durability::Batched);
    let decision_seq = ledger.append(Entry::Decision(decision(1)));
    let outcome_seq = ledger.append(Entry::Outcome(outcome(1))).await.unwrap();
    let rows = rows_of(&db).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(decision_seq.await.unwrap() + 1, outcome_seq);

    // A record whose future is dropped is still written.
    drop(ledger.append(Entry::Decision(decision(2))));
    ledger.flush().await.unwrap();
    assert_eq!(rows_of(&db).await.len(), 3);
    ledger.shutdown().await.unwrap();
    db.finish().await;
}
on_both!(batched_outcome_covers_its_decision);

async fn an_unawaited_record_rides_with_the_next_awaited_batch(db: Db) {
    // One request at a time: its outcome is recorded (nobody waits), then
    // the next request's decision is appended and awaited. Both go in one
    // transaction: the outcome does not cost a sync of its own in front of
    // the next decision.
    let store = db.store().await;
    let ledger = Ledger::open(
        store.clone(),
        LedgerSettings {
            linger: Duration::from_secs(30),
            ..settings(1000)
        },
    )
    .await
    .unwrap();
    ledger.append(entry(1)).await.unwrap();
    ledger.record(entry(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        rows_of(&db).await.len(),
        1,
        "the outcome was committed alone instead of waiting for the next batch"
    );
    assert_eq!(ledger.append(entry(3)).await.unwrap(), 3);
    assert_eq!(
        rows_of(&db).await,
        vec![
            (1, "req_000001".to_owned()),
            (2, "req_000001".to_owned()),
            (3, "req_000002".to_owned())
        ]
    );
    assert_eq!(ledger.stats().batches, 2);
    ledger.shutdown().await.unwrap();
    db.finish().await;
}
on_both!(an_unawaited_record_rides_with_the_next_awaited_batch);

async fn an_unawaited_record_is_committed_after_the_linger(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(
        store.clone(),
        LedgerSettings {
            linger: Duration::from_millis(20),
            ..settings(1000)
        },
    )
    .await
    .unwrap();
    ledger.record(entry(1));
    let mut rows = Vec::new();
    for _ in 0..200 {
        rows = rows_of(&db).await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        rows,
        vec![(1, "req_000001".to_owned())],
        "a recorded outcome with no batch after it was never committed"
    );
    // A record queued just before shutdown is committed by it.
    ledger.record(entry(2));
    ledger.shutdown().await.unwrap();
    assert_eq!(rows_of(&db).await.len(), 2);
    db.finish().await;
}
on_both!(an_unawaited_record_is_committed_after_the_linger);

async fn a_failed_commit_fails_every_waiter_and_leaves_no_hole(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    ledger.append(entry(1)).await.unwrap();
    // Make the next batches fail: take the head row away.
    let head = store.ledger_head().await.unwrap();
    sqlx::query("DELETE FROM ledger_head")
        .execute(store.test_pool())
        .await
        .unwrap();
    let waiters: Vec<_> = (2..=6).map(|i| ledger.append(entry(i))).collect();
    for w in waiters {
        assert!(matches!(w.await, Err(LedgerError::Commit(_))));
    }
    assert!(ledger.stats().failed_batches >= 1);
    sqlx::query(
        "INSERT INTO ledger_head (id, seq, hash, tree_size, frontier) VALUES (1, $1, $2, $3, $4)",
    )
    .bind(head.seq)
    .bind(head.hash.as_slice())
    .bind(head.tree_size)
    .bind(head.frontier.as_slice())
    .execute(store.test_pool())
    .await
    .unwrap();
    // The next record follows the last committed one.
    assert_eq!(ledger.append(entry(2)).await.unwrap(), 2);
    ledger.shutdown().await.unwrap();
    assert!(
        verify(&store, VerifyOptions::default(), |_, _| {})
            .await
            .unwrap()
            .ok
    );
    db.finish().await;
}
on_both!(a_failed_commit_fails_every_waiter_and_leaves_no_hole);

async fn shutdown_drains_signs_and_closes(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(1000)).await.unwrap();
    let pending: Vec<_> = (1..=50).map(|i| ledger.append(entry(i))).collect();
    ledger.shutdown().await.unwrap();
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap(), i as u64 + 1);
    }
    assert!(matches!(
        ledger.append(entry(51)).await,
        Err(LedgerError::Closed)
    ));
    assert!(matches!(ledger.flush().await, Err(LedgerError::Closed)));
    ledger.shutdown().await.unwrap();
    // The tail is signed at shutdown.
    let cps = store.ledger_checkpoints(0, i64::MAX, 10).await.unwrap();
    assert_eq!(cps.last().map(|c| c.seq), Some(50));
    db.finish().await;
}
on_both!(shutdown_drains_signs_and_closes);

async fn checkpoints_follow_the_interval_when_idle(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(
        store.clone(),
        LedgerSettings {
            checkpoint_every: 1_000_000,
            checkpoint_interval: Duration::from_millis(50),
            ..settings(1)
        },
    )
    .await
    .unwrap();
    for i in 1..=3 {
        ledger.append(entry(i)).await.unwrap();
    }
    let mut found = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cps = store.ledger_checkpoints(0, i64::MAX, 10).await.unwrap();
        if let Some(cp) = cps.last()
            && cp.seq == 3
        {
            found = Some(cp.seq);
            break;
        }
    }
    assert_eq!(found, Some(3), "no checkpoint of the idle head");
    ledger.shutdown().await.unwrap();
    db.finish().await;
}
on_both!(checkpoints_follow_the_interval_when_idle);

async fn two_writers_build_one_chain(db: Db) {
    // Two gateway replicas: two ledgers, each with its own pool and writer,
    // on the same database.
    let a = Ledger::open(db.store().await, settings(100)).await.unwrap();
    let b = Ledger::open(db.store().await, settings(100)).await.unwrap();
    let mut tasks = JoinSet::new();
    for i in 1..=600u64 {
        let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { ledger.append(entry(i)).await });
    }
    let mut seqs = BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        assert!(seqs.insert(r.unwrap().unwrap()));
    }
    assert_eq!(seqs, (1..=600).collect::<BTreeSet<u64>>());
    assert_eq!(a.public_key(), b.public_key(), "one key per deployment");
    assert!(a.stats().records > 0 && b.stats().records > 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let store = db.store().await;
    let report = verify(&store, VerifyOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 600);
    assert!(report.checkpoints >= 2);
    db.finish().await;
}
on_both!(two_writers_build_one_chain);

async fn verify_runs_beside_a_writer(db: Db) {
    let store = db.store().await;
    let ledger = Ledger::open(store.clone(), settings(100)).await.unwrap();
    for i in 1..=300 {
        drop(ledger.append(entry(i)));
    }
    ledger.flush().await.unwrap();
    let writer = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for i in 301..=1500u64 {
                ledger.append(entry(i)).await.unwrap();
            }
        })
    };
    for _ in 0..5 {
        let report = verify(&store, VerifyOptions::default(), |_, _| {})
            .await
            .unwrap();
        assert!(report.ok, "{report:?}");
    }
    writer.await.unwrap();
    ledger.shutdown().await.unwrap();
    db.finish().await;
}
on_both!(verify_runs_beside_a_writer);
