//! What happened to a request, reported once when it ends.
//!
//! This is the seam the ledger takes over: today an outcome is emitted as
//! a structured `tracing` event at debug level (target `treaty::outcome`);
//! the ledger issue makes it a durable, hash-chained record. Outcomes
//! never hold prompts, completions or secrets.

use std::time::Duration;

use treaty_domain::{HostId, RequestContext};
use treaty_openai::Usage;

use crate::upstream::Attempt;

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub served_by: Option<HostId>,
    pub attempts: Vec<Attempt>,
    pub usage: Option<Usage>,
    pub cost: Option<f64>,
    pub latency: Duration,
    pub client_cancelled: bool,
    pub error: Option<String>,
}

impl Outcome {
    pub(crate) fn failed(failed: &crate::upstream::Failed, latency: Duration) -> Outcome {
        Outcome {
            status: failed.error.status().as_u16(),
            served_by: None,
            attempts: failed.attempts.clone(),
            usage: None,
            cost: None,
            latency,
            client_cancelled: false,
            error: Some(failed.error.message.clone()),
        }
    }
}

pub(crate) fn record(ctx: &RequestContext, outcome: &Outcome) {
    tracing::debug!(
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
}
