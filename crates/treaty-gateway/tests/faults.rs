//! The fault suite: what a client sees, which hosts Treaty tries, and what
//! the ledger records when upstream hosts misbehave.
//!
//! Every test runs the real gateway in-process on the shipped Frontier
//! example (`examples/frontier/treaty.toml`, reading-openai) in front of
//! the in-process emulator. The caller is acme/direct/api, a stateless API
//! call, which clause C1 keeps on Azure: `azure-eastus`, `azure-westus` and
//! `azure-westeurope` are allowed; `bedrock-useast1`, `gemini-uscentral1`
//! and `onprem-vllm` serve the model but are forbidden, and stay healthy
//! throughout, so spilling over to them would always "work". Faults are
//! queued on one host for its next N requests (`EmulatorHandle::set_fault`),
//! so a host can fail and then recover. The scenarios: a 500, a 429 with
//! `Retry-After` everywhere allowed, a connection reset, a stall past the
//! first-byte deadline, a stream cut mid-way, a slow-drip stream, a host
//! that recovers (through the circuit breaker), and a client that hangs up
//! mid-stream.
//!
//! Each test asserts what the client got, which hosts the ledger's outcome
//! says were tried (in order), that no forbidden host was ever tried (the
//! attempts are all allowed hosts and the emulator counted no request to a
//! forbidden one), and that the ledger still verifies. The hang-up test
//! reaches the hosts through a small TCP relay, because the emulator
//! cannot tell when a client stopped reading its stream; the relay sees
//! the upstream connection close.
//!
//! Timeouts are small (first byte 500 ms, total 5 s) and hosts are ranked
//! by the `cost` strategy, so the order is fixed: `azure-eastus` first,
//! then `azure-westus` (same price, listed first), then `azure-westeurope`.
//! Each test takes well under a few seconds; waits poll with deadlines.
//!
//! Run: `cargo nextest run -p treaty-gateway --test faults`
//! (or `cargo test -p treaty-gateway --test faults`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;

/// C1 (reading-openai): stateless API calls run only on Azure hosts.
const ALLOWED: [&str; 3] = ["azure-eastus", "azure-westus", "azure-westeurope"];
/// Serve gpt-4o, are healthy, and are never to be tried for this caller.
const FORBIDDEN: [&str; 3] = ["bedrock-useast1", "gemini-uscentral1", "onprem-vllm"];

const FIRST_BYTE: Duration = Duration::from_millis(500);
const TOTAL: Duration = Duration::from_secs(5);
/// Longer than any wait in this suite: a host stalled this long never
/// answers within a test.
const STALL_MS: u64 = 10_000;

struct Suite {
    app: axum::Router,
    gateway: Gateway,
    emulator: EmulatorHandle,
    /// acme/direct/api.
    key: String,
    /// Present when the hosts are reached through a [`Relay`].
    relay: Option<Relay>,
    _dir: tempfile::TempDir,
}

/// The Frontier gateway with the suite's upstream settings, then `tweak`.
async fn suite(tweak: impl Fn(&mut Config)) -> Suite {
    start(false, tweak).await
}

