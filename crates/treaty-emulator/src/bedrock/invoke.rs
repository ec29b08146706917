//! InvokeModel for embeddings: Titan (`inputText`) and Cohere (`texts`)
//! bodies answered with the emulator's deterministic vectors.

use super::{BedrockError, BedrockRequest, before_answer, json_response, pick_fault};
use crate::app::Shared;
use crate::embeddings::EmbeddingView;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{Value, json};

/// Titan v2's default width; Cohere v3's fixed one.
const DEFAULT_EMBEDDING_DIMENSIONS: u64 = 1024;

pub(super) async fn invoke(
    shared: &Shared,
    request: &BedrockRequest,
) -> Result<Response, BedrockError> {
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    super::sigv4::verify(shared, request)?;
    let body: Value = serde_json::from_slice(&request.body).map_err(|_| {
        BedrockError::validation("Emulated Bedrock: the request body is not valid JSON.")
    })?;
    let fault = pick_fault(shared, request, None)?;
    before_answer(&fault, request).await?;
    let model = request.model.as_str();
    let (openai, titan) = if model.contains("amazon.titan-embed-text") {
        let text = body
            .get("inputText")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                BedrockError::validation("Emulated Bedrock: inputText: field required")
            })?;
        let dimensions = body
            .get("dimensions")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_EMBEDDING_DIMENSIONS);
        if ![256, 512, 1024].contains(&dimensions) {
            return Err(BedrockError::validation(
                "Emulated Bedrock: dimensions must be 256, 512 or 1024",
            ));
        }
        (
            json!({"model": model, "input": text, "dimensions": dimensions}),
            true,
        )
    } else if model.contains("cohere.embed") {
        let texts = body
            .get("texts")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty() && t.len() <= 96)
            .ok_or_else(|| {
                BedrockError::validation("Emulated Bedrock: texts must hold 1 to 96 strings")
            })?;
        if body.get("input_type").and_then(Value::as_str).is_none() {
            return Err(BedrockError::validation(
                "Emulated Bedrock: input_type: field required",
            ));
        }
        (
            json!({"model": model, "input": texts, "dimensions": DEFAULT_EMBEDDING_DIMENSIONS}),
            false,
        )
    } else {
        return Err(BedrockError::validation(
            "Emulated Bedrock: The provided model identifier is invalid.",
        ));
    };
    let view = EmbeddingView::parse(&openai, None)
        .map_err(|_| BedrockError::validation("Emulated Bedrock: the input is not valid text"))?;
    let rendered: Value = view
        .render()
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let vectors: Vec<Value> = rendered
        .get("data")
        .and_then(Value::as_array)
        .map(|data| {
            data.iter()
                .filter_map(|d| d.get("embedding").cloned())
                .collect()
        })
        .unwrap_or_default();
    let tokens = rendered
        .get("usage")
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let reply = if titan {
        let vector = vectors.into_iter().next().unwrap_or(Value::Null);
        json!({"embedding": vector, "inputTextTokenCount": tokens,
            "embeddingsByType": {"float": vector}})
    } else {
        json!({"embeddings": vectors, "id": "emulated",
            "response_type": "embeddings_floats", "texts": body.get("texts")})
    };
    let mut response = json_response(reply.to_string(), &fault);
    response.headers_mut().insert(
        "x-amzn-bedrock-input-token-count",
        HeaderValue::from(tokens),
    );
    Ok(response)
}
