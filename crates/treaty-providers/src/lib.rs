//! Wire-format clients for the hosts Treaty forwards requests to.
//!
//! Every host kind sits behind one [`Provider`] trait that speaks OpenAI
//! types on both sides: the gateway hands over the client's parsed request
//! and the chosen [`ModelDeployment`], and gets back an OpenAI
//! `chat.completion` body or a stream of `chat.completion.chunk` payloads.
//! OpenAI-family hosts (OpenAI, Azure OpenAI, vLLM/Ollama/llama.cpp) share
//! one implementation in [`openai_family`]; translating providers (Bedrock,
//! Anthropic, Gemini) will be sibling modules that convert formats.
//!
//! This crate owns the upstream exchange: URLs, authentication, timeouts,
//! SSE decoding and the mapping of upstream failures to [`UpstreamError`].
//! It never decides where a request goes or whether to retry (the router
//! and gateway do), never writes to the client, and never lets a secret, an
//! internal URL or a raw upstream body reach an error message.

mod anthropic;
mod bedrock;
mod client;
mod error;
mod exchange;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod gemini;
mod openai_family;
mod redact;
mod sse;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use treaty_config::HostConfig;
use treaty_domain::{HostId, ModelDeployment, ProviderKind};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest, Usage};

pub use client::http_client;
pub use error::{ProviderError, TimeoutPhase, UpstreamError};

/// One upstream host, reached through its own wire format.
///
/// Implementations are cheap to share (`Arc<dyn Provider>`) and hold no
/// per-request state.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    fn host_id(&self) -> &HostId;

    /// Sends a chat completion. For `stream: true` requests the reply is a
    /// [`ChatReply::Stream`] as soon as the upstream's headers arrive.
    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<ChatReply, UpstreamError>;

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<EmbeddingsReply, UpstreamError>;

    /// A cheap authenticated request (the model list) that tells whether
    /// the host answers; used by active health checks.
    async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError>;
}

/// Per-call limits and identity.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Bounds sending the request and receiving the response headers.
    pub first_byte_timeout: Duration,
    /// Total deadline for the whole exchange, streamed body included.
    pub deadline: tokio::time::Instant,
    /// Sent upstream as `x-request-id`.
    pub request_id: String,
    /// W3C `traceparent` of the attempt's span, sent upstream so the
    /// host's spans join the trace; `None` when tracing is off.
    pub traceparent: Option<http::HeaderValue>,
}

pub enum ChatReply {
    /// A complete `chat.completion` JSON body as the host sent it
    /// (validated as JSON), plus its usage.
    Full { body: Bytes, usage: Option<Usage> },
    /// Incremental stream; see [`StreamEvent`]. It is decoded as bytes
    /// arrive and never buffers the whole response.
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatReply::Full { body, usage } => f
                .debug_struct("Full")
                .field("body_len", &body.len())
                .field("usage", usage)
                .finish(),
            ChatReply::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The events of a streamed chat completion.
///
/// The stream ends (`None`) right after the upstream's `data: [DONE]`; the
/// gateway writes its own `[DONE]`. Any `Err` is the last item.
pub type ChunkStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<StreamEvent, UpstreamError>> + Send>>;

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// One `chat.completion.chunk` JSON payload (the SSE `data:` value,
    /// without framing) to forward to the client as-is.
    Chunk(Bytes),
    /// Usage for accounting; not forwarded by the gateway. Hosts that report
    /// cumulative usage on several chunks produce several events: the last
    /// one counts.
    Usage(Usage),
}

#[derive(Clone)]
pub struct EmbeddingsReply {
    /// The host's embeddings JSON body, validated as JSON.
    pub body: Bytes,
    pub usage: Option<Usage>,
}

impl std::fmt::Debug for EmbeddingsReply {
    // Bodies can be megabytes of floats: show their size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingsReply")
            .field("body_len", &self.body.len())
            .field("usage", &self.usage)
            .finish()
    }
}

/// The provider for one configured host.
pub fn for_host(
    host: &HostConfig,
    http: reqwest::Client,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let id = host.id().clone();
    let flavor = match host.host.provider {
        ProviderKind::Openai => openai_family::Flavor::openai(&id, &host.endpoint)?,
        ProviderKind::AzureOpenai => openai_family::Flavor::azure(&id, &host.endpoint)?,
        ProviderKind::OpenaiCompatible => openai_family::Flavor::compatible(&id, &host.endpoint)?,
        ProviderKind::Anthropic => {
            return Ok(Arc::new(anthropic::Anthropic::new(
                id,
                &host.endpoint,
                http,
            )?));
        }
        ProviderKind::Bedrock => {
            // Credentials come from the config or the standard AWS chain,
            // read from the process environment once, here. The probe names
            // the host's first model, which IAM policies allow.
            let probe_model = host.host.models.first().map(|m| m.target.as_str());
            return Ok(Arc::new(bedrock::Bedrock::new(
                id,
                &host.endpoint,
                probe_model,
                http,
                &treaty_config::ProcessEnv,
            )?));
        }
        ProviderKind::Gemini => {
            // Vertex's health probe counts tokens on the host's first model.
            let probe_model = host.host.models.first().map(|m| m.target.as_str());
            return Ok(Arc::new(gemini::Gemini::new(
                id,
                &host.endpoint,
                probe_model,
                http,
            )?));
        }
    };
    Ok(Arc::new(openai_family::OpenAiFamily::new(id, flavor, http)))
}
