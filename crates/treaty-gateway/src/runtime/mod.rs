//! The stateful runtime: the Responses API with stored state, the
//! Conversations API, agents and their durable runs.
//!
//! Treaty holds the state itself, in its store, and only where the
//! contracts let this instance hold the product's runtime (the `hold`
//! action, [`crate::pipeline::hold_state`]). Every model call the runtime
//! makes is a *model step*: a separate Chat Completions request decided,
//! routed and recorded like any other ([`step`]), inheriting tenant,
//! channel and product from the key that created the state and carrying
//! the response or run id into the ledger.
//!
//! Every read and write is scoped to the caller's tenant: another
//! tenant's ids answer 404, exactly like ids that do not exist.

pub(crate) mod agents;
pub(crate) mod conversations;
pub(crate) mod responses;
pub(crate) mod runs;
pub(crate) mod step;
pub mod worker;

use serde::Serialize;
use treaty_openai::responses::Item;
use treaty_store::{ItemRow, StoreError};

use crate::error::{ApiError, Code};

pub(crate) fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "the store failed a runtime query");
    ApiError::new(
        Code::StoreUnavailable,
        "The state store is unavailable; nothing was changed.",
    )
}

pub(crate) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(Code::NotFound, format!("{what} with id '{id}' not found."))
}

/// The outcome of a change to one of the tenant's rows: 404 when no row
/// changed (it does not exist, or it is another tenant's).
pub(crate) fn changed(
    what: &str,
    id: &str,
    result: Result<bool, StoreError>,
) -> Result<(), ApiError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(what, id)),
        Err(e) => Err(store_error(e)),
    }
}

/// A request body's own check failed: 400 naming the field.
pub(crate) fn invalid((message, param): (String, String)) -> ApiError {
    ApiError::invalid(message, Some(param))
}

pub(crate) fn now_ms() -> i64 {
    treaty_keys::now_ms()
}

/// An item as a store row.
pub(crate) fn item_row(item: &Item) -> Result<ItemRow, ApiError> {
    Ok(ItemRow {
        item_id: item.id().to_owned(),
        body: to_json(item)?,
    })
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| {
        ApiError::new(
            Code::Internal,
            format!("cannot encode a stored object: {e}"),
        )
    })
}

/// Reads a stored JSON body; a row that does not parse is a corrupt store.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, "a stored runtime object does not parse");
        ApiError::new(Code::Internal, "A stored object is corrupt.")
    })
}

/// `?limit=&order=&after=&before=` of list endpoints, checked.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct PageQuery {
    pub limit: Option<String>,
    pub order: Option<String>,
    pub after: Option<String>,
    /// Runs: only those of one agent.
    pub agent_id: Option<String>,
}

impl PageQuery {
    /// Limit 1..=100, default 20, as OpenAI's list endpoints.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match &self.limit {
            None => Ok(20),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(
                    format!("'limit' must be an integer from 1 to 100, not '{s}'."),
                    Some("limit".into()),
                )),
            },
        }
    }

    /// `asc` or `desc`; `default` when absent.
    pub fn order(&self, default: treaty_store::Order) -> Result<treaty_store::Order, ApiError> {
        match self.order.as_deref() {
            None => Ok(default),
            Some("asc") => Ok(treaty_store::Order::Asc),
            Some("desc") => Ok(treaty_store::Order::Desc),
            Some(other) => Err(ApiError::invalid(
                format!("'order' must be 'asc' or 'desc', not '{other}'."),
                Some("order".into()),
            )),
        }
    }
}

/// A list page in OpenAI's shape: `{"object":"list","data":[...],
/// "first_id","last_id","has_more"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T: Serialize> {
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T: Serialize> Page<T> {
    /// `rows` holds up to `limit + 1` entries: the extra one only says
    /// that there is more.
    pub fn new(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        Page {
            object: "list",
            first_id: rows.first().map(&id),
            last_id: rows.last().map(&id),
            data: rows,
            has_more,
        }
    }
}

/// A JSON 200 response.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<axum::response::Response, ApiError> {
    let body = to_json(value)?;
    let mut res = axum::response::Response::new(axum::body::Body::from(body));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
