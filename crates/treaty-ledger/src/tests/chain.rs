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
    assert_eq!(report.key, Some(crate::pubkey(&store).await.unwrap()));
    assert!(calls >= 1);

    // A range starts from the signed checkpoint before it.
    let ranged = verify(
        &store,
        VerifyOptions {
            from: Some(25),
            to: Some(33),
            pubkey: None,
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
            pubkey: Some(crate::pubkey(&store).await.unwrap()),
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

async fn the_key_is_created_once_and_kept(db: Db) {
    let store = db.store().await;
    let k1 = crate::pubkey(&store).await.unwrap();
    let ledger = crate::Ledger::open(store.clone(), super::settings(10))
        .await
        .unwrap();
    assert_eq!(ledger.public_key(), k1);
    ledger.shutdown().await.unwrap();
    let other = db.store().await;
    assert_eq!(crate::pubkey(&other).await.unwrap(), k1);
    assert_eq!(crate::PublicKey::from_hex(&k1.to_hex()).unwrap(), k1);
    db.finish().await;
}
on_both!(the_key_is_created_once_and_kept);
