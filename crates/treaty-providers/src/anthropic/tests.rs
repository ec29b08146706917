//! Golden translation tests both ways, the stream decoder under arbitrary
//! and truncated input, and real exchanges with the emulator.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use treaty_config::{Endpoint, Secret};
use treaty_domain::{HostId, ModelDeployment};
use treaty_openai::{ChatCompletionRequest, Usage};

use super::*;
use crate::StreamEvent;

fn req(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

// ---------------------------------------------------------------- requests

#[test]
fn requests_translate_to_golden_messages_bodies() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "system and developer become system; default max_tokens",
            json!({"model": "claude", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"}
            ]}),
            json!({"model": "t", "max_tokens": 4096, "system": "Be brief.\n\nUse French.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}),
        ),
        (
            "consecutive same-role messages merge",
            json!({"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"}
            ]}),
            json!({"model": "t", "max_tokens": 10, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
                {"role": "user", "content": [{"type": "text", "text": "e"}]}
            ]}),
        ),
        (
            "parallel tool calls and their results, merged with the next user text",
            json!({"model": "m", "max_completion_tokens": 7, "max_tokens": 99, "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
                {"role": "user", "content": "thanks"}
            ]}),
            json!({"model": "t", "max_tokens": 7, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "w", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2"},
                    {"type": "text", "text": "thanks"}
                ]}
            ]}),
        ),
        (
            "images from data and https URLs",
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
            ]}]}),
            json!({"model": "t", "max_tokens": 4096, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]}]}),
        ),
        (
            "empty content is dropped, not sent as an empty block",
            json!({"model": "m", "messages": [
                {"role": "system", "content": ""},
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "y"}]}
            ]}),
            json!({"model": "t", "max_tokens": 4096, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}
            ]}),
        ),
        (
            "tools, forced tool, no parallel calls, sampling, stop, stream, user",
            json!({"model": "m", "stream": true, "temperature": 1.7, "top_p": 0.5,
                "stop": ["END", ""], "user": "u-1", "seed": 3, "parallel_tool_calls": false,
                "tools": [
                    {"type": "function", "function": {"name": "w", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                    {"type": "function", "function": {"name": "now"}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "w"}},
                "messages": [{"role": "user", "content": "go"}]}),
            json!({"model": "t", "max_tokens": 4096, "stream": true, "temperature": 1.0,
                "top_p": 0.5, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
                "tools": [
                    {"name": "w", "description": "Weather",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "now", "input_schema": {"type": "object", "properties": {}}}
                ],
                "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": true},
                "messages": [{"role": "user", "content": [{"type": "text", "text": "go"}]}]}),
        ),
    ];
    for (name, openai, want) in cases {
        let got = request::translate(&req(openai), "t").unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn tool_choice_modes() {
    let tools = json!([{"type": "function", "function": {"name": "w"}}]);
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (json!(null), Value::Null),
    ] {
        let mut body = json!({"model": "m", "tools": tools,
            "messages": [{"role": "user", "content": "x"}]});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        let got = request::translate(&req(body), "t").unwrap();
        assert_eq!(got.get("tool_choice").cloned().unwrap_or(Value::Null), want);
    }
    // No tools, no tool_choice: Anthropic refuses a choice without tools.
    let got = request::translate(
        &req(json!({"model": "m", "tool_choice": "auto",
            "messages": [{"role": "user", "content": "x"}]})),
        "t",
    )
    .unwrap();
    assert!(got.get("tool_choice").is_none());
}

#[test]
fn untranslatable_requests_are_client_errors() {
    let host = HostId::new("anthropic-us").unwrap();
    for body in [
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "w", "arguments": "not json"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
    ] {
        let err = request::translate(&req(body.clone()), "t").unwrap_err();
        assert!(!err.retryable(), "{body}");
        let (status, message, _) = err.client_facing(&host);
        assert_eq!(status, 400, "{body}");
        assert!(
            message.contains("Anthropic") || message.contains("URL"),
            "{message}"
        );
    }
}

