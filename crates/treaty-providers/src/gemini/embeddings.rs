//! OpenAI embeddings requests as Gemini embedding calls, and the replies
//! back as OpenAI `list` bodies.
//!
//! The Gemini API embeds one input with `:embedContent` and several with
//! `:batchEmbedContents`; Vertex AI's text embedding models are called
//! with `:predict` (`instances[].content`). `dimensions` becomes
//! `outputDimensionality`; `encoding_format: "base64"` is honoured by
//! encoding the returned floats as little-endian f32 bytes, as OpenAI does.
//! Token-id inputs are refused: Google's models take text only.
//!
//! Usage: Vertex reports each input's `statistics.token_count`, which is
//! used as is. The Gemini API reports no token counts for embeddings, so
//! prompt tokens are estimated at one token per four characters of input
//! (Google's own rule of thumb), at least one per input: close enough for
//! cost accounting, and never zero for a billed call.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use treaty_openai::{EmbeddingInput, EmbeddingsRequest, Usage};

use super::response::json_problem;
use super::{Door, untranslatable};
use crate::UpstreamError;

/// Which call, decided by the API and the number of inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    EmbedContent,
    BatchEmbedContents,
    Predict,
}

/// One embeddings exchange: what to send and how to read the answer.
pub(crate) struct Plan {
    method: Method,
    pub(crate) body: Value,
    inputs: Vec<String>,
    base64: bool,
    model: String,
}

impl Plan {
    pub(crate) fn new(
        req: &EmbeddingsRequest,
        target: &str,
        door: Door,
    ) -> Result<Self, UpstreamError> {
        let inputs = match &req.input {
            EmbeddingInput::Text(text) => vec![text.clone()],
            EmbeddingInput::Texts(texts) => texts.clone(),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
                return Err(untranslatable(
                    "This host (Gemini) embeds text only; send 'input' as strings, not token ids.",
                ));
            }
        };
        if inputs.is_empty() {
            return Err(untranslatable("'input' must not be empty."));
        }
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(_) => {
                return Err(untranslatable(
                    "'encoding_format' must be \"float\" or \"base64\".",
                ));
            }
        };
        let content = |text: &str| json!({"parts": [{"text": text}]});
        let (method, mut body) = match door {
            Door::Vertex => {
                let instances: Vec<Value> =
                    inputs.iter().map(|t| json!({ "content": t })).collect();
                let mut body = json!({ "instances": instances });
                if let (Some(d), Some(map)) = (req.dimensions, body.as_object_mut()) {
                    map.insert("parameters".into(), json!({ "outputDimensionality": d }));
                }
                (Method::Predict, body)
            }
            Door::GeminiApi if inputs.len() == 1 => (
                Method::EmbedContent,
                json!({ "content": content(&inputs[0]) }),
            ),
            Door::GeminiApi => {
                let model = format!(
                    "models/{}",
                    target.rsplit_once("models/").map_or(target, |(_, id)| id)
                );
                let requests: Vec<Value> = inputs
                    .iter()
                    .map(|t| {
                        let mut r = json!({"model": model, "content": content(t)});
                        if let (Some(d), Some(map)) = (req.dimensions, r.as_object_mut()) {
                            map.insert("outputDimensionality".into(), d.into());
                        }
                        r
                    })
                    .collect();
                (Method::BatchEmbedContents, json!({ "requests": requests }))
            }
        };
        if method == Method::EmbedContent
            && let (Some(d), Some(map)) = (req.dimensions, body.as_object_mut())
        {
            map.insert("outputDimensionality".into(), d.into());
        }
        Ok(Plan {
            method,
            body,
            inputs,
            base64,
            model: target.to_owned(),
        })
    }

    /// The method name after the model in the URL.
    pub(crate) fn method(&self) -> &'static str {
        match self.method {
            Method::EmbedContent => "embedContent",
            Method::BatchEmbedContents => "batchEmbedContents",
            Method::Predict => "predict",
        }
    }

    /// The OpenAI embeddings body and its usage for a reply body.
    pub(crate) fn translate(&self, body: &[u8]) -> Result<(Vec<u8>, Usage), UpstreamError> {
        #[derive(Deserialize)]
        struct Embedding {
            #[serde(default)]
            values: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Single {
            embedding: Embedding,
        }
        #[derive(Deserialize)]
        struct Batch {
            #[serde(default)]
            embeddings: Vec<Embedding>,
        }
        #[derive(Deserialize)]
        struct Predictions {
            #[serde(default)]
            predictions: Vec<Prediction>,
        }
        #[derive(Deserialize)]
        struct Prediction {
            embeddings: PredictedEmbedding,
        }
        #[derive(Deserialize)]
        struct PredictedEmbedding {
            #[serde(default)]
            values: Vec<f32>,
            #[serde(default)]
            statistics: Option<Statistics>,
        }
        #[derive(Deserialize)]
        struct Statistics {
            #[serde(default)]
            token_count: Option<f64>,
        }

        let bad = |e: serde_json::Error| {
            UpstreamError::Protocol(format!(
                "reply body is not a Gemini embeddings reply ({})",
                json_problem(&e)
            ))
        };
        // (vector, reported tokens) per input, in input order.
        let vectors: Vec<(Vec<f32>, Option<u64>)> = match self.method {
            Method::EmbedContent => {
                let single: Single = serde_json::from_slice(body).map_err(bad)?;
                vec![(single.embedding.values, None)]
            }
            Method::BatchEmbedContents => {
                let batch: Batch = serde_json::from_slice(body).map_err(bad)?;
                batch
                    .embeddings
                    .into_iter()
                    .map(|e| (e.values, None))
                    .collect()
            }
            Method::Predict => {
                let predicted: Predictions = serde_json::from_slice(body).map_err(bad)?;
                predicted
                    .predictions
                    .into_iter()
                    .map(|p| {
                        let tokens = p
                            .embeddings
                            .statistics
                            .and_then(|s| s.token_count)
                            .filter(|t| t.is_finite() && *t >= 0.0)
                            .map(|t| t as u64);
                        (p.embeddings.values, tokens)
                    })
                    .collect()
            }
        };
        if vectors.len() != self.inputs.len() {
            return Err(UpstreamError::Protocol(format!(
                "the host returned {} embeddings for {} inputs",
                vectors.len(),
                self.inputs.len()
            )));
        }
        let mut tokens = 0u64;
        let mut data = Vec::with_capacity(vectors.len());
        for (index, ((vector, reported), input)) in
            vectors.into_iter().zip(&self.inputs).enumerate()
        {
            tokens = tokens.saturating_add(reported.unwrap_or_else(|| estimate_tokens(input)));
            let embedding = if self.base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
        }
        let usage = Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            total_tokens: tokens,
        };
        let list = json!({
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        let body = serde_json::to_vec(&list)
            .map_err(|_| UpstreamError::Protocol("the reply could not be re-encoded".into()))?;
        Ok((body, usage))
    }
}

/// About one token per four characters, at least one.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}
