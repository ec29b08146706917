//! The input contract without gaps (issue 17): only JSON objects as
//! bodies, declared as JSON and sent uncompressed; every error in the
//! client's words (the field, what was expected), never a Rust type name
//! or a serde position; 414 and 431 in the OpenAI shape; value ranges and
//! size limits where OpenAI has them. Each refusal changes nothing and
//! reaches no host. Error bodies are pinned by insta snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, Reply, chat, harness};
use serde_json::{Value, json};

/// The status and body of an error, checked to be in the OpenAI shape.
fn error_of(r: &Reply) -> Value {
    assert_eq!(
        r.headers["content-type"],
        "application/json",
        "{}",
        r.text()
    );
    let v = r.json();
    let mut fields: Vec<&String> = v["error"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "message", "param", "type"], "{v}");
    json!({"status": r.status.as_u16(), "body": v})
}

/// What a client must never read: Rust's names for types and serde's
/// positions and quoting.
fn assert_in_users_words(v: &Value) {
    let message = v["body"]["error"]["message"].as_str().unwrap();
    for banned in [
        "line 1",
        " column ",
        "untagged enum",
        "struct ",
        "u32",
        "i64",
        "`",
        "target type",
    ] {
        assert!(!message.contains(banned), "{banned:?} in {message:?}");
    }
}

fn upstream_calls(h: &Harness) -> u64 {
    h.emulator.requests_for("azure-a") + h.emulator.requests_for("vllm-b")
}

async fn raw(h: &Harness, method: &str, path: &str, body: &str) -> Reply {
    h.call(method, path, Some(&h.key), body.to_owned()).await
}

async fn get(h: &Harness, path: &str) -> Reply {
    h.call("GET", path, Some(&h.key), Body::empty()).await
}

