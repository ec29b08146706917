//! Parsing request bodies and query strings into typed requests, with
//! errors that name the offending field and say what was expected.
//!
//! This is the one place a client's JSON or query string becomes a typed
//! request. It refuses a body that is not a JSON object before serde sees
//! it (serde would otherwise map an array's positions onto a struct's
//! fields, so `["renamed"]` would rename an agent), and it never lets a
//! Rust type name or serde's source position reach the client: messages
//! are rewritten in [`words`].

mod words;

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

/// Parses a JSON request body, which must be one JSON object, naming the
/// field path on type errors.
///
/// Invalid UTF-8, malformed JSON and a body that is not an object are
/// reported without a param.
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
    if first_token(body) != Some(b'{') {
        return Err(not_an_object(body));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            // Trailing garbage after the object is malformed JSON too.
            de.end().map_err(malformed)?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if matches!(
                inner.classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            ) {
                return Err(malformed(inner));
            }
            Err(invalid(
                Place::Body,
                &path,
                &words::without_position(&inner),
            ))
        }
    }
}

/// Parses a query string (without the `?`), naming the parameter on
/// errors.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ParseError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
        let path = err.path().to_string();
        invalid(Place::Query, &path, &err.into_inner().to_string())
    })
}

/// The first byte that is not JSON whitespace.
fn first_token(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The answer for a body that does not start with `{`: malformed JSON if
/// it is not JSON at all, otherwise what it is instead of an object.
fn not_an_object(body: &[u8]) -> ParseError {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return malformed(e);
    }
    let kind = match first_token(body) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    ParseError {
        message: format!("The request body must be a JSON object, not {kind}."),
        param: None,
    }
}

fn malformed(e: serde_json::Error) -> ParseError {
    ParseError {
        message: format!("The request body is not valid JSON: {}.", words::syntax(&e)),
        param: None,
    }
}

/// Where a parse error is.
#[derive(Clone, Copy)]
enum Place {
    Body,
    Query,
}

