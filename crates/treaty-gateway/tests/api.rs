//! The gateway's HTTP API, in-process, against the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_TOKEN, UPSTREAM_KEY, chat, harness};
use serde_json::json;

#[tokio::test]
async fn chat_completion_is_answered_by_an_upstream_host() {
    let h = harness().await;
    let r = h.post("/v1/chat/completions", chat("hello there")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let host = r.host().unwrap().to_owned();
    let v = r.json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!("Emulated reply from {host}")),
        "{content}"
    );
    assert!(content.ends_with("hello there"));
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        v["model"], "gpt-4o",
        "the public name, not the host's deployment"
    );
    assert!(
        r.headers
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn requests_spread_over_the_hosts_serving_the_model() {
    let h = harness().await;
    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let r = h.post("/v1/chat/completions", chat("x")).await;
        hosts.insert(r.host().unwrap().to_owned());
    }
    assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["azure-a", "vllm-b"]);
}

#[tokio::test]
async fn streamed_chat_passes_chunks_and_ends_with_done() {
    let h = harness().await;
    let mut body = chat("one two three four");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = h.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let text = r.text();
    let mut events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    // Before [DONE], the signed receipt as an SSE comment, which SDKs skip.
    let receipt = events.remove(events.len() - 2);
    assert!(receipt.starts_with(": x-treaty-receipt "), "{receipt}");
    let mut content = String::new();
    let mut usage = None;
    for e in &events[..events.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
        assert_eq!(v["model"], "gpt-4o");
        if v["usage"].is_object() {
            usage = Some(v["usage"].clone());
        }
    }
    assert!(content.ends_with("one two three four"), "{content}");
    assert!(usage.is_some(), "include_usage asked for a usage chunk");
}

