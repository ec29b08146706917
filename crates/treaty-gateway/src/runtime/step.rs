//! One model step of the runtime: a Chat Completions call decided, routed
//! and recorded like a client's, on behalf of a stored response or a run.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use treaty_domain::{Host, RequestContext, WorkloadClass};
use treaty_keys::VerifiedKey;
use treaty_openai::ChatCompletionRequest;
use treaty_openai::responses::{ChatOutput, output_from_chat};
use treaty_providers::{ChunkStream, StreamEvent};

use crate::error::{ApiError, Code};
use crate::outcome::{Outcome, record};
use crate::pipeline::{Ask, Gate, Prepared, prepare};
use crate::routes::chat::{Ready, cost, send_chat};
use crate::state::Gateway;
use crate::upstream::Attempt;

/// Where a step ran and why it could.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub host: Arc<Host>,
    pub class: WorkloadClass,
    /// The clauses behind the serving host's verdict.
    pub clauses: String,
}

/// A step answered in full.
pub(crate) struct FullStep {
    pub output: ChatOutput,
    pub placed: Placed,
}

/// A streamed step whose first event has arrived. The caller reads the
/// rest, then calls [`Ending::end`] once.
pub(crate) struct StreamingStep {
    pub first: StreamEvent,
    pub rest: ChunkStream,
    pub placed: Placed,
    /// The decision record's commit in batched mode: awaited before the
    /// caller's final event.
    pub gate: Gate,
    pub ending: Ending,
}

/// What recording a streamed step's outcome needs.
pub(crate) struct Ending {
    ctx: RequestContext,
    host: Arc<Host>,
    host_index: usize,
    attempts: Vec<Attempt>,
    started: Instant,
    model: String,
}

impl Ending {
    /// Records the step's outcome and spend.
    pub fn end(
        self,
        gw: &Gateway,
        usage: Option<treaty_openai::Usage>,
        client_cancelled: bool,
        error: Option<String>,
    ) {
        let spent = cost(&self.host, &self.model, usage);
        if let Some(c) = spent {
            gw.router.spend(self.host_index, c);
        }
        record(
            gw,
            &self.ctx,
            &Outcome {
                status: 200,
                served_by: Some(self.host.id.clone()),
                attempts: self.attempts,
                usage,
                cost: spent,
                latency: self.started.elapsed(),
                client_cancelled,
                error,
            },
        );
    }
}

/// Decides, records and sends one step; `chat.stream` must be unset.
pub(crate) async fn full(
    gw: &Gateway,
    key: &VerifiedKey,
    headers: &HeaderMap,
    ask: Ask<'_>,
    chat: &ChatCompletionRequest,
) -> Result<FullStep, ApiError> {
    let started = Instant::now();
    let Prepared {
        ctx,
        placement,
        plan,
        gate,
    } = prepare(gw, key, headers, ask).await?;
    let served = match send_chat(gw, &ctx, &plan, chat).await {
        Ok(s) => s,
        Err(failed) => {
            record(gw, &ctx, &Outcome::failed(&failed, started.elapsed()));
            return Err(failed.error);
        }
    };
    let Ready::Full { body, usage } = served.value else {
        return Err(ApiError::new(
            Code::UpstreamError,
            "The host streamed a reply that was asked for in full.",
        ));
    };
    let spent = cost(&served.host, &chat.model, usage);
    if let Some(c) = spent {
        gw.router.spend(served.host_index, c);
    }
    crate::pipeline::pass_gate(gate).await?;
    record(
        gw,
        &ctx,
        &Outcome {
            status: 200,
            served_by: Some(served.host.id.clone()),
            attempts: served.attempts,
            usage,
            cost: spent,
            latency: started.elapsed(),
            client_cancelled: false,
            error: None,
        },
    );
    let output = output_from_chat(&body).map_err(|e| {
        ApiError::new(
            Code::UpstreamError,
            format!("The host's reply could not be read: {e}"),
        )
    })?;
    Ok(FullStep {
        output,
        placed: Placed {
            clauses: placement.clauses_for(served.host_index),
            host: served.host,
            class: placement.class,
        },
    })
}

/// Decides, records and starts one streamed step; `chat.stream` must be
/// set.
pub(crate) async fn streaming(
    gw: &Gateway,
    key: &VerifiedKey,
    headers: &HeaderMap,
    ask: Ask<'_>,
    chat: &ChatCompletionRequest,
) -> Result<StreamingStep, ApiError> {
    let started = Instant::now();
    let Prepared {
        ctx,
        placement,
        plan,
        gate,
    } = prepare(gw, key, headers, ask).await?;
    let served = match send_chat(gw, &ctx, &plan, chat).await {
        Ok(s) => s,
        Err(failed) => {
            record(gw, &ctx, &Outcome::failed(&failed, started.elapsed()));
            return Err(failed.error);
        }
    };
    let Ready::Stream { first, rest } = served.value else {
        return Err(ApiError::new(
            Code::UpstreamError,
            "The host answered in full a reply that was asked for as a stream.",
        ));
    };
    Ok(StreamingStep {
        first,
        rest,
        placed: Placed {
            clauses: placement.clauses_for(served.host_index),
            host: served.host.clone(),
            class: placement.class,
        },
        gate,
        ending: Ending {
            ctx,
            host: served.host,
            host_index: served.host_index,
            attempts: served.attempts,
            started,
            model: chat.model.clone(),
        },
    })
}
