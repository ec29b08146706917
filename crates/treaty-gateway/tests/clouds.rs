//! One OpenAI client, four clouds: the same plain answer, streamed answer
//! and tool-call round trip through the gateway whether the request lands
//! on Azure OpenAI, AWS Bedrock (Converse, SigV4), Anthropic Messages or
//! Google Gemini, all emulated over real HTTP in their own wire formats;
//! then what a client sees, and what the ledger records, when a host
//! refuses Treaty's credentials or cuts its stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use serde_json::{Value, json};
use treaty_config::{Config, MapEnv};
use treaty_emulator::{
    DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY, Emulator, EmulatorConfig,
};

const EMULATOR_KEY: &str = "sk-emulated-upstream";
const HOSTS: [&str; 4] = ["azure", "bedrock", "anthropic", "gemini"];

fn config_text(aws_secret_env: &str) -> String {
    format!(
        r#"
[upstream]
first_byte_timeout = "2s"
total_timeout = "10s"
max_attempts = 1

[[hosts]]
id = "azure"
cloud = "azure"
region = "us-east"
provider = "azure_openai"
base_url = "${{EMU}}/azure"
api_version = "2024-10-21"
api_key = {{ env = "KEY" }}
models = [{{ name = "gpt-4o", target = "gpt-4o-eastus" }}]

[[hosts]]
id = "bedrock"
cloud = "aws"
region = "us-east"
provider = "bedrock"
base_url = "${{EMU}}/bedrock"
aws_region = "us-east-1"
aws_access_key_id = "{DEFAULT_AWS_ACCESS_KEY_ID}"
aws_secret_access_key = {{ env = "{aws_secret_env}" }}
models = [{{ name = "gpt-4o", target = "anthropic.claude-sonnet-4-v1:0" }}]

[[hosts]]
id = "anthropic"
cloud = "anthropic"
region = "us-east"
provider = "anthropic"
base_url = "${{EMU}}/anthropic"
api_key = {{ env = "KEY" }}
models = [{{ name = "gpt-4o", target = "claude-sonnet-4" }}]

[[hosts]]
id = "gemini"
cloud = "gcp"
region = "us-central"
provider = "gemini"
base_url = "${{EMU}}/gemini"
api_key = {{ env = "KEY" }}
models = [{{ name = "gpt-4o", target = "gemini-2.5-pro" }}]

[[tenants]]
id = "acme"
segment = "enterprise"
data_region = "us"

[[channels]]
id = "direct"
kind = "first_party"

[[products]]
id = "api"
kind = "api"
"#
    )
}

/// A gateway over the four hosts; `aws_secret` is the secret Treaty signs
/// Bedrock requests with (the emulator knows the real one).
async fn gateway(aws_secret: &str) -> common::Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(
        EmulatorConfig {
            api_key: Some(EMULATOR_KEY.into()),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let env = MapEnv::new()
        .with("EMU", &emulator.url())
        .with("KEY", EMULATOR_KEY)
        .with("AWS_SECRET", aws_secret);
    let config = Config::from_toml(&config_text("AWS_SECRET"), Path::new("."), &env).unwrap();
    common::Harness::open(config, &env, emulator).await
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}])
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
fn frames(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_same_client_gets_the_same_shapes_from_every_cloud() {
    let h = gateway(DEFAULT_AWS_SECRET_ACCESS_KEY).await;
    for host in HOSTS {
        let prefer = [("x-treaty-prefer-host", host)];

        // A plain answer.
        let r = h
            .post_with(
                "/v1/chat/completions",
                &prefer,
                json!({"model": "gpt-4o", "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hello from the client — ünïcode too."}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.host(), Some(host));
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{host}");
        assert_eq!(
            v["model"], "gpt-4o",
            "{host}: the public name, not the target"
        );
        assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{host}");
        assert!(
            !v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{host}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{host}");
        let u = &v["usage"];
        assert!(u["prompt_tokens"].as_u64().unwrap() > 0, "{host}: {u}");
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap(),
            "{host}"
        );

        // A streamed answer: chunks, a finish reason, usage, then [DONE].
        let r = h
            .post_with(
                "/v1/chat/completions",
                &prefer,
                json!({"model": "gpt-4o", "stream": true,
                       "stream_options": {"include_usage": true},
                       "messages": [{"role": "user", "content": "Count to five."}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        let frames = frames(&r.text());
        assert_eq!(frames.last().map(String::as_str), Some("[DONE]"), "{host}");
        let chunks: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk"),
            "{host}"
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!text.is_empty(), "{host}: {chunks:?}");
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{host}: {chunks:?}"
        );
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]), "{host}: the usage chunk");
        assert!(
            last["usage"]["total_tokens"].as_u64().unwrap() > 0,
            "{host}"
        );

        // A tool-call round trip.
        let mut messages = vec![json!({"role": "user", "content": "Weather in Paris?"})];
        let r = h
            .post_with(
                "/v1/chat/completions",
                &prefer,
                json!({"model": "gpt-4o", "messages": messages, "tools": weather_tool()}),
            )
            .await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        let v = r.json();
        assert_eq!(
            v["choices"][0]["finish_reason"], "tool_calls",
            "{host}: {v}"
        );
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function", "{host}");
        assert_eq!(call["function"]["name"], "get_weather", "{host}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{host}: {args}");
        let call_id = call["id"].as_str().unwrap().to_owned();
        assert!(!call_id.is_empty(), "{host}");
        messages.push(v["choices"][0]["message"].clone());
        messages.push(json!({"role": "tool", "tool_call_id": call_id,
                             "content": "{\"temperature_c\": 21}"}));
        let r = h
            .post_with(
                "/v1/chat/completions",
                &prefer,
                json!({"model": "gpt-4o", "messages": messages, "tools": weather_tool()}),
            )
            .await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        let v = r.json();
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{host}: {v}");
        let answer = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            answer.contains("temperature_c"),
            "{host}: the answer uses the tool result: {answer}"
        );
    }
    // Every host was really called in its own protocol.
    for host in HOSTS {
        assert!(h.emulator.requests_for(host) >= 4, "{host}");
    }
}

