//! Faults over real HTTP: injected statuses, connection resets, stalls,
//! truncation, malformed bodies, slow drip, extra delay, queued faults from
//! the control API, per-host stats, and a 10 MB stream.

// clippy.toml allows these only inside #[test] fns; the shared helpers
// outside them should fail just as loudly.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{chunks, client, frames, json, post, start, start_with, streamed_text, user};
use treaty_emulator::EmulatorConfig;

async fn with_fault(url: &str, body: &Value, fault: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .post(url)
        .bearer_auth("k")
        .header("x-emulator-fault", fault)
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

fn streaming(text: &str) -> Value {
    let mut body = user(text);
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn status_faults_are_typed_like_openai_and_carry_retry_after() {
    let emulator = start().await;
    let url = format!("{}/azure-eastus/v1/chat/completions", emulator.url());
    let limited = with_fault(&url, &user("hi"), "status=429,retry_after=1")
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(limited.headers()["x-emulator-host"], "azure-eastus");
    let error = json(limited).await;
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Emulated")
    );

    let unavailable = with_fault(&url, &user("hi"), "status=503").await.unwrap();
    assert_eq!(unavailable.status(), 503);
    assert!(unavailable.headers().get("retry-after").is_none());
    assert_eq!(json(unavailable).await["error"]["type"], "server_error");

    let bad = with_fault(&url, &user("hi"), "status=400").await.unwrap();
    assert_eq!(json(bad).await["error"]["type"], "invalid_request_error");

    // The same fault as a directive in the last user message.
    let directed = post(&url, &user("please fail [[fault:status=502]] now")).await;
    assert_eq!(directed.status(), 502);
}

#[tokio::test]
async fn unknown_fault_words_get_a_400_explaining_the_grammar() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let response = with_fault(&url, &user("hi"), "explode").await.unwrap();
    assert_eq!(response.status(), 400);
    let message = json(response).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("explode") && message.contains("status=CODE"),
        "{message}"
    );
    assert_eq!(post(&url, &user("[[fault:nope]]")).await.status(), 400);
    assert!(emulator.set_fault("h", "status=99", None).is_err());
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let error = with_fault(&url, &user("hi"), "reset").await.unwrap_err();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut reset = false;
    while let Some(current) = source {
        reset |= current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
        source = current.source();
    }
    assert!(reset, "expected a TCP reset, got {error:?}");
    // The emulator keeps serving other connections.
    assert_eq!(post(&url, &user("hi")).await.status(), 200);
}

#[tokio::test]
async fn stall_holds_the_response_until_the_client_gives_up() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let error = client()
        .post(&url)
        .bearer_auth("k")
        .header("x-emulator-fault", "stall")
        .timeout(Duration::from_millis(300))
        .body(serde_json::to_vec(&user("hi")).unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    let started = Instant::now();
    let response = with_fault(&url, &user("hi"), "stall=150").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn stall_after_sends_chunks_then_stalls_mid_stream() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut response = with_fault(&url, &streaming("a b c d"), "stall=400,stall_after=2")
        .await
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut before_stall = None;
    while let Some(bytes) = response.chunk().await.unwrap() {
        received.extend_from_slice(&bytes);
        if before_stall.is_none() && frames(std::str::from_utf8(&received).unwrap_or("")).len() >= 2
        {
            before_stall = Some(started.elapsed());
        }
    }
    assert!(before_stall.unwrap() < Duration::from_millis(300));
    assert!(started.elapsed() >= Duration::from_millis(400));
    let chunks = chunks(std::str::from_utf8(&received).unwrap());
    assert!(streamed_text(&chunks).ends_with("a b c d"));
}

#[tokio::test]
async fn truncate_cuts_streams_and_bodies_with_a_body_error() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut response = with_fault(&url, &streaming("one two three four"), "truncate")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!("stream ended cleanly"),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("[DONE]"));
    // The role chunk and two content chunks.
    assert_eq!(frames(&text).len(), 3, "{text}");

    let response = with_fault(&url, &user("hi"), "truncate").await.unwrap();
    let declared: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared > 10);
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn malformed_spoils_one_frame_or_the_whole_body() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let sse = with_fault(&url, &streaming("x y"), "malformed")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let frames = frames(&sse);
    assert_eq!(frames[1], "{not json");
    assert_eq!(frames.last(), Some(&"[DONE]"));
    let valid: Vec<Value> = frames
        .iter()
        .filter_map(|frame| serde_json::from_str(frame).ok())
        .collect();
    assert!(streamed_text(&valid).ends_with("x y"));

    let response = with_fault(&url, &user("hi"), "malformed").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{\"id\": ");
}

