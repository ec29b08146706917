//! Real HTTP exchanges with the emulated providers: every flavor's URLs and
//! auth must be accepted, replies must come back intact, and each injected
//! fault must map to the error the gateway relies on.

// Helpers here are test code too; clippy only recognises `#[test]` bodies.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use treaty_config::{AzureApiStyle, AzureAuth, AzureSettings, Endpoint, HostConfig, Secret};
use treaty_domain::{Host, HostId, ModelDeployment, ProviderKind};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};
use treaty_providers::{
    CallOptions, ChatReply, Provider, StreamEvent, TimeoutPhase, UpstreamError, for_host,
    http_client,
};

const KEY: &str = "emulator-key-1";

async fn emulator() -> EmulatorHandle {
    let config = EmulatorConfig {
        api_key: Some(KEY.into()),
        ..EmulatorConfig::default()
    };
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    http_client(&treaty_config::UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap()
}

/// The four ways of reaching an OpenAI-family host, each under its own
/// emulated host label.
fn hosts(emu: &EmulatorHandle, key: &str) -> Vec<HostConfig> {
    let host = |id: &str, provider, api_key: Option<&str>, azure| HostConfig {
        host: Arc::new(Host {
            id: HostId::new(id).unwrap(),
            cloud: "emulated".into(),
            region: "us-east".into(),
            provider,
            certifications: vec![],
            models: vec![],
            weight: 1,
        }),
        rate_limit: Default::default(),
        endpoint: Endpoint {
            base_url: format!("{}/{id}", emu.url()),
            api_key: api_key.map(Secret::new),
            azure,
            gemini: None,
            aws: None,
        },
    };
    vec![
        // Not "openai": `/openai/v1/...` is the emulator's own Azure v1 route.
        host("oai", ProviderKind::Openai, Some(key), None),
        host(
            "azure-deployments",
            ProviderKind::AzureOpenai,
            Some(key),
            Some(AzureSettings {
                api_style: AzureApiStyle::Deployments {
                    api_version: "2024-10-21".into(),
                },
                auth: AzureAuth::ApiKey,
            }),
        ),
        host(
            "azure-v1",
            ProviderKind::AzureOpenai,
            Some(key),
            Some(AzureSettings {
                api_style: AzureApiStyle::V1,
                auth: AzureAuth::Bearer,
            }),
        ),
        host(
            "compatible",
            ProviderKind::OpenaiCompatible,
            Some(key),
            None,
        ),
    ]
}

fn provider(host: &HostConfig) -> Arc<dyn Provider> {
    for_host(host, http()).unwrap()
}

fn deployment() -> ModelDeployment {
    ModelDeployment {
        name: "gpt-4o".into(),
        target: "gpt-4o-prod".into(),
        input_cost_per_mtok: 1.0,
        output_cost_per_mtok: 2.0,
    }
}

fn call(first_byte: Duration) -> CallOptions {
    CallOptions {
        first_byte_timeout: first_byte,
        deadline: tokio::time::Instant::now() + Duration::from_secs(10),
        request_id: "req-test-1".into(),
        traceparent: None,
    }
}

fn chat_request(stream: bool, include_usage: bool) -> ChatCompletionRequest {
    let mut body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Say hello to the emulator."}],
    });
    if stream {
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    serde_json::from_value(body).unwrap()
}

