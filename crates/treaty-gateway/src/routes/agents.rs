//! `/v1/agents`: agents, served by the runtime.

use axum::extract::State;
use axum::response::Response;
use treaty_runtime::PageQuery;
use treaty_runtime::agents::{self, AgentCreate, AgentUpdate};
use treaty_runtime::runs::{self, RunCreate};

use crate::body::{Json, Path, Query};
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;
use crate::reply::response;

pub(crate) async fn create(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Json(req): Json<AgentCreate>,
) -> Result<Response, ApiError> {
    Ok(response(agents::create(&gw.runtime, &caller, req).await?))
}

pub(crate) async fn list(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(response(agents::list(&gw.runtime, &caller, &q).await?))
}

pub(crate) async fn retrieve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(agents::retrieve(&gw.runtime, &caller, &id).await?))
}

pub(crate) async fn update(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<AgentUpdate>,
) -> Result<Response, ApiError> {
    Ok(response(
        agents::update(&gw.runtime, &caller, &id, req).await?,
    ))
}

pub(crate) async fn delete(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(agents::delete(&gw.runtime, &caller, &id).await?))
}

/// `POST /v1/agents/{id}/runs`.
pub(crate) async fn run(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<RunCreate>,
) -> Result<Response, ApiError> {
    Ok(response(
        runs::create(&gw.runtime, &caller, &id, req).await?,
    ))
}
