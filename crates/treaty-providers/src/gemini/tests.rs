//! Golden translation tests both ways, the schema adapter, error bodies,
//! and the stream decoder under arbitrary and truncated input.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use treaty_config::{Endpoint, GeminiApi, Secret};
use treaty_domain::HostId;
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest, Usage};

use super::request::SKIP_SIGNATURE;
use super::*;
use crate::StreamEvent;

fn req(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

fn translate(body: Value) -> Value {
    request::translate(&req(body), Door::GeminiApi).unwrap()
}

// ---------------------------------------------------------------- requests

#[test]
fn requests_translate_to_golden_generate_content_bodies() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "system and developer become systemInstruction",
            json!({"model": "g", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"}
            ]}),
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
                "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]
            }),
        ),
        (
            "multi-turn: assistant is model, consecutive same-role turns merge",
            json!({"model": "g", "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"}
            ]}),
            json!({"contents": [
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
                {"role": "user", "parts": [{"text": "e"}]}
            ]}),
        ),
        (
            "parallel tool calls; their results merged into one user turn, named by call id",
            json!({"model": "g", "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_2", "content": "{\"time\":\"noon\"}"},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": "thanks"}
            ]}),
            json!({"contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "w", "args": {"city": "Paris"}}, "thoughtSignature": SKIP_SIGNATURE},
                    {"functionCall": {"name": "now", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "now", "response": {"time": "noon"}}},
                    {"functionResponse": {"name": "w", "response": {"result": "sunny"}}},
                    {"text": "thanks"}
                ]}
            ]}),
        ),
        (
            "images and audio from data URLs go inline",
            json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc.png"}}
            ]}]}),
            json!({"contents": [{"role": "user", "parts": [
                {"text": "what is this"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc.png"}}
            ]}]}),
        ),
        (
            "empty content is dropped, not sent as an empty part or turn",
            json!({"model": "g", "messages": [
                {"role": "system", "content": ""},
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": null},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "y"}]}
            ]}),
            json!({"contents": [
                {"role": "user", "parts": [{"text": "x"}, {"text": "y"}]}
            ]}),
        ),
        (
            "tools, forced tool, sampling, stop, n, seed, penalties, JSON schema output",
            json!({"model": "g", "stream": true, "temperature": 1.7, "top_p": 0.5,
                "max_tokens": 99, "max_completion_tokens": 7, "top_k": 40,
                "stop": ["END", ""], "user": "u-1", "seed": 5_000_000_000i64, "n": 2,
                "presence_penalty": 0.5, "frequency_penalty": -0.5, "parallel_tool_calls": false,
                "tools": [
                    {"type": "function", "function": {"name": "w", "description": "Weather",
                        "parameters": {"type": "object", "additionalProperties": false,
                            "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                    {"type": "function", "function": {"name": "now",
                        "parameters": {"type": "object", "properties": {}}}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "w"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true,
                    "schema": {"type": "object", "properties": {"a": {"type": ["integer", "null"]}},
                        "required": ["a"], "additionalProperties": false}}},
                "messages": [{"role": "user", "content": "go"}]}),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "go"}]}],
                "tools": [{"functionDeclarations": [
                    {"name": "w", "description": "Weather", "parameters": {"type": "object",
                        "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                    {"name": "now"}
                ]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}},
                "generationConfig": {
                    "temperature": 1.7f32, "topP": 0.5, "topK": 40, "maxOutputTokens": 7,
                    "stopSequences": ["END"], "candidateCount": 2, "seed": 5_000_000_000i64 % (1i64 << 31),
                    "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "object",
                        "properties": {"a": {"type": "integer", "nullable": true}}, "required": ["a"]}
                }
            }),
        ),
        (
            "tools without a choice send no toolConfig; JSON mode without schema",
            json!({"model": "g", "response_format": {"type": "json_object"},
                "tools": [{"type": "function", "function": {"name": "w"}}],
                "messages": [{"role": "user", "content": "go"}]}),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "go"}]}],
                "tools": [{"functionDeclarations": [{"name": "w"}]}],
                "generationConfig": {"responseMimeType": "application/json"}
            }),
        ),
    ];
    for (name, openai, want) in cases {
        assert_eq!(translate(openai), want, "{name}");
    }
}

