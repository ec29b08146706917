//! Replacing the `model` a host answered with by the public model name
//! the client asked for.
//!
//! Hosts name their own deployment (`gpt-4o-eastus`, `openai.gpt-4o-v1:0`);
//! passing that on would leak placement and vendor names and make `model`
//! change from one request to the next. This runs once per response body
//! or stream chunk, so it avoids a parse: in raw JSON the byte sequence
//! `"model":"` can only be a key followed by a string value, because every
//! quote inside a JSON string is escaped. OpenAI and Azure emit compact
//! JSON; anything else takes the slow path through `serde_json::Value`.

use std::ops::Range;

const NEEDLE: &[u8] = b"\"model\":\"";

/// The byte range of the top-level `model` string value (between its
/// quotes), when the body is compact JSON.
pub fn model_value_range(json: &[u8]) -> Option<Range<usize>> {
    let start = memchr::memmem::find(json, NEEDLE)? + NEEDLE.len();
    let mut i = start;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(start..i),
            _ => i += 1,
        }
    }
    None
}

/// Writes `json` with its `model` value replaced by `model` into `out`.
/// Returns false (writing nothing) when the body has no model to replace.
pub fn write_with_model(json: &[u8], model: &str, out: &mut Vec<u8>) -> bool {
    if let Some(range) = model_value_range(json) {
        out.reserve(json.len() + model.len());
        out.extend_from_slice(&json[..range.start]);
        write_escaped(model, out);
        out.extend_from_slice(&json[range.end..]);
        return true;
    }
    // Slow path: pretty-printed or unusual JSON.
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return false;
    };
    match value.get_mut("model") {
        Some(m) if m.is_string() => *m = serde_json::Value::String(model.to_owned()),
        _ => return false,
    }
    serde_json::to_writer(out, &value).is_ok()
}

fn write_escaped(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b != b'"' && b != b'\\' && b >= 0x20) {
        out.extend_from_slice(s.as_bytes());
    } else {
        let quoted = serde_json::Value::String(s.to_owned()).to_string();
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// `json` with its model replaced, or `json` itself when there is none.
pub fn with_model(json: &[u8], model: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + model.len());
    if !write_with_model(json, model, &mut out) {
        out.clear();
        out.extend_from_slice(json);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn replaces_compact_openai_and_azure_bodies() {
        let openai = br#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-eastus","choices":[{"delta":{"content":"\"model\":\"x\""}}]}"#;
        let out: Value = serde_json::from_slice(&with_model(openai, "gpt-4o")).unwrap();
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["choices"][0]["delta"]["content"], "\"model\":\"x\"");
        // Azure sorts keys: choices come first.
        let azure = br#"{"choices":[{"delta":{"content":"hi"}}],"created":1,"model":"gpt-4o-2024-08-06","object":"x"}"#;
        let out: Value = serde_json::from_slice(&with_model(azure, "gpt-4o")).unwrap();
        assert_eq!(out["model"], "gpt-4o");
    }

    #[test]
    fn pretty_json_takes_the_slow_path_and_missing_model_is_left_alone() {
        let pretty = b"{\n  \"model\": \"dep\",\n  \"x\": 1\n}";
        let out: Value = serde_json::from_slice(&with_model(pretty, "pub")).unwrap();
        assert_eq!(out, json!({"model": "pub", "x": 1}));
        assert_eq!(with_model(br#"{"x":1}"#, "pub"), br#"{"x":1}"#);
        assert_eq!(with_model(b"not json", "pub"), b"not json");
    }

    proptest! {
        #[test]
        fn any_body_keeps_everything_but_the_model(
            model in "\\PC{0,20}", public in "\\PC{0,20}",
            content in "\\PC{0,40}", pretty in any::<bool>()
        ) {
            let v = json!({"id": "x", "model": model, "choices": [{"delta": {"content": content}}]});
            let bytes = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
            let out: Value = serde_json::from_slice(&with_model(&bytes, &public)).unwrap();
            prop_assert_eq!(&out["model"], &json!(public));
            prop_assert_eq!(&out["choices"], &v["choices"]);
        }
    }
}
