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
    /// Read as text so that a bad one is refused in words, as
    /// `PageQuery`'s are.
    #[serde(default)]
    after: Option<String>,
}

impl EventsQuery {
    /// The sequence number to list events after; 0 when absent.
    fn after(&self) -> Result<i64, ApiError> {
        match &self.after {
            None => Ok(0),
            Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid(
                    format!(
                        "'after' must be an event sequence number (an integer from 0 to {}), \
                         not '{s}'.",
                        i64::MAX
                    ),
                    Some("after".into()),
                )
            }),
        }
    }
}

pub(crate) async fn events(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    Ok(response(
        runs::events(&gw.runtime, &caller, &id, q.after()?).await?,
    ))
}