#[test]
fn vertex_fetches_image_urls_itself() {
    let body = json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?x=1"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/dog.webp"}}
    ]}]});
    let got = request::translate(&req(body), Door::Vertex).unwrap();
    assert_eq!(
        got["contents"][0]["parts"],
        json!([
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?x=1"}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/dog.webp"}}
        ])
    );
}

#[test]
fn tool_choice_modes() {
    let tools = json!([{"type": "function", "function": {"name": "w"}}]);
    for (choice, want) in [
        (
            json!("auto"),
            json!({"functionCallingConfig": {"mode": "AUTO"}}),
        ),
        (
            json!("required"),
            json!({"functionCallingConfig": {"mode": "ANY"}}),
        ),
        (
            json!("none"),
            json!({"functionCallingConfig": {"mode": "NONE"}}),
        ),
        (json!(null), Value::Null),
    ] {
        let mut body = json!({"model": "g", "tools": tools,
            "messages": [{"role": "user", "content": "x"}]});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        let got = translate(body);
        assert_eq!(got.get("toolConfig").cloned().unwrap_or(Value::Null), want);
    }
    // No tools, no toolConfig.
    let got = translate(json!({"model": "g", "tool_choice": "required",
        "messages": [{"role": "user", "content": "x"}]}));
    assert!(got.get("toolConfig").is_none() && got.get("tools").is_none());
}

#[test]
fn schemas_are_cut_down_to_what_gemini_accepts() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "$defs": {"unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"}},
        "properties": {
            "city": {"type": "string", "format": "hostname", "minLength": 1},
            "when": {"type": "string", "format": "date-time"},
            "unit": {"$ref": "#/$defs/unit"},
            "kind": {"const": "weather"},
            "days": {"type": "integer", "exclusiveMinimum": 0, "maximum": 7, "format": "int32"},
            "tags": {"type": "array", "items": {"type": ["string", "null"]}, "uniqueItems": true},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "maybe": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
            "level": {"enum": [1, 2, 3]},
            "merged": {"allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "number"}}, "required": ["b", "ghost"]}
            ]},
            "open": {"type": "object", "properties": {}, "patternProperties": {".*": {}}},
            "loop": {"$ref": "#"}
        },
        "required": ["city", "missing"]
    });
    let got = schema::adapt(&schema);
    let loop_schema = got["properties"]["loop"].clone();
    let mut got = got;
    got["properties"]
        .as_object_mut()
        .unwrap()
        .remove("loop")
        .unwrap();
    assert_eq!(
        got,
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "when": {"type": "string", "format": "date-time"},
                "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"},
                "kind": {"enum": ["weather"]},
                "days": {"type": "integer", "maximum": 7, "format": "int32"},
                "tags": {"type": "array", "items": {"type": "string", "nullable": true}},
                "either": {"anyOf": [{"type": "string"}, {"type": "number"}]},
                "maybe": {"type": "boolean", "nullable": true},
                "level": {},
                "merged": {"type": "object",
                    "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
                    "required": ["a", "b"]},
                "open": {"type": "object"}
            },
            "required": ["city"]
        })
    );
    // A recursive `$ref` ends at the depth limit instead of looping.
    assert_eq!(loop_schema["type"], "object");
    // Anything at all is some schema.
    for odd in [json!(true), json!(null), json!([1]), json!("x")] {
        assert_eq!(schema::adapt(&odd), json!({}));
    }
}