/// The ledger's outcome for the last request.
async fn last_outcome(h: &common::Harness) -> Value {
    h.gateway.engine.ledger.flush().await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(
        &h.gateway.engine.store,
        treaty_ledger::Format::Jsonl,
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["kind"] == "outcome")
        .unwrap()["record"]
        .clone()
}

#[tokio::test]
async fn a_wrong_aws_secret_is_a_403_naming_the_host_and_never_the_secret() {
    let wrong = "not/the/secret/the/emulator/knows/0000";
    let h = gateway(wrong).await;
    for stream in [false, true] {
        let r = h
            .post_with(
                "/v1/chat/completions",
                &[("x-treaty-prefer-host", "bedrock")],
                json!({"model": "gpt-4o", "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        let text = r.text();
        assert_eq!(r.status, 403, "stream {stream}: {text}");
        let e = &r.json()["error"];
        assert_eq!(e["code"], "upstream_auth_failed");
        assert_eq!(e["type"], "permission_error");
        assert!(e["message"].as_str().unwrap().contains("bedrock"), "{e}");
        assert!(!text.contains(wrong), "the secret never leaves: {text}");
        assert!(!text.contains(DEFAULT_AWS_ACCESS_KEY_ID), "{text}");
        let o = last_outcome(&h).await;
        assert_eq!(o["status"], 403, "{o}");
        assert_eq!(o["attempts"][0]["host"], "bedrock", "{o}");
        assert!(
            !o["attempts"][0]["error"].is_null(),
            "a failed attempt: {o}"
        );
        assert!(!o.to_string().contains(wrong));
    }
}

#[tokio::test]
async fn a_cut_or_corrupt_stream_ends_with_an_error_event_and_a_failed_attempt() {
    let h = gateway(DEFAULT_AWS_SECRET_ACCESS_KEY).await;
    for (host, fault) in [
        ("bedrock", "truncate=2"),
        ("bedrock", "malformed"),
        ("gemini", "truncate=2"),
        ("anthropic", "truncate=2"),
    ] {
        let r = h
            .post_with(
                "/v1/chat/completions",
                &[("x-treaty-prefer-host", host)],
                json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user",
                       "content": format!("one two three four five six [[fault:{fault}]]")}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{host} {fault}: headers were sent");
        let frames = frames(&r.text());
        assert_ne!(
            frames.last().map(String::as_str),
            Some("[DONE]"),
            "{host} {fault}: a cut stream never claims to be complete"
        );
        let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
        let message = last["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("The upstream stream failed"),
            "{host} {fault}: {last}"
        );
        let o = last_outcome(&h).await;
        assert_eq!(o["attempts"][0]["host"], host, "{o}");
        assert!(!o["attempts"][0]["error"].is_null(), "{host} {fault}: {o}");
        assert!(!o["error"].is_null(), "{host} {fault}: {o}");
    }
}
