//! An Anthropic Messages host behind the gateway: the client speaks OpenAI
//! and gets OpenAI answers, plain and streamed, tool calls included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use serde_json::json;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig};

#[tokio::test]
async fn an_anthropic_host_answers_in_the_openai_shape() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new()
        .with("EMU", &emulator.url())
        .with("KEY", "sk-ant-test");
    let text = r#"
[[hosts]]
id = "anthropic-us"
cloud = "anthropic"
region = "us-east"
provider = "anthropic"
base_url = "${EMU}/anthropic-us"
api_key = { env = "KEY" }
models = [{ name = "claude", target = "claude-sonnet-4" }]

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
"#;
    let config = Config::from_toml(text, Path::new("."), &env).unwrap();
    let h = common::Harness::open(config, &env, emulator).await;

    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello claude"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.host(), Some("anthropic-us"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("hello claude")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut content = String::new();
    for line in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
    {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(d) = c["choices"][0]["delta"]["content"].as_str() {
            content.push_str(d);
        }
    }
    assert!(content.ends_with("one two three"), "{content}");

    let r = h
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}),
        )
        .await;
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let args: serde_json::Value = serde_json::from_str(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["city"], "emulated");
}
