//! The OpenAI wire format, as Treaty's clients speak it.
//!
//! Request bodies are parsed into typed structs so that bad input gets a
//! precise 400 naming the field (`param`) before anything else happens, and
//! so that translating providers can read messages and tools. Fields Treaty
//! does not know are kept in `extra` and forwarded to OpenAI-family hosts
//! unchanged, so new OpenAI parameters work without a Treaty release.
//!
//! This crate also owns the one error body shape every HTTP error leaves in
//! (`{"error":{"message","type","param","code"}}`). It never performs I/O.

mod chat;
mod embeddings;
mod error;
mod models;
mod parse;
pub mod responses;
mod rewrite;

pub use chat::{
    ChatCompletionRequest, ChatMessage, ContentPart, FunctionCall, FunctionDefinition, ImageUrl,
    MessageContent, NamedFunction, NamedToolChoice, ResponseFormat, Stop, StreamOptions, Tool,
    ToolCall, ToolChoice, ToolChoiceMode, ToolKind,
};
pub use embeddings::{EmbeddingInput, EmbeddingsRequest};
pub use error::{ErrorBody, ErrorObject};
pub use models::{Model, ModelList};
pub use parse::{ParseError, parse_json, parse_query};
pub use rewrite::{model_value_range, with_model, write_with_model};

use serde::{Deserialize, Serialize};

/// Token counts as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}
