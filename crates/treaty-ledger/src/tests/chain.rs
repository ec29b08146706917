//! Canonical bytes, the golden hash, and clean chains verifying.

use proptest::prelude::*;

use super::{Db, build_chain, on_both};
use crate::record::fixtures::decision;
use crate::{
    AnchorKind, Entry, GENESIS, HostVerdict, KeySource, Kind, RequestFeatures, VerifyOptions, link,
    verify,
};

#[test]
fn a_fixed_record_has_a_fixed_hash() {
    let payload = Entry::Decision(decision(1)).canonical().unwrap();
    let h1 = link(&GENESIS, 1, Kind::Decision, payload.as_bytes());
    let h2 = link(&h1, 2, Kind::Decision, payload.as_bytes());
    // Golden values, reproduced independently with Python's json and hashlib
    // from the layout in `chain`: if they change, every ledger stops verifying.
    assert_eq!(
        hex::encode(h1),
        "396eae197dcaac6debb935a35359af44567deefec3712e3886e2b52fe2e366a0"
    );
    assert_eq!(
        hex::encode(h2),
        "e671b3521fe68571a0d664ab2cd63202a2d0d8c099751d6523273ce46fe07a6d"
    );
}

fn text() -> impl Strategy<Value = String> {
    // Includes quotes, backslashes, control characters and non-ASCII.
    proptest::string::string_regex("[a-z0-9 \"\\\\\\n\\t\u{e9}\u{1F600}-]{0,12}").unwrap()
}

proptest! {
    #[test]
    fn canonical_bytes_round_trip_and_are_stable(
        tenant in text(),
        clauses in proptest::collection::vec(text(), 0..4),
        at_ms in any::<i64>(),
        store in proptest::option::of(any::<bool>()),
        allowed in any::<bool>(),
        refused in proptest::option::of(text()),
    ) {
        let mut d = decision(3);
        d.tenant = tenant;
        d.at_ms = at_ms;
        d.admit_clauses = clauses.clone();
        d.features = RequestFeatures { store, previous_response_id: allowed, conversation: !allowed };
        d.hosts.push(HostVerdict { host: "h".into(), allowed, clauses });
        d.refused = refused;
        let entry = Entry::Decision(d);
        let bytes = entry.canonical().unwrap();
        let back = Entry::decode(Kind::Decision, &bytes).unwrap();
        prop_assert_eq!(&back, &entry);
        prop_assert_eq!(back.canonical().unwrap(), bytes);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Entry::decode(Kind::Decision, &text);
        let _ = Entry::decode(Kind::Outcome, &text);
    }
}

