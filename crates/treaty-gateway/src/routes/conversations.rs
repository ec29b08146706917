//! `/v1/conversations`: the Conversations API, served by the runtime.

use axum::extract::State;
use axum::response::Response;
use treaty_openai::responses::{ConversationCreate, ConversationItemsCreate, ConversationUpdate};
use treaty_runtime::{PageQuery, conversations};

use crate::body::{Json, Path, Query};
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;
use crate::reply::response;

pub(crate) async fn create(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Json(req): Json<ConversationCreate>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::create(&gw.runtime, &caller, req).await?,
    ))
}

pub(crate) async fn retrieve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::retrieve(&gw.runtime, &caller, &id).await?,
    ))
}

pub(crate) async fn update(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<ConversationUpdate>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::update(&gw.runtime, &caller, &id, req).await?,
    ))
}

pub(crate) async fn delete(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::delete(&gw.runtime, &caller, &id).await?,
    ))
}

pub(crate) async fn create_items(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Json(req): Json<ConversationItemsCreate>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::create_items(&gw.runtime, &caller, &id, req).await?,
    ))
}

pub(crate) async fn list_items(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::list_items(&gw.runtime, &caller, &id, &q).await?,
    ))
}

pub(crate) async fn retrieve_item(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::retrieve_item(&gw.runtime, &caller, &id, &item_id).await?,
    ))
}

pub(crate) async fn delete_item(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(response(
        conversations::delete_item(&gw.runtime, &caller, &id, &item_id).await?,
    ))
}
