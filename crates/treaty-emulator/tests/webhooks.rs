//! The emulated webhook receivers, driven by Treaty's real webhook client
//! (treaty-tools): signatures are checked, each Idempotency-Key is applied
//! once, and a caller that gives up mid-call can retry without a second
//! side effect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{client, json, start, start_with};
use treaty_emulator::{DEFAULT_WEBHOOK_SECRET, EmulatorConfig};
use treaty_tools::{Invocation, ToolError, WebhookTool, call_webhook};

fn tool(url: String) -> WebhookTool {
    WebhookTool {
        name: "refund".into(),
        url,
        timeout: Duration::from_secs(5),
        max_attempts: 3,
    }
}

fn call(arguments: &str) -> Invocation<'_> {
    Invocation {
        run_id: "run-1",
        call_id: "call-1",
        name: "refund",
        arguments,
    }
}

async fn counts(url: &str) -> Value {
    json(client().get(url).send().await.unwrap()).await
}

#[tokio::test]
async fn the_same_key_twice_is_applied_once() {
    let emulator = start().await;
    let hook = tool(format!("{}/webhooks/refund", emulator.url()));
    let first = call_webhook(
        &client(),
        &hook,
        DEFAULT_WEBHOOK_SECRET,
        &call(r#"{"order_id":"A-17"}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        first,
        r#"emulated webhook refund applied {"order_id":"A-17"}"#
    );
    let second = call_webhook(
        &client(),
        &hook,
        DEFAULT_WEBHOOK_SECRET,
        &call(r#"{"order_id":"A-17"}"#),
    )
    .await
    .unwrap();
    assert_eq!(second, first, "a repeated key gets the stored answer");
    assert_eq!(emulator.webhook_effects("refund"), 1);
    assert_eq!(emulator.webhook_calls("refund"), 2);
    assert_eq!(
        counts(&format!("{}/webhooks/refund/effects", emulator.url())).await,
        json!({"effects": 1, "calls": 2})
    );

    // Another call id is another effect; other names are counted apart.
    let other = Invocation {
        call_id: "call-2",
        ..call(r#"{"order_id":"A-18"}"#)
    };
    call_webhook(&client(), &hook, DEFAULT_WEBHOOK_SECRET, &other)
        .await
        .unwrap();
    assert_eq!(emulator.webhook_effects("refund"), 2);
    assert_eq!(emulator.webhook_effects("notify"), 0);
    assert_eq!(
        counts(&format!("{}/webhooks/notify/effects", emulator.url())).await,
        json!({"effects": 0, "calls": 0})
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_401_and_no_effect() {
    let emulator = start().await;
    let hook = tool(format!("{}/webhooks/refund", emulator.url()));
    let error = call_webhook(&client(), &hook, b"not the secret", &call("{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ToolError::Status {
                status: 401,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );

    let unsigned = client()
        .post(format!("{}/webhooks/refund", emulator.url()))
        .header("idempotency-key", "run-1:call-1")
        .body(r#"{"run_id":"run-1","call_id":"call-1","tool":"refund","arguments":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(json(unsigned).await["error"]["code"], "invalid_signature");
    assert_eq!(emulator.webhook_effects("refund"), 0);
    assert_eq!(emulator.webhook_calls("refund"), 2);
}

#[tokio::test]
async fn the_secret_is_configurable() {
    let emulator = start_with(EmulatorConfig::default().webhook_secret(b"rotated".to_vec())).await;
    let hook = tool(format!("{}/webhooks/refund", emulator.url()));
    let refused = call_webhook(&client(), &hook, DEFAULT_WEBHOOK_SECRET, &call("{}")).await;
    assert!(matches!(
        refused,
        Err(ToolError::Status { status: 401, .. })
    ));
    call_webhook(&client(), &hook, b"rotated", &call("{}"))
        .await
        .unwrap();
    assert_eq!(emulator.webhook_effects("refund"), 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_mid_call_retries_without_a_second_effect() {
    let emulator = start().await;
    // The receiver applies the effect, then holds the answer for 2 s; the
    // first attempt times out after 300 ms, the retry gets the stored answer.
    let hook = WebhookTool {
        timeout: Duration::from_millis(300),
        ..tool(format!("{}/webhooks/refund", emulator.url()))
    };
    let answer = call_webhook(
        &client(),
        &hook,
        DEFAULT_WEBHOOK_SECRET,
        &call(r#"{"delay_ms":2000}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        r#"emulated webhook refund applied {"delay_ms":2000}"#
    );
    assert_eq!(emulator.webhook_effects("refund"), 1);
    assert_eq!(emulator.webhook_calls("refund"), 2);
}