#[test]
fn untranslatable_requests_are_client_errors() {
    let host = HostId::new("gemini-us").unwrap();
    for body in [
        json!({"model": "g", "messages": [{"role": "system", "content": "only a system prompt"}]}),
        json!({"model": "g", "messages": [{"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "nobody", "content": "orphan"}]}),
        json!({"model": "g", "messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "w", "arguments": "not json"}}]}]}),
        json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
        json!({"model": "g", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-123"}}]}]}),
    ] {
        let err = request::translate(&req(body.clone()), Door::GeminiApi).unwrap_err();
        assert!(!err.retryable(), "{body}");
        let (status, message, code) = err.client_facing(&host);
        assert_eq!((status, code), (400, "upstream_bad_request"), "{body}");
        assert!(!message.is_empty());
    }
    let on_vertex = json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/no-extension"}}]}]});
    assert!(request::translate(&req(on_vertex), Door::Vertex).is_err());
}

// --------------------------------------------------------------- responses

fn reply_with(candidates: Value) -> Value {
    json!({"candidates": candidates, "modelVersion": "gemini-x-001", "responseId": "resp-1",
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}})
}

fn translated(body: &Value) -> Result<(Value, Usage), UpstreamError> {
    response::translate(body.to_string().as_bytes(), "target", 5)
        .map(|(b, u)| (serde_json::from_slice(&b).unwrap(), u))
}

#[test]
fn every_finish_reason_maps_to_a_finish_reason() {
    for (reason, want) in [
        (json!("STOP"), "stop"),
        (json!("MAX_TOKENS"), "length"),
        (json!("SAFETY"), "content_filter"),
        (json!("RECITATION"), "content_filter"),
        (json!("BLOCKLIST"), "content_filter"),
        (json!("PROHIBITED_CONTENT"), "content_filter"),
        (json!("SPII"), "content_filter"),
        (json!("LANGUAGE"), "content_filter"),
        (json!("IMAGE_SAFETY"), "content_filter"),
        (json!("OTHER"), "stop"),
        (json!("FINISH_REASON_UNSPECIFIED"), "stop"),
        (json!("SOMETHING_NEW"), "stop"),
        (json!(null), "stop"),
    ] {
        let body = reply_with(
            json!([{"content": {"role": "model", "parts": [{"text": "x"}]},
            "finishReason": reason}]),
        );
        let (out, _) = translated(&body).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
    }
    // A function call with STOP is a tool call; with MAX_TOKENS, cut short.
    for (reason, want) in [("STOP", "tool_calls"), ("MAX_TOKENS", "length")] {
        let body = reply_with(json!([{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "w", "args": {}}}]}, "finishReason": reason}]));
        let (out, _) = translated(&body).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
    }
    // Unusable function calls are a retryable error, not an empty answer.
    for reason in ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"] {
        let body = reply_with(
            json!([{"content": {"role": "model", "parts": []}, "finishReason": reason}]),
        );
        let err = translated(&body).unwrap_err();
        assert!(err.retryable(), "{err:?}");
        assert!(
            matches!(&err, UpstreamError::Status { status: 502, code: Some(c), .. } if c == reason),
            "{err:?}"
        );
    }
}

#[test]
fn responses_translate_to_golden_chat_completions() {
    let ids = CallIds::new(Some("resp-1"));
    let cases: Vec<(&str, Value, Value, Usage)> = vec![
        (
            "text parts joined, thoughts skipped, usage details kept",
            json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "hm", "thought": true}, {"text": "Hé "}, {"text": "😀"}]},
                    "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3,
                    "totalTokenCount": 18, "cachedContentTokenCount": 4, "thoughtsTokenCount": 5},
                "modelVersion": "gemini-x-001", "responseId": "resp-1"}),
            json!({"id": "chatcmpl-resp-1", "object": "chat.completion", "created": 5, "model": "gemini-x-001",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hé 😀", "refusal": null}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 5}}}),
            Usage {
                prompt_tokens: 10,
                completion_tokens: 8,
                total_tokens: 18,
            },
        ),
        (
            "parallel function calls get stable generated ids; content null",
            reply_with(json!([{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "w", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "now"}}
            ]}, "finishReason": "STOP"}])),
            json!({"id": "chatcmpl-resp-1", "object": "chat.completion", "created": 5, "model": "gemini-x-001",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                        {"id": ids.id(0, 0), "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": ids.id(0, 1), "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                total_tokens: 5,
            },
        ),
        (
            "empty candidate (no content) and a second candidate",
            reply_with(json!([
                {"finishReason": "SAFETY"},
                {"content": {"role": "model", "parts": [{"text": "b"}]}, "finishReason": "STOP", "index": 1}
            ])),
            json!({"id": "chatcmpl-resp-1", "object": "chat.completion", "created": 5, "model": "gemini-x-001",
                "choices": [
                    {"index": 0, "logprobs": null, "finish_reason": "content_filter",
                        "message": {"role": "assistant", "content": "", "refusal": null}},
                    {"index": 1, "logprobs": null, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "b", "refusal": null}}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                total_tokens: 5,
            },
        ),
        (
            "a blocked prompt is one empty content_filter choice",
            json!({"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}),
            json!({"object": "chat.completion", "created": 5, "model": "target",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": "", "refusal": null}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}}),
            Usage {
                prompt_tokens: 7,
                completion_tokens: 0,
                total_tokens: 7,
            },
        ),
    ];
    for (name, gemini, want, want_usage) in cases {
        let (mut got, usage) = translated(&gemini).unwrap();
        if want.get("id").is_none() {
            // Without a responseId the id is generated.
            let id = got.as_object_mut().unwrap().remove("id").unwrap();
            assert!(id.as_str().unwrap().starts_with("chatcmpl-gemini-"), "{id}");
        }
        assert_eq!(got, want, "{name}");
        assert_eq!(usage, want_usage, "{name}");
    }
    assert!(matches!(
        response::translate(b"<html>", "t", 0),
        Err(UpstreamError::Protocol(_))
    ));
    assert!(matches!(
        response::translate(b"{}", "t", 0),
        Err(UpstreamError::Protocol(_))
    ));
}

#[test]
fn call_ids_are_stable_distinct_and_short() {
    let a = CallIds::new(Some("r"));
    assert_eq!(a.id(0, 0), CallIds::new(Some("r")).id(0, 0));
    assert_ne!(a.id(0, 0), a.id(0, 1));
    assert_ne!(a.id(0, 0), a.id(1, 0));
    assert_ne!(a.id(0, 0), CallIds::new(Some("s")).id(0, 0));
    assert_ne!(CallIds::new(None).id(0, 0), CallIds::new(None).id(0, 0));
    let id = a.id(3, 7);
    assert_eq!(id.len(), 29);
    assert!(id.starts_with("call_") && id[5..].chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn error_bodies_keep_message_status_and_hints() {
    let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",
        "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
    assert_eq!(
        parse_error_body(body),
        GoogleError {
            message: Some("Resource has been exhausted".into()),
            code: Some("RESOURCE_EXHAUSTED".into()),
            http: Some(429),
            retry_delay: Some(Duration::from_secs(37)),
            key_invalid: false,
        }
    );
    let key =
        br#"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",
        "status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",
        "reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}]"#;
    let parsed = parse_error_body(key);
    assert!(parsed.key_invalid);
    assert_eq!(parsed.code.as_deref(), Some("INVALID_ARGUMENT"));
    let openai = br#"{"error":{"message":"bad","code":"x"}}"#;
    assert_eq!(parse_error_body(openai).message.as_deref(), Some("bad"));
    assert_eq!(
        parse_error_body(b"<html>502</html>"),
        GoogleError::default()
    );
    assert_eq!(proto_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(proto_duration("soon"), None);
}

// ------------------------------------------------------------------ stream

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn sse(events: &[Value], separator: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(format!("data: {e}{separator}").as_bytes());
    }
    out
}

async fn run(pieces: Vec<Vec<u8>>, forward_usage: bool) -> Vec<Result<StreamEvent, UpstreamError>> {
    let body = futures_util::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))));
    stream::decode(
        body,
        stream::Options {
            forward_usage,
            model: "target".into(),
            deadline: far(),
            secret: Some(Secret::new("AIza-secret-key")),
        },
    )
    .collect()
    .await
}

/// Chunks as JSON with the volatile `created` and `object` removed, and
/// usage events.
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

fn usage_meta(prompt: u64, out: Option<u64>) -> Value {
    match out {
        Some(out) => json!({"promptTokenCount": prompt, "candidatesTokenCount": out,
            "totalTokenCount": prompt + out}),
        None => json!({"promptTokenCount": prompt}),
    }
}

fn full_stream() -> Vec<Value> {
    let ev = |parts: Value, finish: Option<&str>, out: Option<u64>| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        json!({"candidates": [candidate], "usageMetadata": usage_meta(12, out),
            "modelVersion": "gemini-x-001", "responseId": "resp-1"})
    };
    vec![
        ev(json!([{"text": "Hé"}]), None, None),
        ev(
            json!([{"text": "thinking…", "thought": true}, {"text": "😀 "}]),
            None,
            None,
        ),
        ev(
            json!([{"text": "a"}, {"functionCall": {"name": "w", "args": {"city": "Paris"}}}]),
            None,
            None,
        ),
        ev(
            json!([{"functionCall": {"name": "now"}}]),
            Some("STOP"),
            Some(30),
        ),
    ]
}

fn golden_chunks(with_usage_chunk: bool) -> Vec<Result<Value, UpstreamError>> {
    let ids = CallIds::new(Some("resp-1"));
    let c = |delta: Value, finish: Value| {
        Ok(json!({"id": "chatcmpl-resp-1", "model": "gemini-x-001",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
    };
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42});
    let mut out = vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Hé"}), Value::Null),
        c(json!({"content": "😀 "}), Value::Null),
        c(json!({"content": "a"}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": ids.id(0, 0), "type": "function",
            "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 1, "id": ids.id(0, 1), "type": "function",
            "function": {"name": "now", "arguments": "{}"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        Ok(json!({"usage_event": usage})),
    ];
    if with_usage_chunk {
        out.push(Ok(
            json!({"id": "chatcmpl-resp-1", "model": "gemini-x-001", "choices": [], "usage": usage}),
        ));
    }
    out
}

#[tokio::test]
async fn a_stream_translates_to_golden_chunks_however_it_is_cut() {
    for separator in ["\n\n", "\r\n\r\n"] {
        let bytes = sse(&full_stream(), separator);
        // Every cut point, so events, lines and the multi-byte `é`, `…`
        // and `😀` are split across reads.
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
}

#[tokio::test]
async fn every_finish_reason_reaches_the_final_chunk() {
    for (reason, want) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ] {
        let events = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
            "finishReason": reason}], "usageMetadata": usage_meta(1, Some(2))}),
        ];
        let got = simplify(run(vec![sse(&events, "\r\n\r\n")], false).await);
        assert_eq!(got.len(), 4, "{reason}: {got:?}");
        assert_eq!(
            got[2].as_ref().unwrap()["choices"][0]["finish_reason"],
            want
        );
        assert_eq!(
            got[3].as_ref().unwrap(),
            &json!({"usage_event": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
        );
    }
}

#[tokio::test]
async fn blocked_prompts_and_several_candidates_stream_too() {
    let blocked = [
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": usage_meta(4, None)}),
    ];
    let got = simplify(run(vec![sse(&blocked, "\n\n")], false).await);
    let finishes: Vec<&Value> = got
        .iter()
        .filter_map(|c| {
            c.as_ref()
                .ok()?
                .get("choices")?
                .get(0)?
                .get("finish_reason")
        })
        .collect();
    assert_eq!(finishes, [&Value::Null, &json!("content_filter")]);

    // Two candidates finishing at different events: complete only when both did.
    let two = [
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}},
            {"content": {"parts": [{"text": "b"}]}, "index": 1, "finishReason": "STOP"}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "c"}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": usage_meta(1, Some(3))}),
    ];
    let got = simplify(run(vec![sse(&two, "\n\n")], false).await);
    let seen: Vec<(u64, Value, Value)> = got
        .iter()
        .filter_map(|c| {
            let choice = c.as_ref().ok()?.get("choices")?.get(0)?.clone();
            Some((
                choice["index"].as_u64()?,
                choice["delta"]
                    .get("content")
                    .cloned()
                    .unwrap_or(Value::Null),
                choice["finish_reason"].clone(),
            ))
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, json!(""), Value::Null),
            (0, json!("a"), Value::Null),
            (1, json!(""), Value::Null),
            (1, json!("b"), Value::Null),
            (1, Value::Null, json!("stop")),
            (0, json!("c"), Value::Null),
            (0, Value::Null, json!("length")),
        ]
    );
    assert!(matches!(got.last(), Some(Ok(v)) if v.get("usage_event").is_some()));
    let got = run(vec![sse(&two[..1], "\n\n")], false).await;
    assert_eq!(got.last(), Some(&Err(UpstreamError::Truncated)));
}

