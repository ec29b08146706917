//! Attributes on spans: OpenTelemetry's GenAI semantic conventions and
//! Treaty's own, and W3C `traceparent` in and out.
//!
//! The helpers set OpenTelemetry attributes on a `tracing` span through
//! `tracing-opentelemetry`; until an OTLP layer is built they return at
//! once (one relaxed atomic load), so tracing off costs nothing here. They never record
//! prompt or completion content: [`GenAiResponse`] carries counts and
//! reasons only.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Array, StringValue, Value};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Set once an OTLP layer is built: until then every helper returns at
/// once, before building any attribute value.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(crate) fn exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported: callers skip building detailed spans
/// (names with the model, attributes) when they are not.
pub fn enabled() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

fn off(span: &tracing::Span) -> bool {
    !EXPORTING.load(Ordering::Relaxed) || span.is_disabled()
}

/// What is asked of a model, known before the call.
#[derive(Debug, Clone, Copy)]
pub struct GenAiRequest<'a> {
    /// `chat`, `embeddings`, `generate_content`, ...
    pub operation: &'a str,
    /// The GenAI provider name: `openai`, `azure.ai.openai`,
    /// `aws.bedrock`, `anthropic`, `gcp.gemini`, `gcp.vertex_ai`.
    pub provider: &'a str,
    pub request_model: &'a str,
}

/// What the model answered (counts and reasons, never content).
#[derive(Debug, Clone, Copy, Default)]
pub struct GenAiResponse<'a> {
    pub response_model: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reasons: &'a [&'a str],
    /// The error's type when the call failed (`error.type`).
    pub error_type: Option<&'a str>,
}

/// Treaty's decision for the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreatyAttrs<'a> {
    /// The workload class.
    pub class: Option<&'a str>,
    /// The contract reading in force.
    pub reading: Option<&'a str>,
    /// The clauses behind the verdict.
    pub clauses: &'a [&'a str],
    /// The host that served (or was tried, on an attempt span).
    pub host: Option<&'a str>,
    /// The decision record's ledger sequence number.
    pub ledger_seq: Option<u64>,
}

/// The provider name the GenAI conventions use for a Treaty provider
/// kind (`azure_openai`, `bedrock`, `gemini`, ...).
pub fn provider_name(kind: &str) -> &'static str {
    match kind {
        "openai" => "openai",
        "azure_openai" => "azure.ai.openai",
        "bedrock" => "aws.bedrock",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        _ => "openai_compatible",
    }
}

fn strings(values: &[&str]) -> Value {
    Value::Array(Array::String(
        values
            .iter()
            .map(|v| StringValue::from(v.to_string()))
            .collect(),
    ))
}

/// `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`.
pub fn record_request(span: &tracing::Span, r: &GenAiRequest<'_>) {
    if off(span) {
        return;
    }
    span.set_attribute("gen_ai.operation.name", r.operation.to_owned());
    span.set_attribute("gen_ai.provider.name", r.provider.to_owned());
    span.set_attribute("gen_ai.request.model", r.request_model.to_owned());
}

/// `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
/// `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`,
/// `error.type`.
pub fn record_response(span: &tracing::Span, r: &GenAiResponse<'_>) {
    if off(span) {
        return;
    }
    if let Some(m) = r.response_model {
        span.set_attribute("gen_ai.response.model", m.to_owned());
    }
    if let Some(n) = r.input_tokens {
        span.set_attribute("gen_ai.usage.input_tokens", n as i64);
    }
    if let Some(n) = r.output_tokens {
        span.set_attribute("gen_ai.usage.output_tokens", n as i64);
    }
    if !r.finish_reasons.is_empty() {
        span.set_attribute("gen_ai.response.finish_reasons", strings(r.finish_reasons));
    }
    if let Some(e) = r.error_type {
        span.set_attribute("error.type", e.to_owned());
    }
}

/// `treaty.class`, `treaty.reading`, `treaty.clauses`, `treaty.host`,
/// `treaty.ledger.seq`.
pub fn record_treaty(span: &tracing::Span, t: &TreatyAttrs<'_>) {
    if off(span) {
        return;
    }
    if let Some(c) = t.class {
        span.set_attribute("treaty.class", c.to_owned());
    }
    if let Some(r) = t.reading {
        span.set_attribute("treaty.reading", r.to_owned());
    }
    if !t.clauses.is_empty() {
        span.set_attribute("treaty.clauses", strings(t.clauses));
    }
    if let Some(h) = t.host {
        span.set_attribute("treaty.host", h.to_owned());
    }
    if let Some(seq) = t.ledger_seq {
        span.set_attribute("treaty.ledger.seq", seq as i64);
    }
}

/// Makes the client's W3C `traceparent` (and `tracestate`) the parent of
/// `span`; headers without one leave it a root.
pub fn follow_client(span: &tracing::Span, headers: &http::HeaderMap) {
    if off(span) || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        // Fails only when the span has no OpenTelemetry data (no layer).
        let _ = span.set_parent(cx);
    }
}

/// Writes `span`'s `traceparent` (and `tracestate`) into an upstream
/// request's headers, so the upstream's spans join the trace. Nothing is
/// written when tracing is off.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if off(span) {
        return;
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}
