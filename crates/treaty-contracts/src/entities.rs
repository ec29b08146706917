//! The configured parties and resources as Cedar entities and request parts.
//!
//! One place defines what a clause can see of a tenant, channel, product,
//! host, instance or tool (the attributes of `treaty.cedarschema`), so the verdict
//! table, `check` and the tests all evaluate exactly the same facts.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression, Schema,
};
use treaty_domain::{Channel, Geography, Host, Instance, Product, Tenant};

use crate::clause::ContractAction;
use crate::decision::ToolRef;
use crate::error::ContractError;

/// The configured entities a reading is evaluated over.
///
/// Every attribute a clause can read comes from here, and each is a small
/// finite set; that is what lets [`crate::Contracts`] compute every verdict
/// when it loads.
#[derive(Debug, Clone, Copy)]
pub struct Entities<'a> {
    pub tenants: &'a [Tenant],
    pub channels: &'a [Channel],
    pub products: &'a [Product],
    /// At most 64; verdicts are bitsets over these indices.
    pub hosts: &'a [Arc<Host>],
    /// The Treaty instance that holds stateful runtimes.
    pub instance: &'a Instance,
    /// The data classifications requests may carry. Only consulted when a
    /// clause reads `context.data_classification`.
    pub data_classifications: &'a [String],
}

/// The most hosts one reading can place over: verdicts are `u64` bitsets.
pub const MAX_HOSTS: usize = 64;

/// The value of `Channel.cloud` for a channel that is no marketplace.
pub const NO_CLOUD: &str = "none";

pub(crate) fn uid(type_name: &str, id: &str) -> Result<EntityUid, ContractError> {
    let ty = EntityTypeName::from_str(type_name)
        .map_err(|e| ContractError::Internal(format!("entity type {type_name}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

pub(crate) fn action_uid(action: ContractAction) -> Result<EntityUid, ContractError> {
    uid("Action", action.as_str())
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn entity(
    uid: EntityUid,
    attrs: impl IntoIterator<Item = (&'static str, RestrictedExpression)>,
) -> Result<Entity, ContractError> {
    let attrs: HashMap<String, RestrictedExpression> =
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Entity::new(uid, attrs, HashSet::new()).map_err(|e| ContractError::Internal(e.to_string()))
}

pub(crate) fn tenant_entity(t: &Tenant) -> Result<Entity, ContractError> {
    entity(
        uid("Tenant", t.id.as_str())?,
        [
            ("segment", string(&t.segment)),
            ("data_region", string(&t.data_region)),
        ],
    )
}

pub(crate) fn channel_entity(c: &Channel) -> Result<Entity, ContractError> {
    entity(
        uid("Channel", c.id.as_str())?,
        [
            ("kind", string(c.kind.as_str())),
            ("cloud", string(c.cloud.as_deref().unwrap_or(NO_CLOUD))),
        ],
    )
}

pub(crate) fn product_entity(p: &Product) -> Result<Entity, ContractError> {
    entity(
        uid("Product", p.id.as_str())?,
        [("kind", string(p.kind.as_str()))],
    )
}

pub(crate) fn host_entity(h: &Host) -> Result<Entity, ContractError> {
    entity(
        uid("Host", h.id.as_str())?,
        [
            ("cloud", string(&h.cloud)),
            ("region", string(&h.region)),
            ("geography", string(&h.geography().0)),
            ("provider", string(h.provider.as_str())),
            (
                "certifications",
                RestrictedExpression::new_set(h.certifications.iter().map(|c| string(c))),
            ),
        ],
    )
}

pub(crate) fn instance_entity(i: &Instance) -> Result<Entity, ContractError> {
    entity(
        uid("Instance", &i.id)?,
        [
            ("cloud", string(&i.cloud)),
            ("region", string(&i.region)),
            ("geography", string(&Geography::of_region(&i.region).0)),
        ],
    )
}

/// The `Tool` entity of one tool call, id `"<connector>/<name>"`.
pub(crate) fn tool_entity(tool: &ToolRef<'_>) -> Result<Entity, ContractError> {
    entity(
        uid("Tool", &format!("{}/{}", tool.connector, tool.name))?,
        [
            ("kind", string(tool.kind)),
            ("connector", string(tool.connector)),
            ("name", string(tool.name)),
        ],
    )
}

/// The request context every action shares.
pub(crate) fn context(
    class: &str,
    channel: &Channel,
    product: &Product,
    data_classification: &str,
) -> Result<Context, ContractError> {
    context_of(
        class,
        uid("Channel", channel.id.as_str())?,
        uid("Product", product.id.as_str())?,
        data_classification,
    )
}

/// The same from the channel's and product's entity ids.
pub(crate) fn context_of(
    class: &str,
    channel: EntityUid,
    product: EntityUid,
    data_classification: &str,
) -> Result<Context, ContractError> {
    Context::from_pairs([
        ("class".to_owned(), string(class)),
        (
            "channel".to_owned(),
            RestrictedExpression::new_entity_uid(channel),
        ),
        (
            "product".to_owned(),
            RestrictedExpression::new_entity_uid(product),
        ),
        (
            "data_classification".to_owned(),
            string(data_classification),
        ),
    ])
    .map_err(|e| ContractError::Internal(e.to_string()))
}

/// A Cedar entity store of the given tenants plus every channel, product,
/// host and the instance, checked against the schema.
pub(crate) fn cedar_entities<'t>(
    tenants: impl IntoIterator<Item = &'t Tenant>,
    e: &Entities<'_>,
    schema: &Schema,
) -> Result<cedar_policy::Entities, ContractError> {
    let mut all = Vec::new();
    for t in tenants {
        all.push(tenant_entity(t)?);
    }
    for c in e.channels {
        all.push(channel_entity(c)?);
    }
    for p in e.products {
        all.push(product_entity(p)?);
    }
    for h in e.hosts {
        all.push(host_entity(h)?);
    }
    all.push(instance_entity(e.instance)?);
    cedar_policy::Entities::from_entities(all, Some(schema))
        .map_err(|err| ContractError::Entities(err.to_string()))
}

/// Refuses entity lists the engine cannot represent.
pub(crate) fn validate(e: &Entities<'_>) -> Result<(), ContractError> {
    if e.hosts.len() > MAX_HOSTS {
        return Err(ContractError::Entities(format!(
            "{} hosts configured; a contract set places over at most {MAX_HOSTS}",
            e.hosts.len()
        )));
    }
    fn unique<'a>(kind: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), ContractError> {
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                return Err(ContractError::Entities(format!(
                    "duplicate {kind} id {id:?}"
                )));
            }
        }
        Ok(())
    }
    unique("tenant", e.tenants.iter().map(|t| t.id.as_str()))?;
    unique("channel", e.channels.iter().map(|c| c.id.as_str()))?;
    unique("product", e.products.iter().map(|p| p.id.as_str()))?;
    unique("host", e.hosts.iter().map(|h| h.id.as_str()))?;
    unique(
        "data classification",
        e.data_classifications.iter().map(String::as_str),
    )?;
    Ok(())
}