async fn start(through_relay: bool, tweak: impl Fn(&mut Config)) -> Suite {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let relay = if through_relay {
        Some(Relay::start(emulator.addr()).await)
    } else {
        None
    };
    let upstream = relay
        .as_ref()
        .map_or_else(|| emulator.url(), |r| format!("http://{}", r.addr));
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &upstream);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.contracts.as_mut().unwrap().reading = "reading-openai".to_owned();
    config.routing.health_check_interval = Duration::ZERO;
    // A fixed order makes "which host was tried first" a fact to assert.
    config.routing.strategy = "cost".to_owned();
    config.upstream.connect_timeout = Duration::from_secs(1);
    config.upstream.first_byte_timeout = FIRST_BYTE;
    config.upstream.total_timeout = TOTAL;
    config.upstream.max_attempts = 3;
    tweak(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let store =
        treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("f.db").display()))
            .await
            .unwrap();
    let key = common::mint(&store, "api").await;
    let gateway = Gateway::open(config, store, &env).await.unwrap();
    Suite {
        app: treaty_gateway::app(gateway.clone()),
        gateway,
        emulator,
        key,
        relay,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    elapsed: Duration,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn request_id(&self) -> String {
        self.header("x-request-id").unwrap().to_owned()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The answer's text, plain or streamed.
    fn content(&self) -> String {
        if self.header("content-type") == Some("text/event-stream") {
            events(&self.text())
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .filter_map(|v| {
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        } else {
            self.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    }
}

/// The `data:` payloads of an SSE body, in order.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn chat(prompt: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream,
           "messages": [{"role": "user", "content": prompt}]})
}

/// One host's try at a request, as the ledger's outcome records it.
#[derive(Debug)]
struct Tried {
    host: String,
    error: Option<String>,
    latency: Duration,
}

impl Suite {
    /// Sends a chat completion and returns the response before its body.
    async fn open(&self, body: Value) -> Response<Body> {
        let req = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.key))
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// Sends a chat completion and reads the whole answer, within a bound.
    async fn send(&self, prompt: &str, stream: bool) -> Reply {
        let started = Instant::now();
        let exchange = async {
            let res = self.open(chat(prompt, stream)).await;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
            Reply {
                status,
                headers,
                body,
                elapsed: Duration::ZERO,
            }
        };
        let mut reply = tokio::time::timeout(TOTAL + Duration::from_secs(2), exchange)
            .await
            .expect("the gateway answered within its total deadline");
        reply.elapsed = started.elapsed();
        reply
    }

    fn fault(&self, host: &str, spec: &str, count: u32) {
        self.emulator.set_fault(host, spec, Some(count)).unwrap();
    }

    /// Every ledger record (`{"seq", "kind", "hash", "record"}`), in order.
    async fn ledger(&self) -> Vec<Value> {
        self.gateway.engine.ledger.flush().await.unwrap();
        let mut out = Vec::new();
        treaty_ledger::export(
            &self.gateway.engine.store,
            treaty_ledger::Format::Jsonl,
            &mut out,
        )
        .await
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn record(&self, kind: &str, request_id: &str) -> Value {
        self.ledger()
            .await
            .into_iter()
            .find(|l| l["kind"] == kind && l["record"]["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no {kind} record for {request_id}"))["record"]
            .clone()
    }

    /// The request's outcome record, after checking the contract held for
    /// it: its decision allowed exactly the Azure hosts, refused the others
    /// under C1, and every attempt went to an allowed host.
    async fn outcome(&self, request_id: &str) -> Value {
        let decision = self.record("decision", request_id).await;
        let verdicts = decision["hosts"].as_array().unwrap();
        let allowed: Vec<&str> = verdicts
            .iter()
            .filter(|h| h["allowed"] == true)
            .map(|h| h["host"].as_str().unwrap())
            .collect();
        assert_eq!(allowed, ALLOWED, "the decision allows only the Azure hosts");
        for forbidden in FORBIDDEN {
            let verdict = verdicts.iter().find(|h| h["host"] == forbidden).unwrap();
            assert!(
                verdict["clauses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == "C1"),
                "{forbidden} is refused under C1: {verdict}"
            );
        }
        let outcome = self.record("outcome", request_id).await;
        for tried in tried(&outcome) {
            assert!(
                ALLOWED.contains(&tried.host.as_str()),
                "{} was tried but the contract forbids it: {outcome}",
                tried.host
            );
        }
        outcome
    }

    /// No forbidden host ever received a request, and the ledger's hash
    /// chain and checkpoints verify.
    async fn assert_contract_kept_and_ledger_verifies(&self) {
        for host in FORBIDDEN {
            assert_eq!(
                self.emulator.requests_for(host),
                0,
                "forbidden host {host} was called"
            );
        }
        self.gateway.engine.ledger.flush().await.unwrap();
        let report = treaty_ledger::verify(
            &self.gateway.engine.store,
            treaty_ledger::VerifyOptions::default(),
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(report.ok, "the ledger does not verify: {report:?}");
    }

    fn requests(&self) -> [u64; 3] {
        ALLOWED.map(|h| self.emulator.requests_for(h))
    }
}

fn tried(outcome: &Value) -> Vec<Tried> {
    outcome["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| Tried {
            host: a["host"].as_str().unwrap().to_owned(),
            error: a["error"].as_str().map(str::to_owned),
            latency: Duration::from_micros(a["latency_us"].as_u64().unwrap()),
        })
        .collect()
}

fn hosts(outcome: &Value) -> Vec<String> {
    tried(outcome).into_iter().map(|t| t.host).collect()
}

/// Asserts a whole answer from `host` (a stream ends with `[DONE]`) and
/// an outcome whose attempts went to `tried_hosts`, in order, only the
/// last one succeeding.
async fn assert_served(s: &Suite, reply: &Reply, host: &str, tried_hosts: &[&str]) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-treaty-host"), Some(host));
    if reply.header("content-type") == Some("text/event-stream") {
        let events = events(&reply.text());
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| e.contains("\"error\"")),
            "{events:?}"
        );
    }
    let content = reply.content();
    assert!(
        content.starts_with(&format!("Emulated reply from {host} ")),
        "the answer is {host}'s: {content:?}"
    );
    let outcome = s.outcome(&reply.request_id()).await;
    assert_eq!(hosts(&outcome), tried_hosts, "{outcome}");
    assert_eq!(outcome["served_by"], host);
    assert_eq!(outcome["status"], 200);
    let attempts = tried(&outcome);
    let (last, failed) = attempts.split_last().unwrap();
    assert_eq!(last.error, None, "the serving attempt succeeded: {outcome}");
    for f in failed {
        assert!(f.error.is_some(), "a failover names its reason: {outcome}");
    }
    outcome
}