// --------------------------------------------------------------- responses

#[test]
fn every_stop_reason_maps_to_a_finish_reason() {
    for (stop, want) in [
        (json!("end_turn"), "stop"),
        (json!("max_tokens"), "length"),
        (json!("stop_sequence"), "stop"),
        (json!("tool_use"), "tool_calls"),
        (json!("refusal"), "content_filter"),
        (json!("pause_turn"), "stop"),
        (json!(null), "stop"),
    ] {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
            "content": [{"type": "text", "text": "x"}], "stop_reason": stop,
            "usage": {"input_tokens": 1, "output_tokens": 1}});
        let (out, _) = response::translate(body.to_string().as_bytes(), 5).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], want, "{stop}");
    }
}

#[test]
fn responses_translate_to_golden_chat_completions() {
    let cases: Vec<(&str, Value, Value, Usage)> = vec![
        (
            "text blocks joined",
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "Hé "}, {"type": "thinking", "thinking": "hm"},
                    {"type": "text", "text": "😀"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 3,
                    "cache_read_input_tokens": 5, "cache_creation_input_tokens": 1}}),
            json!({"id": "msg_1", "object": "chat.completion", "created": 5, "model": "claude-x",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hé 😀", "refusal": null}}],
                "usage": {"prompt_tokens": 16, "completion_tokens": 3, "total_tokens": 19}}),
            Usage {
                prompt_tokens: 16,
                completion_tokens: 3,
                total_tokens: 19,
            },
        ),
        (
            "parallel tool calls keep their ids; content null",
            json!({"id": "msg_2", "model": "c", "stop_reason": "tool_use",
                "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "w", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}
                ],
                "usage": {"input_tokens": 2, "output_tokens": 4}}),
            json!({"id": "msg_2", "object": "chat.completion", "created": 5, "model": "c",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                        {"id": "toolu_a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "toolu_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}}),
            Usage {
                prompt_tokens: 2,
                completion_tokens: 4,
                total_tokens: 6,
            },
        ),
        (
            "empty content",
            json!({"id": "msg_3", "model": "c", "content": [], "stop_reason": "max_tokens",
                "usage": {"input_tokens": 2, "output_tokens": 0}}),
            json!({"id": "msg_3", "object": "chat.completion", "created": 5, "model": "c",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "length",
                    "message": {"role": "assistant", "content": "", "refusal": null}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 0, "total_tokens": 2}}),
            Usage {
                prompt_tokens: 2,
                completion_tokens: 0,
                total_tokens: 2,
            },
        ),
    ];
    for (name, anthropic, want, want_usage) in cases {
        let (body, usage) = response::translate(anthropic.to_string().as_bytes(), 5).unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(usage, want_usage, "{name}");
    }
    assert!(matches!(
        response::translate(b"<html>", 0),
        Err(UpstreamError::Protocol(_))
    ));
}

#[test]
fn error_bodies_keep_message_and_type() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(
        parse_error_body(body),
        (Some("Overloaded".into()), Some("overloaded_error".into()))
    );
    assert_eq!(parse_error_body(b"<html>502</html>"), (None, None));
}

// ------------------------------------------------------------------ stream

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        let kind = e["type"].as_str().unwrap_or("x");
        out.extend_from_slice(format!("event: {kind}\ndata: {e}\n\n").as_bytes());
    }
    out
}

async fn run(pieces: Vec<Vec<u8>>, forward_usage: bool) -> Vec<Result<StreamEvent, UpstreamError>> {
    let body = futures_util::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))));
    stream::decode(
        body,
        forward_usage,
        far(),
        Some(Secret::new("sk-ant-secret")),
    )
    .collect()
    .await
}

