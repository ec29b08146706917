//! Shared test helpers: an emulator on port 0 per test and a plain-HTTP
//! client that sends JSON and reads SSE frames.

#![allow(dead_code)]

use reqwest::{Client, Response};
use serde_json::Value;
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

pub async fn start() -> EmulatorHandle {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// No pooling, so a fault that kills a connection cannot leak into the next request.
pub fn client() -> Client {
    // reqwest refuses to build a client, even for plain http, without a
    // rustls provider; a second install in the same process is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

pub async fn post(url: &str, body: &Value) -> Response {
    client()
        .post(url)
        .bearer_auth("sk-test")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap()
}

pub async fn json(response: Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// The `data:` payloads of an SSE body, in order.
pub fn frames(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| frame.strip_prefix("data: ").unwrap())
        .collect()
}

/// Parsed chunks of a complete SSE body; asserts it ends with `[DONE]`.
pub fn chunks(body: &str) -> Vec<Value> {
    let frames = frames(body);
    assert_eq!(frames.last(), Some(&"[DONE]"), "{body}");
    frames[..frames.len() - 1]
        .iter()
        .map(|frame| serde_json::from_str(frame).unwrap())
        .collect()
}

/// Concatenated `delta.content` of choice 0.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

pub fn user(text: &str) -> Value {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}