#[tokio::test]
async fn slow_delay_and_configured_latency_take_time() {
    let emulator = start_with(EmulatorConfig {
        latency: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let started = Instant::now();
    assert_eq!(post(&url, &user("hi")).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(100));

    let started = Instant::now();
    assert_eq!(
        with_fault(&url, &user("hi"), "delay=150")
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(250));

    // "Emulated reply from default (gpt-4o-mini): a b": role + 7 words + finish + [DONE].
    let started = Instant::now();
    let sse = with_fault(&url, &streaming("a b"), "slow=30")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(chunks(&sse).len(), 9);
    assert!(started.elapsed() >= Duration::from_millis(100 + 9 * 30));
}

#[tokio::test]
async fn queued_faults_apply_to_their_host_for_count_requests() {
    let emulator = start().await;
    let control = format!("{}/_emulator/faults", emulator.url());
    let queued = client()
        .post(&control)
        .body(r#"{"host":"azure-eastus","fault":"status=503","count":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 200);
    let eastus = format!("{}/azure-eastus/v1/chat/completions", emulator.url());
    let westus = format!("{}/azure-westus/v1/chat/completions", emulator.url());
    assert_eq!(post(&westus, &user("hi")).await.status(), 200);
    // A request-level fault wins and leaves the queue alone.
    assert_eq!(
        with_fault(&eastus, &user("hi"), "delay=1")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(post(&eastus, &user("hi")).await.status(), 503);
    assert_eq!(post(&eastus, &user("hi")).await.status(), 503);
    assert_eq!(post(&eastus, &user("hi")).await.status(), 200);

    // Without a count the fault stays until cleared.
    emulator
        .set_fault("azure-eastus", "status=500", None)
        .unwrap();
    for _ in 0..3 {
        assert_eq!(post(&eastus, &user("hi")).await.status(), 500);
    }
    let cleared = client().delete(&control).send().await.unwrap();
    assert!(cleared.status().is_success());
    assert_eq!(post(&eastus, &user("hi")).await.status(), 200);

    emulator
        .set_fault("azure-eastus", "status=429", None)
        .unwrap();
    emulator.clear_faults();
    assert_eq!(post(&eastus, &user("hi")).await.status(), 200);

    let invalid = client()
        .post(&control)
        .body(r#"{"host":"x","fault":"bogus"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
}

#[tokio::test]
async fn stats_count_api_requests_per_host_only() {
    let emulator = start().await;
    for host in ["a", "a", "b"] {
        post(
            &format!("{}/{host}/v1/chat/completions", emulator.url()),
            &user("hi"),
        )
        .await;
    }
    client()
        .get(format!("{}/v1/models", emulator.url()))
        .send()
        .await
        .unwrap();
    let stats_url = format!("{}/_emulator/stats", emulator.url());
    let stats = json(client().get(&stats_url).send().await.unwrap()).await;
    assert_eq!(stats, json!({"requests": {"a": 2, "b": 1, "default": 1}}));
    assert_eq!(emulator.requests_for("a"), 2);
    assert_eq!(emulator.requests_for("nobody"), 0);

    let reset = client()
        .post(format!("{stats_url}/reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert_eq!(
        json(client().get(&stats_url).send().await.unwrap()).await,
        json!({"requests": {}})
    );
}

#[tokio::test]
async fn stream_bytes_streams_ten_megabytes_lazily() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut body = streaming("big");
    body["stream_options"] = json!({"include_usage": true});
    let mut response = with_fault(&url, &body, "stream_bytes=10000000")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let mut content_bytes = 0;
    let mut wire_bytes = 0;
    let mut done = false;
    let mut usage = Value::Null;
    while let Some(bytes) = response.chunk().await.unwrap() {
        wire_bytes += bytes.len();
        pending.extend_from_slice(&bytes);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = pending.drain(..end + 2).collect();
            let data = &frame[b"data: ".len()..end];
            if data == b"[DONE]" {
                done = true;
                continue;
            }
            let chunk: Value = serde_json::from_slice(data).unwrap();
            if let Some(content) = chunk["choices"][0]["delta"]["content"].as_str() {
                content_bytes += content.len();
            }
            if !chunk["usage"].is_null() {
                usage = chunk["usage"].clone();
            }
        }
    }
    assert!(done);
    assert_eq!(content_bytes, 10_000_000);
    assert!(wire_bytes > 10_000_000);
    assert_eq!(usage["completion_tokens"], 1_250_000);

    let response = with_fault(&url, &user("big"), "stream_bytes=5000")
        .await
        .unwrap();
    let reply = json(response).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len(),
        5000
    );
    assert_eq!(reply["object"], "chat.completion");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let emulator = start().await;
    let url = format!("{}/v1/models", emulator.url());
    emulator.shutdown().await;
    assert!(client().get(&url).bearer_auth("k").send().await.is_err());
}
