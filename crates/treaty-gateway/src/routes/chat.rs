//! `POST /v1/chat/completions`, plain and streamed.

use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt;
use treaty_domain::Route;
use treaty_openai::ChatCompletionRequest;
use treaty_providers::{ChatReply, ChunkStream, StreamEvent, UpstreamError};

use super::{Shared, placed_headers};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::outcome::{Outcome, record};
use crate::pipeline::{Ask, Prepared, pass_gate, prepare};
use crate::sse::SseBody;
use crate::upstream::dispatch;

/// A reply ready to send: a full body, or a stream whose first event has
/// already arrived (so failover was still possible until then).
pub(crate) enum Ready {
    Full {
        body: Bytes,
        usage: Option<treaty_openai::Usage>,
    },
    Stream {
        first: StreamEvent,
        rest: ChunkStream,
    },
}

pub(crate) async fn chat_completions(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let key = authenticate(&gw, &headers).await?;
    let req: ChatCompletionRequest = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param)))?;
    let Prepared {
        ctx,
        placement,
        plan,
        gate,
    } = prepare(
        &gw,
        &key,
        &headers,
        Ask::request(&request_id, Route::ChatCompletions, &req.model),
    )
    .await?;

    let result = send_chat(&gw, &ctx, &plan, &req).await;

    let served = match result {
        Ok(served) => served,
        Err(failed) => {
            record(&gw, &ctx, &Outcome::failed(&failed, started.elapsed()));
            return Err(failed.error);
        }
    };

    let clauses = placement.clauses_for(served.host_index);
    match served.value {
        Ready::Full { body, usage } => {
            let cost = cost(&served.host, &req.model, usage);
            if let Some(c) = cost {
                gw.router.spend(served.host_index, c);
            }
            pass_gate(gate).await?;
            record(
                &gw,
                &ctx,
                &Outcome {
                    status: 200,
                    served_by: Some(served.host.id.clone()),
                    attempts: served.attempts,
                    usage,
                    cost,
                    latency: started.elapsed(),
                    client_cancelled: false,
                    error: None,
                },
            );
            let mut res = Response::new(Body::from(treaty_openai::with_model(&body, &req.model)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            placed_headers(&mut res, &served.host, placement.class, &clauses);
            Ok(res)
        }
        Ready::Stream { first, rest } => {
            let host = served.host.clone();
            let index = served.host_index;
            let mut attempts = served.attempts;
            let model = req.model.clone();
            let gw_end = gw.clone();
            let on_end = move |summary: crate::sse::StreamSummary| {
                // A stream the host cut or corrupted is a failed attempt,
                // though it had started to serve.
                if let (Some(error), Some(last)) = (&summary.error, attempts.last_mut())
                    && !summary.client_cancelled
                {
                    last.error = Some(error.clone());
                }
                let cost = cost(&host, &model, summary.usage);
                if let Some(c) = cost {
                    gw_end.router.spend(index, c);
                }
                record(
                    &gw_end,
                    &ctx,
                    &Outcome {
                        status: 200,
                        served_by: Some(host.id.clone()),
                        attempts,
                        usage: summary.usage,
                        cost,
                        latency: started.elapsed(),
                        client_cancelled: summary.client_cancelled,
                        error: summary.error,
                    },
                );
            };
            let body = SseBody::new(
                first,
                rest,
                served.host.id.clone(),
                req.model.clone(),
                gate,
                on_end,
            );
            let mut res = Response::new(Body::from_stream(body));
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            placed_headers(&mut res, &served.host, placement.class, &clauses);
            Ok(res)
        }
    }
}

pub(crate) fn cost(
    host: &treaty_domain::Host,
    model: &str,
    usage: Option<treaty_openai::Usage>,
) -> Option<f64> {
    let usage = usage?;
    let deployment = host.deployment(model)?;
    Some(deployment.cost(usage.prompt_tokens, usage.completion_tokens))
}

/// Sends a chat request along its plan: a full reply, or a stream whose
/// first event has arrived (so failover stays possible until then).
pub(crate) async fn send_chat(
    gw: &crate::state::Gateway,
    ctx: &treaty_domain::RequestContext,
    plan: &treaty_router::Plan,
    req: &ChatCompletionRequest,
) -> Result<crate::upstream::Served<Ready>, crate::upstream::Failed> {
    dispatch(gw, ctx, plan, |provider, host, call| async move {
        let Some(deployment) = host.deployment(&req.model) else {
            return Err(UpstreamError::Protocol("host lost its deployment".into()));
        };
        match provider.chat(req, deployment, &call).await? {
            ChatReply::Full { body, usage } => Ok(Ready::Full { body, usage }),
            ChatReply::Stream(mut rest) => {
                let wait = call.first_byte_timeout.min(
                    call.deadline
                        .saturating_duration_since(tokio::time::Instant::now()),
                );
                match tokio::time::timeout(wait, rest.next()).await {
                    Ok(Some(Ok(first))) => Ok(Ready::Stream { first, rest }),
                    Ok(Some(Err(e))) => Err(e),
                    Ok(None) => Err(UpstreamError::Truncated),
                    Err(_) => Err(UpstreamError::Timeout {
                        phase: treaty_providers::TimeoutPhase::FirstByte,
                    }),
                }
            }
        }
    })
    .await
}