async fn a_clean_chain_verifies(db: Db) {
    let store = db.store().await;
    build_chain(&store, 45, 10).await;
    let mut calls = 0;
    let report = verify(&store, VerifyOptions::default(), |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .await
    .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.first, report.last, report.records), (1, 45, 45));
    assert_eq!(report.head_seq, 45);
    // Every 10 records, plus the last one at shutdown.
    assert_eq!(report.checkpoints, 5);
    assert_eq!(report.last_checkpoint, Some(45));
    assert_eq!(report.key_source, KeySource::Stored);
    assert_eq!(report.keys, [super::test_key().verifier().to_string()]);
    assert!(report.tree_root.is_some());
    assert!(calls >= 1);

    // A range starts from the signed checkpoint before it.
    let ranged = verify(
        &store,
        VerifyOptions {
            from: Some(25),
            to: Some(33),
            ..VerifyOptions::default()
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(ranged.ok, "{ranged:?}");
    assert_eq!(ranged.anchor.kind, AnchorKind::Checkpoint);
    assert_eq!(ranged.anchor.seq, 20);
    assert_eq!((ranged.first, ranged.last), (21, 33));
    assert_eq!(ranged.checkpoints, 2, "the anchor and the one at 30");

    // The public key given explicitly.
    let given = verify(
        &store,
        VerifyOptions {
            keys: vec![super::test_key().verifier()],
            ..VerifyOptions::default()
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(given.ok);
    assert_eq!(given.key_source, KeySource::Given);
    assert!(!given.stored_key_differs);

    // An empty ledger verifies too.
    let empty = db_empty_verifies().await;
    assert!(empty);
    db.finish().await;
}
on_both!(a_clean_chain_verifies);

async fn db_empty_verifies() -> bool {
    let db = Db::sqlite().await;
    let store = db.store().await;
    let report = verify(&store, VerifyOptions::default(), |_, _| {})
        .await
        .unwrap();
    report.ok && report.records == 0 && report.key_source == KeySource::None
}

async fn the_key_stays_outside_the_store_and_rotations_are_recorded(db: Db) {
    let store = db.store().await;
    build_chain(&store, 3, 10).await;
    let first = super::test_key().verifier();
    assert_eq!(
        crate::active_key(&store).await.unwrap(),
        Some(first.clone())
    );
    // Nothing secret in the store: only public keys.
    let row = sqlx::query("SELECT COUNT(*) AS n FROM ledger_signing_key")
        .fetch_one(store.test_pool())
        .await
        .unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&row, "n").unwrap(), 0);

    // Another key: the rotation is record 4, signed at once.
    let next = crate::note::SecretKey::from_seed("test.example/ledger", [77; 32]).unwrap();
    let settings = crate::LedgerSettings {
        key: crate::SignerSource::Signer(crate::KeySigner::new(next.clone(), "test").shared()),
        ..super::settings(10)
    };
    let ledger = crate::Ledger::open(store.clone(), settings).await.unwrap();
    assert_eq!(ledger.append(super::entry(5)).await.unwrap(), 5);
    ledger.shutdown().await.unwrap();
    let rows = store.ledger_records(3, 4, 1).await.unwrap();
    assert_eq!(rows[0].kind, "key");
    let Ok(crate::Entry::Key(k)) = crate::Entry::decode(Kind::Key, &rows[0].payload) else {
        panic!("record 4 is not a key record")
    };
    assert_eq!(k.key, next.verifier().to_string());
    assert_eq!(k.previous.as_deref(), Some(first.to_string().as_str()));
    assert!(store.ledger_checkpoint(4).await.unwrap().is_some());
    assert_eq!(
        crate::log_keys(&store).await.unwrap(),
        [first.clone(), next.verifier()]
    );
    // Both keys pinned: the whole log verifies; only the old one: not
    // past the rotation.
    let both = VerifyOptions {
        keys: vec![first.clone(), next.verifier()],
        ..VerifyOptions::default()
    };
    assert!(verify(&store, both, |_, _| {}).await.unwrap().ok);
    let old_only = VerifyOptions {
        keys: vec![first],
        ..VerifyOptions::default()
    };
    let r = verify(&store, old_only, |_, _| {}).await.unwrap();
    assert_eq!(
        r.problem.map(|p| (p.seq, p.kind)),
        Some((4, crate::ProblemKind::CheckpointForeignKey))
    );
    db.finish().await;
}
on_both!(the_key_stays_outside_the_store_and_rotations_are_recorded);

async fn a_secret_left_in_the_store_is_retired_with_a_handover(db: Db) {
    // A store as an earlier version left it: records, and the secret in
    // ledger_signing_key.
    let store = db.store().await;
    build_chain(&store, 6, 10).await;
    let legacy = ed25519_dalek::SigningKey::from_bytes(&[21; 32]);
    sqlx::query("DELETE FROM ledger_keys")
        .execute(store.test_pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ledger_signing_key (id, public_key, secret_key, created_at) VALUES (1, $1, $2, 0)",
    )
    .bind(legacy.verifying_key().to_bytes().as_slice())
    .bind([21u8; 32].as_slice())
    .execute(store.test_pool())
    .await
    .unwrap();
    let ledger = crate::Ledger::open(store.clone(), super::settings(10))
        .await
        .unwrap();
    ledger.shutdown().await.unwrap();
    assert_eq!(
        store.ledger_signing_key().await.unwrap(),
        None,
        "the secret is gone"
    );
    let keys = crate::log_keys(&store).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key, legacy.verifying_key().to_bytes());
    // The handover checkpoint at the key record is signed by both keys.
    let cp = store.ledger_checkpoint(7).await.unwrap().unwrap();
    let note = crate::note::Note::parse(cp.note.as_deref().unwrap()).unwrap();
    assert_eq!(note.verify(&keys).unwrap().len(), 2);
    // An auditor who pinned the old key (as 64 hex) follows the handover.
    let old = crate::PublicKey::parse(&hex::encode(legacy.verifying_key().to_bytes())).unwrap();
    assert_eq!(old.0, keys[0].key);
    db.finish().await;
}
on_both!(a_secret_left_in_the_store_is_retired_with_a_handover);
