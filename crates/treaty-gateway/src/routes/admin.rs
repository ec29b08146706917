//! The admin API: managing virtual keys, and explaining a decision.
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
    _: Admin,
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
    _: Admin,
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
    Ok(axum::Json(json!({"id": id, "revoked": true})))
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