/// Chunks as JSON with the volatile `created` removed, and usage events.
fn simplify(events: Vec<Result<StreamEvent, UpstreamError>>) -> Vec<Result<Value, UpstreamError>> {
    events
        .into_iter()
        .map(|e| {
            e.map(|e| match e {
                StreamEvent::Chunk(b) => {
                    let mut v: Value = serde_json::from_slice(&b).unwrap();
                    assert_eq!(v["object"], "chat.completion.chunk");
                    v.as_object_mut().unwrap().remove("created");
                    v.as_object_mut().unwrap().remove("object");
                    v
                }
                StreamEvent::Usage(u) => json!({"usage_event": u}),
            })
        })
        .collect()
}

fn full_stream() -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-x", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hé😀"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "w", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ]
}

fn golden_chunks(with_usage_chunk: bool) -> Vec<Result<Value, UpstreamError>> {
    let c = |delta: Value, finish: Value| {
        Ok(json!({"id": "msg_1", "model": "claude-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
    };
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42});
    let mut out = vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Hé😀"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
            "function": {"name": "w", "arguments": ""}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function",
            "function": {"name": "now", "arguments": ""}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        Ok(json!({"usage_event": usage})),
    ];
    if with_usage_chunk {
        out.push(Ok(
            json!({"id": "msg_1", "model": "claude-x", "choices": [], "usage": usage}),
        ));
    }
    out
}

#[tokio::test]
async fn a_stream_translates_to_golden_chunks_however_it_is_cut() {
    let bytes = sse(&full_stream());
    // Every cut point, so events, lines and the multi-byte `é` and `😀`
    // are split across reads.
    for cut in 0..bytes.len() {
        let pieces = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
        assert_eq!(
            simplify(run(pieces, false).await),
            golden_chunks(false),
            "cut {cut}"
        );
    }
    let one_byte = bytes.iter().map(|b| vec![*b]).collect();
    assert_eq!(simplify(run(one_byte, true).await), golden_chunks(true));
}

#[tokio::test]
async fn every_stop_reason_reaches_the_final_chunk() {
    for (stop, want) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let events = [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}}),
            json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 2}}),
            json!({"type": "message_stop"}),
        ];
        let got = simplify(run(vec![sse(&events)], false).await);
        assert_eq!(got.len(), 3, "{stop}");
        assert_eq!(
            got[1].as_ref().unwrap()["choices"][0]["finish_reason"],
            want
        );
    }
}

#[tokio::test]
async fn stream_errors_end_the_stream() {
    let start = json!({"type": "message_start", "message": {"id": "m", "model": "c"}});
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let got = run(
        vec![sse(&[
            start.clone(),
            overloaded,
            json!({"type": "message_stop"}),
        ])],
        false,
    )
    .await;
    assert_eq!(got.len(), 2);
    let err = got[1].as_ref().unwrap_err();
    assert!(err.retryable(), "{err:?}");
    assert!(matches!(err, UpstreamError::Status { status: 529, .. }));

    let other = json!({"type": "error", "error": {"type": "api_error",
        "message": "boom at https://internal.example with sk-ant-secret"}});
    let got = run(vec![sse(&[start.clone(), other])], false).await;
    match &got[1] {
        Err(UpstreamError::InStream { message, code }) => {
            assert!(
                !message.contains("internal") && !message.contains("sk-ant-secret"),
                "{message}"
            );
            assert_eq!(code.as_deref(), Some("api_error"));
        }
        other => panic!("{other:?}"),
    }

    // No message_stop: truncated, whatever the last event was.
    let got = run(vec![sse(std::slice::from_ref(&start))], false).await;
    assert_eq!(got.last(), Some(&Err(UpstreamError::Truncated)));

    let got = run(vec![b"data: {not json\n\n".to_vec()], false).await;
    assert!(
        matches!(got[..], [Err(UpstreamError::Protocol(_))]),
        "{got:?}"
    );
}

