//! `POST /v1/embeddings`.

use std::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use treaty_domain::Route;
use treaty_openai::EmbeddingsRequest;
use treaty_providers::UpstreamError;

use super::chat::cost;
use super::{Shared, X_TREATY_HOST, context, host_header};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::outcome::{Outcome, record};
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
    let ctx = context(&gw, &key, &request_id, Route::Embeddings, &req.model)?;

    let req = &req;
    let result = dispatch(&gw, &ctx, |provider, host, call| async move {
        let Some(deployment) = host.deployment(&req.model) else {
            return Err(UpstreamError::Protocol("host lost its deployment".into()));
        };
        provider.embeddings(req, deployment, &call).await
    })
    .await;

    match result {
        Ok(served) => {
            let usage = served.value.usage;
            record(
                &ctx,
                &Outcome {
                    status: 200,
                    served_by: Some(served.host.id.clone()),
                    attempts: served.attempts,
                    usage,
                    cost: cost(&served.host, &req.model, usage),
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
                treaty_openai::with_model(&served.value.body, &req.model),
            )
                .into_response();
            res.headers_mut()
                .insert(X_TREATY_HOST.clone(), host_header(&served.host));
            Ok(res)
        }
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
            Err(failed.error)
        }
    }
}