#[tokio::test]
async fn a_batched_ledger_ends_every_stream_with_done() {
    // Batched durability holds `[DONE]` until the decision record commits.
    // When the upstream finishes first, the body must wait for the commit
    // without polling the finished upstream stream again: that panicked
    // the connection (found by bench/run, issue 7).
    let h = common::harness_with("\n[ledger]\ndurability = \"batched\"").await;
    for i in 0..20 {
        let mut body = chat(&format!("batched {i}"));
        body["stream"] = json!(true);
        let r = h.post("/v1/chat/completions", body).await;
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}

#[tokio::test]
async fn usage_chunk_is_only_sent_when_the_client_asked() {
    let h = harness().await;
    let mut body = chat("hi");
    body["stream"] = json!(true);
    let text = h.post("/v1/chat/completions", body).await.text();
    assert!(!text.contains("\"usage\":{"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn tools_and_parameters_pass_through() {
    let h = harness().await;
    let r = h
        .post(
            "/v1/chat/completions",
            json!({
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "weather?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                "n": 2, "seed": 1, "user": "u-1", "stop": ["zzz"]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["choices"].as_array().unwrap().len(),
        2,
        "n passed through"
    );
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn embeddings_are_answered() {
    let h = harness().await;
    let r = h
        .post(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 8}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.host(), Some("azure-a"), "only azure-a serves embeddings");
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use() {
    let h = harness().await;
    let list = |key: String| {
        let h = &h;
        async move {
            let r = h
                .call("GET", "/v1/models", Some(&key), axum::body::Body::empty())
                .await;
            assert_eq!(r.status, 200);
            let ids: Vec<String> = r.json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            ids
        }
    };
    assert_eq!(
        list(h.key.clone()).await,
        ["gpt-4o", "text-embedding-3-small"]
    );
    assert_eq!(list(h.chat_key.clone()).await, ["gpt-4o"]);
    let r = h
        .call(
            "GET",
            "/v1/models/text-embedding-3-small",
            Some(&h.chat_key.clone()),
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 404);
    // The chat product cannot use the embedding model either.
    let r = h
        .call(
            "POST",
            "/v1/embeddings",
            Some(&h.chat_key.clone()),
            serde_json::to_vec(&json!({"model": "text-embedding-3-small", "input": "x"})).unwrap(),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_failing_host_fails_over_to_the_next() {
    let h = harness().await;
    h.emulator.set_fault("azure-a", "status=503", None).unwrap();
    for _ in 0..3 {
        let r = h.post("/v1/chat/completions", chat("x")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.host(), Some("vllm-b"));
    }
    h.emulator.clear_faults();
}

#[tokio::test]
async fn streams_fail_over_before_the_first_byte() {
    let h = harness().await;
    // azure-a answers 200 and then sends no event before the first-byte
    // deadline: the client has seen nothing, so the gateway moves on.
    h.emulator
        .set_fault("azure-a", "stall_after=0", None)
        .unwrap();
    let mut body = chat("x y z");
    body["stream"] = json!(true);
    for _ in 0..2 {
        let r = h.post("/v1/chat/completions", body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.host(), Some("vllm-b"));
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    }
}

#[tokio::test]
async fn a_stream_cut_after_the_first_byte_ends_with_an_error_event() {
    let h = harness().await;
    h.emulator.set_fault("azure-a", "truncate=2", None).unwrap();
    h.emulator.set_fault("vllm-b", "truncate=2", None).unwrap();
    let mut body = chat("a b c d e f g h");
    body["stream"] = json!(true);
    let r = h.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("[DONE]"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let err: serde_json::Value =
        serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(err["error"]["type"], "upstream_error", "{text}");
}

#[tokio::test]
async fn every_host_down_is_a_503_naming_the_hosts_tried() {
    let h = harness().await;
    h.emulator.set_fault("azure-a", "status=500", None).unwrap();
    h.emulator.set_fault("vllm-b", "reset", None).unwrap();
    let r = h.post("/v1/chat/completions", chat("x")).await;
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["error"]["code"], "no_host_available");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("azure-a") && msg.contains("vllm-b"), "{msg}");
    assert_eq!(r.headers["retry-after"], "1");
}

#[tokio::test]
async fn rate_limited_everywhere_is_a_429_with_retry_after() {
    let h = harness().await;
    for host in ["azure-a", "vllm-b"] {
        h.emulator
            .set_fault(host, "status=429,retry_after=1", None)
            .unwrap();
    }
    let r = h.post("/v1/chat/completions", chat("x")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn an_upstream_400_is_the_clients_error_and_not_retried() {
    let h = harness().await;
    h.emulator
        .set_fault("azure-a", "status=400", Some(1))
        .unwrap();
    h.emulator
        .set_fault("vllm-b", "status=400", Some(1))
        .unwrap();
    let before = h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b");
    let r = h.post("/v1/chat/completions", chat("x")).await;
    assert_eq!(r.status, 400);
    let after = h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b");
    assert_eq!(
        after - before,
        1,
        "a client error is not retried on another host"
    );
}

#[tokio::test]
async fn upstream_secrets_and_urls_never_reach_the_client() {
    let h = harness().await;
    h.emulator.set_fault("azure-a", "status=401", None).unwrap();
    h.emulator.set_fault("vllm-b", "status=401", None).unwrap();
    let r = h.post("/v1/chat/completions", chat("x")).await;
    let text = r.text();
    // The host refused Treaty's credentials: a 403 that names it.
    assert_eq!(r.status, 403, "{text}");
    assert_eq!(r.json()["error"]["code"], "upstream_auth_failed", "{text}");
    assert!(
        !text.contains(UPSTREAM_KEY) && !text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn admin_api_manages_keys_and_revocation_is_immediate() {
    let h = harness().await;
    let admin = |method: &'static str,
                 path: String,
                 body: Option<serde_json::Value>,
                 token: &'static str| {
        let h = &h;
        async move {
            let body = body
                .map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default();
            h.call(method, &path, Some(token), body).await
        }
    };
    let r = admin("GET", "/admin/keys".into(), None, "wrong").await;
    assert_eq!(r.status, 401);
    let r = admin(
        "POST",
        "/admin/keys".into(),
        Some(json!({"tenant": "acme", "channel": "direct", "product": "api", "name": "ci"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let r = h
        .call(
            "POST",
            "/v1/chat/completions",
            Some(&secret),
            serde_json::to_vec(&chat("x")).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);

    let r = admin("GET", "/admin/keys".into(), None, ADMIN_TOKEN).await;
    let listed = r.text();
    assert!(
        listed.contains(&id) && !listed.contains(&secret),
        "secrets are never listed"
    );

    let r = admin("DELETE", format!("/admin/keys/{id}"), None, ADMIN_TOKEN).await;
    assert_eq!(r.status, 200);
    let r = h
        .call(
            "POST",
            "/v1/chat/completions",
            Some(&secret),
            serde_json::to_vec(&chat("x")).unwrap(),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["message"],
        "This API key has been revoked."
    );

    let r = admin(
        "POST",
        "/admin/keys".into(),
        Some(json!({"tenant": "nobody", "channel": "direct", "product": "api"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn admin_api_is_disabled_without_a_token() {
    let h = common::harness_with("admin_token_env = \"UNSET_TREATY_ADMIN\"").await;
    let r = h
        .call(
            "GET",
            "/admin/keys",
            Some("anything"),
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "admin_disabled");
}

#[tokio::test]
async fn health_and_ready() {
    let h = harness().await;
    let r = h
        .call("GET", "/health", None, axum::body::Body::empty())
        .await;
    assert_eq!(r.status, 200);
    let r = h
        .call("GET", "/ready", None, axum::body::Body::empty())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["hosts"], 2);
}
