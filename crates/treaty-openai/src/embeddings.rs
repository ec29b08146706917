//! `POST /v1/embeddings` request bodies.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

/// Hand-written so that a wrong item is named by its index (`input[3]`)
/// and said plainly (a token id out of range, strings mixed with token
/// ids), where serde's untagged enums only say "data did not match any
/// variant".
impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingInput;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, an array of strings, or an array of token ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInput, A::Error> {
                let mut input: Option<EmbeddingInput> = None;
                // The first item decides the form; each later one must be
                // of the same form, checked as it is read so that an error
                // names its index.
                loop {
                    let form = input.as_ref().map(Form::of);
                    match (seq.next_element_seed(ItemSeed(form))?, &mut input) {
                        (None, _) => break,
                        (Some(item), None) => input = Some(item.start()),
                        (Some(Either::Text(t)), Some(EmbeddingInput::Texts(v))) => v.push(t),
                        (Some(Either::Token(t)), Some(EmbeddingInput::Tokens(v))) => v.push(t),
                        (Some(Either::Tokens(t)), Some(EmbeddingInput::TokenBatches(v))) => {
                            v.push(t)
                        }
                        // ItemSeed refused any other form already.
                        (Some(_), Some(_)) => return Err(de::Error::custom(MIXED)),
                    }
                }
                Ok(input.unwrap_or(EmbeddingInput::Texts(Vec::new())))
            }
        }
        d.deserialize_any(V)
    }
}

const MIXED: &str = "an input array must hold only strings, only token ids, or only arrays of \
                     token ids";

/// The form of an array input, known from its first item.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Texts,
    Tokens,
    TokenBatches,
}

impl Form {
    fn of(input: &EmbeddingInput) -> Form {
        match input {
            EmbeddingInput::Text(_) | EmbeddingInput::Texts(_) => Form::Texts,
            EmbeddingInput::Tokens(_) => Form::Tokens,
            EmbeddingInput::TokenBatches(_) => Form::TokenBatches,
        }
    }
}

/// One item of an array input.
enum Either {
    Text(String),
    Token(u32),
    Tokens(Vec<u32>),
}

impl Either {
    fn start(self) -> EmbeddingInput {
        match self {
            Either::Text(t) => EmbeddingInput::Texts(vec![t]),
            Either::Token(t) => EmbeddingInput::Tokens(vec![t]),
            Either::Tokens(t) => EmbeddingInput::TokenBatches(vec![t]),
        }
    }
}

/// Reads one item of an array input, of the form the first item set.
struct ItemSeed(Option<Form>);

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Either;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Either, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Either;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            None => "a string, a token id or an array of token ids",
            Some(Form::Texts) => "a string, like the first item",
            Some(Form::Tokens) => "a token id, like the first item",
            Some(Form::TokenBatches) => "an array of token ids, like the first item",
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Either, E> {
        self.visit_string(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Either, E> {
        match self.0 {
            None | Some(Form::Texts) => Ok(Either::Text(v)),
            Some(_) => Err(E::custom(MIXED)),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Either, E> {
        match self.0 {
            None | Some(Form::Tokens) => token(v).map(Either::Token),
            Some(_) => Err(E::custom(MIXED)),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Either, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format_args!("{TOKEN}, got {v}"))),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Either, E> {
        Err(E::custom(format_args!("{TOKEN}, got {v}")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Either, A::Error> {
        if matches!(self.0, Some(Form::Texts | Form::Tokens)) {
            return Err(de::Error::custom(MIXED));
        }
        let mut tokens = Vec::new();
        while let Some(t) = seq.next_element_seed(TokenSeed)? {
            tokens.push(t);
        }
        Ok(Either::Tokens(tokens))
    }
}

const TOKEN: &str = "a token id must be an integer from 0 to 4294967295";

fn token<E: de::Error>(v: u64) -> Result<u32, E> {
    u32::try_from(v).map_err(|_| E::custom(format_args!("{TOKEN}, got {v}")))
}

/// One token id of a batch.
struct TokenSeed;

impl<'de> DeserializeSeed<'de> for TokenSeed {
    type Value = u32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TokenSeed {
    type Value = u32;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a token id (an integer from 0 to 4294967295)")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        token(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        Err(E::custom(format_args!("{TOKEN}, got {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        Err(E::custom(format_args!("{TOKEN}, got {v}")))
    }
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
