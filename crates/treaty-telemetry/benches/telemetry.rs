//! What metrics and tracing add to one request.
//!
//! * `metrics/request`: one request's metrics (the request counter and
//!   durations, one attempt, one model call's GenAI histograms), labels
//!   warm;
//! * `trace/off`: a request span and an attempt span with every GenAI and
//!   Treaty attribute set, when no exporter is configured (the default):
//!   what tracing costs a deployment that does not use it;
//! * `render`: the `/metrics` page.
//!
//! `cargo bench -p treaty-telemetry --bench telemetry`

#![allow(clippy::unwrap_used)]

use criterion::Criterion;
use treaty_telemetry::span::{
    GenAiRequest, GenAiResponse, TreatyAttrs, record_request, record_response, record_treaty,
};
use treaty_telemetry::{Metrics, ModelCall, RequestDone};

fn one_request(m: &Metrics) {
    m.request(&RequestDone {
        route: "/v1/chat/completions",
        host: Some("azure-eastus"),
        class: "stateless_api",
        status: 200,
        tenant: "acme",
        total_seconds: 0.012,
        added_seconds: 0.000_09,
    });
    m.attempt("azure-eastus", "ok", 0.0119, false);
    m.model_call(&ModelCall {
        operation: "chat",
        provider: "azure.ai.openai",
        request_model: "gpt-4o",
        input_tokens: Some(120),
        output_tokens: Some(300),
        seconds: 0.0119,
        first_token_seconds: None,
        error_type: None,
    });
}

fn spans() {
    let request = tracing::info_span!("chat gpt-4o");
    record_request(
        &request,
        &GenAiRequest {
            operation: "chat",
            provider: "azure.ai.openai",
            request_model: "gpt-4o",
        },
    );
    record_treaty(
        &request,
        &TreatyAttrs {
            class: Some("stateless_api"),
            reading: Some("reading-openai"),
            clauses: &["C1", "C3"],
            host: Some("azure-eastus"),
            ledger_seq: Some(42),
        },
    );
    let attempt = tracing::info_span!(parent: &request, "attempt");
    record_treaty(
        &attempt,
        &TreatyAttrs {
            host: Some("azure-eastus"),
            ..TreatyAttrs::default()
        },
    );
    record_response(
        &request,
        &GenAiResponse {
            response_model: Some("gpt-4o"),
            input_tokens: Some(120),
            output_tokens: Some(300),
            finish_reasons: &["stop"],
            error_type: None,
        },
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let m = Metrics::new(false);
    one_request(&m);
    c.bench_function("metrics/request", |b| b.iter(|| one_request(&m)));
    c.bench_function("trace/off", |b| b.iter(spans));
    c.bench_function("render", |b| b.iter(|| m.render().len()));
    c.final_summary();
}
