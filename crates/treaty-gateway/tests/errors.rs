//! Every refusal leaves in the OpenAI error shape with the right status;
//! bodies are pinned by insta snapshots so a change is a reviewed change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use common::{chat, harness};
use serde_json::json;

async fn snapshot(
    h: &common::Harness,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: impl Into<Body>,
) -> serde_json::Value {
    let r = h.call(method, path, key, body).await;
    assert_eq!(r.headers["content-type"], "application/json");
    let v = r.json();
    // Exactly the four OpenAI fields, nothing else.
    let mut fields: Vec<&String> = v["error"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "message", "param", "type"]);
    json!({"status": r.status.as_u16(), "body": v})
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_errors() {
    let h = harness().await;
    let key = h.key.clone();
    let k = Some(key.as_str());
    let p = "/v1/chat/completions";

    insta::assert_json_snapshot!(
        "malformed_json",
        snapshot(&h, "POST", p, k, "{\"model\": ").await
    );
    insta::assert_json_snapshot!(
        "wrong_type",
        snapshot(
            &h,
            "POST",
            p,
            k,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"n":"two"}"#
        )
        .await
    );
    insta::assert_json_snapshot!(
        "wrong_nested_type",
        snapshot(
            &h,
            "POST",
            p,
            k,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":42}]}"#
        )
        .await
    );
    insta::assert_json_snapshot!(
        "missing_messages",
        snapshot(&h, "POST", p, k, r#"{"model":"gpt-4o"}"#).await
    );
    insta::assert_json_snapshot!("empty_body", snapshot(&h, "POST", p, k, "").await);
    insta::assert_json_snapshot!(
        "invalid_utf8",
        snapshot(
            &h,
            "POST",
            p,
            k,
            b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
                .to_vec()
        )
        .await
    );
    let mut out_of_range = chat("x");
    out_of_range["temperature"] = json!(5);
    insta::assert_json_snapshot!(
        "temperature_out_of_range",
        snapshot(&h, "POST", p, k, serde_json::to_vec(&out_of_range).unwrap()).await
    );
    let mut no_stream = chat("x");
    no_stream["stream_options"] = json!({"include_usage": true});
    insta::assert_json_snapshot!(
        "stream_options_without_stream",
        snapshot(&h, "POST", p, k, serde_json::to_vec(&no_stream).unwrap()).await
    );
    let mut unknown = chat("x");
    unknown["model"] = json!("gpt-9");
    insta::assert_json_snapshot!(
        "unknown_model",
        snapshot(&h, "POST", p, k, serde_json::to_vec(&unknown).unwrap()).await
    );
    insta::assert_json_snapshot!(
        "empty_embeddings_input",
        snapshot(
            &h,
            "POST",
            "/v1/embeddings",
            k,
            r#"{"model":"text-embedding-3-small","input":[]}"#
        )
        .await
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let h = harness().await;
    let key = h.key.clone();
    let big = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(9 * 1024 * 1024)
    );
    insta::assert_json_snapshot!(
        "body_too_large",
        snapshot(&h, "POST", "/v1/chat/completions", Some(&key), big).await
    );
    assert_eq!(
        h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b"),
        0
    );
}

#[tokio::test]
async fn bad_keys_are_401() {
    let h = harness().await;
    let body = || serde_json::to_vec(&chat("x")).unwrap();
    let p = "/v1/chat/completions";
    insta::assert_json_snapshot!("missing_key", snapshot(&h, "POST", p, None, body()).await);
    insta::assert_json_snapshot!(
        "unknown_key",
        snapshot(&h, "POST", p, Some("tk-nope"), body()).await
    );

    let revoked = common::mint(&h.gateway.engine.store, "api").await;
    let id = h
        .gateway
        .engine
        .store
        .list_keys(None)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id
        .clone();
    h.gateway
        .engine
        .store
        .revoke_key(&id, treaty_keys::now_ms())
        .await
        .unwrap();
    insta::assert_json_snapshot!(
        "revoked_key",
        snapshot(&h, "POST", p, Some(&revoked), body()).await
    );

    let expired = {
        let (m, _) = treaty_keys::issue(
            &h.gateway.engine.store,
            treaty_keys::KeyRequest {
                tenant: "acme".into(),
                channel: "direct".into(),
                product: "api".into(),
                name: None,
                models: None,
                declare_classes: None,
                expires_at: Some(treaty_keys::now_ms() - 1000),
            },
        )
        .await
        .unwrap();
        m.secret
    };
    insta::assert_json_snapshot!(
        "expired_key",
        snapshot(&h, "POST", p, Some(&expired), body()).await
    );
    assert_eq!(
        h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b"),
        0
    );
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let h = harness().await;
    insta::assert_json_snapshot!(
        "unknown_route",
        snapshot(&h, "POST", "/v1/nope", None, "").await
    );
    insta::assert_json_snapshot!(
        "wrong_method",
        snapshot(&h, "GET", "/v1/chat/completions", None, "").await
    );
}

#[tokio::test]
async fn unreadable_query_strings_and_paths_are_openai_shaped_400s() {
    let h = harness().await;
    let key = h.key.clone();
    let k = Some(key.as_str());
    for (path, says) in [
        ("/v1/runs?limit=1&limit=2", "The query parameter 'limit'"),
        ("/v1/runs/run_x/events?after=abc", "'after' must be"),
        ("/v1/models/%FF", "Invalid URL path"),
    ] {
        let v = snapshot(&h, "GET", path, k, "").await;
        assert_eq!(v["status"], 400, "{path}: {v}");
        assert_eq!(
            v["body"]["error"]["type"], "invalid_request_error",
            "{path}"
        );
        let message = v["body"]["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{path}: {message}");
    }
}
