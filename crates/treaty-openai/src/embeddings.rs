//! `POST /v1/embeddings` request bodies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Parameters Treaty does not interpret, forwarded as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The four input forms OpenAI accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// How many vectors the request asks for.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::TokenBatches(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            EmbeddingInput::Text(t) => t.is_empty(),
            EmbeddingInput::Tokens(t) => t.is_empty(),
            EmbeddingInput::Texts(t) => t.is_empty() || t.iter().any(String::is_empty),
            EmbeddingInput::TokenBatches(t) => t.is_empty() || t.iter().any(Vec::is_empty),
        }
    }
}

impl EmbeddingsRequest {
    /// Checks what serde cannot express; returns (message, param).
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        if self.model.is_empty() {
            return Err(("'model' must not be empty.".into(), "model"));
        }
        if self.input.is_empty() {
            return Err((
                "'input' must be a non-empty string or a non-empty array of non-empty items."
                    .into(),
                "input",
            ));
        }
        if self.input.len() > 2048 {
            return Err(("'input' may hold at most 2048 items.".into(), "input"));
        }
        if let Some(f) = &self.encoding_format
            && f != "float"
            && f != "base64"
        {
            return Err((
                format!("'encoding_format' must be \"float\" or \"base64\", not {f:?}."),
                "encoding_format",
            ));
        }
        if self.dimensions == Some(0) {
            return Err(("'dimensions' must be at least 1.".into(), "dimensions"));
        }
        Ok(())
    }
}