async fn new_agent(h: &Harness, name: &str) -> String {
    let r = raw(
        h,
        "POST",
        "/v1/agents",
        &json!({"name": name, "model": "gpt-4o"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

// ------------------------------------------------ 1. only JSON objects

#[tokio::test]
async fn bodies_that_are_not_objects_are_refused_and_change_nothing() {
    let h = harness().await;
    let id = new_agent(&h, "original").await;

    // serde would map the array's first position onto `name`.
    let r = raw(&h, "POST", &format!("/v1/agents/{id}"), r#"["renamed"]"#).await;
    insta::assert_json_snapshot!("array_body", error_of(&r));
    let agent = get(&h, &format!("/v1/agents/{id}")).await.json();
    assert_eq!(agent["name"], "original");

    let r = raw(&h, "POST", "/v1/conversations", "[]").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        r.json()["error"]["message"],
        "The request body must be a JSON object, not an array."
    );

    for (path, body, kind) in [
        ("/v1/chat/completions", r#""hello""#, "a string"),
        ("/v1/embeddings", "42", "a number"),
        ("/v1/responses", "null", "null"),
        ("/v1/agents", "true", "a boolean"),
        (
            "/v1/chat/completions",
            r#"[{"model":"gpt-4o"},[]]"#,
            "an array",
        ),
    ] {
        let r = raw(&h, "POST", path, body).await;
        let v = error_of(&r);
        assert_eq!(v["status"], 400, "{path} {body}: {v}");
        assert_eq!(
            v["body"]["error"]["message"],
            format!("The request body must be a JSON object, not {kind}."),
            "{path} {body}"
        );
    }
    assert_eq!(upstream_calls(&h), 0);
}

// ----------------------------------------- 2. errors in the user's words

#[tokio::test]
async fn errors_name_the_field_and_what_was_expected() {
    let h = harness().await;
    let k = Some(h.key.as_str());

    let tokens = h
        .call(
            "POST",
            "/v1/embeddings",
            k,
            r#"{"model":"text-embedding-3-small","input":[4294967296]}"#,
        )
        .await;
    let v = error_of(&tokens);
    assert_in_users_words(&v);
    insta::assert_json_snapshot!("token_id_out_of_range", v);

    let after = get(
        &h,
        "/v1/runs/run_x/events?after=1662703225026415856055306158080",
    )
    .await;
    let v = error_of(&after);
    assert_in_users_words(&v);
    insta::assert_json_snapshot!("query_number_too_large", v);

    let missing = raw(&h, "POST", "/v1/chat/completions", r#"{"model":"gpt-4o"}"#).await;
    let v = error_of(&missing);
    assert_in_users_words(&v);
    insta::assert_json_snapshot!("missing_parameter", v);

    let unknown = raw(
        &h,
        "POST",
        "/v1/agents",
        r#"{"name":"a","model":"gpt-4o","colour":"red"}"#,
    )
    .await;
    let v = error_of(&unknown);
    assert_in_users_words(&v);
    insta::assert_json_snapshot!("unknown_parameter", v);

    // Every shape a client can get wrong, on every route with a body.
    let cases: &[(&str, &str, &str)] = &[
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"n":"two"}"#,
            "n",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#,
            "tool_choice",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function"}}"#,
            "tool_choice.function",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stop":[1]}"#,
            "stop[0]",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":[{"role":"wizard","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","messages":{"role":"user"}}"#,
            "messages",
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":["a",[1]]}"#,
            "input[1]",
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":[[1,2],[3,-4]]}"#,
            "input[1][1]",
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":{"text":"a"}}"#,
            "input",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-4o","input":"x","conversation":7}"#,
            "conversation",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":5}]}]}"#,
            "input[0].content[0]",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
            "input[0].content[0].text",
        ),
        (
            "/v1/agents",
            r#"{"name":"a","model":"gpt-4o","tools":[{"type":"function"}]}"#,
            "tools[0].name",
        ),
        (
            "/v1/agents",
            r#"{"name":"a","model":"gpt-4o","tools":[{"type":"shell"}]}"#,
            "tools[0].type",
        ),
        ("/v1/agents", r#"{"name":["a"],"model":"gpt-4o"}"#, "name"),
        (
            "/v1/conversations",
            r#"{"items":[{"type":"function_call","arguments":{}}]}"#,
            "items[0].arguments",
        ),
        ("/v1/conversations", r#"{"metadata":[]}"#, "metadata"),
    ];
    for (path, body, param) in cases {
        let r = raw(&h, "POST", path, body).await;
        let v = error_of(&r);
        assert_eq!(v["status"], 400, "{path} {body}: {v}");
        assert_eq!(v["body"]["error"]["param"], *param, "{path} {body}: {v}");
        assert_in_users_words(&v);
    }
    assert_eq!(upstream_calls(&h), 0);
}

#[tokio::test]
async fn query_strings_and_paths_are_refused_in_words() {
    let h = harness().await;
    for (path, param, message) in [
        (
            "/v1/runs?limit=1&limit=2",
            Value::from("limit"),
            "The query parameter 'limit' is given more than once.",
        ),
        (
            "/v1/runs/run_x/events?after=abc",
            Value::from("after"),
            "'after' must be an event sequence number (an integer from 0 to \
             9223372036854775807), not 'abc'.",
        ),
        (
            "/v1/models/%FF",
            Value::Null,
            "Invalid URL path: the 'model' segment is not valid UTF-8 once percent-decoded.",
        ),
    ] {
        let v = error_of(&get(&h, path).await);
        assert_eq!(v["status"], 400, "{path}: {v}");
        assert_eq!(v["body"]["error"]["param"], param, "{path}: {v}");
        assert_eq!(v["body"]["error"]["message"], message, "{path}: {v}");
    }
}

// ---------------------------------------------- 3. content type checked

fn post_as(h: &Harness, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {}", h.key));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn bodies_must_be_declared_json_and_sent_uncompressed() {
    let h = harness().await;
    let body = chat("hi").to_string();
    let p = "/v1/chat/completions";

    let r = h
        .send(post_as(&h, p, &[("content-type", "text/plain")], &body))
        .await;
    insta::assert_json_snapshot!("text_plain_body", error_of(&r));
    let r = h.send(post_as(&h, p, &[], &body)).await;
    insta::assert_json_snapshot!("no_content_type", error_of(&r));
    let r = h
        .send(post_as(
            &h,
            p,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &body,
        ))
        .await;
    insta::assert_json_snapshot!("gzip_body", error_of(&r));
    for headers in [
        &[("content-type", "application/x-www-form-urlencoded")][..],
        &[("content-type", "multipart/form-data; boundary=x")],
        &[("content-type", "application/jsonl")],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity, br"),
        ],
    ] {
        let r = h.send(post_as(&h, "/v1/agents", headers, "{}")).await;
        let v = error_of(&r);
        assert_eq!(v["status"], 415, "{headers:?}: {v}");
        assert_eq!(v["body"]["error"]["code"], "unsupported_media_type");
        assert_eq!(v["body"]["error"]["type"], "invalid_request_error");
    }
    assert_eq!(upstream_calls(&h), 0);

    // JSON with parameters, in any case, and the identity coding are JSON.
    for headers in [
        &[("content-type", "application/json; charset=utf-8")][..],
        &[("content-type", "Application/JSON")],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ],
    ] {
        let r = h.send(post_as(&h, p, headers, &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{headers:?}: {}", r.text());
    }
}

// ---------------------------------------------- 4. 414 and 431, as JSON

#[tokio::test]
async fn long_uris_and_header_blocks_are_refused_in_the_openai_shape() {
    let h = harness().await;
    let long = format!("/v1/models?pad={}", "a".repeat(9 * 1024));
    let r = get(&h, &long).await;
    let v = error_of(&r);
    insta::assert_json_snapshot!("uri_too_long", v);
    assert!(r.headers.contains_key("x-request-id"));

    let req = Request::builder()
        .uri("/v1/models")
        .header("authorization", format!("Bearer {}", h.key))
        .header("x-pad", "b".repeat(33 * 1024))
        .body(Body::empty())
        .unwrap();
    insta::assert_json_snapshot!("headers_too_large", error_of(&h.send(req).await));

    // Just under the limits is served.
    let r = get(&h, &format!("/v1/models?pad={}", "a".repeat(7 * 1024))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn the_head_limits_are_configurable() {
    let h = common::harness_with("max_uri_bytes = 2048\nmax_header_bytes = 4096").await;
    let r = get(&h, &format!("/v1/models?pad={}", "a".repeat(3000))).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG, "{}", r.text());
    let req = Request::builder()
        .uri("/v1/models")
        .header("authorization", format!("Bearer {}", h.key))
        .header("x-pad", "b".repeat(5000))
        .body(Body::empty())
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(
        r.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{}",
        r.text()
    );
}

// --------------------------------------------------------- 5. ranges

#[tokio::test]
async fn chat_parameters_out_of_range_are_refused_by_name() {
    let h = harness().await;
    let mut zero = chat("x");
    zero["max_tokens"] = json!(0);
    insta::assert_json_snapshot!(
        "max_tokens_zero",
        error_of(&raw(&h, "POST", "/v1/chat/completions", &zero.to_string()).await)
    );
    for (param, value) in [
        ("max_completion_tokens", json!(0)),
        ("temperature", json!(2.5)),
        ("temperature", json!(-0.1)),
        ("top_p", json!(1.5)),
        ("n", json!(0)),
        ("presence_penalty", json!(2.5)),
        ("presence_penalty", json!(-2.01)),
        ("frequency_penalty", json!(-3)),
        ("frequency_penalty", json!(2.1)),
        ("top_logprobs", json!(21)),
        ("top_logprobs", json!(-1)),
    ] {
        let mut body = chat("x");
        body[param] = value.clone();
        let v = error_of(&raw(&h, "POST", "/v1/chat/completions", &body.to_string()).await);
        assert_eq!(v["status"], 400, "{param}={value}: {v}");
        assert_eq!(v["body"]["error"]["param"], param, "{param}={value}: {v}");
    }
    for (param, value) in [
        ("top_logprobs", json!(21)),
        ("max_output_tokens", json!(0)),
        ("temperature", json!(3)),
    ] {
        let mut body = json!({"model": "gpt-4o", "input": "x"});
        body[param] = value.clone();
        let v = error_of(&raw(&h, "POST", "/v1/responses", &body.to_string()).await);
        assert_eq!(v["status"], 400, "{param}={value}: {v}");
        assert_eq!(v["body"]["error"]["param"], param, "{param}={value}: {v}");
    }
    assert_eq!(upstream_calls(&h), 0);

    // The edges themselves are allowed.
    let mut edges = chat("x");
    edges["max_tokens"] = json!(1);
    edges["presence_penalty"] = json!(-2);
    edges["frequency_penalty"] = json!(2);
    edges["temperature"] = json!(0);
    edges["top_p"] = json!(1);
    edges["top_logprobs"] = json!(20);
    edges["logprobs"] = json!(true);
    let r = raw(&h, "POST", "/v1/chat/completions", &edges.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

// ----------------------------------------------- 6. sizes of agents etc.

#[tokio::test]
async fn agents_are_bounded_like_openai_assistants() {
    let h = harness().await;
    let function = |i: usize| json!({"type": "function", "name": format!("f{i}")});
    let many_keys: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"name": "n".repeat(257), "model": "gpt-4o"}), "name"),
        (
            json!({"name": "a", "model": "gpt-4o", "instructions": "i".repeat(256_001)}),
            "instructions",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "tools": (0..129).map(function).collect::<Vec<_>>()}),
            "tools",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "tools": [{"type": "function", "name": "f".repeat(65)}]}),
            "tools[0].name",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "tools": [{"type": "function", "name": "f", "description": "d".repeat(1025)}]}),
            "tools[0].description",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "metadata": many_keys}),
            "metadata",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "metadata": {"k".repeat(65): "v"}}),
            format!("metadata.{}", "k".repeat(65)).leak(),
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "metadata": {"k": "v".repeat(513)}}),
            "metadata.k",
        ),
        (
            json!({"name": "a", "model": "gpt-4o", "approval": {"required": (0..129).map(|i| format!("t{i}")).collect::<Vec<_>>()}}),
            "approval.required",
        ),
    ];
    for (body, param) in &cases {
        let r = raw(&h, "POST", "/v1/agents", &body.to_string()).await;
        let v = error_of(&r);
        assert_eq!(v["status"], 400, "{param}: {v}");
        assert_eq!(v["body"]["error"]["param"], *param, "{v}");
    }
    let r = raw(
        &h,
        "POST",
        "/v1/agents",
        &json!({"name": "n".repeat(257), "model": "gpt-4o"}).to_string(),
    )
    .await;
    insta::assert_json_snapshot!("agent_name_too_long", error_of(&r));
    let list = get(&h, "/v1/agents").await.json();
    assert_eq!(list["data"], json!([]), "nothing was created");

    // An update is held to the same limits, and changes nothing.
    let id = new_agent(&h, "kept").await;
    let r = raw(
        &h,
        "POST",
        &format!("/v1/agents/{id}"),
        &json!({"instructions": "i".repeat(256_001)}).to_string(),
    )
    .await;
    assert_eq!(error_of(&r)["body"]["error"]["param"], "instructions");
    let agent = get(&h, &format!("/v1/agents/{id}")).await.json();
    assert_eq!(agent["instructions"], Value::Null);

    // At the limits, an agent is accepted.
    let at_limits = json!({
        "name": "n".repeat(256),
        "model": "gpt-4o",
        "instructions": "i".repeat(256_000),
        "tools": (0..128).map(function).collect::<Vec<_>>(),
        "metadata": (0..16).map(|i| (format!("{i:0>64}"), json!("v".repeat(512)))).collect::<serde_json::Map<_, _>>(),
    });
    let r = raw(&h, "POST", "/v1/agents", &at_limits.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn runs_and_conversations_are_bounded_too() {
    let h = harness().await;
    let id = new_agent(&h, "a").await;
    let runs = format!("/v1/agents/{id}/runs");
    for (body, param) in [
        (
            json!({"input": "x", "instructions": "i".repeat(256_001)}),
            "instructions",
        ),
        (
            json!({"input": "x", "metadata": {"k": "v".repeat(513)}}),
            "metadata.k",
        ),
        (json!({"input": "x", "metadata": {"k": 1}}), "metadata.k"),
    ] {
        let v = error_of(&raw(&h, "POST", &runs, &body.to_string()).await);
        assert_eq!(v["status"], 400, "{v}");
        assert_eq!(v["body"]["error"]["param"], param, "{v}");
    }
    assert_eq!(get(&h, "/v1/runs").await.json()["data"], json!([]));

    let items: Vec<Value> = (0..21)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    let v = error_of(
        &raw(
            &h,
            "POST",
            "/v1/conversations",
            &json!({"items": items}).to_string(),
        )
        .await,
    );
    assert_eq!(v["body"]["error"]["param"], "items", "{v}");
}
