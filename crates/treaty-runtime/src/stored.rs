//! Reading and writing the JSON bodies of stored state.

use serde::Serialize;
use treaty_engine::{Code, Error};
use treaty_openai::responses::Item;
use treaty_store::ItemRow;

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| {
        Error::new(
            Code::Internal,
            format!("cannot encode a stored object: {e}"),
        )
    })
}

/// Reads a stored JSON body; a row that does not parse is a corrupt store.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, "a stored runtime object does not parse");
        Error::new(Code::Internal, "A stored object is corrupt.")
    })
}

/// An item as a store row.
pub(crate) fn item_row(item: &Item) -> Result<ItemRow, Error> {
    Ok(ItemRow {
        item_id: item.id().to_owned(),
        body: to_json(item)?,
    })
}

/// The outcome of a change to one of the tenant's rows: 404 when no row
/// changed (it does not exist, or it is another tenant's).
pub(crate) fn changed(
    what: &str,
    id: &str,
    result: Result<bool, treaty_store::StoreError>,
) -> Result<(), Error> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::not_found(what, id)),
        Err(e) => Err(Error::store(e)),
    }
}

/// A request body's own check failed: 400 naming the field.
pub(crate) fn invalid((message, param): (String, String)) -> Error {
    Error::invalid(message, Some(param))
}

/// A JSON reply with no model step.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<crate::Reply, Error> {
    Ok(crate::Reply::Json {
        body: to_json(value)?,
        placed: None,
    })
}

pub(crate) fn now_ms() -> i64 {
    treaty_domain::now_ms()
}
