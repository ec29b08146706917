//! `item_reference` input items, resolved: each is replaced by the stored
//! item it names, one of the caller's tenant's and product's (from a
//! stored response's input or output, or a conversation), before anything
//! reads the input.
//!
//! Clients send references for turns Treaty itself stored: the Vercel AI
//! SDK, with `store` on, sends each earlier assistant message back as
//! `{"type":"item_reference","id":"msg_…"}`. An id the caller cannot see
//! (another tenant's or product's, a response stored with `store: false`,
//! a deleted one) is answered as an unknown one, so ids do not leak.

use treaty_engine::{Caller, Error};
use treaty_openai::responses::Item;

use crate::Runtime;
use crate::stored::from_json;

/// Replaces each reference in `items` (the request's array `param`) with
/// the item it names; 404 naming the item's index otherwise.
pub(crate) async fn resolve(
    rt: &Runtime,
    caller: &Caller,
    items: &mut [Item],
    param: &str,
) -> Result<(), Error> {
    let key = &caller.key;
    for (i, item) in items.iter_mut().enumerate() {
        let Item::ItemReference(reference) = item else {
            continue;
        };
        let body = rt
            .engine
            .store
            .stored_item(key.tenant.as_str(), key.product.as_str(), &reference.id)
            .await
            .map_err(Error::store)?
            .ok_or_else(|| {
                Error::not_found("Item", &reference.id).with_param(&format!("{param}[{i}]"))
            })?;
        *item = from_json(&body)?;
    }
    Ok(())
}