#[tokio::test]
async fn the_deadline_ends_a_stalled_stream() {
    let first = futures_util::stream::iter(vec![Ok(Bytes::from(sse(&full_stream()[..3])))]);
    let body = first.chain(futures_util::stream::pending());
    let got: Vec<_> = stream::decode(
        body,
        false,
        Instant::now() + Duration::from_millis(50),
        None,
    )
    .collect()
    .await;
    assert!(
        matches!(got.last(), Some(Err(UpstreamError::Timeout { .. }))),
        "{got:?}"
    );
}

/// Runs the decoder to its end on a small runtime; finite input must end.
fn decode_all(pieces: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, UpstreamError>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(run(pieces, false))
}

fn ends_in_one_error(got: &[Result<StreamEvent, UpstreamError>]) -> bool {
    let errors = got.iter().filter(|e| e.is_err()).count();
    errors == 1 && got.last().is_some_and(Result::is_err)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_end_in_an_error(pieces in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let got = decode_all(pieces);
        prop_assert!(ends_in_one_error(&got), "{got:?}");
    }

    #[test]
    fn truncated_streams_end_in_an_error(cut in 0usize..10_000, split in 0usize..10_000) {
        let bytes = sse(&full_stream());
        let cut = cut % bytes.len();
        let split = split % (cut + 1);
        let got = decode_all(vec![bytes[..split].to_vec(), bytes[split..cut].to_vec()]);
        prop_assert!(ends_in_one_error(&got), "cut {cut}: {got:?}");
    }
}

// ------------------------------------------------------------ the provider

fn provider(base: &str, key: &str) -> Anthropic {
    let http = crate::http_client(&treaty_config::UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap();
    let endpoint = Endpoint {
        base_url: base.into(),
        api_key: Some(Secret::new(key)),
        azure: None,
        gemini: None,
        aws: None,
    };
    Anthropic::new(HostId::new("anthropic-us").unwrap(), &endpoint, http).unwrap()
}

fn call() -> CallOptions {
    CallOptions {
        first_byte_timeout: Duration::from_secs(5),
        deadline: Instant::now() + Duration::from_secs(10),
        request_id: "req-1".into(),
        traceparent: None,
    }
}

#[test]
fn urls_and_headers() {
    for base in ["https://api.anthropic.com", "https://api.anthropic.com/v1/"] {
        let p = provider(base, "sk-ant-1");
        let request = p.request(b"{}".to_vec(), true, &call()).build().unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        let h = request.headers();
        assert_eq!(h["x-api-key"], "sk-ant-1");
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["accept"], "text/event-stream");
        assert_eq!(p.models.as_str(), "https://api.anthropic.com/v1/models");
    }
    let text = format!(
        "{:?}",
        provider("https://internal.example", "sk-ant-secret")
    );
    assert!(
        !text.contains("sk-ant") && !text.contains("internal"),
        "{text}"
    );
}

#[tokio::test]
async fn embeddings_are_refused_without_a_call() {
    let p = provider("http://127.0.0.1:9", "k");
    let req: treaty_openai::EmbeddingsRequest =
        serde_json::from_value(json!({"model": "m", "input": "x"})).unwrap();
    let deployment = ModelDeployment {
        name: "m".into(),
        target: "m".into(),
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
    };
    let err = p.embeddings(&req, &deployment, &call()).await.unwrap_err();
    let (status, message, _) = err.client_facing(p.host_id());
    assert_eq!(status, 400);
    assert!(message.contains("embeddings"), "{message}");
}

// ------------------------------------------ real exchanges with the emulator
// These need the emulator's `/v1/messages` route (crates/treaty-emulator/src/anthropic.rs).

const KEY: &str = "emulator-key-1";

