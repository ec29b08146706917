//! Golden translation tests both ways, the event-stream decoder under
//! arbitrary and truncated input, error mapping, signing and credential
//! sources, and exchanges with the emulator that need crate internals
//! (web identity through its STS). Plain provider-against-emulator tests
//! are in `tests/bedrock.rs`.

use std::time::{Duration, SystemTime};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as FrameValue, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use treaty_config::{AwsCredentials, AwsSettings, Endpoint, MapEnv, Secret};
use treaty_domain::{HostId, ModelDeployment};
use treaty_openai::{ChatCompletionRequest, Usage};

use super::credentials::{CredentialChain, ini_section, xml_value};
use super::embeddings::{Family, family};
use super::*;
use crate::StreamEvent;

fn req(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

// ---------------------------------------------------------------- requests

#[test]
fn requests_translate_to_golden_converse_bodies() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "system and developer become system blocks; no inferenceConfig by default",
            json!({"model": "m", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"}
            ]}),
            json!({"system": [{"text": "Be brief."}, {"text": "Use French."}],
                "messages": [{"role": "user", "content": [{"text": "Hi"}]}]}),
        ),
        (
            "consecutive same-role messages merge",
            json!({"model": "m", "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"}
            ]}),
            json!({"messages": [
                {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
                {"role": "assistant", "content": [{"text": "c"}, {"text": "d"}]},
                {"role": "user", "content": [{"text": "e"}]}
            ]}),
        ),
        (
            "parallel tool calls; their results merge into one user message",
            json!({"model": "m", "max_completion_tokens": 7, "max_tokens": 99,
                "tools": [{"type": "function", "function": {"name": "w"}}],
                "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "tooluse_2", "type": "function", "function": {"name": "w", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "tooluse_2", "content": "{\"temp\": 21}"},
                {"role": "user", "content": "thanks"}
            ]}),
            json!({"inferenceConfig": {"maxTokens": 7},
                "toolConfig": {"tools": [{"toolSpec": {"name": "w",
                    "inputSchema": {"json": {"type": "object", "properties": {}}}}}]},
                "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {"role": "assistant", "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "w", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "w", "input": {}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}},
                    {"toolResult": {"toolUseId": "tooluse_2", "content": [{"json": {"temp": 21}}]}},
                    {"text": "thanks"}
                ]}
            ]}),
        ),
        (
            "images from data URLs",
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}}
            ]}]}),
            json!({"messages": [{"role": "user", "content": [
                {"text": "what is this"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
            ]}]}),
        ),
        (
            "empty content is dropped, not sent as a blank block",
            json!({"model": "m", "messages": [
                {"role": "system", "content": ""},
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "y"}]}
            ]}),
            json!({"messages": [
                {"role": "user", "content": [{"text": "x"}, {"text": "y"}]}
            ]}),
        ),
        (
            "tools, forced tool, sampling, stop; stream, seed and user are not body fields",
            json!({"model": "m", "stream": true, "temperature": 0.5, "top_p": 0.25,
                "stop": ["END", ""], "user": "u-1", "seed": 3, "parallel_tool_calls": false,
                "tools": [
                    {"type": "function", "function": {"name": "w", "description": "Weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                    {"type": "function", "function": {"name": "now"}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "w"}},
                "messages": [{"role": "user", "content": "go"}]}),
            json!({"inferenceConfig": {"temperature": 0.5, "topP": 0.25, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [
                        {"toolSpec": {"name": "w", "description": "Weather",
                            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                        {"toolSpec": {"name": "now",
                            "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                    ],
                    "toolChoice": {"tool": {"name": "w"}}},
                "messages": [{"role": "user", "content": [{"text": "go"}]}]}),
        ),
        (
            "tool history without tools in the request: minimal specs for Bedrock",
            json!({"model": "m", "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": ""}
            ]}),
            json!({"toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {"type": "object"}}}}]},
                "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "w", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": []}}]}
            ]}),
        ),
    ];
    for (name, openai, want) in cases {
        let got = request::translate(&req(openai)).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn tool_choice_modes() {
    let tools = json!([{"type": "function", "function": {"name": "w"}}]);
    for (choice, want) in [
        (json!("auto"), json!({"auto": {}})),
        (json!("required"), json!({"any": {}})),
        (
            json!({"type": "function", "function": {"name": "w"}}),
            json!({"tool": {"name": "w"}}),
        ),
        (json!(null), Value::Null),
    ] {
        let mut body = json!({"model": "m", "tools": tools,
            "messages": [{"role": "user", "content": "x"}]});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        let got = request::translate(&req(body)).unwrap();
        assert_eq!(
            got["toolConfig"]
                .get("toolChoice")
                .cloned()
                .unwrap_or(Value::Null),
            want
        );
    }
    // "none": the tools are left out, so the model cannot call them...
    let got = request::translate(&req(json!({"model": "m", "tools": tools,
        "tool_choice": "none", "messages": [{"role": "user", "content": "x"}]})))
    .unwrap();
    assert!(got.get("toolConfig").is_none(), "{got}");
    // ...unless the history holds tool calls: Bedrock then needs the tools.
    let got = request::translate(&req(json!({"model": "m", "tools": tools,
        "tool_choice": "none", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"}]})))
    .unwrap();
    assert_eq!(got["toolConfig"]["tools"][0]["toolSpec"]["name"], "w");
    assert!(got["toolConfig"].get("toolChoice").is_none());
}

#[test]
fn untranslatable_requests_are_client_errors() {
    let host = HostId::new("bedrock-us").unwrap();
    for body in [
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "w", "arguments": "not json"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]}),
    ] {
        let err = request::translate(&req(body.clone())).unwrap_err();
        assert!(!err.retryable(), "{body}");
        let (status, message, _) = err.client_facing(&host);
        assert_eq!(status, 400, "{body}");
        assert!(
            message.contains("Bedrock") || message.contains("URL"),
            "{message}"
        );
    }
    let err = request::translate(&req(json!({"model": "m", "messages": [{"role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}))).unwrap_err();
    assert!(err.to_string().contains("base64 data URL"), "{err}");
}

// --------------------------------------------------------------- responses

fn converse_reply(stop: &str) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
        "stopReason": stop, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 10}})
}

const STOP_REASONS: [(&str, &str); 9] = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("tool_use", "tool_calls"),
    ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"),
    ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"),
    ("malformed_model_output", "stop"),
    ("some_future_reason", "stop"),
];

#[test]
fn every_stop_reason_maps_to_a_finish_reason() {
    for (stop, want) in STOP_REASONS {
        let body = converse_reply(stop).to_string();
        let (out, _) = response::translate(body.as_bytes(), "chatcmpl-1", "m", 5).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], want, "{stop}");
    }
}

#[test]
fn responses_translate_to_golden_chat_completions() {
    let cases: Vec<(&str, Value, Value, Usage)> = vec![
        (
            "text blocks joined; cache reads are prompt tokens and cached_tokens",
            json!({"output": {"message": {"role": "assistant", "content": [
                    {"text": "Hé "}, {"reasoningContent": {"reasoningText": {"text": "hm"}}}, {"text": "😀"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 19,
                    "cacheReadInputTokens": 5, "cacheWriteInputTokens": 1}}),
            json!({"id": "chatcmpl-r1", "object": "chat.completion", "created": 5, "model": "anthropic.claude-v2:1",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hé 😀", "refusal": null}}],
                "usage": {"prompt_tokens": 16, "completion_tokens": 3, "total_tokens": 19,
                    "prompt_tokens_details": {"cached_tokens": 5}}}),
            Usage {
                prompt_tokens: 16,
                completion_tokens: 3,
                total_tokens: 19,
            },
        ),
        (
            "parallel tool calls keep their ids; content null",
            json!({"output": {"message": {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "tooluse_a", "name": "w", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_b", "name": "now", "input": {}}}]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 2, "outputTokens": 4, "totalTokens": 6}}),
            json!({"id": "chatcmpl-r1", "object": "chat.completion", "created": 5, "model": "anthropic.claude-v2:1",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                        {"id": "tooluse_a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "tooluse_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}}),
            Usage {
                prompt_tokens: 2,
                completion_tokens: 4,
                total_tokens: 6,
            },
        ),
        (
            "empty content, no usage",
            json!({"output": {"message": {"role": "assistant", "content": []}},
                "stopReason": "max_tokens"}),
            json!({"id": "chatcmpl-r1", "object": "chat.completion", "created": 5, "model": "anthropic.claude-v2:1",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "length",
                    "message": {"role": "assistant", "content": "", "refusal": null}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}),
            Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
            },
        ),
    ];
    for (name, bedrock, want, want_usage) in cases {
        let (body, usage) = response::translate(
            bedrock.to_string().as_bytes(),
            "chatcmpl-r1",
            "anthropic.claude-v2:1",
            5,
        )
        .unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(usage, want_usage, "{name}");
    }
    assert!(matches!(
        response::translate(b"<html>", "i", "m", 0),
        Err(UpstreamError::Protocol(_))
    ));
}

// ------------------------------------------------------------------ errors

#[test]
fn bedrock_errors_map_to_upstream_errors() {
    let host = HostId::new("bedrock-us").unwrap();
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned();
    let err = |status: u16, kind: Option<&str>, body: &str| {
        let mut headers = http::HeaderMap::new();
        if let Some(kind) = kind {
            headers.insert(
                "x-amzn-errortype",
                http::HeaderValue::from_str(kind).unwrap(),
            );
        }
        error_from_parts(
            &host,
            status,
            &headers,
            body.as_bytes(),
            std::slice::from_ref(&secret),
        )
    };
    let cases = [
        (
            err(
                429,
                Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                r#"{"message":"Too many requests, please wait before trying again."}"#,
            ),
            429,
            true,
            "ThrottlingException",
        ),
        (
            err(
                503,
                Some("ServiceUnavailableException"),
                r#"{"message":"x"}"#,
            ),
            503,
            true,
            "ServiceUnavailableException",
        ),
        // Bedrock answers ModelNotReady with 429; it is an outage, not a quota.
        (
            err(429, Some("ModelNotReadyException"), r#"{"message":"x"}"#),
            503,
            true,
            "ModelNotReadyException",
        ),
        (
            err(400, Some("ValidationException"), r#"{"message":"bad"}"#),
            400,
            false,
            "ValidationException",
        ),
        (
            err(403, Some("AccessDeniedException"), r#"{"Message":"no"}"#),
            403,
            false,
            "AccessDeniedException",
        ),
        (
            err(
                400,
                None,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            ),
            403,
            false,
            "UnrecognizedClientException",
        ),
    ];
    for (e, status, retryable, code) in cases {
        let UpstreamError::Status {
            status: s, code: c, ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*s, status, "{e:?}");
        assert_eq!(c.as_deref(), Some(code), "{e:?}");
        assert_eq!(e.retryable(), retryable, "{e:?}");
    }
    let e = err(
        403,
        Some("InvalidSignatureException"),
        &format!(
            r#"{{"message":"The request signature we calculated does not match; key {secret}"}}"#
        ),
    );
    let text = e.to_string();
    assert!(text.contains("bedrock-us"), "{text}");
    assert!(!text.contains("wJalr"), "{text}");
    let (status, message, code) = e.client_facing(&host);
    assert_eq!((status, code), (403, "upstream_auth_failed"));
    assert!(message.contains("bedrock-us"), "{message}");
}

// ------------------------------------------------------------------ stream

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn frame(headers: &[(&'static str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut message = Message::new(Bytes::copy_from_slice(payload));
    for (name, value) in headers {
        message = message.add_header(Header::new(
            *name,
            FrameValue::String((*value).to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        &[
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

fn full_stream() -> Vec<Vec<u8>> {
    vec![
        event("messageStart", json!({"role": "assistant", "p": "abcd"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hé😀"}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": " ok"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "w"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": ""}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "now"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42},
                "metrics": {"latencyMs": 5}}),
        ),
    ]
}

async fn run(pieces: Vec<Vec<u8>>, forward_usage: bool) -> Vec<Result<StreamEvent, UpstreamError>> {
    let body = futures_util::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))));
    stream::decode(
        body,
        forward_usage,
        far(),
        "chatcmpl-r1".into(),
        "m".into(),
        vec!["stream-secret-key".into()],
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

fn golden_chunks(with_usage_chunk: bool) -> Vec<Result<Value, UpstreamError>> {
    let c = |delta: Value, finish: Value| {
        Ok(json!({"id": "chatcmpl-r1", "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
    };
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42});
    let mut out = vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Hé😀"}), Value::Null),
        c(json!({"content": " ok"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "tooluse_a", "type": "function",
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
            json!({"tool_calls": [{"index": 1, "id": "tooluse_b", "type": "function",
            "function": {"name": "now", "arguments": ""}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        Ok(json!({"usage_event": usage})),
    ];
    if with_usage_chunk {
        out.push(Ok(
            json!({"id": "chatcmpl-r1", "model": "m", "choices": [], "usage": usage}),
        ));
    }
    out
}

#[tokio::test]
async fn a_stream_translates_to_golden_chunks_however_it_is_cut() {
    let bytes = full_stream().concat();
    // Every cut point: preludes, headers, CRCs and the multi-byte `é` and
    // `😀` are split across reads.
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
    for (stop, want) in STOP_REASONS {
        let frames = [
            event("messageStart", json!({"role": "assistant"})),
            event("messageStop", json!({ "stopReason": stop })),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}}),
            ),
        ];
        let got = simplify(run(vec![frames.concat()], false).await);
        assert_eq!(got.len(), 3, "{stop}: {got:?}");
        assert_eq!(
            got[1].as_ref().unwrap()["choices"][0]["finish_reason"],
            want
        );
        assert_eq!(
            got[2].as_ref().unwrap()["usage_event"]["total_tokens"],
            3,
            "{stop}"
        );
    }
    // The end of the body after messageStop, without metadata, is a clean
    // end (no usage to report).
    let frames = [
        event("messageStart", json!({"role": "assistant"})),
        event("messageStop", json!({"stopReason": "end_turn"})),
    ];
    let got = run(vec![frames.concat()], false).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(Result::is_ok));
}

#[tokio::test]
async fn exceptions_crc_errors_and_truncation_end_the_stream() {
    let start = event("messageStart", json!({"role": "assistant"}));
    let got = run(
        vec![
            start.clone(),
            exception("throttlingException", "Too many tokens, please wait."),
            event("messageStop", json!({"stopReason": "end_turn"})),
        ],
        false,
    )
    .await;
    assert_eq!(got.len(), 2, "{got:?}");
    let err = got[1].as_ref().unwrap_err();
    assert!(err.retryable(), "{err:?}");
    assert!(matches!(err, UpstreamError::Status { status: 429, .. }));

    let got = run(
        vec![
            start.clone(),
            exception(
                "modelStreamErrorException",
                "boom at https://internal.example with stream-secret-key",
            ),
        ],
        false,
    )
    .await;
    match &got[1] {
        Err(UpstreamError::InStream { message, code }) => {
            assert!(
                !message.contains("internal") && !message.contains("stream-secret-key"),
                "{message}"
            );
            assert_eq!(code.as_deref(), Some("modelStreamErrorException"));
        }
        other => panic!("{other:?}"),
    }

    // A flipped bit in a frame: its CRC no longer matches.
    let mut corrupt = event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "x"}}),
    );
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x01;
    let got = run(vec![start.clone(), corrupt], false).await;
    assert!(
        matches!(got.last(), Some(Err(UpstreamError::Protocol(m))) if m.contains("checksum")),
        "{got:?}"
    );

    // No messageStop: truncated, whatever the last frame was.
    let got = run(vec![start.clone()], false).await;
    assert_eq!(got.last(), Some(&Err(UpstreamError::Truncated)));
    // Half a frame: truncated too.
    let got = run(vec![start[..start.len() / 2].to_vec()], false).await;
    assert_eq!(got, vec![Err(UpstreamError::Truncated)]);
    // A length no frame has.
    let got = run(vec![vec![0xff; 32]], false).await;
    assert!(
        matches!(got[..], [Err(UpstreamError::Protocol(_))]),
        "{got:?}"
    );
}

#[tokio::test]
async fn the_deadline_ends_a_stalled_stream() {
    let first = futures_util::stream::iter(vec![Ok(Bytes::from(full_stream()[0].clone()))]);
    let body = first.chain(futures_util::stream::pending());
    let got: Vec<_> = stream::decode(
        body,
        false,
        Instant::now() + Duration::from_millis(50),
        "i".into(),
        "m".into(),
        vec![],
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
    fn frames_with_arbitrary_bytes_inside_end_in_an_error_or_cleanly(
        flips in proptest::collection::vec((0usize..10_000, any::<u8>()), 1..4)) {
        let mut bytes = full_stream().concat();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] ^= value | 1;
        }
        let got = decode_all(vec![bytes]);
        let errors = got.iter().filter(|e| e.is_err()).count();
        prop_assert!(errors <= 1 && (errors == 0 || got.last().is_some_and(Result::is_err)), "{got:?}");
    }

    #[test]
    fn truncated_streams_end_in_an_error(cut in 0usize..10_000, split in 0usize..10_000) {
        let bytes = full_stream().concat();
        // Everything up to the end of messageStop's frame is incomplete.
        let complete_at = bytes.len() - full_stream().last().map_or(0, Vec::len);
        let cut = cut % complete_at;
        let split = split % (cut + 1);
        let got = decode_all(vec![bytes[..split].to_vec(), bytes[split..cut].to_vec()]);
        prop_assert!(ends_in_one_error(&got), "cut {cut}: {got:?}");
    }
}

// ------------------------------------------------- embeddings, URLs, signing

#[test]
fn embedding_bodies_by_model_family() {
    let r: treaty_openai::EmbeddingsRequest = serde_json::from_value(
        json!({"model": "e", "input": ["a", "b"], "dimensions": 256, "input_type": "search_query"}),
    )
    .unwrap();
    assert_eq!(
        family("amazon.titan-embed-text-v2:0"),
        Some(Family::Titan { v2: true })
    );
    assert_eq!(
        family("amazon.titan-embed-text-v1"),
        Some(Family::Titan { v2: false })
    );
    assert_eq!(family("us.cohere.embed-english-v3"), Some(Family::Cohere));
    assert_eq!(family("anthropic.claude"), None);
    assert_eq!(
        embeddings::body(Family::Titan { v2: true }, &["a"], &r).unwrap(),
        json!({"inputText": "a", "normalize": true, "dimensions": 256})
    );
    assert!(embeddings::body(Family::Titan { v2: false }, &["a"], &r).is_err());
    assert_eq!(
        embeddings::body(Family::Cohere, &["a", "b"], &r).unwrap(),
        json!({"texts": ["a", "b"], "input_type": "search_query", "output_dimension": 256})
    );
    let (v, t) = embeddings::parse_reply(
        Family::Titan { v2: true },
        br#"{"embedding":[0.5,-0.5],"inputTextTokenCount":3}"#,
        None,
    )
    .unwrap();
    assert_eq!((v, t), (vec![vec![0.5, -0.5]], 3));
    let (v, t) = embeddings::parse_reply(
        Family::Cohere,
        br#"{"embeddings":{"float":[[1.0],[2.0]]},"id":"x"}"#,
        Some(7),
    )
    .unwrap();
    assert_eq!((v, t), (vec![vec![1.0], vec![2.0]], 7));
    let body = embeddings::render(&[vec![1.0, 0.0]], "m", 2, true).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["data"][0]["embedding"], "AACAPwAAAAA=");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
}

fn settings(credentials: Option<AwsCredentials>) -> AwsSettings {
    AwsSettings {
        region: "us-east-1".into(),
        credentials,
    }
}

fn explicit() -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("session-token-value")),
    }
}

fn endpoint(base: &str, aws: AwsSettings) -> Endpoint {
    Endpoint {
        base_url: base.into(),
        api_key: None,
        azure: None,
        gemini: None,
        aws: Some(aws),
    }
}

fn http() -> reqwest::Client {
    crate::http_client(&treaty_config::UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
    .unwrap()
}

fn bedrock(base: &str, aws: AwsSettings, env: &MapEnv) -> Bedrock {
    Bedrock::new(
        HostId::new("bedrock-us").unwrap(),
        &endpoint(base, aws),
        Some("anthropic.claude-3-haiku-20240307-v1:0"),
        http(),
        env,
    )
    .unwrap()
}

#[test]
fn model_ids_are_one_encoded_path_segment() {
    let p = bedrock(
        "https://bedrock-runtime.us-east-1.amazonaws.com/",
        settings(Some(explicit())),
        &MapEnv::new(),
    );
    assert_eq!(
        p.url("anthropic.claude-3-5-sonnet-20240620-v1:0", "converse")
            .unwrap()
            .as_str(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(
        p.url(
            "arn:aws:bedrock:us-east-1:123:inference-profile/us.x",
            "converse-stream"
        )
        .unwrap()
        .path(),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/converse-stream"
    );
    let text = format!("{p:?}");
    assert!(
        !text.contains("wJalr") && !text.contains("session-token") && !text.contains("AKID"),
        "{text}"
    );
    assert!(text.contains("config"), "{text}");
}

#[test]
fn signatures_are_sigv4_for_bedrock_and_hide_the_secrets() {
    let creds = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token-value".into()),
        None,
        "test",
    );
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse";
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    let sign_once = || {
        sign::signature_headers("POST", url, &headers, b"{}", &creds, "us-east-1", when).unwrap()
    };
    let signed = sign_once();
    let get = |name: &str| {
        signed
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let auth = get("authorization");
    assert!(auth.is_sensitive());
    let auth = auth.to_str().unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, \
             SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature="
        ),
        "{auth}"
    );
    assert!(!auth.contains("wJalr"));
    assert_eq!(get("x-amz-date"), "20231114T221320Z");
    assert!(get("x-amz-security-token").is_sensitive());
    // Deterministic for the same inputs; a different body, a different one.
    assert_eq!(sign_once(), signed);
    let other =
        sign::signature_headers("POST", url, &headers, b"{ }", &creds, "us-east-1", when).unwrap();
    assert_ne!(other, signed);
}

// ----------------------------------------------------------- credentials

#[test]
fn the_chain_prefers_config_then_environment_then_profile() {
    let host = HostId::new("bedrock-us").unwrap();
    let env = MapEnv::new()
        .with("AWS_ACCESS_KEY_ID", "AKIDENV")
        .with("AWS_SECRET_ACCESS_KEY", "env-secret");
    let chain = CredentialChain::resolve(&host, &settings(Some(explicit())), &env).unwrap();
    assert_eq!(chain.origin(), "config");
    let chain = CredentialChain::resolve(&host, &settings(None), &env).unwrap();
    assert_eq!(chain.origin(), "environment");
    assert_eq!(chain.static_secrets(), ["env-secret"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n\n\
         [ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=ops-secret\naws_session_token = ops-token\n\
         [sso]\nsso_start_url = https://example.awsapps.com/start\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let env = MapEnv::new().with("AWS_SHARED_CREDENTIALS_FILE", path);
    let chain = CredentialChain::resolve(&host, &settings(None), &env).unwrap();
    assert_eq!(chain.origin(), "shared credentials file");
    assert_eq!(chain.static_secrets(), ["default-secret"]);
    let env = env.with("AWS_PROFILE", "ops");
    let chain = CredentialChain::resolve(&host, &settings(None), &env).unwrap();
    assert_eq!(chain.static_secrets(), ["ops-secret", "ops-token"]);

    // A named profile that is unusable is an error naming the profile.
    let env = MapEnv::new()
        .with("AWS_SHARED_CREDENTIALS_FILE", path)
        .with("AWS_PROFILE", "sso");
    let err = CredentialChain::resolve(&host, &settings(None), &env).unwrap_err();
    assert!(err.to_string().contains("\"sso\""), "{err}");
    // Nothing anywhere: the error lists the sources, and names the host.
    let err = CredentialChain::resolve(&host, &settings(None), &MapEnv::new()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("bedrock-us") && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
    assert_eq!(
        ini_section("[a]\nk = v = w\n[b]\nk=x", "a"),
        [("k".to_owned(), "v = w".to_owned())]
    );
    assert_eq!(
        xml_value("<R><Code>A&amp;B</Code></R>", "Code").as_deref(),
        Some("A&B")
    );
}

// ------------------------------------------ real exchanges with the emulator

fn deployment() -> ModelDeployment {
    ModelDeployment {
        name: "claude".into(),
        target: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        input_cost_per_mtok: 0.0,
        output_cost_per_mtok: 0.0,
    }
}

fn call() -> CallOptions {
    CallOptions {
        first_byte_timeout: Duration::from_secs(5),
        deadline: Instant::now() + Duration::from_secs(10),
        request_id: "req-1".into(),
        traceparent: None,
    }
}

#[tokio::test]
async fn web_identity_credentials_come_from_sts_and_sign_requests() {
    let emu = treaty_emulator::Emulator::start(
        treaty_emulator::EmulatorConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJ.web-identity.token\n").unwrap();
    let env = MapEnv::new()
        .with("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap())
        .with("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/treaty")
        .with("AWS_ENDPOINT_URL_STS", &format!("{}/sts", emu.url()));
    let p = bedrock(&format!("{}/bedrock-us", emu.url()), settings(None), &env);
    assert_eq!(p.credentials.origin(), "web identity");
    let plain = req(json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}));
    for _ in 0..2 {
        // The second call reuses the cached temporary credentials.
        let ChatReply::Full { body, .. } = p.chat(&plain, &deployment(), &call()).await.unwrap()
        else {
            panic!("expected a full reply");
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Emulated reply from bedrock-us (anthropic.claude-3-haiku-20240307-v1:0): Hi"
        );
    }

    // A token STS refuses: an auth error that does not quote the token.
    std::fs::write(&token, "invalid").unwrap();
    let p = bedrock(&format!("{}/bedrock-us", emu.url()), settings(None), &env);
    let err = p.chat(&plain, &deployment(), &call()).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Status { status: 403, code: Some(c), .. } if c == "InvalidIdentityToken"),
        "{err:?}"
    );
    assert!(!err.retryable());
    emu.shutdown().await;
}
