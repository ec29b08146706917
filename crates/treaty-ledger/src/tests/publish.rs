//! Checkpoints leave the store: a directory, a witness over HTTP; the
//! witness refuses a rewritten log and says why; proofs and receipts carry
//! what a tenant needs, and only for its own requests.

use std::sync::Arc;

use super::{Db, entry, on_both, settings, test_key};
use crate::note::SecretKey;
use crate::witness::{Witness, router};
use crate::{
    Ledger, LedgerSettings, ProofError, PublishSettings, Receipt, WitnessTarget, prove_request,
};

async fn serve_witness(dir: &std::path::Path) -> (String, crate::note::VerifierKey) {
    let key = SecretKey::from_seed("witness.test/w1", [9; 32]).unwrap();
    let w = Arc::new(Witness::open(key, vec![test_key().verifier()], dir).unwrap());
    let cosigner = w.cosigner();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(w)).await });
    (url, cosigner)
}

async fn checkpoints_are_published_and_a_witness_refuses_a_rewrite(db: Db) {
    let store = db.store().await;
    let tmp = tempfile::tempdir().unwrap();
    let (url, cosigner) = serve_witness(&tmp.path().join("witness")).await;
    let publish = PublishSettings {
        dir: Some(tmp.path().join("published")),
        urls: Vec::new(),
        witnesses: vec![WitnessTarget {
            url: url.clone(),
            key: cosigner.clone(),
        }],
    };
    let open = |publish: PublishSettings| {
        let store = store.clone();
        async move {
            Ledger::open(
                store,
                LedgerSettings {
                    publish,
                    ..settings(10)
                },
            )
            .await
            .unwrap()
        }
    };
    let ledger = open(publish.clone()).await;
    for i in 1..=20 {
        ledger.append(entry(i)).await.unwrap();
    }
    ledger.shutdown().await.unwrap();

    // The directory holds both checkpoints, and the witness cosigned both.
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("published"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["checkpoint-000000000010", "checkpoint-000000000020"]
    );
    assert_eq!(store.ledger_cosignatures(20).await.unwrap().len(), 1);
    let status = store.ledger_publish_status().await.unwrap();
    let w = status.iter().find(|s| s.kind == "witness").unwrap();
    assert_eq!((w.published, w.refused, w.last_size), (2, 0, 20));

    // A tenant's proof, checked offline with the log key and the witness.
    let proof = prove_request(&store, "acme", "req_000003").await.unwrap();
    let proven = proof
        .verify(&[test_key().verifier()], std::slice::from_ref(&cosigner))
        .unwrap();
    assert_eq!(proven.seq, 5);
    assert_eq!(proven.witnesses, ["witness.test/w1"]);
    // Another tenant's request id is indistinguishable from an unknown one.
    assert!(matches!(
        prove_request(&store, "gov", "req_000003").await,
        Err(ProofError::NotFound)
    ));
    assert!(matches!(
        prove_request(&store, "acme", "req_nope").await,
        Err(ProofError::NotFound)
    ));
    // A receipt for that decision matches the proof's leaf.
    let d = crate::record::fixtures::decision(3);
    let signer = crate::KeySigner::new(test_key(), "test");
    let wire = Receipt::for_decision(&d, 5, Some("azure-eastus"), &test_key().verifier(), 1)
        .unwrap()
        .sign(&signer)
        .unwrap();
    let receipt = Receipt::verify(&wire, &[test_key().verifier()]).unwrap();
    assert_eq!(receipt.leaf_hash, proof.leaf_hash);
    // An altered proof fails.
    let mut bad = proof.clone();
    bad.record = bad.record.replace("acme", "evil");
    assert!(bad.verify(&[test_key().verifier()], &[]).is_err());

    // The operator, who holds the key, rewrites record 5 and re-signs.
    sqlx::query(
        "UPDATE ledger_records SET payload = REPLACE(payload, 'acme', 'evil') WHERE seq = 5",
    )
    .execute(store.test_pool())
    .await
    .unwrap();
    super::tamper::forge(&store, &test_key(), 1).await;
    let ledger = open(publish).await;
    for i in 21..=30 {
        ledger.append(entry(i)).await.unwrap();
    }
    ledger.shutdown().await.unwrap();
    let status = store.ledger_publish_status().await.unwrap();
    let w = status.iter().find(|s| s.kind == "witness").unwrap();
    assert_eq!((w.published, w.refused, w.last_size), (2, 1, 20), "{w:?}");
    let why = w.last_error.as_deref().unwrap();
    assert!(
        why.contains("422") && why.contains("does not extend"),
        "{why}"
    );
    assert!(store.ledger_cosignatures(30).await.unwrap().is_empty());
    db.finish().await;
}
on_both!(checkpoints_are_published_and_a_witness_refuses_a_rewrite);
