//! Webhook calls against scripted receivers on port 0: the signature and
//! idempotency key a receiver sees, which failures are retried and which
//! are final, timeouts, and what the model gets back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use treaty_tools::{
    Invocation, MAX_ANSWER_BYTES, ToolError, WebhookTool, call_webhook, verify_signature,
};

const SECRET: &[u8] = b"whsec-test";

/// What the receiver answers, in order; the last one repeats.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    retry_after: Option<&'static str>,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_owned(),
        delay: Duration::ZERO,
        retry_after: None,
    }
}

struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn answer(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    receiver.seen.lock().unwrap().push(Seen { headers, body });
    let reply = {
        let mut script = receiver.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().unwrap().clone()
        }
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.parse().unwrap());
    }
    response
}

/// A receiver on port 0 and its URL.
async fn receiver(script: Vec<Reply>) -> (Receiver, String) {
    let receiver = Receiver {
        script: Arc::new(Mutex::new(script.into())),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/hook", post(answer))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn tool(url: &str, max_attempts: u32) -> WebhookTool {
    WebhookTool {
        name: "refund".into(),
        url: url.into(),
        timeout: Duration::from_secs(5),
        max_attempts,
    }
}

const CALL: Invocation<'static> = Invocation {
    run_id: "run-1",
    call_id: "call-1",
    name: "refund",
    arguments: r#"{"order_id":"A-17","amount":12.5}"#,
};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_key_and_a_valid_signature() {
    let (receiver, url) = receiver(vec![
        reply(500, "boom"),
        reply(200, r#"{"output":"refunded A-17"}"#),
    ])
    .await;
    let answer = call_webhook(&client(), &tool(&url, 3), SECRET, &CALL)
        .await
        .unwrap();
    assert_eq!(answer, "refunded A-17");

    let seen = receiver.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for request in seen.iter() {
        assert_eq!(header(request, "idempotency-key"), "run-1:call-1");
        assert_eq!(header(request, "content-type"), "application/json");
        let timestamp = header(request, "x-treaty-timestamp");
        let signature = header(request, "x-treaty-signature");
        assert!(verify_signature(
            SECRET,
            timestamp,
            signature,
            &request.body,
            now(),
            300
        ));
        assert!(!verify_signature(
            b"wrong",
            timestamp,
            signature,
            &request.body,
            now(),
            300
        ));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({"run_id": "run-1", "call_id": "call-1", "tool": "refund",
                   "arguments": {"order_id": "A-17", "amount": 12.5}})
        );
    }
    assert_eq!(seen[0].body, seen[1].body, "a retry sends the same body");
}

#[tokio::test]
async fn it_gives_up_after_max_attempts() {
    let (receiver, url) = receiver(vec![reply(503, "unavailable")]).await;
    let error = call_webhook(&client(), &tool(&url, 3), SECRET, &CALL)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ToolError::Status {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(receiver.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_400_is_final_and_quoted() {
    let (receiver, url) = receiver(vec![reply(400, "order_id is unknown"), reply(200, "ok")]).await;
    let error = call_webhook(&client(), &tool(&url, 3), SECRET, &CALL)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ToolError::Status {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "tool `refund` answered HTTP 400 after 1 attempt(s): order_id is unknown"
    );
    assert_eq!(receiver.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_slow_receiver_times_out_on_every_attempt() {
    let slow = Reply {
        delay: Duration::from_secs(10),
        ..reply(200, "late")
    };
    let (receiver, url) = receiver(vec![slow]).await;
    let tool = WebhookTool {
        timeout: Duration::from_millis(200),
        ..tool(&url, 2)
    };
    let started = Instant::now();
    let error = call_webhook(&client(), &tool, SECRET, &CALL)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ToolError::TimedOut { attempts: 2, .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(receiver.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let limited = Reply {
        retry_after: Some("1"),
        ..reply(429, "slow down")
    };
    let (receiver, url) = receiver(vec![limited, reply(200, "done")]).await;
    let started = Instant::now();
    let answer = call_webhook(&client(), &tool(&url, 2), SECRET, &CALL)
        .await
        .unwrap();
    assert_eq!(
        answer, "done",
        "a body that is not JSON is the answer as is"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(receiver.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn output_may_be_any_json_and_arguments_need_not_be_json() {
    let (receiver, url) = receiver(vec![reply(200, r#"{"output":{"refund_id":7}}"#)]).await;
    let call = Invocation {
        arguments: "refund it all",
        ..CALL
    };
    let answer = call_webhook(&client(), &tool(&url, 1), SECRET, &call)
        .await
        .unwrap();
    assert_eq!(answer, r#"{"refund_id":7}"#);
    let seen = receiver.seen.lock().unwrap();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["arguments"], "refund it all");
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let huge = "x".repeat(MAX_ANSWER_BYTES + 1);
    let (_receiver, url) = receiver(vec![reply(200, &huge)]).await;
    let error = call_webhook(&client(), &tool(&url, 3), SECRET, &CALL)
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::TooLarge { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_and_its_url_never_shown() {
    // Bind and drop, so the port is (almost certainly) closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
    let error = call_webhook(&client(), &tool(&url, 2), SECRET, &CALL)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ToolError::Unreachable { attempts: 2, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("/hook"),
        "{text}"
    );
}
