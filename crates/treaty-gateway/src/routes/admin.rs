//! The admin API: managing virtual keys and budgets, and explaining a
//! decision. Every change is recorded in the ledger with its actor.
//!
//! Every route needs `Authorization: Bearer <admin token>`, the token
//! being read from the environment variable named by
//! `server.admin_token_env`. Without that variable the admin API answers
//! 403 and does nothing. Secrets are returned once, by the create call.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use treaty_keys::{KeyRequest, KeyView};

use crate::body::{Json, Path};
use crate::error::{ApiError, Code};
use crate::extract::Admin;
use crate::gateway::Gateway;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    tenant: String,
    channel: String,
    product: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
    /// Workload classes the key may declare.
    #[serde(default)]
    declare_classes: Option<Vec<String>>,
}

pub(crate) async fn create_key(
    State(gw): State<Gateway>,
    admin: Admin,
    Json(req): Json<CreateKey>,
) -> Result<Response, ApiError> {
    let engine = &gw.engine;
    engine
        .config
        .check_binding(&req.tenant, &req.channel, &req.product)
        .map_err(|m| ApiError::invalid(m, None))?;
    if let Some(models) = &req.models {
        let served = engine.config.model_names();
        if let Some(m) = models.iter().find(|m| !served.contains(&m.as_str())) {
            return Err(ApiError::invalid(
                format!("No host serves model '{m}'."),
                Some("models".into()),
            ));
        }
    }
    let expires_at = match &req.expires_at {
        None => None,
        Some(text) => Some(parse_time(text).ok_or_else(|| {
            ApiError::invalid(
                format!("'expires_at' must be an RFC 3339 time, got {text:?}."),
                Some("expires_at".into()),
            )
        })?),
    };
    let declare_classes = parse_classes(req.declare_classes.as_deref())?;
    let (minted, view) = treaty_keys::issue(
        &engine.store,
        KeyRequest {
            tenant: req.tenant,
            channel: req.channel,
            product: req.product,
            name: req.name,
            models: req.models,
            declare_classes,
            expires_at,
        },
    )
    .await
    .map_err(|e| ApiError::new(Code::StoreUnavailable, e.to_string()))?;
    engine
        .audit(
            &admin.actor,
            "keys.create",
            &view.id,
            format!("{}/{}/{}", view.tenant, view.channel, view.product),
        )
        .await?;
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    body["secret"] = json!(minted.secret);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

pub(crate) async fn list_keys(
    State(gw): State<Gateway>,
    _: Admin,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let rows = gw
        .engine
        .store
        .list_keys(None)
        .await
        .map_err(|e| ApiError::new(Code::StoreUnavailable, e.to_string()))?;
    let data: Vec<KeyView> = rows.iter().map(KeyView::from).collect();
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

pub(crate) async fn revoke_key(
    State(gw): State<Gateway>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let engine = &gw.engine;
    let store_err =
        |e: treaty_store::StoreError| ApiError::new(Code::StoreUnavailable, e.to_string());
    let row = engine
        .store
        .key_by_id(&id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("No key with id '{id}'.")))?;
    engine
        .store
        .revoke_key(&id, treaty_domain::now_ms())
        .await
        .map_err(store_err)?;
    engine.forget_key(&row.secret_hash);
    engine
        .audit(
            &admin.actor,
            "keys.revoke",
            &id,
            format!("{}/{}/{}", row.tenant, row.channel, row.product),
        )
        .await?;
    Ok(axum::Json(json!({"id": id, "revoked": true})))
}

/// `POST /admin/budgets`: create or change a budget, as `treaty budgets
/// set` does. Body: one of `key`, `tenant`, or `tenant` + `channel` +
/// `product`; `budget` as "10usd/month"; `soft` percentages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetBudget {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    product: Option<String>,
    budget: String,
    #[serde(default)]
    soft: Vec<u8>,
}

