//! Emulated webhook receivers at `POST /webhooks/{name}`: they check the
//! `X-Treaty-Signature` with the emulator's own HMAC code (so a signing bug
//! in the gateway cannot hide behind a matching bug here), apply each
//! `Idempotency-Key` once, and answer `{"output": ...}` from the arguments.
//! A `"delay_ms": N` argument holds the answer N ms *after* the side effect
//! is applied, so crash tests can kill the caller mid-call and check that
//! its retry, carrying the same key, is answered without a second effect.
//! `GET /webhooks/{name}/effects` reports the counts.
//!
//! Counters sit behind a std mutex held for one map update, never across
//! an await.

use crate::app::Shared;
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a signed timestamp may be from the emulator's clock.
const TOLERANCE_SECS: u64 = 300;

/// Calls and applied effects per webhook name.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    receivers: Mutex<HashMap<String, Receiver>>,
}

#[derive(Debug, Default)]
struct Receiver {
    /// Requests received, refused ones included.
    calls: u64,
    /// The answer stored per applied `Idempotency-Key`.
    applied: HashMap<String, String>,
}

/// Whether a call's key was new.
enum Applied {
    Fresh(String),
    Repeat(String),
}

impl Webhooks {
    fn count_call(&self, name: &str) {
        self.with(name, |receiver| receiver.calls += 1);
    }

    /// Applies `key` once: stores `answer` for a new key, or returns the
    /// answer stored for a known one.
    fn apply(&self, name: &str, key: &str, answer: String) -> Applied {
        self.with(name, |receiver| match receiver.applied.get(key) {
            Some(stored) => Applied::Repeat(stored.clone()),
            None => {
                receiver.applied.insert(key.to_owned(), answer.clone());
                Applied::Fresh(answer)
            }
        })
    }

    /// Distinct keys applied for `name`.
    pub(crate) fn effects(&self, name: &str) -> u64 {
        self.read(name, |receiver| receiver.applied.len() as u64)
    }

    /// Requests received for `name`.
    pub(crate) fn calls(&self, name: &str) -> u64 {
        self.read(name, |receiver| receiver.calls)
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Receiver) -> T) -> T {
        let mut receivers = self
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match receivers.get_mut(name) {
            Some(receiver) => f(receiver),
            None => f(receivers.entry(name.to_owned()).or_default()),
        }
    }

    fn read<T: Default>(&self, name: &str, f: impl FnOnce(&Receiver) -> T) -> T {
        let receivers = self
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        receivers.get(name).map(f).unwrap_or_default()
    }
}

/// The parts of Treaty's webhook body the emulator reads.
#[derive(Deserialize)]
struct Call {
    #[serde(default)]
    arguments: serde_json::Value,
}

/// `POST /webhooks/{name}`.
pub(crate) async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.webhooks.count_call(&name);
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let signed = match (header("x-treaty-timestamp"), header("x-treaty-signature")) {
        (Some(timestamp), Some(signature)) => verify(
            &shared.config.webhook_secret,
            timestamp,
            signature,
            &body,
            unix_now(),
        ),
        _ => false,
    };
    if !signed {
        return ApiError::bad_signature().into_response();
    }
    let Some(key) = header("idempotency-key").filter(|key| !key.is_empty()) else {
        return ApiError::invalid_request(
            "Emulated webhook: an Idempotency-Key header is required.",
        )
        .into_response();
    };
    let call: Call = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(error) => {
            return ApiError::invalid_request(format!(
                "Emulated webhook: expected {{\"run_id\",\"call_id\",\"tool\",\"arguments\"}}: {error}"
            ))
            .into_response();
        }
    };
    let answer = format!("emulated webhook {name} applied {}", call.arguments);
    match shared.webhooks.apply(&name, key, answer) {
        Applied::Fresh(answer) => {
            if let Some(delay) = call.arguments.get("delay_ms").and_then(|ms| ms.as_u64()) {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Json(serde_json::json!({ "output": answer })).into_response()
        }
        Applied::Repeat(answer) => Json(serde_json::json!({ "output": answer })).into_response(),
    }
}

/// `GET /webhooks/{name}/effects`.
pub(crate) async fn effects(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    Json(serde_json::json!({
        "effects": shared.webhooks.effects(&name),
        "calls": shared.webhooks.calls(&name),
    }))
    .into_response()
}

/// `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` (any of several,
/// comma separated) with `timestamp` within the tolerance of `now`.
fn verify(secret: &[u8], timestamp: &str, signatures: &str, body: &[u8], now: u64) -> bool {
    let Ok(sent) = timestamp.trim().parse::<u64>() else {
        return false;
    };
    if sent.abs_diff(now) > TOLERANCE_SECS {
        return false;
    }
    signatures
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|tag| hex::decode(tag).ok())
        .any(|tag| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                return false;
            };
            mac.update(timestamp.trim().as_bytes());
            mac.update(b".");
            mac.update(body);
            // Constant-time comparison.
            mac.verify_slice(&tag).is_ok()
        })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_verify_only_unchanged_and_fresh() {
        let good = sign(b"k", "1000", b"{}");
        assert!(verify(b"k", "1000", &good, b"{}", 1000 + TOLERANCE_SECS));
        assert!(!verify(b"k", "1000", &good, b"{ }", 1000));
        assert!(!verify(b"other", "1000", &good, b"{}", 1000));
        assert!(!verify(b"k", "1000", &good, b"{}", 1001 + TOLERANCE_SECS));
        assert!(!verify(b"k", "1001", &good, b"{}", 1000));
    }
}