async fn emulator() -> treaty_emulator::EmulatorHandle {
    let config = treaty_emulator::EmulatorConfig {
        api_key: Some(KEY.into()),
        ..Default::default()
    };
    treaty_emulator::Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn deployment() -> ModelDeployment {
    ModelDeployment {
        name: "claude".into(),
        target: "claude-sonnet".into(),
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
    }
}

#[tokio::test]
async fn emulator_round_trip_plain_stream_tools_and_faults() {
    let emu = emulator().await;
    let p = provider(&format!("{}/anthropic-us", emu.url()), KEY);
    p.probe(Duration::from_secs(5)).await.unwrap();

    let plain = req(json!({"model": "claude", "messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "Hello é"}]}));
    let ChatReply::Full { body, usage } = p.chat(&plain, &deployment(), &call()).await.unwrap()
    else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Emulated reply from anthropic-us (claude-sonnet): Hello é"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(usage.unwrap().completion_tokens > 0);

    let mut streamed = plain.clone();
    streamed.stream = Some(true);
    let ChatReply::Stream(s) = p.chat(&streamed, &deployment(), &call()).await.unwrap() else {
        panic!("expected a stream");
    };
    let events: Vec<_> = s.collect().await;
    let mut text = String::new();
    let mut finish = Value::Null;
    for e in &events {
        if let Ok(StreamEvent::Chunk(b)) = e {
            let v: Value = serde_json::from_slice(b).unwrap();
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if !v["choices"][0]["finish_reason"].is_null() {
                finish = v["choices"][0]["finish_reason"].clone();
            }
        }
    }
    assert_eq!(
        text,
        "Emulated reply from anthropic-us (claude-sonnet): Hello é"
    );
    assert_eq!(finish, "stop");
    assert!(
        matches!(events.last(), Some(Ok(StreamEvent::Usage(_)))),
        "{events:?}"
    );

    let tools = req(
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "weather"}],
        "tools": [{"type": "function", "function": {"name": "w",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}),
    );
    let ChatReply::Stream(s) = p.chat(&tools, &deployment(), &call()).await.unwrap() else {
        panic!("expected a stream");
    };
    let mut args = String::new();
    let mut id = None;
    for e in s.collect::<Vec<_>>().await {
        if let Ok(StreamEvent::Chunk(b)) = e {
            let v: Value = serde_json::from_slice(&b).unwrap();
            let call = &v["choices"][0]["delta"]["tool_calls"][0];
            if let Some(i) = call["id"].as_str() {
                id = Some(i.to_owned());
                assert_eq!(call["function"]["name"], "w");
            }
            if let Some(a) = call["function"]["arguments"].as_str() {
                args.push_str(a);
            }
        }
    }
    let id = id.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "emulated"})
    );

    // The tool result goes back and is echoed.
    let round = req(json!({"model": "claude", "messages": [
        {"role": "user", "content": "weather"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "w", "arguments": args}}]},
        {"role": "tool", "tool_call_id": id, "content": "sunny"}]}));
    let ChatReply::Full { body, .. } = p.chat(&round, &deployment(), &call()).await.unwrap() else {
        panic!("expected a full reply");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Emulated reply from anthropic-us (claude-sonnet): tool results: sunny"
    );

    // Faults: overloaded and rate limited are retryable, a bad key is not.
    for (spec, status) in [("status=529", 529), ("status=429,retry_after=2", 429)] {
        emu.set_fault("anthropic-us", spec, Some(1)).unwrap();
        let err = p.chat(&plain, &deployment(), &call()).await.unwrap_err();
        assert!(err.retryable(), "{err:?}");
        assert!(
            matches!(err, UpstreamError::Status { status: s, .. } if s == status),
            "{err:?}"
        );
    }
    let bad = provider(&format!("{}/anthropic-us", emu.url()), "wrong-key");
    let err = bad.chat(&plain, &deployment(), &call()).await.unwrap_err();
    let (status, message, _) = err.client_facing(bad.host_id());
    assert_eq!(status, 403);
    assert!(!message.contains("wrong-key"));

    emu.set_fault("anthropic-us", "truncate=1", Some(1))
        .unwrap();
    let ChatReply::Stream(s) = p.chat(&streamed, &deployment(), &call()).await.unwrap() else {
        panic!("expected a stream");
    };
    let events: Vec<_> = s.collect().await;
    assert!(events.last().unwrap().is_err(), "{events:?}");
    emu.shutdown().await;
}
