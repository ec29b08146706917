//! What happened to a request, recorded once when it ends: the one
//! builder of outcome records.
//!
//! Every outcome is appended to the ledger (after its decision record)
//! and emitted as a `tracing` event at debug level (target
//! `treaty::outcome`). The outcome record is not awaited: the durability
//! promise covers the decision, the outcome follows with the next batch
//! someone waits for. Outcomes never hold prompts, completions or
//! secrets.

use std::time::Duration;

use treaty_domain::{HostId, RequestContext};
use treaty_ledger::{AttemptRecord, Entry, OutcomeRecord};
use treaty_openai::Usage;

use crate::dispatch::{Attempt, Failed};
use crate::engine::Engine;
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status the client got (a stream that started is a 200,
    /// however it ended).
    pub status: u16,
    pub served_by: Option<HostId>,
    pub attempts: Vec<Attempt>,
    pub usage: Option<Usage>,
    pub cost: Option<f64>,
    pub latency: Duration,
    pub client_cancelled: bool,
    /// The error code, when the request did not end well.
    pub error: Option<String>,
}

impl Outcome {
    /// A plain success with nothing served upstream (a state operation,
    /// a tool call made).
    pub fn ok(latency: Duration) -> Outcome {
        Outcome {
            status: 200,
            served_by: None,
            attempts: Vec::new(),
            usage: None,
            cost: None,
            latency,
            client_cancelled: false,
            error: None,
        }
    }

    /// Ended with `error` before or without any host serving.
    pub fn error(error: &Error, latency: Duration) -> Outcome {
        Outcome {
            status: error.status(),
            error: Some(error.code.as_str().to_owned()),
            ..Outcome::ok(latency)
        }
    }

    pub(crate) fn failed(failed: &Failed, latency: Duration) -> Outcome {
        Outcome {
            attempts: failed.attempts.clone(),
            ..Outcome::error(&failed.error, latency)
        }
    }
}

impl Engine {
    /// Records what happened to the request of `ctx`.
    pub fn record_outcome(&self, ctx: &RequestContext, outcome: &Outcome) {
        record(&self.ledger, &self.metrics, ctx, outcome);
    }
}

/// Logs an outcome (one line per request at info), counts it in the
/// metrics, and appends its record to `ledger`.
pub(crate) fn record(
    ledger: &treaty_ledger::Ledger,
    metrics: &treaty_telemetry::Metrics,
    ctx: &RequestContext,
    outcome: &Outcome,
) {
    let upstream: Duration = outcome.attempts.iter().map(|a| a.latency).sum();
    metrics.request(&treaty_telemetry::RequestDone {
        route: ctx.route.path(),
        host: outcome.served_by.as_ref().map(|h| h.as_str()),
        class: ctx.workload_class.map(|c| c.as_str()).unwrap_or("none"),
        status: outcome.status,
        tenant: ctx.tenant.as_str(),
        total_seconds: outcome.latency.as_secs_f64(),
        added_seconds: outcome.latency.saturating_sub(upstream).as_secs_f64(),
    });
    tracing::info!(
        target: "treaty::outcome",
        request_id = %ctx.request_id,
        key_id = %ctx.key_id,
        tenant = %ctx.tenant,
        channel = %ctx.channel,
        product = %ctx.product,
        route = ctx.route.path(),
        model = %ctx.model,
        workload_class = ctx.workload_class.map(|c| c.as_str()),
        classified_by = ctx.classified_by.as_deref(),
        status = outcome.status,
        served_by = outcome.served_by.as_ref().map(|h| h.as_str()),
        attempts = outcome.attempts.len(),
        prompt_tokens = outcome.usage.map(|u| u.prompt_tokens),
        completion_tokens = outcome.usage.map(|u| u.completion_tokens),
        cost = outcome.cost,
        latency_us = outcome.latency.as_micros() as u64,
        client_cancelled = outcome.client_cancelled,
        error = outcome.error.as_deref(),
        "request finished"
    );
    // Not awaited: the outcome follows the decision (with the next batch
    // someone waits for); a failed commit is logged by the ledger's writer.
    ledger.record(Entry::Outcome(outcome_record(ctx, outcome)));
}

/// The ledger record of an outcome.
fn outcome_record(ctx: &RequestContext, outcome: &Outcome) -> OutcomeRecord {
    let usage = outcome.usage.unwrap_or_default();
    OutcomeRecord {
        request_id: ctx.request_id.clone(),
        at_ms: treaty_domain::now_ms(),
        served_by: outcome.served_by.as_ref().map(|h| h.to_string()),
        attempts: outcome
            .attempts
            .iter()
            .map(|a| AttemptRecord {
                host: a.host.to_string(),
                error: a.error.clone(),
                latency_us: a.latency.as_micros() as u64,
            })
            .collect(),
        status: outcome.status,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost_micros: outcome.cost.map(|c| (c * 1e6).round() as i64).unwrap_or(0),
        latency_us: outcome.latency.as_micros() as u64,
        client_cancelled: outcome.client_cancelled,
        error: outcome.error.clone(),
    }
}
