//! Real HTTP exchanges between the Gemini provider and the emulated Gemini
//! API and Vertex AI: chat plain and streamed, a tool round trip, parallel
//! calls, embeddings, health probes, and each injected fault mapped to the
//! error the gateway relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use treaty_config::{Endpoint, GeminiApi, HostConfig, Secret};
use treaty_domain::{Host, HostId, ModelDeployment, ProviderKind};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest, Usage};
use treaty_providers::{
    CallOptions, ChatReply, Provider, StreamEvent, UpstreamError, for_host, http_client,
};

const KEY: &str = "emulator-key-1";

async fn emulator(chunk_delay: Duration) -> EmulatorHandle {
    let config = EmulatorConfig {
        api_key: Some(KEY.into()),
        chunk_delay,
        ..EmulatorConfig::default()
    };
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn deployment() -> ModelDeployment {
    ModelDeployment {
        name: "gemini".into(),
        target: "gemini-2.0-flash".into(),
        input_cost_per_mtok: 0.1,
        output_cost_per_mtok: 0.4,
    }
}

/// A Gemini API host (`gemini-us`) and a Vertex AI host (`vertex-us`),
/// each under its own emulated host label.
fn hosts(emu: &EmulatorHandle, key: &str) -> Vec<HostConfig> {
    let host = |id: &str, api: GeminiApi| HostConfig {
        host: Arc::new(Host {
            id: HostId::new(id).unwrap(),
            cloud: "gcp".into(),
            region: "us-central".into(),
            provider: ProviderKind::Gemini,
            certifications: vec![],
            models: vec![deployment()],
            weight: 1,
        }),
        rate_limit: Default::default(),
        endpoint: Endpoint {
            base_url: format!("{}/{id}", emu.url()),
            api_key: Some(Secret::new(key)),
            azure: None,
            gemini: Some(api),
            aws: None,
        },
    };
    vec![
        host("gemini-us", GeminiApi::Gemini),
        host(
            "vertex-us",
            GeminiApi::Vertex {
                project: "treaty-test".into(),
                location: "us-central1".into(),
            },
        ),
    ]
}

fn provider(host: &HostConfig) -> Arc<dyn Provider> {
    let http = http_client(&treaty_config::UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap();
    for_host(host, http).unwrap()
}

fn call() -> CallOptions {
    CallOptions {
        first_byte_timeout: Duration::from_secs(5),
        deadline: tokio::time::Instant::now() + Duration::from_secs(10),
        request_id: "req-gemini-1".into(),
        traceparent: None,
    }
}

fn req(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn chat_request(text: &str) -> Value {
    json!({"model": "gemini", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": text}]})
}

async fn full(p: &dyn Provider, body: Value) -> (Value, Usage) {
    let ChatReply::Full { body, usage } = p.chat(&req(body), &deployment(), &call()).await.unwrap()
    else {
        panic!("expected a full reply from {p:?}");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    (body, usage.unwrap())
}

/// Every item of a streamed reply.
async fn streamed(p: &dyn Provider, mut body: Value) -> Vec<Result<StreamEvent, UpstreamError>> {
    body["stream"] = json!(true);
    let ChatReply::Stream(s) = p.chat(&req(body), &deployment(), &call()).await.unwrap() else {
        panic!("expected a stream from {p:?}");
    };
    s.collect().await
}

fn chunks(events: &[Result<StreamEvent, UpstreamError>]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Chunk(b)) => Some(serde_json::from_slice(b).unwrap()),
            _ => None,
        })
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish(chunks: &[Value]) -> Value {
    chunks
        .iter()
        .map(|c| c["choices"][0]["finish_reason"].clone())
        .rfind(|f| !f.is_null())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn both_apis_chat_stream_probe_and_embed() {
    let emu = emulator(Duration::ZERO).await;
    for host in hosts(&emu, KEY) {
        let p = provider(&host);
        let id = host.id().as_str();
        p.probe(Duration::from_secs(5)).await.unwrap();

        let (body, usage) = full(&*p, chat_request("Hello é 😀")).await;
        let want = format!("Emulated reply from {id} (gemini-2.0-flash): Hello é 😀");
        assert_eq!(body["choices"][0]["message"]["content"], want, "{id}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{id}");
        assert_eq!(body["model"], "gemini-2.0-flash", "{id}");
        assert!(
            usage.prompt_tokens > 0 && usage.completion_tokens > 0,
            "{id}"
        );
        assert_eq!(body["usage"]["total_tokens"], usage.total_tokens);

        // The same prompt streamed: same text, same usage, reported once;
        // the usage chunk only when asked for.
        let events = streamed(&*p, chat_request("Hello é 😀")).await;
        let got = chunks(&events);
        assert_eq!(streamed_text(&got), want, "{id}");
        assert_eq!(finish(&got), "stop", "{id}");
        assert_eq!(got[0]["choices"][0]["delta"]["role"], "assistant", "{id}");
        assert_eq!(
            events.last(),
            Some(&Ok(StreamEvent::Usage(usage))),
            "{id}: {events:?}"
        );
        assert!(got.iter().all(|c| c.get("usage").is_none()), "{id}");
        let mut with_usage = chat_request("Hello é 😀");
        with_usage["stream_options"] = json!({"include_usage": true});
        let got = chunks(&streamed(&*p, with_usage).await);
        let last = got.last().unwrap();
        assert_eq!(last["usage"]["total_tokens"], usage.total_tokens, "{id}");
        assert_eq!(last["choices"], json!([]), "{id}");

        // `max_tokens` cuts the answer and says so.
        let mut short = chat_request("Hello");
        short["max_completion_tokens"] = json!(2);
        let (body, _) = full(&*p, short).await;
        assert_eq!(body["choices"][0]["message"]["content"], "Emulated reply");
        assert_eq!(body["choices"][0]["finish_reason"], "length");

        // Embeddings: one input and several.
        for (input, n) in [(json!("a b c"), 1), (json!(["a b c", "d"]), 2)] {
            let req: EmbeddingsRequest =
                serde_json::from_value(json!({"model": "emb", "input": input, "dimensions": 8}))
                    .unwrap();
            let reply = p.embeddings(&req, &deployment(), &call()).await.unwrap();
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["object"], "list");
            let data = body["data"].as_array().unwrap();
            assert_eq!(data.len(), n, "{id}");
            assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8, "{id}");
            assert!(reply.usage.is_some_and(|u| u.prompt_tokens > 0), "{id}");
        }
        // Base64 vectors decode to the same floats.
        let req: EmbeddingsRequest = serde_json::from_value(
            json!({"model": "emb", "input": "a b c", "dimensions": 4, "encoding_format": "base64"}),
        )
        .unwrap();
        let reply = p.embeddings(&req, &deployment(), &call()).await.unwrap();
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["data"][0]["embedding"].as_str().unwrap().len(), 24);

        assert_eq!(emu.requests_for(id), 8, "{id}");
    }
}

#[tokio::test]
async fn a_tool_round_trip_and_parallel_calls() {
    let emu = emulator(Duration::ZERO).await;
    for host in hosts(&emu, KEY) {
        let p = provider(&host);
        let id = host.id().as_str();
        // Keywords Gemini refuses (additionalProperties, type arrays,
        // $schema) must be adapted, or the emulator refuses them as Google
        // does.
        let tools = json!([
            {"type": "function", "function": {"name": "weather", "description": "Weather",
                "parameters": {"$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object", "additionalProperties": false,
                    "properties": {"city": {"type": "string"},
                        "unit": {"type": ["string", "null"], "enum": ["c", "f", null]}},
                    "required": ["city"]}}},
            {"type": "function", "function": {"name": "now",
                "parameters": {"type": "object", "properties": {}}}}
        ]);
        let ask = json!({"model": "gemini", "tools": tools,
            "messages": [{"role": "user", "content": "weather in Paris?"}]});

        let events = streamed(&*p, ask.clone()).await;
        let got = chunks(&events);
        assert_eq!(finish(&got), "tool_calls", "{id}: {events:?}");
        let call = got
            .iter()
            .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .unwrap();
        assert_eq!(call["index"], 0);
        assert_eq!(call["function"]["name"], "weather");
        let call_id = call["id"].as_str().unwrap().to_owned();
        let arguments = call["function"]["arguments"].as_str().unwrap().to_owned();
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"city": "emulated", "unit": "c"}),
            "{id}"
        );

        // The full reply names the same call.
        let (body, _) = full(&*p, ask.clone()).await;
        let message = &body["choices"][0]["message"];
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(message["content"], Value::Null);
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], arguments);

        // The result goes back (named by the call's id) and is echoed.
        let round = json!({"model": "gemini", "tools": tools, "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]});
        let (body, _) = full(&*p, round).await;
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("Emulated reply from {id} (gemini-2.0-flash): tool results: sunny")
        );

        // [[tools:all]]: parallel calls with their own indices and ids.
        let all = json!({"model": "gemini", "tools": tools,
            "messages": [{"role": "user", "content": "[[tools:all]] everything"}]});
        let got = chunks(&streamed(&*p, all.clone()).await);
        let calls: Vec<Value> = got
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .collect();
        assert_eq!(calls.len(), 2, "{id}: {got:?}");
        assert_eq!(
            (calls[0]["index"].clone(), calls[1]["index"].clone()),
            (json!(0), json!(1))
        );
        assert_eq!(calls[1]["function"]["name"], "now");
        assert_ne!(calls[0]["id"], calls[1]["id"]);
        let (body, _) = full(&*p, all).await;
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );

        // A forced function, and "none".
        let mut forced = ask.clone();
        forced["tool_choice"] = json!({"type": "function", "function": {"name": "now"}});
        let (body, _) = full(&*p, forced).await;
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "now"
        );
        let mut none = ask.clone();
        none["tool_choice"] = json!("none");
        let (body, _) = full(&*p, none).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }
}

