//! `/v1/conversations`: the Conversations API. A conversation is state
//! held by this instance, so creating one or adding items to it is a
//! `hold` decision recorded in the ledger like a stored response.

use crate::body::{Path, Query};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use treaty_domain::Route;
use treaty_keys::VerifiedKey;
use treaty_openai::responses::{
    Conversation, ConversationCreate, ConversationItemsCreate, ConversationUpdate, Deleted, Item,
    ItemList, new_id,
};
use treaty_store::{ConversationRow, Order};

use super::{
    PageQuery, changed, from_json, invalid, item_row, json, not_found, now_ms, store_error, to_json,
};
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

/// Refuses new items (`param` names their array) when an id repeats
/// among them or names an item the conversation already holds (`held`):
/// an id names one item, and the store would otherwise refuse the whole
/// batch as a store failure (for a response, only after the model
/// answered, losing the turn).
pub(crate) fn refuse_taken_ids<'a>(
    held: impl IntoIterator<Item = &'a str>,
    new: &[Item],
    param: &str,
) -> Result<(), ApiError> {
    let mut seen: std::collections::HashSet<&str> = held.into_iter().collect();
    for (i, item) in new.iter().enumerate() {
        if !seen.insert(item.id()) {
            return Err(ApiError::invalid(
                format!(
                    "Duplicate item found with id '{}': each item of a conversation has its \
                     own id; leave 'id' out to get a fresh one.",
                    item.id()
                ),
                Some(format!("{param}[{i}].id")),
            ));
        }
    }
    Ok(())
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
    req.validate().map_err(invalid)?;
    let items = req.items();
    refuse_taken_ids([], &items, "items")?;
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
    let items = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
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
    req.validate().map_err(invalid)?;
    let metadata = to_json(&req.metadata.unwrap_or_default())?;
    changed(
        "Conversation",
        &id,
        gw.store
            .update_conversation(key.tenant.as_str(), &id, &metadata)
            .await,
    )?;
    json(&object(&owned(&gw, &key, &id).await?)?)
}

pub(crate) async fn delete(
    State(gw): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    changed(
        "Conversation",
        &id,
        gw.store.delete_conversation(key.tenant.as_str(), &id).await,
    )?;
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
    req.validate().map_err(invalid)?;
    owned(&gw, &key, &id).await?;
    let items = req.items();
    let mut held = Vec::new();
    for item in &items {
        if gw
            .store
            .conversation_item(&id, item.id())
            .await
            .map_err(store_error)?
            .is_some()
        {
            held.push(item.id());
        }
    }
    refuse_taken_ids(held, &items, "items")?;
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
    changed(
        "Item",
        &item_id,
        gw.store.delete_conversation_item(&id, &item_id).await,
    )?;
    json(&object(&row)?)
}
