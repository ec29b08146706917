//! `POST /v1/chat/completions`, plain and streamed.

use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use treaty_domain::Route;
use treaty_openai::ChatCompletionRequest;
use treaty_providers::{ChatReply, ChunkStream, StreamEvent, UpstreamError};

use super::{Shared, X_TREATY_HOST, context, host_header};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::outcome::{Outcome, record};
use crate::sse::SseBody;
use crate::upstream::dispatch;

/// A reply ready to send: a full body, or a stream whose first event has
/// already arrived (so failover was still possible until then).
enum Ready {
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
    let ctx = context(&gw, &key, &request_id, Route::ChatCompletions, &req.model)?;

    let req = &req;
    let result = dispatch(&gw, &ctx, |provider, host, call| async move {
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
    .await;

    let served = match result {
        Ok(served) => served,
        Err(failed) => {
            record(
                &ctx,
                &Outcome {
                    status: failed.error.status().as_u16(),
                    served_by: None,
                    attempts: failed.attempts,
                    usage: None,
                    cost: None,
                    latency: started.elapsed(),
                    client_cancelled: false,
                    error: Some(failed.error.message.clone()),
                },
            );
            return Err(failed.error);
        }
    };

    let host_value = host_header(&served.host);
    match served.value {
        Ready::Full { body, usage } => {
            let cost = cost(&served.host, &req.model, usage);
            record(
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
            let mut res = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                treaty_openai::with_model(&body, &req.model),
            )
                .into_response();
            res.headers_mut().insert(X_TREATY_HOST.clone(), host_value);
            Ok(res)
        }
        Ready::Stream { first, rest } => {
            let host = served.host.clone();
            let attempts = served.attempts;
            let model = req.model.clone();
            let on_end = move |summary: crate::sse::StreamSummary| {
                let cost = cost(&host, &model, summary.usage);
                record(
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
            h.insert(X_TREATY_HOST.clone(), host_value);
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
