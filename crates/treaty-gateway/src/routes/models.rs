//! `GET /v1/models` and `GET /v1/models/{model}`: only what the caller's
//! key may use.

use crate::body::Path;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use treaty_keys::VerifiedKey;
use treaty_openai::{Model, ModelList};

use super::Shared;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::state::Gateway;

fn visible(gw: &Gateway, key: &VerifiedKey) -> Vec<Model> {
    let product = gw.config.product(key.product.as_str());
    gw.config
        .model_names()
        .into_iter()
        .filter(|m| key.allows_model(m) && product.is_some_and(|p| p.allows_model(m)))
        .map(|m| Model {
            id: m.to_owned(),
            object: "model".into(),
            created: 0,
            owned_by: "treaty".into(),
        })
        .collect()
}

pub(crate) async fn list(
    State(gw): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: visible(&gw, &key),
    }))
}

pub(crate) async fn retrieve(
    State(gw): State<Shared>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Model>, ApiError> {
    let key = authenticate(&gw, &headers).await?;
    visible(&gw, &key)
        .into_iter()
        .find(|m| m.id == model)
        .map(Json)
        .ok_or_else(|| ApiError::model_not_found(&model))
}
