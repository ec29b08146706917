//! `POST /v1/embeddings`.

use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use treaty_domain::Route;
use treaty_openai::EmbeddingsRequest;
use treaty_providers::UpstreamError;

use super::chat::cost;
use super::{Shared, placed_headers};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::outcome::{Outcome, record};
use crate::pipeline::{Ask, Prepared, pass_gate, prepare};
use crate::upstream::dispatch;

pub(crate) async fn embeddings(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let key = authenticate(&gw, &headers).await?;
    let req: EmbeddingsRequest = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param.to_owned())))?;
    let Prepared {
        ctx,
        placement,
        plan,
        gate,
    } = prepare(
        &gw,
        &key,
        &headers,
        Ask::request(&request_id, Route::Embeddings, &req.model),
    )
    .await?;

    let req = &req;
    let result = dispatch(&gw, &ctx, &plan, |provider, host, call| async move {
        let Some(deployment) = host.deployment(&req.model) else {
            return Err(UpstreamError::Protocol("host lost its deployment".into()));
        };
        provider.embeddings(req, deployment, &call).await
    })
    .await;

    match result {
        Ok(served) => {
            let usage = served.value.usage;
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
            let mut res = Response::new(Body::from(treaty_openai::with_model(
                &served.value.body,
                &req.model,
            )));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let clauses = placement.clauses_for(served.host_index);
            placed_headers(&mut res, &served.host, placement.class, &clauses);
            Ok(res)
        }
        Err(failed) => {
            record(&gw, &ctx, &Outcome::failed(&failed, started.elapsed()));
            Err(failed.error)
        }
    }
}
