//! `treaty contracts explain` and `POST /admin/explain`: one request
//! described by hand, decided and explained with every host's verdict.

use serde::Deserialize;
use treaty_classify::{Features, Input};
use treaty_contracts::Query;
use treaty_domain::WorkloadClass;

use crate::policy::Policy;

/// A request described for an explanation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub tenant: String,
    pub channel: String,
    pub product: String,
    /// The route the request is made on, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The request body (for `store`, `previous_response_id`, ...).
    #[serde(default)]
    pub body: serde_json::Value,
    /// RFC 3339; default now.
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub data_classification: Option<String>,
    /// A class the client declares (as with `x-treaty-workload-class`).
    #[serde(default)]
    pub declared_class: Option<String>,
    /// Explain a model step of an agent run.
    #[serde(default)]
    pub model_step: bool,
}

/// Why a described request cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExplainError(pub String);

/// The explanation of one request, as JSON: `{"admitted", "admit_clauses",
/// "workload_class", "classified_by", "hosts": [{"id", "allowed",
/// "clauses"}], "runtime": {"allowed", "clauses"}, "shadow": [...]}` with
/// every configured host, in config order.
pub fn explain(policy: &Policy, req: &ExplainRequest) -> Result<serde_json::Value, ExplainError> {
    let config = policy.config();
    let err = |m: String| ExplainError(m);
    config
        .check_binding(&req.tenant, &req.channel, &req.product)
        .map_err(err)?;
    let product = config
        .product(&req.product)
        .ok_or_else(|| err(format!("unknown product {:?}", req.product)))?;
    let at_unix_ms = match &req.at {
        None => treaty_domain::now_ms(),
        Some(text) => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| err(format!("`at` must be an RFC 3339 time ({text:?}: {e})")))?;
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
    };
    let declared = match &req.declared_class {
        None => None,
        Some(name) => Some(
            name.parse::<WorkloadClass>()
                .map_err(|()| err(format!("unknown workload class {name:?}")))?,
        ),
    };
    let input = Input {
        route: &req.route,
        product: &req.product,
        product_kind: product.kind,
        features: features_of(&req.route, &req.body),
        declared,
        model_step: req.model_step,
    };
    let data_class = req
        .data_classification
        .clone()
        .unwrap_or_else(|| policy.default_data_classification().to_owned());
    if !policy.data_classifications().contains(&data_class) {
        return Err(err(format!(
            "unknown data classification {data_class:?}; expected one of: {}",
            policy.data_classifications().join(", ")
        )));
    }
    let id_err = |e: treaty_domain::IdError| err(e.to_string());
    let tenant: treaty_domain::TenantId = req.tenant.parse().map_err(id_err)?;
    let channel: treaty_domain::ChannelId = req.channel.parse().map_err(id_err)?;
    let product_id: treaty_domain::ProductId = req.product.parse().map_err(id_err)?;
    let explain_under = |reading: &crate::Reading| -> Result<serde_json::Value, ExplainError> {
        let classified = reading.classifier.classify(&input);
        let json = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| err(e.to_string()));
        let (admitted, admit_clauses, hosts, runtime) = match &reading.contracts {
            None => (
                true,
                serde_json::json!([]),
                config
                    .hosts
                    .iter()
                    .map(|h| serde_json::json!({"id": h.id(), "allowed": true, "clauses": []}))
                    .collect::<Vec<_>>()
                    .into(),
                serde_json::json!({"allowed": true, "clauses": []}),
            ),
            Some(contracts) => {
                let e = contracts.explain(&Query {
                    tenant: &tenant,
                    channel: &channel,
                    product: &product_id,
                    class: classified.class,
                    data_classification: &data_class,
                    at_unix_ms,
                });
                (
                    e.admitted,
                    json(serde_json::to_value(&e.admit_clauses))?,
                    json(serde_json::to_value(&e.hosts))?,
                    json(serde_json::to_value(&e.runtime))?,
                )
            }
        };
        Ok(serde_json::json!({
            "reading": reading.name(),
            "admitted": admitted,
            "admit_clauses": admit_clauses,
            "workload_class": classified.class,
            "classified_by": classified.rule,
            "hosts": hosts,
            "runtime": runtime,
        }))
    };
    let mut out = explain_under(policy.in_force())?;
    let shadows = policy
        .shadows()
        .iter()
        .map(explain_under)
        .collect::<Result<Vec<_>, _>>()?;
    if !shadows.is_empty() {
        out["shadow"] = serde_json::Value::Array(shadows);
    }
    Ok(out)
}

/// Statefulness features of a body on a route: only the Responses API
/// holds state through its body.
pub fn features_of(route: &str, body: &serde_json::Value) -> Features {
    if !route.starts_with("/v1/responses") {
        return crate::stateless();
    }
    Features {
        store: body.get("store").and_then(serde_json::Value::as_bool),
        previous_response_id: body
            .get("previous_response_id")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())),
        conversation: body.get("conversation").is_some_and(|v| !v.is_null()),
    }
}