/// Queues `spec` for the next request to `host` and returns its error.
async fn fault(emu: &EmulatorHandle, host: &HostConfig, spec: &str, stream: bool) -> UpstreamError {
    emu.set_fault(host.id().as_str(), spec, Some(1)).unwrap();
    let p = provider(host);
    let mut body = chat_request("hi");
    if stream {
        body["stream"] = json!(true);
    }
    let call = CallOptions {
        first_byte_timeout: Duration::from_millis(300),
        ..call()
    };
    match p.chat(&req(body), &deployment(), &call).await {
        Err(e) => e,
        Ok(ChatReply::Full { .. }) => panic!("{spec}: expected an error"),
        Ok(ChatReply::Stream(s)) => {
            let items: Vec<_> = s.collect().await;
            match items.last() {
                Some(Err(e)) => e.clone(),
                other => panic!("{spec}: expected the stream to fail, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn faults_map_to_the_errors_the_gateway_expects() {
    let emu = emulator(Duration::ZERO).await;
    for host in hosts(&emu, KEY) {
        let id = host.id();

        let err = fault(&emu, &host, "status=429,retry_after=2", false).await;
        assert!(
            matches!(&err, UpstreamError::Status { status: 429, code: Some(c), .. } if c == "RESOURCE_EXHAUSTED"),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(err.retryable());
        let (status, message, code) = err.client_facing(id);
        assert_eq!((status, code), (429, "upstream_rate_limited"));
        assert!(
            message.contains(id.as_str()) && message.contains("2 s"),
            "{message}"
        );

        let err = fault(&emu, &host, "status=503", true).await;
        assert!(
            matches!(&err, UpstreamError::Status { status: 503, code: Some(c), .. } if c == "UNAVAILABLE"),
            "{err:?}"
        );
        assert!(err.retryable());
        assert!(!err.client_facing(id).1.contains("127.0.0.1"));

        let err = fault(&emu, &host, "status=400", false).await;
        assert!(!err.retryable());
        assert_eq!(err.client_facing(id).0, 400);

        let err = fault(&emu, &host, "reset", false).await;
        assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");

        let err = fault(&emu, &host, "stall=2000", false).await;
        assert!(err.retryable(), "{err:?}");

        for stream in [true, false] {
            for spec in ["truncate", "truncate=1", "truncate=100"] {
                let err = fault(&emu, &host, spec, stream).await;
                assert!(
                    matches!(err, UpstreamError::Truncated | UpstreamError::Io(_)),
                    "{spec} stream={stream}: {err:?}"
                );
            }
            let err = fault(&emu, &host, "malformed", stream).await;
            assert!(matches!(err, UpstreamError::Protocol(_)), "{err:?}");
        }

        // A directive in the prompt works like a queued fault.
        let p = provider(&host);
        let err = p
            .chat(
                &req(chat_request("[[fault:status=503]]")),
                &deployment(),
                &call(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Status { status: 503, .. }));

        // After all that, the host still answers.
        full(&*p, chat_request("still there?")).await;
    }
}

#[tokio::test]
async fn a_rejected_credential_is_a_403_naming_the_host_never_the_key() {
    let emu = emulator(Duration::ZERO).await;
    let wrong = "AIzaSy-wrong-key-0123456789abcdef";
    for host in hosts(&emu, wrong) {
        let p = provider(&host);
        for result in [
            p.chat(&req(chat_request("hi")), &deployment(), &call())
                .await
                .map(|_| ()),
            p.probe(Duration::from_secs(5)).await,
        ] {
            let err = result.unwrap_err();
            // The Gemini API says 400 API_KEY_INVALID; both are auth
            // failures to the gateway.
            assert!(
                matches!(err, UpstreamError::Status { status: 401, .. }),
                "{err:?}"
            );
            assert!(!err.retryable());
            let (status, message, code) = err.client_facing(host.id());
            assert_eq!((status, code), (403, "upstream_auth_failed"));
            assert!(message.contains(host.id().as_str()), "{message}");
            for text in [
                message,
                err.to_string(),
                format!("{err:?}"),
                format!("{p:?}"),
            ] {
                assert!(!text.contains("wrong-key"), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn the_first_chunk_arrives_before_a_slow_stream_ends() {
    let emu = emulator(Duration::from_millis(300)).await;
    let p = provider(&hosts(&emu, KEY)[0]);
    let started = tokio::time::Instant::now();
    let mut body = chat_request("one two three four");
    body["stream"] = json!(true);
    let ChatReply::Stream(mut s) = p.chat(&req(body), &deployment(), &call()).await.unwrap() else {
        panic!("expected a stream");
    };
    let first = s.next().await.unwrap().unwrap();
    assert!(matches!(first, StreamEvent::Chunk(_)));
    // Ten word events 300 ms apart follow; the first must not wait.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}
