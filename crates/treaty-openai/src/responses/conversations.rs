//! Conversations (`/v1/conversations`) and the list and deletion shapes
//! shared with stored responses.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::items::Item;
use super::request::{validate_items, validate_metadata, with_id_and_status};

/// A conversation: an id that responses append their items to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// `conv_…`.
    pub id: String,
    /// Always `"conversation"`.
    #[serde(default = "conversation_object")]
    pub object: String,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

fn conversation_object() -> String {
    "conversation".to_owned()
}

impl Conversation {
    /// A conversation with a fresh `conv_…` id.
    pub fn new(created_at: i64, metadata: Map<String, Value>) -> Self {
        Conversation {
            id: super::new_id("conv"),
            object: conversation_object(),
            created_at,
            metadata,
        }
    }
}

/// `POST /v1/conversations`: optional initial items (at most 20, as at
/// OpenAI) and metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl ConversationCreate {
    /// Checks item references and metadata limits; returns (message, param).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(items) = &self.items {
            validate_item_batch(items)?;
        }
        if let Some(metadata) = &self.metadata {
            validate_metadata(metadata, "metadata")?;
        }
        Ok(())
    }

    /// The initial items with ids and status `completed`.
    pub fn items(&self) -> Vec<Item> {
        self.items
            .iter()
            .flatten()
            .cloned()
            .map(with_id_and_status)
            .collect()
    }
}

/// `POST /v1/conversations/{id}`: replaces the metadata (`null` clears it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationUpdate {
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

impl ConversationUpdate {
    /// Checks metadata limits; returns (message, param).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match &self.metadata {
            Some(metadata) => validate_metadata(metadata, "metadata"),
            None => Ok(()),
        }
    }
}

/// `POST /v1/conversations/{id}/items`: items to append (1 to 20).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItemsCreate {
    pub items: Vec<Item>,
}

impl ConversationItemsCreate {
    /// Checks count and item references; returns (message, param).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.items.is_empty() {
            return Err((
                "'items' must hold at least one item.".into(),
                "items".into(),
            ));
        }
        validate_item_batch(&self.items)
    }

    /// The items with ids and status `completed`.
    pub fn items(&self) -> Vec<Item> {
        self.items.iter().cloned().map(with_id_and_status).collect()
    }
}

fn validate_item_batch(items: &[Item]) -> Result<(), (String, String)> {
    if items.len() > 20 {
        return Err((
            format!("'items' may hold at most 20 items, got {}.", items.len()),
            "items".into(),
        ));
    }
    validate_items(items, "items")
}

/// A page of items, for `GET /v1/responses/{id}/input_items` and
/// `GET /v1/conversations/{id}/items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemList {
    /// Always `"list"`.
    pub object: String,
    pub data: Vec<Item>,
    /// `null` on an empty page (the SDKs type it as a string but do not
    /// check).
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl ItemList {
    /// A page whose first and last ids are taken from `data`.
    pub fn new(data: Vec<Item>, has_more: bool) -> Self {
        ItemList {
            object: "list".to_owned(),
            first_id: data.first().map(|i| i.id().to_owned()),
            last_id: data.last().map(|i| i.id().to_owned()),
            data,
            has_more,
        }
    }
}

/// The body of a successful delete.
///
/// `DELETE /v1/conversations/{id}` answers `{id, object:
/// "conversation.deleted", deleted: true}`, which the SDKs return.
/// `DELETE /v1/responses/{id}`: the SDKs discard the body (openai-python
/// returns `None`, openai-node `void`) and only need a 2xx; OpenAI's
/// reference shows `{id, object: "response", deleted: true}`, which
/// [`Deleted::response`] reproduces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}

impl Deleted {
    /// The body for a deleted response.
    pub fn response(id: impl Into<String>) -> Self {
        Deleted {
            id: id.into(),
            object: "response".to_owned(),
            deleted: true,
        }
    }

    /// The body for a deleted conversation.
    pub fn conversation(id: impl Into<String>) -> Self {
        Deleted {
            id: id.into(),
            object: "conversation.deleted".to_owned(),
            deleted: true,
        }
    }
}
