//! The Bedrock provider against the emulated Bedrock runtime, over real
//! HTTP with real SigV4 signatures (the emulator re-signs and compares):
//! plain and streamed chats, a tool round trip, Titan embeddings, the
//! health probe, and the faults the gateway relies on (throttling is
//! retryable, a wrong secret is an auth error naming the host and never the
//! secret, a cut or corrupt stream ends in an error item).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use treaty_config::{AwsCredentials, AwsSettings, Endpoint, HostConfig, Secret};
use treaty_domain::{Host, HostId, ModelDeployment, ProviderKind};
use treaty_emulator::{
    DEFAULT_AWS_ACCESS_KEY_ID, DEFAULT_AWS_SECRET_ACCESS_KEY, Emulator, EmulatorConfig,
    EmulatorHandle,
};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};
use treaty_providers::{
    CallOptions, ChatReply, Provider, StreamEvent, UpstreamError, for_host, http_client,
};

const HOST: &str = "bedrock-useast1";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

async fn emulator(chunk_delay: Duration) -> EmulatorHandle {
    let config = EmulatorConfig {
        chunk_delay,
        ..EmulatorConfig::default()
    };
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn provider(emu: &EmulatorHandle, secret: &str) -> Arc<dyn Provider> {
    let host = HostConfig {
        host: Arc::new(Host {
            id: HostId::new(HOST).unwrap(),
            cloud: "aws".into(),
            region: "us-east".into(),
            provider: ProviderKind::Bedrock,
            certifications: vec![],
            models: vec![deployment(MODEL)],
            weight: 1,
        }),
        rate_limit: Default::default(),
        endpoint: Endpoint {
            base_url: format!("{}/{HOST}", emu.url()),
            api_key: None,
            azure: None,
            gemini: None,
            aws: Some(AwsSettings {
                region: "us-east-1".into(),
                credentials: Some(AwsCredentials {
                    access_key_id: DEFAULT_AWS_ACCESS_KEY_ID.into(),
                    secret_access_key: Secret::new(secret),
                    session_token: None,
                }),
            }),
        },
    };
    let http = http_client(&treaty_config::UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap();
    for_host(&host, http).unwrap()
}

fn deployment(target: &str) -> ModelDeployment {
    ModelDeployment {
        name: "claude".into(),
        target: target.into(),
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
    }
}

fn call() -> CallOptions {
    CallOptions {
        first_byte_timeout: Duration::from_secs(5),
        deadline: tokio::time::Instant::now() + Duration::from_secs(10),
        request_id: "req-bedrock-1".into(),
        traceparent: None,
    }
}

fn req(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn plain() -> ChatCompletionRequest {
    req(json!({"model": "claude", "messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "Hello é 😀"}]}))
}

fn streamed() -> ChatCompletionRequest {
    let mut r = plain();
    r.stream = Some(true);
    r
}

/// Text, finish reason, tool calls (id, name, arguments) and events of a stream.
struct Collected {
    text: String,
    finish: Value,
    calls: Vec<(String, String, String)>,
    events: Vec<Result<StreamEvent, UpstreamError>>,
}

async fn collect(p: &dyn Provider, r: &ChatCompletionRequest) -> Collected {
    let ChatReply::Stream(s) = p.chat(r, &deployment(MODEL), &call()).await.unwrap() else {
        panic!("expected a stream");
    };
    let events: Vec<_> = s.collect().await;
    let mut out = Collected {
        text: String::new(),
        finish: Value::Null,
        calls: Vec::new(),
        events: Vec::new(),
    };
    for e in &events {
        if let Ok(StreamEvent::Chunk(b)) = e {
            let v: Value = serde_json::from_slice(b).unwrap();
            let delta = &v["choices"][0]["delta"];
            if let Some(t) = delta["content"].as_str() {
                out.text.push_str(t);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap() as usize;
                if let Some(id) = call["id"].as_str() {
                    let name = call["function"]["name"].as_str().unwrap().to_owned();
                    out.calls.push((id.to_owned(), name, String::new()));
                }
                if let Some(a) = call["function"]["arguments"].as_str() {
                    out.calls[index].2.push_str(a);
                }
            }
            if !v["choices"][0]["finish_reason"].is_null() {
                out.finish = v["choices"][0]["finish_reason"].clone();
            }
        }
    }
    out.events = events;
    out
}

const REPLY: &str =
    "Emulated reply from bedrock-useast1 (anthropic.claude-3-5-sonnet-20240620-v1:0): Hello é 😀";

#[tokio::test]
async fn plain_and_streamed_chats_are_signed_and_translated() {
    let emu = emulator(Duration::ZERO).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    p.probe(Duration::from_secs(5)).await.unwrap();

    let ChatReply::Full { body, usage } =
        p.chat(&plain(), &deployment(MODEL), &call()).await.unwrap()
    else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = usage.unwrap();
    assert!(usage.completion_tokens > 0 && usage.prompt_tokens > 0);

    let mut with_usage = streamed();
    with_usage.stream_options =
        Some(serde_json::from_value(json!({"include_usage": true})).unwrap());
    let got = collect(p.as_ref(), &with_usage).await;
    assert_eq!(got.text, REPLY);
    assert_eq!(got.finish, "stop");
    let usage_events: Vec<_> = got
        .events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Usage(u)) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(usage_events, [usage]);
    assert!(got.events.iter().all(Result::is_ok), "{:?}", got.events);

    // The stop sequence cuts the answer and is reported as a stop.
    let mut stopped = plain();
    stopped.stop = Some(treaty_openai::Stop::One("é".into()));
    let ChatReply::Full { body, .. } = p.chat(&stopped, &deployment(MODEL), &call()).await.unwrap()
    else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains('é')
    );
    assert!(emu.requests_for(HOST) >= 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_first_frame_arrives_before_the_stream_ends() {
    let emu = emulator(Duration::from_millis(300)).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    let started = tokio::time::Instant::now();
    let ChatReply::Stream(mut s) = p
        .chat(&streamed(), &deployment(MODEL), &call())
        .await
        .unwrap()
    else {
        panic!("expected a stream");
    };
    assert!(matches!(s.next().await, Some(Ok(StreamEvent::Chunk(_)))));
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_tool_round_trip() {
    let emu = emulator(Duration::ZERO).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    let tools = json!([
        {"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    ]);
    let ask = req(json!({"model": "claude", "stream": true, "tools": tools,
        "messages": [{"role": "user", "content": "weather and time [[tools:all]]"}]}));
    let got = collect(p.as_ref(), &ask).await;
    assert_eq!(got.finish, "tool_calls");
    assert_eq!(got.calls.len(), 2, "{:?}", got.calls);
    assert_eq!(got.calls[0].1, "weather");
    assert_eq!(
        serde_json::from_str::<Value>(&got.calls[0].2).unwrap(),
        json!({"city": "emulated"})
    );
    assert_eq!(got.calls[1].1, "time");

    // Both results go back in one user message and are echoed.
    let calls: Vec<Value> = got
        .calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
        })
        .collect();
    let round = req(json!({"model": "claude", "tools": tools, "messages": [
        {"role": "user", "content": "weather and time [[tools:all]]"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "tool", "tool_call_id": got.calls[0].0, "content": "sunny"},
        {"role": "tool", "tool_call_id": got.calls[1].0, "content": "noon"}]}));
    let ChatReply::Full { body, .. } = p.chat(&round, &deployment(MODEL), &call()).await.unwrap()
    else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("tool results: sunny") && content.contains("noon"),
        "{content}"
    );

    // Non-streamed tool calls keep Bedrock's toolUseId as the call id.
    let mut once = ask.clone();
    once.stream = None;
    let ChatReply::Full { body, .. } = p.chat(&once, &deployment(MODEL), &call()).await.unwrap()
    else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("tooluse_"));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    emu.shutdown().await;
}

#[tokio::test]
async fn titan_and_cohere_embeddings() {
    let emu = emulator(Duration::ZERO).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    let embed: EmbeddingsRequest = serde_json::from_value(
        json!({"model": "embed", "input": ["one two", "three"], "dimensions": 256}),
    )
    .unwrap();
    let reply = p
        .embeddings(&embed, &deployment("amazon.titan-embed-text-v2:0"), &call())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 256);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    // Titan counts tokens per input; the emulator counts words.
    assert_eq!(reply.usage.unwrap().prompt_tokens, 3);
    assert_eq!(body["usage"]["prompt_tokens"], 3);

    let cohere: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "embed", "input": "hello"})).unwrap();
    let reply = p
        .embeddings(&cohere, &deployment("cohere.embed-english-v3"), &call())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 1024);
    assert_eq!(reply.usage.unwrap().prompt_tokens, 1);

    let err = p
        .embeddings(&cohere, &deployment(MODEL), &call())
        .await
        .unwrap_err();
    assert_eq!(err.client_facing(p.host_id()).0, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn throttling_and_outages_are_retryable_validation_is_not() {
    let emu = emulator(Duration::ZERO).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    for (spec, status, code, retryable) in [
        ("status=429,retry_after=2", 429, "ThrottlingException", true),
        ("status=503", 503, "ServiceUnavailableException", true),
        ("status=400", 400, "ValidationException", false),
    ] {
        emu.set_fault(HOST, spec, Some(1)).unwrap();
        let err = p
            .chat(&plain(), &deployment(MODEL), &call())
            .await
            .unwrap_err();
        assert_eq!(err.retryable(), retryable, "{err:?}");
        match &err {
            UpstreamError::Status {
                status: s, code: c, ..
            } => {
                assert_eq!(*s, status);
                assert_eq!(c.as_deref(), Some(code));
            }
            other => panic!("{other:?}"),
        }
        if status == 429 {
            assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        }
    }
    // The emulator's first request answers; a throttled stream also fails
    // before any chunk, so the gateway may still try elsewhere.
    emu.set_fault(HOST, "status=429", Some(1)).unwrap();
    let err = p
        .chat(&streamed(), &deployment(MODEL), &call())
        .await
        .unwrap_err();
    assert!(err.retryable(), "{err:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_names_the_host_not_the_secret() {
    let emu = emulator(Duration::ZERO).await;
    let wrong = "wrong/secret/access/key/EXAMPLEKEY0000000";
    let p = provider(&emu, wrong);
    let err = p
        .chat(&plain(), &deployment(MODEL), &call())
        .await
        .unwrap_err();
    match &err {
        UpstreamError::Status { status, code, .. } => {
            assert_eq!(*status, 403);
            assert_eq!(code.as_deref(), Some("InvalidSignatureException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.retryable());
    let text = format!("{err} {err:?}");
    assert!(text.contains(HOST), "{text}");
    assert!(text.contains("signature"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains("wrong/secret"),
        "{text}"
    );
    let (status, message, code) = err.client_facing(p.host_id());
    assert_eq!((status, code), (403, "upstream_auth_failed"));
    assert!(
        message.contains(HOST) && !message.contains("wrong"),
        "{message}"
    );
    // The health probe fails the same way, and so do embeddings.
    assert!(p.probe(Duration::from_secs(5)).await.is_err());
    assert!(!format!("{p:?}").contains("wrong"));
    emu.shutdown().await;
}

#[tokio::test]
async fn cut_and_corrupt_streams_end_in_an_error_item() {
    let emu = emulator(Duration::ZERO).await;
    let p = provider(&emu, DEFAULT_AWS_SECRET_ACCESS_KEY);
    for spec in ["truncate=1", "malformed"] {
        emu.set_fault(HOST, spec, Some(1)).unwrap();
        let got = collect(p.as_ref(), &streamed()).await;
        let last = got.events.last().unwrap();
        assert!(last.is_err(), "{spec}: {:?}", got.events);
        assert_eq!(
            got.events.iter().filter(|e| e.is_err()).count(),
            1,
            "{spec}"
        );
        if spec == "malformed" {
            assert!(
                matches!(last, Err(UpstreamError::Protocol(m)) if m.contains("checksum")),
                "{last:?}"
            );
        }
    }
    // A cut plain reply is an error too, never a half body.
    emu.set_fault(HOST, "truncate", Some(1)).unwrap();
    assert!(p.chat(&plain(), &deployment(MODEL), &call()).await.is_err());
    emu.shutdown().await;
}