#[tokio::test]
async fn a_500_from_one_allowed_host_is_retried_on_another_allowed_host() {
    let s = suite(|_| {}).await;
    for stream in [false, true] {
        s.fault("azure-eastus", "status=500", 1);
        let reply = s.send("hello", stream).await;
        let outcome = assert_served(
            &s,
            &reply,
            "azure-westus",
            &["azure-eastus", "azure-westus"],
        )
        .await;
        let error = tried(&outcome)[0].error.clone().unwrap();
        assert!(
            error.contains("500"),
            "the failed attempt says why: {error}"
        );
    }
    assert_eq!(s.requests(), [2, 2, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn rate_limits_on_every_allowed_host_reach_the_client_as_a_429_with_retry_after() {
    let s = suite(|_| {}).await;
    for stream in [false, true] {
        for host in ALLOWED {
            s.fault(host, "status=429,retry_after=2", 1);
        }
        let reply = s.send("hello", stream).await;
        assert_eq!(reply.status, 429, "{}", reply.text());
        assert_eq!(
            reply.header("retry-after"),
            Some("2"),
            "the hosts' Retry-After is passed on"
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "rate_limit_error", "{error}");
        assert_eq!(error["code"], "upstream_rate_limited", "{error}");
        let message = error["message"].as_str().unwrap();
        for host in ALLOWED {
            assert!(
                message.contains(host),
                "the message names {host}: {message}"
            );
        }
        for host in FORBIDDEN {
            assert!(!message.contains(host), "{message}");
        }
        let outcome = s.outcome(&reply.request_id()).await;
        assert_eq!(hosts(&outcome), ALLOWED, "each allowed host was tried once");
        assert!(
            tried(&outcome)
                .iter()
                .all(|t| t.error.as_deref().is_some_and(|e| e.contains("429"))),
            "{outcome}"
        );
        assert_eq!(outcome["status"], 429);
        assert_eq!(outcome["served_by"], Value::Null);
        assert_eq!(outcome["error"], "upstream_rate_limited");
    }
    assert_eq!(s.requests(), [2, 2, 2]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_connection_reset_is_retried_on_another_allowed_host() {
    let s = suite(|_| {}).await;
    for stream in [false, true] {
        s.fault("azure-eastus", "reset", 1);
        let reply = s.send("hello", stream).await;
        let outcome = assert_served(
            &s,
            &reply,
            "azure-westus",
            &["azure-eastus", "azure-westus"],
        )
        .await;
        let error = tried(&outcome)[0].error.clone().unwrap();
        assert!(error.contains("could not reach the host"), "{error}");
    }
    assert_eq!(s.requests(), [2, 2, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_host_stalled_past_the_first_byte_deadline_is_abandoned_for_another() {
    let s = suite(|_| {}).await;
    // Plain: no headers at all. Streamed: headers, then no first event.
    for (stream, spec) in [
        (false, format!("stall={STALL_MS}")),
        (true, format!("stall={STALL_MS},stall_after=0")),
    ] {
        s.fault("azure-eastus", &spec, 1);
        let reply = s.send("hello", stream).await;
        let outcome = assert_served(
            &s,
            &reply,
            "azure-westus",
            &["azure-eastus", "azure-westus"],
        )
        .await;
        let stalled = &tried(&outcome)[0];
        assert!(
            stalled
                .error
                .as_deref()
                .unwrap()
                .contains("did not answer in time"),
            "{stalled:?}"
        );
        // Given up at the first-byte deadline: not sooner, not much later.
        assert!(stalled.latency >= FIRST_BYTE, "{stalled:?}");
        assert!(stalled.latency < FIRST_BYTE * 3, "{stalled:?}");
        assert!(
            reply.elapsed >= FIRST_BYTE && reply.elapsed < FIRST_BYTE + Duration::from_secs(2),
            "stream {stream}: the client waited {:?}",
            reply.elapsed
        );
    }
    assert_eq!(s.requests(), [2, 2, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event_and_a_failed_attempt() {
    let s = suite(|_| {}).await;
    s.fault("azure-eastus", "truncate=3", 1);
    let reply = s.send("tell me a long story", true).await;
    // The client already had bytes from azure-eastus: no failover now.
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-treaty-host"), Some("azure-eastus"));
    let events = events(&reply.text());
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "a cut stream must not look complete: {events:?}"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    let error = &last["error"];
    // README's error table: a 502-class upstream failure is `upstream_error`.
    assert_eq!(error["code"], "upstream_error", "{last}");
    assert_eq!(error["type"], "upstream_error", "{last}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("azure-eastus") && message.contains("cut off"),
        "{last}"
    );
    assert_eq!(
        reply.content(),
        "Emulated reply from ",
        "the three chunks before the cut arrived, one word each"
    );

    let outcome = s.outcome(&reply.request_id()).await;
    assert_eq!(hosts(&outcome), ["azure-eastus"]);
    assert!(
        tried(&outcome)[0].error.is_some(),
        "the cut attempt is recorded as failed: {outcome}"
    );
    assert!(outcome["error"].is_string(), "{outcome}");
    assert_eq!(outcome["client_cancelled"], false);
    assert_eq!(s.requests(), [1, 0, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_slow_drip_stream_arrives_whole_and_chunk_by_chunk() {
    const SLOW: Duration = Duration::from_millis(60);
    let s = suite(|_| {}).await;
    // Each gap is well inside the first-byte deadline, and the whole
    // stream well inside the total one.
    s.fault("azure-eastus", &format!("slow={}", SLOW.as_millis()), 1);
    let prompt = "drip these words to me one by one";
    let started = Instant::now();
    let res = s.open(chat(prompt, true)).await;
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut body = res.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    tokio::time::timeout(TOTAL, async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                arrivals.push(started.elapsed());
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .expect("the stream ended within the total deadline");

    let events = events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let content: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        content.starts_with("Emulated reply from azure-eastus ") && content.ends_with(prompt),
        "every chunk arrived, in order: {content:?}"
    );
    // Written through as they came: the spread between the first and the
    // last chunk is (at least half) the emulator's pacing, not a burst.
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    let gaps = u32::try_from(arrivals.len() - 1).unwrap();
    assert!(gaps >= 8, "{} frames", arrivals.len());
    assert!(
        last - first >= SLOW * gaps / 2,
        "chunks arrived incrementally: first at {first:?}, last at {last:?}, {gaps} gaps"
    );
    assert!(
        first < FIRST_BYTE,
        "the first chunk came at once: {first:?}"
    );

    let outcome = s.outcome(&request_id).await;
    assert_eq!(hosts(&outcome), ["azure-eastus"]);
    assert_eq!(tried(&outcome)[0].error, None);
    assert_eq!(outcome["error"], Value::Null);
    assert_eq!(outcome["client_cancelled"], false);
    assert_eq!(s.requests(), [1, 0, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_host_that_recovers_is_kept_out_by_its_breaker_then_served_again() {
    const COOLDOWN: Duration = Duration::from_millis(1500);
    let s = suite(|c| {
        c.routing.breaker_failures = 3;
        c.routing.breaker_cooldown = COOLDOWN;
    })
    .await;
    // azure-eastus fails its next three requests, then is fine again.
    s.fault("azure-eastus", "status=503", 3);
    // Each failure is retried on azure-westus; the third (breaker_failures
    // consecutive) opens azure-eastus's circuit.
    for _ in 0..3 {
        let reply = s.send("hello", false).await;
        assert_served(
            &s,
            &reply,
            "azure-westus",
            &["azure-eastus", "azure-westus"],
        )
        .await;
    }
    let opened = Instant::now();
    // Healthy by now, but within its cool-down it is not even tried.
    let reply = s.send("hello", false).await;
    assert!(
        opened.elapsed() < COOLDOWN,
        "too slow to observe the open circuit: {:?}",
        opened.elapsed()
    );
    assert_served(&s, &reply, "azure-westus", &["azure-westus"]).await;
    assert_eq!(s.requests(), [3, 4, 0]);
    // Once the cool-down has passed, one request probes it; its success
    // closes the circuit and azure-eastus ranks first again.
    tokio::time::sleep(COOLDOWN.saturating_sub(opened.elapsed()) + Duration::from_millis(50)).await;
    for _ in 0..2 {
        let reply = s.send("hello", false).await;
        assert_served(&s, &reply, "azure-eastus", &["azure-eastus"]).await;
    }
    assert_eq!(s.requests(), [5, 4, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_cancels_the_upstream_request() {
    const STREAM_BYTES: u64 = 1_000_000;
    let s = start(true, |_| {}).await;
    // About a thousand 1 KiB chunks 20 ms apart: some 20 s if read to the end.
    s.fault(
        "azure-eastus",
        &format!("stream_bytes={STREAM_BYTES},slow=20"),
        1,
    );
    let res = s.open(chat("hello", true)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-treaty-host"], "azure-eastus");
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut body = res.into_body();
    // The role chunk, then the first content chunk: mid-stream.
    for _ in 0..2 {
        let frame = tokio::time::timeout(TOTAL, body.frame())
            .await
            .expect("a chunk within the deadline")
            .expect("the stream is not over")
            .unwrap();
        assert!(frame.is_data());
    }
    drop(body);
    let hung_up = Instant::now();

    let relay = s.relay.as_ref().unwrap();
    let deadline = hung_up + Duration::from_secs(3);
    while !relay.all_closed() {
        assert!(
            Instant::now() < deadline,
            "the upstream connection is still open {:?} after the client left",
            hung_up.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let carried = relay.bytes_to_gateway();
    assert!(
        carried < STREAM_BYTES / 4,
        "the gateway stopped reading the host: {carried} of {STREAM_BYTES} bytes came through"
    );

    let outcome = s.outcome(&request_id).await;
    assert_eq!(outcome["client_cancelled"], true, "{outcome}");
    assert_eq!(hosts(&outcome), ["azure-eastus"]);
    assert_eq!(
        tried(&outcome)[0].error,
        None,
        "the host is not blamed for the client leaving"
    );
    assert_eq!(outcome["served_by"], "azure-eastus");
    assert_eq!(outcome["error"], Value::Null);
    assert_eq!(s.requests(), [1, 0, 0]);
    s.assert_contract_kept_and_ledger_verifies().await;
}

/// A TCP relay between the gateway and the emulator. The emulator cannot
/// tell when a client stops reading its stream; the relay sees the
/// connection close and counts what went through.
struct Relay {
    addr: std::net::SocketAddr,
    links: Arc<Mutex<Vec<Arc<Link>>>>,
}

#[derive(Default)]
struct Link {
    to_gateway: AtomicU64,
    closed: AtomicBool,
}

impl Relay {
    async fn start(emulator: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<Arc<Link>>>> = Arc::default();
        let accepted = links.clone();
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((gateway_side, _)) = listener.accept().await {
                let link = Arc::new(Link::default());
                accepted.lock().unwrap().push(link.clone());
                tokio::spawn(carry(gateway_side, emulator, link));
            }
        });
        Relay { addr, links }
    }

    fn all_closed(&self) -> bool {
        let links = self.links.lock().unwrap();
        !links.is_empty() && links.iter().all(|l| l.closed.load(Ordering::Acquire))
    }

    fn bytes_to_gateway(&self) -> u64 {
        let links = self.links.lock().unwrap();
        links
            .iter()
            .map(|l| l.to_gateway.load(Ordering::Acquire))
            .sum()
    }
}

async fn carry(gateway_side: TcpStream, emulator: std::net::SocketAddr, link: Arc<Link>) {
    if let Ok(emulator_side) = TcpStream::connect(emulator).await {
        let _ = (
            gateway_side.set_nodelay(true),
            emulator_side.set_nodelay(true),
        );
        let (mut from_gateway, mut to_gateway) = gateway_side.into_split();
        let (mut from_emulator, mut to_emulator) = emulator_side.into_split();
        let upstream = tokio::io::copy(&mut from_gateway, &mut to_emulator);
        let downstream = async {
            let mut buf = vec![0; 16 << 10];
            while let Ok(n @ 1..) = from_emulator.read(&mut buf).await {
                if to_gateway.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                link.to_gateway.fetch_add(n as u64, Ordering::AcqRel);
            }
        };
        // Either side leaving ends the link; dropping both sockets tells
        // the other side.
        tokio::select! {
            _ = upstream => {}
            () = downstream => {}
        }
    }
    link.closed.store(true, Ordering::Release);
}