#[tokio::test]
async fn trailing_pieces_after_a_finish_are_dropped_not_fatal() {
    let events = [
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}),
        json!({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}],
            "usageMetadata": usage_meta(2, Some(1))}),
    ];
    let got = simplify(run(vec![sse(&events, "\n\n")], false).await);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[2].as_ref().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(
        got[3].as_ref().unwrap(),
        &json!({"usage_event": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}})
    );
    // An error object whose code is not a number is still an error.
    let odd = json!({"error": {"code": "boom", "message": "odd", "status": "INTERNAL"}});
    let got = run(vec![sse(&[odd], "\n\n")], false).await;
    assert!(
        matches!(got.last(), Some(Err(UpstreamError::InStream { .. }))),
        "{got:?}"
    );
}

#[tokio::test]
async fn stream_errors_end_the_stream() {
    let first = json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]});
    let busy = json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}});
    let got = run(vec![sse(&[first.clone(), busy], "\n\n")], false).await;
    let err = got.last().unwrap().as_ref().unwrap_err();
    assert!(err.retryable(), "{err:?}");
    assert!(matches!(err, UpstreamError::Status { status: 429, .. }));

    let other = json!({"error": {"code": 400, "status": "FAILED_PRECONDITION",
        "message": "boom at https://internal.example with AIza-secret-key"}});
    let got = run(vec![sse(&[first.clone(), other], "\n\n")], false).await;
    match got.last() {
        Some(Err(UpstreamError::InStream { message, code })) => {
            assert!(
                !message.contains("internal") && !message.contains("AIza-secret-key"),
                "{message}"
            );
            assert_eq!(code.as_deref(), Some("FAILED_PRECONDITION"));
        }
        other => panic!("{other:?}"),
    }

    let malformed_call = json!({"candidates": [{"content": {"parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]});
    let got = run(vec![sse(&[first.clone(), malformed_call], "\n\n")], false).await;
    assert!(
        matches!(
            got.last(),
            Some(Err(UpstreamError::Status { status: 502, .. }))
        ),
        "{got:?}"
    );

    // No finish reason: truncated, whatever came before.
    let got = run(vec![sse(std::slice::from_ref(&first), "\n\n")], false).await;
    assert_eq!(got.last(), Some(&Err(UpstreamError::Truncated)));
    let got = run(vec![], false).await;
    assert_eq!(got, vec![Err(UpstreamError::Truncated)]);

    let got = run(vec![b"data: {not json\n\n".to_vec()], false).await;
    assert!(
        matches!(got[..], [Err(UpstreamError::Protocol(_))]),
        "{got:?}"
    );
}

#[tokio::test]
async fn the_deadline_ends_a_stalled_stream() {
    let first = futures_util::stream::iter(vec![Ok(Bytes::from(sse(&full_stream()[..2], "\n\n")))]);
    let body = first.chain(futures_util::stream::pending());
    let got: Vec<_> = stream::decode(
        body,
        stream::Options {
            forward_usage: false,
            model: "t".into(),
            deadline: Instant::now() + Duration::from_millis(50),
            secret: None,
        },
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

/// At most one error, and only as the last item.
fn well_ended(got: &[Result<StreamEvent, UpstreamError>]) -> bool {
    let errors = got.iter().filter(|e| e.is_err()).count();
    errors == 0 || (errors == 1 && got.last().is_some_and(Result::is_err))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_end_in_an_error_or_cleanly(pieces in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let got = decode_all(pieces);
        prop_assert!(well_ended(&got), "{got:?}");
    }

    #[test]
    fn arbitrary_json_events_end_in_an_error_or_cleanly(texts in proptest::collection::vec(
        proptest::option::of("\\PC{0,8}"), 0..6), reasons in proptest::collection::vec(
        proptest::option::of(proptest::sample::select(vec!["STOP", "MAX_TOKENS", "SAFETY", "X"])), 0..6)) {
        let events: Vec<Value> = texts.iter().zip(&reasons).map(|(t, r)| {
            let mut c = json!({"content": {"parts": [{"text": t}]}});
            if let Some(r) = r { c["finishReason"] = json!(r); }
            json!({"candidates": [c]})
        }).collect();
        let got = decode_all(vec![sse(&events, "\n\n")]);
        prop_assert!(well_ended(&got), "{got:?}");
    }

    /// A cut anywhere either fails or, when only framing after the last
    /// event was lost, gives exactly the whole answer.
    #[test]
    fn truncated_streams_end_in_an_error(cut in 0usize..10_000, split in 0usize..10_000, crlf: bool) {
        let bytes = sse(&full_stream(), if crlf { "\r\n\r\n" } else { "\n\n" });
        let cut = cut % bytes.len();
        let split = split % (cut + 1);
        let got = decode_all(vec![bytes[..split].to_vec(), bytes[split..cut].to_vec()]);
        prop_assert!(well_ended(&got), "cut {cut}: {got:?}");
        if got.last().is_some_and(Result::is_ok) {
            prop_assert_eq!(simplify(got), golden_chunks(false), "cut {}", cut);
        }
    }
}

// ------------------------------------------------------------ the provider

fn provider(base: &str, key: &str, api: Option<GeminiApi>) -> Gemini {
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
        gemini: api,
        aws: None,
    };
    Gemini::new(
        HostId::new("gemini-us").unwrap(),
        &endpoint,
        Some("gemini-2.0-flash"),
        http,
    )
    .unwrap()
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
    for base in [
        "https://generativelanguage.googleapis.com",
        "https://generativelanguage.googleapis.com/v1beta/",
    ] {
        let p = provider(base, "AIza-1", None);
        let url = p.method_url("models/gemini-2.0-flash", "streamGenerateContent", true);
        let request = p.post(url, b"{}".to_vec(), true, &call()).build().unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        let h = request.headers();
        assert_eq!(h["x-goog-api-key"], "AIza-1");
        assert!(h["x-goog-api-key"].is_sensitive());
        assert!(h.get("authorization").is_none());
        assert_eq!(h["accept"], "text/event-stream");
        assert_eq!(h["x-request-id"], "req-1");
    }
    let vertex = GeminiApi::Vertex {
        project: "my-proj".into(),
        location: "us-central1".into(),
    };
    let p = provider(
        "https://us-central1-aiplatform.googleapis.com/v1",
        "ya29.token",
        Some(vertex),
    );
    let request = p
        .post(
            p.method_url("gemini-2.0-flash", "generateContent", false),
            b"{}".to_vec(),
            false,
            &call(),
        )
        .build()
        .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(request.headers()["authorization"], "Bearer ya29.token");
    assert!(request.headers()["authorization"].is_sensitive());
    assert!(request.headers().get("x-goog-api-key").is_none());

    let text = format!(
        "{:?}",
        provider("https://internal.example", "AIza-secret", None)
    );
    assert!(
        !text.contains("AIza") && !text.contains("internal"),
        "{text}"
    );
}

fn embeddings_req(body: Value) -> EmbeddingsRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn embeddings_translate_both_ways() {
    let one = embeddings::Plan::new(
        &embeddings_req(json!({"model": "e", "input": "hello world", "dimensions": 3})),
        "text-embedding-004",
        Door::GeminiApi,
    )
    .unwrap();
    assert_eq!(one.method(), "embedContent");
    assert_eq!(
        one.body,
        json!({"content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 3})
    );
    let (body, usage) = one
        .translate(br#"{"embedding":{"values":[0.5,-1.0,0.25]}}"#)
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"object": "list", "model": "text-embedding-004",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0, 0.25]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    );
    assert_eq!(usage.prompt_tokens, 3, "11 characters estimate to 3 tokens");

    let many = embeddings::Plan::new(
        &embeddings_req(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"})),
        "models/text-embedding-004",
        Door::GeminiApi,
    )
    .unwrap();
    assert_eq!(many.method(), "batchEmbedContents");
    assert_eq!(
        many.body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}
        ]})
    );
    let (body, _) = many
        .translate(br#"{"embeddings":[{"values":[1.0]},{"values":[-2.0]}]}"#)
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["data"][0]["embedding"], "AACAPw==");
    assert_eq!(body["data"][1]["embedding"], "AAAAwA==");
    assert!(matches!(
        many.translate(br#"{"embeddings":[{"values":[1.0]}]}"#),
        Err(UpstreamError::Protocol(_))
    ));

    let vertex = embeddings::Plan::new(
        &embeddings_req(json!({"model": "e", "input": ["a b c"], "dimensions": 2})),
        "text-embedding-005",
        Door::Vertex,
    )
    .unwrap();
    assert_eq!(vertex.method(), "predict");
    assert_eq!(
        vertex.body,
        json!({"instances": [{"content": "a b c"}], "parameters": {"outputDimensionality": 2}})
    );
    let (body, usage) = vertex
        .translate(br#"{"predictions":[{"embeddings":{"values":[0.1,0.2],"statistics":{"token_count":4,"truncated":false}}}]}"#)
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["data"][0]["embedding"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(usage.prompt_tokens, 4, "Vertex's own count is used");

    let tokens = embeddings_req(json!({"model": "e", "input": [1, 2, 3]}));
    let err = embeddings::Plan::new(&tokens, "t", Door::GeminiApi)
        .err()
        .unwrap();
    assert_eq!(err.client_facing(&HostId::new("g").unwrap()).0, 400);
}
