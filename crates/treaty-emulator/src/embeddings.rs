//! Embedding inputs and deterministic vectors. Each input (a string or a
//! token array) maps to a unit-length f32 vector seeded from FNV-1a of
//! (model, input) and stretched by splitmix64, so equal inputs embed equally
//! and different ones almost never collide. Rendered as a float array or,
//! when `encoding_format` is `base64` (the Python SDK's default), as base64
//! of the little-endian f32 bytes.

use crate::error::ApiError;
use crate::reply::words;
use crate::seed::{Fnv, SplitMix};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;

/// `text-embedding-3-small`'s width, used when `dimensions` is absent.
const DEFAULT_DIMENSIONS: usize = 1536;
const MAX_DIMENSIONS: u64 = 65_536;

enum Input<'a> {
    Text(&'a str),
    Tokens(&'a [Value]),
}

/// A parsed embeddings request, borrowed from the body.
pub(crate) struct EmbeddingView<'a> {
    model: &'a str,
    inputs: Vec<Input<'a>>,
    dimensions: usize,
    base64: bool,
}

impl<'a> EmbeddingView<'a> {
    pub(crate) fn parse(body: &'a Value, deployment: Option<&'a str>) -> Result<Self, ApiError> {
        let (body, model) = crate::reply::object_and_model(body, deployment)?;
        let inputs = parse_inputs(body.get("input").unwrap_or(&Value::Null))?;
        let dimensions = match body.get("dimensions") {
            None | Some(Value::Null) => DEFAULT_DIMENSIONS,
            Some(dimensions) => dimensions
                .as_u64()
                .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| {
                    ApiError::invalid_param("dimensions", "'dimensions' must be 1 to 65536")
                })?,
        };
        let base64 = match body.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(format) => match format.as_str() {
                Some("float") => false,
                Some("base64") => true,
                _ => {
                    return Err(ApiError::invalid_param(
                        "encoding_format",
                        "'encoding_format' must be 'float' or 'base64'",
                    ));
                }
            },
        };
        Ok(Self {
            model,
            inputs,
            dimensions,
            base64,
        })
    }

    /// The `{"object":"list",...}` response body.
    pub(crate) fn render(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut tokens = 0;
        let data = self
            .inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                tokens += match input {
                    Input::Text(text) => words(text),
                    Input::Tokens(ids) => ids.len() as u64,
                };
                let vector = vector_for(self.model, input, self.dimensions);
                let embedding = if self.base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Embedding::Base64(STANDARD.encode(bytes))
                } else {
                    Embedding::Float(vector)
                };
                Item {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        serde_json::to_vec(&List {
            object: "list",
            data,
            model: self.model,
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    }
}

fn parse_inputs(input: &Value) -> Result<Vec<Input<'_>>, ApiError> {
    let invalid = |message: &'static str| ApiError::invalid_param("input", message);
    match input {
        Value::String(text) if text.is_empty() => Err(invalid("'input' must not be empty")),
        Value::String(text) => Ok(vec![Input::Text(text)]),
        Value::Array(items) if items.is_empty() => Err(invalid("'input' must not be empty")),
        Value::Array(items) if items.iter().all(Value::is_i64) => Ok(vec![Input::Tokens(items)]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.is_empty() => Ok(Input::Text(text)),
                Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_i64) => {
                    Ok(Input::Tokens(ids))
                }
                _ => Err(invalid(
                    "each 'input' item must be a non-empty string or a non-empty token array",
                )),
            })
            .collect(),
        _ => Err(invalid(
            "'input' must be a string, an array of strings, or token arrays",
        )),
    }
}

/// A unit-length vector that depends only on (model, input, dimensions).
fn vector_for(model: &str, input: &Input<'_>, dimensions: usize) -> Vec<f32> {
    let seed = Fnv::new().field(model.as_bytes());
    let seed = match input {
        Input::Text(text) => seed.field(b"text").bytes(text.as_bytes()),
        Input::Tokens(ids) => ids
            .iter()
            .filter_map(Value::as_i64)
            .fold(seed.field(b"tokens"), |seed, id| {
                seed.bytes(&id.to_le_bytes())
            }),
    };
    let mut rng = SplitMix::new(seed.finish());
    let mut vector: Vec<f32> = (0..dimensions).map(|_| rng.next_unit()).collect();
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x = (f64::from(*x) / norm) as f32;
        }
    } else if let Some(first) = vector.first_mut() {
        *first = 1.0;
    }
    vector
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let a = vector_for("m", &Input::Text("hi"), 64);
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(a, vector_for("m", &Input::Text("hi"), 64));
        assert_ne!(a, vector_for("m2", &Input::Text("hi"), 64));
    }

    #[test]
    fn rejects_empty_inputs() {
        for input in [
            serde_json::json!(""),
            serde_json::json!([]),
            serde_json::json!([""]),
            serde_json::json!([[]]),
            serde_json::json!(3),
        ] {
            assert!(parse_inputs(&input).is_err(), "{input}");
        }
    }
}
