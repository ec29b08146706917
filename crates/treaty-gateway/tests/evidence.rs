//! What a client keeps to prove where its request ran: the signed
//! placement receipt on every answer (a header on plain responses, an SSE
//! comment before `[DONE]` on streams), and the inclusion proof of its own
//! decision record, fetched by request id, never another tenant's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::{Harness, chat};
use serde_json::json;
use treaty_keys::KeyRequest;
use treaty_ledger::{InclusionProof, Receipt};

/// The harness with a second tenant and a checkpoint after every record,
/// so a proof is available as soon as the request is answered.
async fn harness() -> Harness {
    common::harness_with_sections(
        "[[tenants]]\nid = \"globex\"\nsegment = \"enterprise\"\ndata_region = \"us\"\n\n[ledger]\ncheckpoint_every = 1\n",
    )
    .await
}

fn log_key(h: &Harness) -> treaty_ledger::note::VerifierKey {
    h.gateway.engine.ledger.signer().verifier().clone()
}

#[tokio::test]
async fn a_full_answer_carries_a_receipt_that_verifies_and_names_the_host() {
    let h = harness().await;
    let r = h.post("/v1/chat/completions", chat("hello")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let wire = r.headers["x-treaty-receipt"].to_str().unwrap();
    let receipt = Receipt::verify(wire, &[log_key(&h)]).unwrap();
    assert_eq!(
        receipt.request_id,
        r.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(receipt.host.as_deref(), r.host());
    assert_eq!(receipt.tenant, "acme");
    assert_eq!(receipt.refused, None);

    // One changed byte in the body and it no longer verifies.
    let (body, sig) = wire.split_once('.').unwrap();
    let mut bytes: Vec<u8> = body.bytes().collect();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let altered = format!("{}.{sig}", String::from_utf8(bytes).unwrap());
    assert!(Receipt::verify(&altered, &[log_key(&h)]).is_err());
}

#[tokio::test]
async fn a_stream_ends_with_its_receipt_as_an_sse_comment_before_done() {
    let h = harness().await;
    let mut body = chat("stream please");
    body["stream"] = json!(true);
    let r = h.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.last(), Some(&"data: [DONE]"), "{text}");
    let comment = lines[lines.len() - 2];
    let wire = comment
        .strip_prefix(": x-treaty-receipt ")
        .unwrap_or_else(|| panic!("the receipt precedes [DONE]: {text}"));
    let receipt = Receipt::verify(wire, &[log_key(&h)]).unwrap();
    assert_eq!(receipt.host.as_deref(), r.host());
    assert_eq!(
        receipt.request_id,
        r.headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn a_tenant_fetches_the_proof_of_its_own_request_and_never_another_tenants() {
    let h = harness().await;
    let r = h.post("/v1/chat/completions", chat("prove it")).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let receipt = Receipt::verify(
        r.headers["x-treaty-receipt"].to_str().unwrap(),
        &[log_key(&h)],
    )
    .unwrap();

    // A checkpoint follows every record here; give the writer a moment.
    let path = format!("/v1/ledger/proofs/{id}");
    let mut proof = None;
    for _ in 0..50 {
        let p = h.call("GET", &path, Some(&h.key), Body::empty()).await;
        match p.status {
            StatusCode::OK => {
                proof = Some(p);
                break;
            }
            StatusCode::CONFLICT => {
                assert_eq!(p.json()["error"]["code"], "proof_not_ready");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("{other}: {}", p.text()),
        }
    }
    let proof: InclusionProof =
        serde_json::from_slice(&proof.expect("a proof within 5 s").body).unwrap();
    assert_eq!(proof.request_id, id);
    assert_eq!(
        proof.seq, receipt.seq,
        "the receipt names the proven record"
    );
    assert_eq!(proof.leaf_hash, receipt.leaf_hash);
    let proven = proof.verify(&[log_key(&h)], &[]).unwrap();
    assert_eq!(proven.seq, receipt.seq);

    // Another tenant's key: the same 404 as an unknown id.
    let (globex, _) = treaty_keys::issue(
        &h.gateway.engine.store,
        KeyRequest {
            tenant: "globex".into(),
            channel: "direct".into(),
            product: "api".into(),
            name: None,
            models: None,
            declare_classes: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    let theirs = h
        .call("GET", &path, Some(&globex.secret), Body::empty())
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let unknown = h
        .call(
            "GET",
            "/v1/ledger/proofs/req_nope",
            Some(&globex.secret),
            Body::empty(),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        theirs.json()["error"]["code"],
        unknown.json()["error"]["code"]
    );
    // Without a key: 401.
    assert_eq!(
        h.call("GET", &path, None, Body::empty()).await.status,
        StatusCode::UNAUTHORIZED
    );
}
