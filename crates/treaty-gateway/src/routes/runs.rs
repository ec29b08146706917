//! `/v1/runs`: runs, served by the runtime.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use treaty_runtime::PageQuery;
use treaty_runtime::runs::{self, Approvals, ToolOutputs};

use crate::body::{Json, Path, Query};
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;
use crate::reply::response;

pub(crate) async fn list(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(response(runs::list(&gw.runtime, &caller, &q).await?))
}

pub(crate) async fn retrieve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(runs::retrieve(&gw.runtime, &caller, &id).await?))
}

pub(crate) async fn cancel(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(runs::cancel(&gw.runtime, &caller, &id).await?))
}

pub(crate) async fn submit_tool_outputs(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<ToolOutputs>,
) -> Result<Response, ApiError> {
    Ok(response(
        runs::submit_tool_outputs(&gw.runtime, &caller, &id, req).await?,
    ))
}

pub(crate) async fn approve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<Approvals>,
) -> Result<Response, ApiError> {
    Ok(response(
        runs::approve(&gw.runtime, &caller, &id, req).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: Option<i64>,
}

pub(crate) async fn events(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    Ok(response(
        runs::events(&gw.runtime, &caller, &id, q.after.unwrap_or(0)).await?,
    ))
}
