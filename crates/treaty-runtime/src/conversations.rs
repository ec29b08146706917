//! The Conversations API. A conversation is state held by this instance:
//! creating, reading, updating and deleting it, and adding, listing,
//! reading and deleting its items, each pass the state gate and are
//! recorded.

use treaty_domain::StateOp;
use treaty_engine::{Caller, Error, Held, Owner, StateAsk};
use treaty_openai::responses::{
    Conversation, ConversationCreate, ConversationItemsCreate, ConversationUpdate, Deleted, Item,
    ItemList, new_id,
};
use treaty_store::{ConversationRow, Order};

use crate::page::PageQuery;
use crate::stored::{changed, from_json, invalid, item_row, json, now_ms, to_json};
use crate::{Reply, Runtime, settled};

fn object(row: &ConversationRow) -> Result<Conversation, Error> {
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
) -> Result<(), Error> {
    let mut seen: std::collections::HashSet<&str> = held.into_iter().collect();
    for (i, item) in new.iter().enumerate() {
        if !seen.insert(item.id()) {
            return Err(Error::invalid(
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

/// Reads one of the tenant's conversations (404 when it has none by that
/// id). `param` names the request field that named it, if any.
pub(crate) async fn row(rt: &Runtime, caller: &Caller, id: &str) -> Result<ConversationRow, Error> {
    rt.engine
        .store
        .conversation(caller.key.tenant.as_str(), id)
        .await
        .map_err(Error::store)?
        .ok_or_else(|| Error::not_found("Conversation", id))
}

/// Whether the caller's key may use a stored conversation: the tenant's
/// (the store query filtered on it) and of the key's product. Checked
/// where a conversation is continued by another operation (a response or
/// a run), whose own gate decides the hold.
pub(crate) fn same_product(caller: &Caller, row: &ConversationRow) -> Result<(), Error> {
    if row.product == caller.key.product.as_str() {
        Ok(())
    } else {
        Err(Error::not_found("Conversation", &row.id))
    }
}

async fn gated(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    op: StateOp,
) -> Result<(ConversationRow, Held), Error> {
    let row = row(rt, caller, id).await?;
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op,
                id,
                model: "",
                features: treaty_policy::conversation(),
                owner: Some(Owner {
                    tenant: &row.tenant,
                    product: &row.product,
                }),
            },
        )
        .await?;
    Ok((row, held))
}

pub async fn create(
    rt: &Runtime,
    caller: &Caller,
    req: ConversationCreate,
) -> Result<Reply, Error> {
    req.validate().map_err(invalid)?;
    let mut items = req.items();
    crate::references::resolve(rt, caller, &mut items, "items").await?;
    refuse_taken_ids([], &items, "items")?;
    let id = new_id("conv");
    let held = rt
        .engine
        .gate_state(
            caller,
            StateAsk {
                op: StateOp::ConversationCreate,
                id: &id,
                model: "",
                features: treaty_policy::conversation(),
                owner: None,
            },
        )
        .await?;
    let result = async {
        let key = &caller.key;
        let row = ConversationRow {
            id: id.clone(),
            tenant: key.tenant.to_string(),
            channel: key.channel.to_string(),
            product: key.product.to_string(),
            created_at: now_ms(),
            metadata: to_json(&req.metadata.clone().unwrap_or_default())?,
        };
        let items = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
        rt.engine
            .store
            .insert_conversation(&row, &items)
            .await
            .map_err(Error::store)?;
        json(&object(&row)?)
    }
    .await;
    settled(held, result)
}

pub async fn retrieve(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::ConversationRetrieve).await?;
    settled(held, object(&row).and_then(|c| json(&c)))
}

pub async fn update(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    req: ConversationUpdate,
) -> Result<Reply, Error> {
    req.validate().map_err(invalid)?;
    let (_, held) = gated(rt, caller, id, StateOp::ConversationUpdate).await?;
    let result = async {
        let metadata = to_json(&req.metadata.unwrap_or_default())?;
        changed(
            "Conversation",
            id,
            rt.engine
                .store
                .update_conversation(caller.key.tenant.as_str(), id, &metadata)
                .await,
        )?;
        json(&object(&row(rt, caller, id).await?)?)
    }
    .await;
    settled(held, result)
}

pub async fn delete(rt: &Runtime, caller: &Caller, id: &str) -> Result<Reply, Error> {
    let (_, held) = gated(rt, caller, id, StateOp::ConversationDelete).await?;
    let result = async {
        changed(
            "Conversation",
            id,
            rt.engine
                .store
                .delete_conversation(caller.key.tenant.as_str(), id)
                .await,
        )?;
        json(&Deleted::conversation(id.to_owned()))
    }
    .await;
    settled(held, result)
}

pub async fn create_items(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    req: ConversationItemsCreate,
) -> Result<Reply, Error> {
    req.validate().map_err(invalid)?;
    let (_, held) = gated(rt, caller, id, StateOp::ConversationItemsCreate).await?;
    let result = async {
        let store = &rt.engine.store;
        let mut items = req.items();
        crate::references::resolve(rt, caller, &mut items, "items").await?;
        let mut taken = Vec::new();
        for item in &items {
            if store
                .conversation_item(id, item.id())
                .await
                .map_err(Error::store)?
                .is_some()
            {
                taken.push(item.id());
            }
        }
        refuse_taken_ids(taken, &items, "items")?;
        let rows = items.iter().map(item_row).collect::<Result<Vec<_>, _>>()?;
        store
            .append_conversation_items(id, &rows, now_ms())
            .await
            .map_err(Error::store)?;
        json(&ItemList::new(items, false))
    }
    .await;
    settled(held, result)
}

/// Items after the item `after`, newest first unless `order=asc`: OpenAI
/// documents `desc` as the default (the SDKs say so too).
pub async fn list_items(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    q: &PageQuery,
) -> Result<Reply, Error> {
    let limit = q.limit()?;
    let order = q.order(Order::Desc)?;
    let (_, held) = gated(rt, caller, id, StateOp::ConversationItemsList).await?;
    let result = async {
        let store = &rt.engine.store;
        let cursor = match &q.after {
            None => None,
            Some(after) => Some(
                store
                    .conversation_item(id, after)
                    .await
                    .map_err(Error::store)?
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("'after' names no item of conversation '{id}': '{after}'."),
                            Some("after".into()),
                        )
                    })?
                    .seq,
            ),
        };
        let rows = store
            .conversation_items(id, cursor, order, limit + 1)
            .await
            .map_err(Error::store)?;
        let has_more = rows.len() as i64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit as usize) {
            items.push(from_json::<Item>(&row.body)?);
        }
        json(&ItemList::new(items, has_more))
    }
    .await;
    settled(held, result)
}

pub async fn retrieve_item(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    item_id: &str,
) -> Result<Reply, Error> {
    let (_, held) = gated(rt, caller, id, StateOp::ConversationItemRetrieve).await?;
    let result = async {
        let row = rt
            .engine
            .store
            .conversation_item(id, item_id)
            .await
            .map_err(Error::store)?
            .ok_or_else(|| Error::not_found("Item", item_id))?;
        json(&from_json::<Item>(&row.body)?)
    }
    .await;
    settled(held, result)
}

/// Deletes an item; answers with the conversation, as OpenAI does.
pub async fn delete_item(
    rt: &Runtime,
    caller: &Caller,
    id: &str,
    item_id: &str,
) -> Result<Reply, Error> {
    let (row, held) = gated(rt, caller, id, StateOp::ConversationItemDelete).await?;
    let result = async {
        changed(
            "Item",
            item_id,
            rt.engine.store.delete_conversation_item(id, item_id).await,
        )?;
        json(&object(&row)?)
    }
    .await;
    settled(held, result)
}
