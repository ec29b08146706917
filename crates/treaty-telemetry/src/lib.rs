//! What Treaty tells operators: Prometheus metrics and OpenTelemetry traces.
//!
//! [`Metrics`] is the registry behind `/metrics`, with the catalogue of
//! every metric described once ([`CATALOGUE`]). [`trace::layer`] builds
//! the `tracing` layer that exports spans over OTLP/HTTP, configured by
//! the standard `OTEL_EXPORTER_OTLP_*` variables over the config file;
//! [`span`] sets the GenAI semantic-convention attributes and Treaty's
//! own on spans, and carries W3C `traceparent` from clients to upstreams.
//!
//! Why `prometheus-client` rather than `metrics` with its exporter: it is
//! the Prometheus project's own client, registries are values (no global
//! recorder, so tests and several gateways in one process do not share
//! state), label sets are typed structs checked at compile time, and it
//! brings no HTTP server of its own; the gateway serves the text.
//!
//! This crate never decides anything and never blocks a request: metrics
//! are atomics behind interned labels; spans are exported in batches from
//! the SDK's thread, and a failed export is dropped.

mod metrics;
pub mod span;
pub mod trace;

pub use metrics::{
    BreakerState, CATALOGUE, CONTENT_TYPE, Kind, MetricDef, Metrics, ModelCall, RequestDone,
};
