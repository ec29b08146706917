//! `POST /v1/embeddings`.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use treaty_domain::Route;
use treaty_engine::{Answer, Call, Code, ModelRequest};
use treaty_openai::EmbeddingsRequest;

use crate::body::Json;
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;

pub(crate) async fn embeddings(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Json(req): Json<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param.to_owned())))?;
    let answer = gw
        .engine
        .call(Call {
            caller: &caller,
            request_id: &caller.request_id,
            route: Route::Embeddings,
            features: treaty_policy::stateless(),
            run_id: None,
            request: ModelRequest::Embeddings(&req),
        })
        .await?;
    let Answer::Full(full) = answer else {
        return Err(ApiError::new(
            Code::UpstreamError,
            "The host streamed an embeddings reply.",
        ));
    };
    let mut res = Response::new(Body::from(treaty_openai::with_model(
        &full.body, &req.model,
    )));
    crate::headers::json(&mut res);
    crate::headers::placed(&mut res, &full.placed);
    crate::headers::receipt(&mut res, full.receipt.as_deref());
    Ok(res)
}