pub(crate) async fn set_budget(
    State(gw): State<Gateway>,
    admin: Admin,
    Json(req): Json<SetBudget>,
) -> Result<Response, ApiError> {
    use treaty_limits::{BudgetSpec, Scope};
    let engine = &gw.engine;
    let config = &engine.config;
    let scope = match (req.key, req.tenant, req.channel, req.product) {
        (Some(k), None, None, None) => Scope::Key(k),
        (None, Some(t), None, None) => Scope::Tenant(t),
        (None, Some(t), Some(c), Some(p)) => Scope::Offer {
            tenant: t,
            channel: c,
            product: p,
        },
        _ => {
            return Err(ApiError::invalid(
                "Give 'key', or 'tenant', or 'tenant', 'channel' and 'product'.",
                None,
            ));
        }
    };
    match &scope {
        Scope::Key(k) => {
            let known = engine
                .store
                .key_by_id(k)
                .await
                .map_err(|e| ApiError(treaty_engine::Error::store(e)))?;
            if known.is_none() {
                return Err(ApiError::invalid(
                    format!("No key with id '{k}'."),
                    Some("key".into()),
                ));
            }
        }
        Scope::Tenant(t) if config.tenant(t).is_none() => {
            return Err(ApiError::invalid(
                format!("Unknown tenant '{t}'."),
                Some("tenant".into()),
            ));
        }
        Scope::Offer {
            tenant,
            channel,
            product,
        } => config
            .check_binding(tenant, channel, product)
            .map_err(|m| ApiError::invalid(m, None))?,
        Scope::Tenant(_) => {}
    }
    let (limit_micros, period) = treaty_limits::parse_budget(&req.budget)
        .map_err(|e| ApiError::invalid(e.to_string(), Some("budget".into())))?;
    if let Some(p) = req.soft.iter().find(|p| !(1..=100).contains(*p)) {
        return Err(ApiError::invalid(
            format!("Soft thresholds are percentages between 1 and 100, got {p}."),
            Some("soft".into()),
        ));
    }
    let mut soft_percents = req.soft;
    soft_percents.sort_unstable();
    soft_percents.dedup();
    let spec = BudgetSpec {
        scope,
        period,
        limit_micros,
        soft_percents,
    };
    engine
        .store
        .put_budget(&spec.to_row("admin-api", treaty_domain::now_ms()))
        .await
        .map_err(|e| ApiError(treaty_engine::Error::store(e)))?;
    let id = spec.id();
    engine
        .audit(
            &admin.actor,
            "budgets.set",
            &id,
            format!(
                "{} per {}",
                treaty_limits::format_usd(limit_micros),
                period.as_str()
            ),
        )
        .await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({"id": id, "limit_micros": limit_micros, "period": period.as_str()})),
    )
        .into_response())
}

/// `GET /admin/budgets`: every budget with its spend this period.
pub(crate) async fn list_budgets(
    State(gw): State<Gateway>,
    _: Admin,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let views = treaty_limits::list_budgets(&gw.engine.store, treaty_domain::now_ms())
        .await
        .map_err(|e| ApiError(treaty_engine::Error::store(e)))?;
    Ok(axum::Json(json!({"object": "list", "data": views})))
}

/// `DELETE /admin/budgets/{id}`: removes a budget and its recorded spend.
pub(crate) async fn remove_budget(
    State(gw): State<Gateway>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let engine = &gw.engine;
    let removed = engine
        .store
        .delete_budget(&id)
        .await
        .map_err(|e| ApiError(treaty_engine::Error::store(e)))?;
    if !removed {
        return Err(ApiError::new(
            Code::NotFound,
            format!("No budget with id '{id}'."),
        ));
    }
    engine
        .audit(&admin.actor, "budgets.remove", &id, String::new())
        .await?;
    Ok(axum::Json(json!({"id": id, "deleted": true})))
}

/// `POST /admin/explain`: the same JSON as `treaty contracts explain`.
pub(crate) async fn explain(
    State(gw): State<Gateway>,
    _: Admin,
    Json(req): Json<treaty_policy::ExplainRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    treaty_policy::explain(&gw.engine.policy, &req)
        .map(axum::Json)
        .map_err(|e| ApiError::invalid(e.0, None))
}

fn parse_classes(
    names: Option<&[String]>,
) -> Result<Option<Vec<treaty_domain::WorkloadClass>>, ApiError> {
    let Some(names) = names else {
        return Ok(None);
    };
    names
        .iter()
        .map(|n| {
            n.parse().map_err(|()| {
                ApiError::invalid(
                    format!("Unknown workload class '{n}'."),
                    Some("declare_classes".into()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_time(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}