/// The content of a full reply, and its usage.
async fn full_chat(p: &dyn Provider) -> (String, treaty_openai::Usage) {
    let reply = p
        .chat(
            &chat_request(false, false),
            &deployment(),
            &call(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let ChatReply::Full { body, usage } = reply else {
        panic!("expected a full reply for {p:?}");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    (content, usage.unwrap())
}

/// Concatenated content, usage events and whether the usage chunk came.
async fn streamed_chat(
    p: &dyn Provider,
    include_usage: bool,
) -> (String, Vec<treaty_openai::Usage>, bool) {
    let reply = p
        .chat(
            &chat_request(true, include_usage),
            &deployment(),
            &call(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let ChatReply::Stream(mut stream) = reply else {
        panic!("expected a stream for {p:?}");
    };
    let (mut content, mut usages, mut usage_chunk) = (String::new(), vec![], false);
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            StreamEvent::Chunk(bytes) => {
                let chunk: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(chunk["object"], "chat.completion.chunk");
                if chunk["usage"].is_object() {
                    usage_chunk = true;
                }
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                    content.push_str(text);
                }
            }
            StreamEvent::Usage(u) => usages.push(u),
        }
    }
    (content, usages, usage_chunk)
}

#[tokio::test]
async fn every_flavor_chats_streams_and_embeds() {
    let emu = emulator().await;
    for host in hosts(&emu, KEY) {
        let p = provider(&host);
        let id = host.id().as_str();

        let (content, usage) = full_chat(&*p).await;
        assert!(!content.is_empty(), "{id}");
        assert!(
            usage.prompt_tokens > 0 && usage.completion_tokens > 0,
            "{id}"
        );

        // The same prompt streamed gives the same text and usage; the usage
        // chunk itself reaches the client only when it asked for it.
        let (streamed, usages, usage_chunk) = streamed_chat(&*p, false).await;
        assert_eq!(streamed, content, "{id}");
        assert_eq!(usages, vec![usage], "{id}");
        assert!(!usage_chunk, "{id}");
        let (_, usages, usage_chunk) = streamed_chat(&*p, true).await;
        assert_eq!(usages, vec![usage], "{id}");
        assert!(usage_chunk, "{id}");

        let req: EmbeddingsRequest =
            serde_json::from_value(json!({"model": "emb", "input": ["a b c", "d"]})).unwrap();
        let reply = p
            .embeddings(&req, &deployment(), &call(Duration::from_secs(5)))
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{id}");
        assert!(reply.usage.is_some_and(|u| u.prompt_tokens > 0), "{id}");

        assert_eq!(emu.requests_for(id), 4, "{id}");
    }
}

#[tokio::test]
async fn the_first_chunk_arrives_before_the_stream_ends() {
    let config = EmulatorConfig {
        api_key: Some(KEY.into()),
        chunk_delay: Duration::from_millis(300),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let p = provider(&hosts(&emu, KEY)[0]);
    let started = tokio::time::Instant::now();
    let reply = p
        .chat(
            &chat_request(true, false),
            &deployment(),
            &call(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let ChatReply::Stream(mut stream) = reply else {
        panic!("expected a stream");
    };
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, StreamEvent::Chunk(_)));
    // Several chunks 300 ms apart follow; the first must not wait for them.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

/// Queues `spec` for the next request to `oai` and returns its error.
async fn chat_fault(
    emu: &EmulatorHandle,
    p: &dyn Provider,
    spec: &str,
    stream: bool,
) -> UpstreamError {
    emu.set_fault("oai", spec, Some(1)).unwrap();
    let result = p
        .chat(
            &chat_request(stream, false),
            &deployment(),
            &call(Duration::from_millis(200)),
        )
        .await;
    match result {
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
    let emu = emulator().await;
    let host = &hosts(&emu, KEY)[0];
    let p = provider(host);
    let id = host.id();

    let err = chat_fault(&emu, &*p, "status=429,retry_after=1", false).await;
    assert!(
        matches!(err, UpstreamError::Status { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.retryable());
    assert_eq!(err.client_facing(id).0, 429);

    let err = chat_fault(&emu, &*p, "status=503", false).await;
    assert!(
        matches!(err, UpstreamError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.retryable());
    let (status, message, _) = err.client_facing(id);
    assert_eq!(status, 502);
    assert!(!message.contains("127.0.0.1"), "{message}");

    let err = chat_fault(&emu, &*p, "reset", false).await;
    assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");
    assert!(err.retryable());
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");

    let err = chat_fault(&emu, &*p, "stall=2000", false).await;
    assert_eq!(
        err,
        UpstreamError::Timeout {
            phase: TimeoutPhase::FirstByte
        }
    );
    assert!(err.retryable());

    let err = chat_fault(&emu, &*p, "truncate", true).await;
    assert_eq!(err, UpstreamError::Truncated);
    let err = chat_fault(&emu, &*p, "truncate", false).await;
    assert_eq!(err, UpstreamError::Truncated);

    let err = chat_fault(&emu, &*p, "malformed", true).await;
    assert!(matches!(err, UpstreamError::Protocol(_)), "{err:?}");
    let err = chat_fault(&emu, &*p, "malformed", false).await;
    assert!(matches!(err, UpstreamError::Protocol(_)), "{err:?}");

    // After all that, the host still answers.
    full_chat(&*p).await;
}

#[tokio::test]
async fn a_rejected_key_is_a_403_that_never_shows_the_key() {
    let emu = emulator().await;
    for host in hosts(&emu, "sk-wrong-key-0123456789abcdef") {
        let p = provider(&host);
        let err = p
            .chat(
                &chat_request(false, false),
                &deployment(),
                &call(Duration::from_secs(5)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, UpstreamError::Status { status: 401, .. }),
            "{err:?}"
        );
        assert!(!err.retryable());
        let (status, message, code) = err.client_facing(host.id());
        assert_eq!((status, code), (403, "upstream_auth_failed"));
        for text in [
            message,
            err.to_string(),
            format!("{err:?}"),
            format!("{p:?}"),
        ] {
            assert!(!text.contains("sk-wrong"), "{text}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_host_is_a_connect_error() {
    // Bind and drop a listener for a port that is surely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = HostConfig {
        host: Arc::new(Host {
            id: HostId::new("gone").unwrap(),
            cloud: "emulated".into(),
            region: "us-east".into(),
            provider: ProviderKind::OpenaiCompatible,
            certifications: vec![],
            models: vec![],
            weight: 1,
        }),
        rate_limit: Default::default(),
        endpoint: Endpoint {
            base_url: format!("http://127.0.0.1:{port}"),
            api_key: None,
            azure: None,
            gemini: None,
            aws: None,
        },
    };
    let err = provider(&host)
        .chat(
            &chat_request(false, false),
            &deployment(),
            &call(Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");
    assert!(!err.to_string().contains(&port.to_string()), "{err}");
}
