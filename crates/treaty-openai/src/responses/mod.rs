//! The OpenAI Responses API (`/v1/responses`, `/v1/conversations`) wire
//! format, and its translation to and from Chat Completions.
//!
//! Treaty serves the Responses API itself: it keeps the state (stored
//! responses, conversations) and runs each model step as a Chat
//! Completions call to an upstream host. This module is the pure part of
//! that: request and item types with validation, the chat request for a
//! step ([`to_chat_request`]), the response built from a chat reply
//! ([`output_from_chat`]) or from a chat stream ([`StreamTranslator`]),
//! and the conversation shapes. It never performs I/O and never decides
//! what is stored: the caller assembles the history and persists items.

mod conversations;
mod items;
mod object;
mod reply;
mod request;
mod stream;
mod to_chat;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use conversations::{
    Conversation, ConversationCreate, ConversationItemsCreate, ConversationUpdate, Deleted,
    ItemList,
};
pub use items::{
    ContentPart, FunctionCallItem, FunctionCallOutputItem, Item, ItemReference, ItemStatus,
    MessageItem, Role,
};
pub use object::{
    ConversationId, IncompleteDetails, InputTokensDetails, OutputTokensDetails, ResponseError,
    ResponseObject, ResponseStatus, ResponseUsage,
};
pub use reply::{ChatOutput, output_from_chat, status_for};
pub use request::{
    ConversationRef, CreateResponseRequest, Input, ResponseTool, input_items, validate_metadata,
    validate_top_logprobs,
};
pub use stream::{Event, StreamTranslator};
pub use to_chat::to_chat_request;

/// A fresh id: `{prefix}_{uuid v7 as 32 hex digits}`. Version 7 ids sort by
/// creation time, so stored items list in order by id.
///
/// Prefixes in use: `resp`, `msg`, `fc` (function call), `fco` (function
/// call output), `conv`, `item`, and `call` for call ids a host left out.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
