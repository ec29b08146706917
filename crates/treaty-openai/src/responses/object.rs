//! The `response` object, as `POST /v1/responses`, `GET /v1/responses/{id}`
//! and the streaming lifecycle events return it.
//!
//! The fields are those of the SDKs' `Response` type; parameters Treaty
//! accepts but does not act on are echoed so a client reads back what it
//! sent. `output_text` is not a wire field: the SDKs compute it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::items::{ContentPart, Item};
use super::reply::{ChatOutput, status_for};
use super::request::{CreateResponseRequest, ResponseTool};

/// A response, in progress or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    pub id: String,
    /// Always `"response"`.
    #[serde(default = "response_object")]
    pub object: String,
    /// Unix seconds.
    pub created_at: i64,
    pub status: ResponseStatus,
    #[serde(default)]
    pub error: Option<ResponseError>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    pub model: String,
    #[serde(default)]
    pub output: Vec<Item>,
    #[serde(default = "yes")]
    pub parallel_tool_calls: bool,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub conversation: Option<ConversationId>,
    /// The request's `reasoning`, else `{"effort":null,"summary":null}`.
    #[serde(default = "no_reasoning")]
    pub reasoning: Value,
    #[serde(default = "yes")]
    pub store: bool,
    #[serde(default = "one")]
    pub temperature: f32,
    /// The request's `text`, else `{"format":{"type":"text"}}`.
    #[serde(default = "plain_text")]
    pub text: Value,
    #[serde(default = "auto")]
    pub tool_choice: Value,
    #[serde(default)]
    pub tools: Vec<ResponseTool>,
    #[serde(default = "one")]
    pub top_p: f32,
    #[serde(default = "disabled")]
    pub truncation: Value,
    #[serde(default)]
    pub usage: Option<ResponseUsage>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Always `false`: background mode is refused at validation.
    #[serde(default)]
    pub background: bool,
    /// Unix seconds, set when the status becomes `completed`.
    #[serde(default)]
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub service_tier: Option<Value>,
    #[serde(default)]
    pub prompt_cache_key: Option<Value>,
    #[serde(default)]
    pub safety_identifier: Option<Value>,
    #[serde(default)]
    pub top_logprobs: Option<Value>,
}

/// `conversation` on a response: `{"id": "conv_…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationId {
    pub id: String,
}

/// Where a response is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// The model finished.
    Completed,
    /// Treaty or the upstream host failed; see `error`.
    Failed,
    /// The model step is running.
    InProgress,
    /// Cancelled by the client (`POST /v1/responses/{id}/cancel`).
    Cancelled,
    /// Waiting to run (OpenAI's background mode; not produced).
    Queued,
    /// Cut off; see `incomplete_details`.
    Incomplete,
}

/// Why a response is `incomplete`: `max_output_tokens` or `content_filter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    pub reason: String,
}

/// Why a response `failed`. The SDKs list OpenAI's codes (`server_error`,
/// `rate_limit_exceeded`, …) but accept any string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

/// Token counts in the Responses spelling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

/// Prompt tokens served from the host's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

/// Output tokens spent on hidden reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl From<crate::Usage> for ResponseUsage {
    fn from(u: crate::Usage) -> Self {
        ResponseUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails::default(),
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails::default(),
            total_tokens: u.total_tokens,
        }
    }
}

fn response_object() -> String {
    "response".to_owned()
}
fn yes() -> bool {
    true
}
fn one() -> f32 {
    1.0
}
fn no_reasoning() -> Value {
    json!({"effort": null, "summary": null})
}
fn plain_text() -> Value {
    json!({"format": {"type": "text"}})
}
fn auto() -> Value {
    Value::String("auto".into())
}
fn disabled() -> Value {
    Value::String("disabled".into())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ResponseObject {
    /// A response for `req` with no output yet, echoing the request's
    /// parameters (or OpenAI's defaults where it gave none).
    pub fn from_request(
        id: impl Into<String>,
        created_at: i64,
        req: &CreateResponseRequest,
        status: ResponseStatus,
    ) -> Self {
        ResponseObject {
            id: id.into(),
            object: response_object(),
            created_at,
            status,
            error: None,
            incomplete_details: None,
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            model: req.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            conversation: req.conversation.as_ref().map(|c| ConversationId {
                id: c.id().to_owned(),
            }),
            reasoning: req.reasoning.clone().unwrap_or_else(no_reasoning),
            store: req.store(),
            temperature: req.temperature.unwrap_or(1.0),
            text: req.text.clone().unwrap_or_else(plain_text),
            tool_choice: req.tool_choice.clone().unwrap_or_else(auto),
            tools: req.tools.clone(),
            top_p: req.top_p.unwrap_or(1.0),
            truncation: req.truncation.clone().unwrap_or_else(disabled),
            usage: None,
            user: req.user.clone(),
            metadata: req.metadata.clone().unwrap_or_default(),
            background: false,
            completed_at: None,
            service_tier: req.service_tier.clone(),
            prompt_cache_key: req.prompt_cache_key.clone(),
            safety_identifier: req.safety_identifier.clone(),
            top_logprobs: req.top_logprobs.clone(),
        }
    }

    /// Takes a finished model step's output: items, usage, and the status
    /// its finish reason implies.
    pub fn complete_with(&mut self, out: ChatOutput) {
        let (status, details) = status_for(&out.finish_reason);
        self.output = out.items;
        self.usage = Some(out.usage);
        self.set_status(status, details);
    }

    /// Marks the response failed with `{code, message}`.
    pub fn fail_with(&mut self, code: &str, message: &str) {
        self.error = Some(ResponseError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        self.set_status(ResponseStatus::Failed, None);
    }

    pub(crate) fn set_status(
        &mut self,
        status: ResponseStatus,
        details: Option<IncompleteDetails>,
    ) {
        self.status = status;
        self.incomplete_details = details;
        if status == ResponseStatus::Completed {
            self.completed_at = Some(unix_now());
        }
    }

    /// The text of every `output_text` part, concatenated, as the SDKs'
    /// `output_text` property computes it.
    pub fn output_text(&self) -> String {
        let mut out = String::new();
        for item in &self.output {
            if let Item::Message(m) = item {
                for part in &m.content {
                    if let ContentPart::OutputText { text, .. } = part {
                        out.push_str(text);
                    }
                }
            }
        }
        out
    }
}
