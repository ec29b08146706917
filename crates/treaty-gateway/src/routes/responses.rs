//! `/v1/responses`: the Responses API, served by the runtime.

use axum::extract::State;
use axum::response::Response;
use treaty_openai::responses::CreateResponseRequest;
use treaty_runtime::{PageQuery, responses};

use crate::body::{Json, Path, Query};
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;
use crate::reply::response;

pub(crate) async fn create(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Json(req): Json<CreateResponseRequest>,
) -> Result<Response, ApiError> {
    Ok(response(
        responses::create(&gw.runtime, &caller, req).await?,
    ))
}

pub(crate) async fn retrieve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(
        responses::retrieve(&gw.runtime, &caller, &id).await?,
    ))
}

pub(crate) async fn delete(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(
        responses::delete(&gw.runtime, &caller, &id).await?,
    ))
}

pub(crate) async fn cancel(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(
        responses::cancel(&gw.runtime, &caller, &id).await?,
    ))
}

pub(crate) async fn input_items(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(response(
        responses::input_items_list(&gw.runtime, &caller, &id, &q).await?,
    ))
}
