//! `GET /v1/models` and `GET /v1/models/{model}`: only what the caller's
//! key may use.

use axum::Json;
use axum::extract::State;
use treaty_engine::Error;
use treaty_keys::VerifiedKey;
use treaty_openai::{Model, ModelList};

use crate::body::Path;
use crate::error::ApiError;
use crate::extract::ApiKey;
use crate::gateway::Gateway;

fn visible(gw: &Gateway, key: &VerifiedKey) -> Vec<Model> {
    let config = &gw.engine.config;
    let product = config.product(key.product.as_str());
    config
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
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
) -> Result<Json<ModelList>, ApiError> {
    Ok(Json(ModelList {
        object: "list".into(),
        data: visible(&gw, &caller.key),
    }))
}

pub(crate) async fn retrieve(
    State(gw): State<Gateway>,
    ApiKey(caller): ApiKey,
    Path(model): Path<String>,
) -> Result<Json<Model>, ApiError> {
    visible(&gw, &caller.key)
        .into_iter()
        .find(|m| m.id == model)
        .map(Json)
        .ok_or_else(|| ApiError(Error::model_not_found(&model)))
}
