//! The request bodies sent to OpenAI-family hosts.
//!
//! The client's request goes out as it came, except that `model` becomes
//! the host's deployment target and streams always ask for usage. Bodies
//! are serialized straight from borrowed views of the parsed request, so
//! forwarding never deep-clones messages, tools or images. This module
//! must never drop a field the client sent: the views destructure the
//! request types exhaustively, so a new field breaks the build here.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};
use treaty_openai::{
    ChatCompletionRequest, ChatMessage, EmbeddingInput, EmbeddingsRequest, ResponseFormat, Stop,
    StreamOptions, Tool, ToolChoice,
};

/// A chat request as sent upstream.
#[derive(Serialize)]
pub(crate) struct OutgoingChat<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<OutgoingStreamOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(flatten)]
    extra: Unclaimed<'a>,
}

/// The typed fields of a chat request: never taken from `extra`, so that a
/// hand-built request cannot send a key twice.
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "n",
    "stop",
    "seed",
    "user",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
];

#[derive(Serialize)]
struct OutgoingStreamOptions<'a> {
    /// Always true: the gateway accounts tokens from the usage chunk.
    include_usage: bool,
    #[serde(flatten)]
    extra: Unclaimed<'a>,
}

impl<'a> OutgoingChat<'a> {
    pub(crate) fn new(req: &'a ChatCompletionRequest, target: &'a str) -> Self {
        let ChatCompletionRequest {
            model: _,
            messages,
            stream,
            stream_options,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            n,
            stop,
            seed,
            user,
            temperature,
            top_p,
            max_tokens,
            max_completion_tokens,
            presence_penalty,
            frequency_penalty,
            extra,
        } = req;
        // `stream_options` without `stream: true` is a 400 at OpenAI; the
        // gateway's validation refuses it, and it is dropped here to be safe.
        let stream_options = (*stream == Some(true)).then(|| OutgoingStreamOptions {
            include_usage: true,
            extra: Unclaimed {
                map: stream_options.as_ref().map(
                    |StreamOptions {
                         include_usage: _,
                         extra,
                     }| extra,
                ),
                claimed: &["include_usage"],
            },
        });
        OutgoingChat {
            model: target,
            messages,
            stream: *stream,
            stream_options,
            tools: tools.as_deref(),
            tool_choice: tool_choice.as_ref(),
            parallel_tool_calls: *parallel_tool_calls,
            response_format: response_format.as_ref(),
            n: *n,
            stop: stop.as_ref(),
            seed: *seed,
            user: user.as_deref(),
            temperature: *temperature,
            top_p: *top_p,
            max_tokens: *max_tokens,
            max_completion_tokens: *max_completion_tokens,
            presence_penalty: *presence_penalty,
            frequency_penalty: *frequency_penalty,
            extra: Unclaimed {
                map: Some(extra),
                claimed: CHAT_FIELDS,
            },
        }
    }
}

/// An embeddings request as sent upstream.
#[derive(Serialize)]
pub(crate) struct OutgoingEmbeddings<'a> {
    model: &'a str,
    input: &'a EmbeddingInput,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding_format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(flatten)]
    extra: Unclaimed<'a>,
}

impl<'a> OutgoingEmbeddings<'a> {
    pub(crate) fn new(req: &'a EmbeddingsRequest, target: &'a str) -> Self {
        let EmbeddingsRequest {
            model: _,
            input,
            encoding_format,
            dimensions,
            user,
            extra,
        } = req;
        OutgoingEmbeddings {
            model: target,
            input,
            encoding_format: encoding_format.as_deref(),
            dimensions: *dimensions,
            user: user.as_deref(),
            extra: Unclaimed {
                map: Some(extra),
                claimed: &["model", "input", "encoding_format", "dimensions", "user"],
            },
        }
    }
}

/// Pass-through fields, minus the names the typed fields already wrote.
struct Unclaimed<'a> {
    map: Option<&'a Map<String, Value>>,
    claimed: &'static [&'static str],
}

impl Serialize for Unclaimed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(None)?;
        for (k, v) in self.map.into_iter().flatten() {
            if !self.claimed.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn replaces_the_model_and_keeps_everything_else() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0.5,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "stop": ["x"],
            "logit_bias": {"50256": -100},
            "top_k": 5
        });
        let req = chat(body.clone());
        let out = serde_json::to_value(OutgoingChat::new(&req, "gpt-4o-prod")).unwrap();
        let mut want = body;
        want["model"] = json!("gpt-4o-prod");
        assert_eq!(out, want);
    }

    #[test]
    fn streams_always_ask_for_usage_and_keep_other_stream_options() {
        let req = chat(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream": true
        }));
        let out = serde_json::to_value(OutgoingChat::new(&req, "t")).unwrap();
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        let req = chat(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": false, "continuous_usage_stats": true}
        }));
        let out = serde_json::to_value(OutgoingChat::new(&req, "t")).unwrap();
        assert_eq!(
            out["stream_options"],
            json!({"include_usage": true, "continuous_usage_stats": true})
        );
        assert_eq!(out["stream"], json!(true));
    }

    #[test]
    fn non_streams_send_no_stream_options() {
        let req = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let out = serde_json::to_value(OutgoingChat::new(&req, "t")).unwrap();
        assert_eq!(out.get("stream_options"), None);
        assert_eq!(out.get("stream"), None);
    }

    #[test]
    fn extra_cannot_duplicate_a_typed_field() {
        let mut req = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        req.extra.insert("model".into(), json!("sneaky"));
        req.extra.insert("seed".into(), json!(1));
        let text = serde_json::to_string(&OutgoingChat::new(&req, "t")).unwrap();
        assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
        assert!(!text.contains("sneaky") && !text.contains("seed"));
    }

    #[test]
    fn embeddings_replace_the_model_and_keep_extra() {
        let body = json!({
            "model": "text-embedding-3-small", "input": ["a", "b"],
            "dimensions": 256, "encoding_format": "float", "user": "u", "x_custom": {"a": 1}
        });
        let req: EmbeddingsRequest = serde_json::from_value(body.clone()).unwrap();
        let out = serde_json::to_value(OutgoingEmbeddings::new(&req, "emb-prod")).unwrap();
        let mut want = body;
        want["model"] = json!("emb-prod");
        assert_eq!(out, want);
    }
}
