//! OpenAI embeddings requests through Bedrock's InvokeModel
//! (`POST {base}/model/{modelId}/invoke`), whose body is the model's own.
//!
//! The model id picks the body: Amazon Titan text embeddings
//! (`amazon.titan-embed-text-*`: `{inputText, dimensions, normalize}`, one
//! call per input, a few at a time, usage from `inputTextTokenCount`) or
//! Cohere Embed (`cohere.embed-*`: `{texts, input_type}`, up to 96 texts a
//! call, usage from Bedrock's `x-amzn-bedrock-input-token-count` header;
//! `input_type` defaults to `search_document` and can be set with an
//! `input_type` request field). Other models, and token-array inputs, are
//! refused with a 400-class error. The reply is OpenAI's list shape, as
//! floats or, for `encoding_format: "base64"`, base64 of little-endian f32.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use treaty_domain::ModelDeployment;
use treaty_openai::{EmbeddingInput, EmbeddingsRequest, Usage};

use super::{Bedrock, JSON, untranslatable};
use crate::exchange::{self, MAX_REPLY_BYTES};
use crate::{CallOptions, EmbeddingsReply, UpstreamError};

/// Titan takes one input a call; this many calls run at once.
const TITAN_CONCURRENCY: usize = 4;
/// Cohere's limit of texts per call.
const COHERE_BATCH: usize = 96;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Family {
    Titan { v2: bool },
    Cohere,
}

/// Which body a model id takes (plain ids, cross-region `us.` ids or ARNs).
pub(crate) fn family(model: &str) -> Option<Family> {
    if model.contains("amazon.titan-embed-text") {
        Some(Family::Titan {
            v2: !model.contains("titan-embed-text-v1"),
        })
    } else if model.contains("cohere.embed") {
        Some(Family::Cohere)
    } else {
        None
    }
}

/// The InvokeModel body for one batch of `texts`.
pub(crate) fn body(
    family: Family,
    texts: &[&str],
    req: &EmbeddingsRequest,
) -> Result<Value, UpstreamError> {
    match family {
        Family::Titan { v2 } => {
            let [text] = texts else {
                return Err(untranslatable("Titan embeds one input per call."));
            };
            let mut body = json!({ "inputText": text });
            if v2 {
                // OpenAI's vectors are unit length; Titan's are when asked.
                body["normalize"] = true.into();
                if let Some(d) = req.dimensions {
                    body["dimensions"] = d.into();
                }
            } else if req.dimensions.is_some() {
                return Err(untranslatable(
                    "Titan text embeddings v1 have a fixed size; drop 'dimensions'.",
                ));
            }
            Ok(body)
        }
        Family::Cohere => {
            let input_type = req
                .extra
                .get("input_type")
                .and_then(Value::as_str)
                .unwrap_or("search_document");
            let mut body = json!({ "texts": texts, "input_type": input_type });
            if let Some(d) = req.dimensions {
                body["output_dimension"] = d.into();
            }
            Ok(body)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanReply {
    embedding: Vec<f32>,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct CohereReply {
    embeddings: CohereEmbeddings,
}

/// Floats, or `{"float": [...]}` when `embedding_types` was given.
#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

/// The vectors (and tokens counted) in one InvokeModel reply.
pub(crate) fn parse_reply(
    family: Family,
    body: &[u8],
    header_tokens: Option<u64>,
) -> Result<(Vec<Vec<f32>>, u64), UpstreamError> {
    let bad = |e: serde_json::Error| {
        UpstreamError::Protocol(format!(
            "reply body is not an embeddings reply ({})",
            super::json_problem(&e)
        ))
    };
    match family {
        Family::Titan { .. } => {
            let reply: TitanReply = serde_json::from_slice(body).map_err(bad)?;
            let tokens = reply.input_text_token_count.or(header_tokens).unwrap_or(0);
            Ok((vec![reply.embedding], tokens))
        }
        Family::Cohere => {
            let reply: CohereReply = serde_json::from_slice(body).map_err(bad)?;
            let vectors = match reply.embeddings {
                CohereEmbeddings::Floats(v) | CohereEmbeddings::ByType { float: v } => v,
            };
            Ok((vectors, header_tokens.unwrap_or(0)))
        }
    }
}

/// OpenAI's embeddings list for `vectors`.
pub(crate) fn render(
    vectors: &[Vec<f32>],
    model: &str,
    tokens: u64,
    base64: bool,
) -> Result<Vec<u8>, UpstreamError> {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    serde_json::to_vec(&body)
        .map_err(|_| UpstreamError::Protocol("the reply could not be re-encoded".into()))
}

pub(crate) async fn embed(
    bedrock: &Bedrock,
    req: &EmbeddingsRequest,
    deployment: &ModelDeployment,
    call: &CallOptions,
) -> Result<EmbeddingsReply, UpstreamError> {
    let model = deployment.target.as_str();
    let family = family(model).ok_or_else(|| {
        untranslatable(
            "Bedrock embeddings through Treaty need an amazon.titan-embed-text-* or cohere.embed-* model.",
        )
    })?;
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::Text(t) => vec![t.as_str()],
        EmbeddingInput::Texts(t) => t.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(untranslatable(
                "This host (Bedrock) embeds text only; send strings, not token arrays.",
            ));
        }
    };
    let batch = match family {
        Family::Titan { .. } => 1,
        Family::Cohere => COHERE_BATCH,
    };
    let bodies: Vec<Vec<u8>> = texts
        .chunks(batch)
        .map(|chunk| {
            let body = body(family, chunk, req)?;
            serde_json::to_vec(&body)
                .map_err(|_| UpstreamError::Protocol("the request could not be encoded".into()))
        })
        .collect::<Result<_, _>>()?;
    let url = bedrock.url(model, "invoke")?;
    let results: Vec<(Vec<Vec<f32>>, u64)> = futures_util::stream::iter(bodies)
        .map(|body| invoke(bedrock, url.clone(), body, family, call))
        .buffered(TITAN_CONCURRENCY)
        .try_collect()
        .await?;
    let mut vectors = Vec::with_capacity(texts.len());
    let mut tokens = 0u64;
    for (v, t) in results {
        vectors.extend(v);
        tokens = tokens.saturating_add(t);
    }
    if vectors.len() != texts.len() {
        return Err(UpstreamError::Protocol(format!(
            "asked for {} embeddings, got {}",
            texts.len(),
            vectors.len()
        )));
    }
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let body = render(&vectors, model, tokens, base64)?;
    Ok(EmbeddingsReply {
        body: body.into(),
        usage: Some(Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            total_tokens: tokens,
        }),
    })
}

async fn invoke(
    bedrock: &Bedrock,
    url: reqwest::Url,
    body: Vec<u8>,
    family: Family,
    call: &CallOptions,
) -> Result<(Vec<Vec<f32>>, u64), UpstreamError> {
    let response = bedrock.send(url, body, JSON, call).await?;
    if !response.status().is_success() {
        return Err(bedrock.status_error(response, call).await);
    }
    let header_tokens = response
        .headers()
        .get("x-amzn-bedrock-input-token-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let deadline: Instant = call.deadline;
    let body = exchange::read_body(response, deadline, MAX_REPLY_BYTES).await?;
    parse_reply(family, &body, header_tokens)
}
