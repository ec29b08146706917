//! `/v1/conversations`: the Conversations API. A conversation is state
//! held by this instance, so creating one or adding items to it is a
//! `hold` decision recorded in the ledger like a stored response.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use treaty_domain::Route;
use treaty_keys::VerifiedKey;
use treaty_openai::responses::{
    Conversation, ConversationCreate, ConversationItemsCreate, ConversationUpdate, Deleted, Item,
    ItemList, new_id,
};
use treaty_store::{ConversationRow, Order};

use super::{PageQuery, from_json, item_row, json, not_found, now_ms, store_error, to_json};
use crate::RequestId;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::pipeline::{StateAsk, hold_state};
use crate::routes::Shared;
use crate::state::Gateway;

fn conversation_features() -> treaty_classify::Features {
    treaty_classify::Features {
        store: Some(true),
        previous_response_id: false,
        conversation: true,
    }
}

fn object(row: &ConversationRow) -> Result<Conversation, ApiError> {
    let mut c = Conversation::new(row.created_at / 1000, from_json(&row.metadata)?);
    c.id = row.id.clone();
    Ok(c)
}

async fn owned(gw: &Gateway, key: &VerifiedKey, id: &str) -> Result<ConversationRow, ApiError> {
    gw.store
        .conversation(key.tenant.as_str(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found("Conversation", id))
}

pub(crate) async fn create(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: ConversationCreate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param)))?;
    let id = new_id("conv");
    hold_state(
        &gw,
        &key,
        &request_id,
        &headers,
        StateAsk {
            route: Route::Conversations,
            model: "",
            features: conversation_features(),
            state_id: &id,
        },
    )
    .await?;
    let row = ConversationRow {
        id: id.clone(),
        tenant: key.tenant.to_string(),
        created_at: now_ms(),
        metadata: to_json(&req.metadata.clone().unwrap_or_default())?,
    };
    let items = req
        .items()
        .iter()
        .map(item_row)
        .collect::<Result<Vec<_>, _>>()?;
    gw.store
        .insert_conversation(&row, &items)
        .await
        .map_err(store_error)?;
    json(&object(&row)?)
}

pub(crate) async fn retrieve(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    json(&object(&owned(&gw, &key, &id).await?)?)
}

pub(crate) async fn update(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: ConversationUpdate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param)))?;
    let metadata = to_json(&req.metadata.unwrap_or_default())?;
    if !gw
        .store
        .update_conversation(key.tenant.as_str(), &id, &metadata)
        .await
        .map_err(store_error)?
    {
        return Err(not_found("Conversation", &id));
    }
    json(&object(&owned(&gw, &key, &id).await?)?)
}

pub(crate) async fn delete(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    if !gw
        .store
        .delete_conversation(key.tenant.as_str(), &id)
        .await
        .map_err(store_error)?
    {
        return Err(not_found("Conversation", &id));
    }
    json(&Deleted::conversation(id))
}

pub(crate) async fn create_items(
    State(gw): State<Shared>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let req: ConversationItemsCreate = crate::body::parse(body, gw.config.server.max_body_bytes)?;
    req.validate()
        .map_err(|(message, param)| ApiError::invalid(message, Some(param)))?;
    owned(&gw, &key, &id).await?;
    hold_state(
        &gw,
        &key,
        &request_id,
        &headers,
        StateAsk {
            route: Route::Conversations,
            model: "",
            features: conversation_features(),
            state_id: &id,
        },
    )
    .await?;
    let items = req.items();
    let rows = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
    gw.store
        .append_conversation_items(&id, &rows, now_ms())
        .await
        .map_err(store_error)?;
    json(&ItemList::new(items, false))
}

/// Items after the item `after`, newest first unless `order=asc`: OpenAI
/// documents `desc` as the default (the SDKs say so too).
pub(crate) async fn list_items(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    owned(&gw, &key, &id).await?;
    let cursor = match &q.after {
        None => None,
        Some(after) => Some(
            gw.store
                .conversation_item(&id, after)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!("'after' names no item of conversation '{id}': '{after}'."),
                        Some("after".into()),
                    )
                })?
                .seq,
        ),
    };
    let rows = gw
        .store
        .conversation_items(&id, cursor, order, limit + 1)
        .await
        .map_err(store_error)?;
    let has_more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter().take(limit as usize) {
        items.push(from_json::<Item>(&row.body)?);
    }
    json(&ItemList::new(items, has_more))
}

pub(crate) async fn retrieve_item(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    owned(&gw, &key, &id).await?;
    let row = gw
        .store
        .conversation_item(&id, &item_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found("Item", &item_id))?;
    json(&from_json::<Item>(&row.body)?)
}

/// Deletes an item; answers with the conversation, as OpenAI does.
pub(crate) async fn delete_item(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    let row = owned(&gw, &key, &id).await?;
    if !gw
        .store
        .delete_conversation_item(&id, &item_id)
        .await
        .map_err(store_error)?
    {
        return Err(not_found("Item", &item_id));
    }
    json(&object(&row)?)
}
