//! Budgets and rate limits on the model-call path: what a call may cost
//! at most (the [`Estimate`] reserved before dispatch), and the refusal
//! when a limit says no.
//!
//! The estimate is an upper bound by design (see `treaty-limits`): the
//! prompt's tokens, guessed from its text at four bytes a token (rounded
//! up, plus a few per message for the roles), plus the most the call may
//! generate (`max_completion_tokens`, `max_tokens`, or
//! [`DEFAULT_MAX_OUTPUT`] when the client sets neither), priced at the
//! dearest host the decision allows. Settling replaces it with the
//! upstream's usage and the serving host's price.

use treaty_domain::Host;
use treaty_limits::{Estimate, Refusal};
use treaty_openai::{ChatMessage, ContentPart, EmbeddingInput, MessageContent};

use crate::call::ModelRequest;
use crate::error::{Code, Error};

/// The output bound assumed when a chat request sets no `max_tokens`:
/// what most hosted models generate at most by default.
pub const DEFAULT_MAX_OUTPUT: u32 = 4096;

/// Tokens added per message for its role and separators.
const PER_MESSAGE: u64 = 4;

fn text_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

fn content_tokens(content: &MessageContent) -> u64 {
    match content {
        MessageContent::Text(t) => text_tokens(t.len()),
        MessageContent::Parts(parts) => parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => text_tokens(text.len()),
                ContentPart::Refusal { refusal } => text_tokens(refusal.len()),
                // An image costs at most a high-detail tile grid; audio
                // and files are priced by the host. A fixed bound keeps
                // the estimate cheap and above typical usage.
                ContentPart::ImageUrl { .. }
                | ContentPart::InputAudio { .. }
                | ContentPart::File { .. } => 1_105,
            })
            .sum(),
    }
}

fn message_tokens(m: &ChatMessage) -> u64 {
    PER_MESSAGE
        + match m {
            ChatMessage::System { content, .. }
            | ChatMessage::Developer { content, .. }
            | ChatMessage::User { content, .. }
            | ChatMessage::Tool { content, .. } => content_tokens(content),
            ChatMessage::Assistant {
                content,
                tool_calls,
                ..
            } => {
                content.as_ref().map(content_tokens).unwrap_or(0)
                    + tool_calls
                        .as_ref()
                        .map(|calls| {
                            calls
                                .iter()
                                .map(|c| {
                                    text_tokens(c.function.arguments.len() + c.function.name.len())
                                })
                                .sum()
                        })
                        .unwrap_or(0)
            }
        }
}

/// (input, output) tokens a request may use at most.
pub(crate) fn bound(request: ModelRequest<'_>) -> (u64, u64) {
    match request {
        ModelRequest::Chat(r) => {
            let input = r.messages.iter().map(message_tokens).sum();
            let per_choice = r
                .max_completion_tokens
                .or(r.max_tokens)
                .unwrap_or(DEFAULT_MAX_OUTPUT);
            (
                input,
                u64::from(per_choice) * u64::from(r.n.unwrap_or(1).max(1)),
            )
        }
        ModelRequest::Embeddings(r) => {
            let input = match &r.input {
                EmbeddingInput::Text(t) => text_tokens(t.len()),
                EmbeddingInput::Texts(ts) => ts.iter().map(|t| text_tokens(t.len())).sum(),
                EmbeddingInput::Tokens(t) => t.len() as u64,
                EmbeddingInput::TokenBatches(b) => b.iter().map(|t| t.len() as u64).sum(),
            };
            (input, 0)
        }
    }
}

/// The estimate of a call: its token bound, priced at the dearest of
/// `hosts` serving `model`.
pub(crate) fn estimate<'h>(
    request: ModelRequest<'_>,
    hosts: impl Iterator<Item = &'h Host>,
) -> Estimate {
    let (input, output) = bound(request);
    let model = request.model();
    let dearest = hosts
        .filter_map(|h| h.deployment(model))
        .map(|d| d.cost(input, output))
        .fold(0.0_f64, f64::max);
    Estimate {
        tokens: u32::try_from(input + output).unwrap_or(u32::MAX),
        cost_micros: micros(dearest),
    }
}

/// USD to micro-USD, rounded up so an estimate never undercounts.
pub(crate) fn micros(usd: f64) -> i64 {
    (usd * 1e6).ceil() as i64
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        let code = match &r {
            Refusal::Budget(_) => Code::InsufficientQuota,
            Refusal::RateLimited(rate) => match rate.kind {
                treaty_limits::LimitKind::Tokens => Code::RateLimitedTokens,
                treaty_limits::LimitKind::Requests => Code::RateLimitedRequests,
            },
            Refusal::Unavailable => Code::BudgetsUnavailable,
        };
        let mut e = Error::new(code, r.to_string());
        e.retry_after = r.retry_after().map(|d| d.as_millis().div_ceil(1000) as u64);
        e.rate = r.headers().map(Box::new);
        e
    }
}
