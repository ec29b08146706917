//! No secret appears in any log line, whatever happens to a request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{ADMIN_TOKEN, UPSTREAM_KEY, chat, harness};
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_the_logs() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = harness().await;
    let key = h.key.clone();
    // Success, streaming, client errors, upstream failures, admin calls.
    assert_eq!(
        h.post("/v1/chat/completions", chat("hello")).await.status,
        200
    );
    let mut s = chat("stream");
    s["stream"] = json!(true);
    assert_eq!(h.post("/v1/chat/completions", s).await.status, 200);
    h.call(
        "POST",
        "/v1/chat/completions",
        Some("tk-wrong-SECRET-value"),
        "{}",
    )
    .await;
    h.call("POST", "/v1/chat/completions", Some(&key), "{bad json")
        .await;
    h.emulator.set_fault("azure-a", "status=401", None).unwrap();
    h.emulator.set_fault("vllm-b", "status=500", None).unwrap();
    // A host refusing Treaty's credentials: the failure is logged, the
    // key is not.
    assert_eq!(h.post("/v1/chat/completions", chat("x")).await.status, 403);
    h.emulator.clear_faults();
    let r = h
        .call(
            "POST",
            "/admin/keys",
            Some(ADMIN_TOKEN),
            serde_json::to_vec(&json!({"tenant": "acme", "channel": "direct", "product": "api"}))
                .unwrap(),
        )
        .await;
    let minted = r.json()["secret"].as_str().unwrap().to_owned();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request failed"),
        "the failure was logged: {logs}"
    );
    for secret in [
        key.as_str(),
        UPSTREAM_KEY,
        ADMIN_TOKEN,
        "tk-wrong-SECRET-value",
        minted.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} found in logs:\n{logs}"
        );
    }
}
