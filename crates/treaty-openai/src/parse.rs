//! Parsing request bodies into typed requests with errors that name the
//! offending field.

use serde::de::DeserializeOwned;

/// A body that is not the request it claims to be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong, in words a client developer can act on.
    pub message: String,
    /// The path of the offending field (`messages[0].content`), when known.
    pub param: Option<String>,
}

/// Parses a JSON request body, naming the field path on type errors.
///
/// Invalid UTF-8 and malformed JSON are reported without a param.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ParseError {
            message: format!(
                "The request body is not valid UTF-8 (invalid byte at offset {}).",
                e.valid_up_to()
            ),
            param: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            // Trailing garbage after the object is malformed JSON too.
            if let Err(e) = de.end() {
                return Err(ParseError {
                    message: format!("The request body is not valid JSON: {e}."),
                    param: None,
                });
            }
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let syntax = matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            );
            if syntax {
                Err(ParseError {
                    message: format!("The request body is not valid JSON: {inner}."),
                    param: None,
                })
            } else {
                // serde reports a missing field at the parent's path; name
                // the field itself, as OpenAI does.
                let text = inner.to_string();
                let missing = text
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next());
                let param = match (missing, path.as_str()) {
                    (Some(field), ".") => Some(field.to_owned()),
                    (Some(field), p) => Some(format!("{p}.{field}")),
                    (None, ".") => None,
                    (None, _) => Some(path),
                };
                let message = match &param {
                    Some(p) => format!("Invalid value for '{p}': {inner}."),
                    None => format!("Invalid request body: {inner}."),
                };
                Err(ParseError { message, param })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{ChatCompletionRequest, EmbeddingsRequest};

    proptest! {
        /// Whatever a client sends, parsing answers with a typed request or
        /// a ParseError: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_json::<ChatCompletionRequest>(&bytes);
            let _ = parse_json::<EmbeddingsRequest>(&bytes);
        }

        /// Mutations of a valid request: a type error names a field path
        /// that exists in the document (a missing field is named although
        /// it is absent, as it should be).
        #[test]
        fn mutated_requests_fail_precisely(cut in 0usize..120, junk in "[\\[\\]{}\",:0-9a-z ]{0,6}") {
            let valid = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":1,"stream":false}"#;
            let cut = cut.min(valid.len());
            let text = format!("{}{}{}", &valid[..cut], junk, &valid[cut..]);
            if let Err(e) = parse_json::<ChatCompletionRequest>(text.as_bytes()) {
                prop_assert!(!e.message.is_empty());
                if let Some(p) = e.param.as_ref().filter(|_| !e.message.contains("missing field")) {
                    let root = p.split(['.', '[']).next().unwrap_or_default();
                    prop_assert!(text.contains(root), "param {p} not in {text}");
                }
            }
        }
    }
}