/// A value of the wrong type or shape at `path` (`.` for the whole body
/// or query string).
fn invalid(place: Place, path: &str, serde_message: &str) -> ParseError {
    use words::Kind;
    let said = words::in_words(serde_message);
    let param = said.field_under(path);
    let (noun, whole) = match place {
        Place::Body => ("parameter", "request body"),
        Place::Query => ("query parameter", "query string"),
    };
    let text = &said.text;
    let message = match (&param, said.kind) {
        (Some(p), Kind::Missing) => format!("Missing required {noun}: '{p}'."),
        (Some(p), Kind::Unknown) => format!("Unknown {noun}: '{p}'{text}."),
        (Some(p), Kind::Duplicate) => format!("The {noun} '{p}' is given more than once."),
        (Some(p), Kind::Other) => match place {
            Place::Body => format!("Invalid value for '{p}': {text}."),
            Place::Query => format!("Invalid query parameter '{p}': {text}."),
        },
        (None, _) => format!("Invalid {whole}: {text}."),
    };
    ParseError { message, param }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::responses::{ConversationCreate, CreateResponseRequest};
    use crate::{ChatCompletionRequest, EmbeddingsRequest};

    /// What a client must never read in an error message: Rust's names
    /// for types, serde's positions and quoting.
    fn assert_in_users_words(message: &str) {
        for banned in [
            "line 1",
            " column ",
            "untagged enum",
            "struct ",
            "variant identifier",
            "u32",
            "u64",
            "i64",
            "f32",
            "f64",
            "`",
            "target type",
        ] {
            assert!(!message.contains(banned), "{banned:?} in {message:?}");
        }
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused_by_what_they_are() {
        for (body, kind) in [
            (&b"[\"renamed\"]"[..], "an array"),
            (b" []", "an array"),
            (b"\"text\"", "a string"),
            (b"42", "a number"),
            (b"-1.5", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            let err = parse_json::<ConversationCreate>(body).unwrap_err();
            assert_eq!(
                err.message,
                format!("The request body must be a JSON object, not {kind}.")
            );
            assert_eq!(err.param, None);
        }
        // Not JSON at all is malformed, whatever its first byte.
        let err = parse_json::<ConversationCreate>(b"[1,").unwrap_err();
        assert!(
            err.message
                .starts_with("The request body is not valid JSON")
        );
        assert!(parse_json::<ConversationCreate>(b" \n{}").is_ok());
    }

    #[test]
    fn type_errors_say_what_was_expected_and_what_came() {
        let cases: [(&[u8], &str, &str); 6] = [
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":"two"}"#,
                "n",
                "Invalid value for 'n': expected an integer from 0 to 4294967295, got the string \"two\".",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":1}"#,
                "stream",
                "Invalid value for 'stream': expected true or false, got the number 1.",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "temperature",
                "Invalid value for 'temperature': expected a number, got the string \"hot\".",
            ),
            (
                br#"{"model":"m"}"#,
                "messages",
                "Missing required parameter: 'messages'.",
            ),
            (
                br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                "messages[0].role",
                "Invalid value for 'messages[0].role': unknown value 'robot', expected one of 'system', 'developer', 'user', 'assistant', 'tool'.",
            ),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}"#,
                "tools[0].function.name",
                "Missing required parameter: 'tools[0].function.name'.",
            ),
        ];
        for (body, param, message) in cases {
            let err = parse_json::<ChatCompletionRequest>(body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{}", err.message);
            assert_eq!(err.message, message);
        }
    }

    #[test]
    fn embeddings_token_ids_out_of_range_are_named() {
        let err =
            parse_json::<EmbeddingsRequest>(br#"{"model":"m","input":[4294967296]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[0]"));
        assert_eq!(
            err.message,
            "Invalid value for 'input[0]': a token id must be an integer from 0 to 4294967295, got 4294967296."
        );
        let err = parse_json::<EmbeddingsRequest>(br#"{"model":"m","input":[[1,2],[3,-1]]}"#)
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[1][1]"));
        let err = parse_json::<EmbeddingsRequest>(br#"{"model":"m","input":{"a":1}}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input"));
        assert_in_users_words(&err.message);
        let err = parse_json::<EmbeddingsRequest>(br#"{"model":"m","input":["a",1]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[1]"));
        assert_in_users_words(&err.message);
    }

    #[test]
    fn errors_inside_responses_input_items_name_the_whole_path() {
        let err = parse_json::<CreateResponseRequest>(
            br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":5}]}]}"#,
        )
        .unwrap_err();
        // serde reads a tagged part whole, so a wrong type inside it is
        // named by the part.
        assert_eq!(err.param.as_deref(), Some("input[0].content[0]"));
        assert_eq!(
            err.message,
            "Invalid value for 'input[0].content[0]': expected a string, got the number 5."
        );
        let err = parse_json::<CreateResponseRequest>(
            br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[0].content[0].text"));
        assert_eq!(
            err.message,
            "Missing required parameter: 'input[0].content[0].text'."
        );
    }

    #[test]
    fn malformed_json_says_where_in_words() {
        let err = parse_json::<ChatCompletionRequest>(b"{\"model\": ").unwrap_err();
        assert_eq!(
            err.message,
            "The request body is not valid JSON: the body ends in the middle of a value (at character 10)."
        );
        let err = parse_json::<ChatCompletionRequest>(b"{\"model\": \"m\"\n,}").unwrap_err();
        assert_eq!(
            err.message,
            "The request body is not valid JSON: a trailing comma before a closing bracket (line 2, character 2)."
        );
    }

    #[test]
    fn query_strings_name_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        struct Q {
            #[allow(dead_code)]
            after: Option<i64>,
        }
        let err = parse_query::<Q>("after=1662703225026415856055306158080").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("after"));
        assert_eq!(
            err.message,
            "Invalid query parameter 'after': the number is too large."
        );
        let err = parse_query::<Q>("after=abc").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid query parameter 'after': expected an integer."
        );
        let err = parse_query::<Q>("after=1&after=2").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("after"));
        assert_in_users_words(&err.message);
    }

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
        /// it is absent, as it should be), and every message is in the
        /// client's words.
        #[test]
        fn mutated_requests_fail_precisely(cut in 0usize..120, junk in "[\\[\\]{}\",:0-9a-z ]{0,6}") {
            let valid = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":1,"stream":false}"#;
            let cut = cut.min(valid.len());
            let text = format!("{}{}{}", &valid[..cut], junk, &valid[cut..]);
            if let Err(e) = parse_json::<ChatCompletionRequest>(text.as_bytes()) {
                prop_assert!(!e.message.is_empty());
                assert_in_users_words(&e.message);
                if let Some(p) = e.param.as_ref().filter(|_| !e.message.starts_with("Missing")) {
                    let root = p.split(['.', '[']).next().unwrap_or_default();
                    prop_assert!(text.contains(root), "param {p} not in {text}");
                }
            }
        }

        /// The same for every other body shape with hand-written parsing.
        #[test]
        fn mutated_embeddings_and_responses_speak_plainly(
            cut in 0usize..90,
            junk in "[\\[\\]{}\",:0-9a-z -]{0,8}",
        ) {
            let embeddings = r#"{"model":"m","input":[[1,2],[3]],"dimensions":3}"#;
            let responses = r#"{"model":"m","input":[{"role":"user","content":"hi"}],"conversation":{"id":"c"},"max_output_tokens":5}"#;
            for valid in [embeddings, responses] {
                let cut = cut.min(valid.len());
                let text = format!("{}{}{}", &valid[..cut], junk, &valid[cut..]);
                if let Err(e) = parse_json::<EmbeddingsRequest>(text.as_bytes()) {
                    assert_in_users_words(&e.message);
                }
                if let Err(e) = parse_json::<CreateResponseRequest>(text.as_bytes()) {
                    assert_in_users_words(&e.message);
                }
            }
        }
    }
}
