//! Scrubbing upstream error messages before anyone else sees them.
//!
//! A host's error text may quote the key it was sent, name internal URLs or
//! echo tokens. This module removes the configured key, anything that looks
//! like a key (`sk-...`, runs of 24 or more base64-ish characters) and
//! `http(s)://` URLs, flattens control characters and caps the length. It
//! errs on the side of removing too much: a less readable message is a
//! small price. It must never be skipped for text that leaves this crate.

const MAX_CHARS: usize = 500;
/// Shorter runs are words, model names or ids; longer ones may be secrets.
const MIN_TOKEN_LEN: usize = 24;
const REDACTED: &str = "[redacted]";

/// Returns `message` without secrets or URLs, at most 500 characters.
pub(crate) fn redact(message: &str, secret: Option<&str>) -> String {
    let keyless;
    let mut text = message;
    if let Some(secret) = secret.filter(|s| !s.is_empty())
        && text.contains(secret)
    {
        keyless = text.replace(secret, REDACTED);
        text = &keyless;
    }

    // Scanning stops once the cap is reached, so a huge body costs little.
    let mut out = String::with_capacity(text.len().min(MAX_CHARS + 8));
    let mut count = 0;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if count >= MAX_CHARS {
            break;
        }
        let (piece, len) = if starts_with_url(rest) {
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
                .unwrap_or(rest.len());
            ("[url]", end)
        } else if is_token_char(c) {
            let end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
            let run = &rest[..end];
            if run.len() >= MIN_TOKEN_LEN || (run.starts_with("sk-") && run.len() > 3) {
                (REDACTED, end)
            } else {
                (run, end)
            }
        } else if c.is_control() {
            (" ", c.len_utf8())
        } else {
            (&rest[..c.len_utf8()], c.len_utf8())
        };
        out.push_str(piece);
        count += piece.chars().count();
        rest = &rest[len..];
    }
    if count > MAX_CHARS || !rest.is_empty() {
        let cut = out
            .char_indices()
            .nth(MAX_CHARS)
            .map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/')
}

fn starts_with_url(s: &str) -> bool {
    let head = s.get(..8).unwrap_or(s);
    let lower = head.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_keys_tokens_and_urls() {
        let msg = "Incorrect API key provided: sk-proj-abcdef1234567890abcdef. \
                   See https://internal.example/x?y=1 or HTTP://10.0.0.1:8000/v1.";
        let out = redact(msg, None);
        assert!(!out.contains("sk-proj"), "{out}");
        assert!(!out.contains("abcdef1234567890"), "{out}");
        assert!(!out.contains("internal.example"), "{out}");
        assert!(!out.contains("10.0.0.1"), "{out}");
        assert!(
            out.starts_with("Incorrect API key provided: [redacted]"),
            "{out}"
        );
    }

    #[test]
    fn removes_the_configured_key_even_when_short() {
        let out = redact("bad key k3y!", Some("k3y"));
        assert_eq!(out, "bad key [redacted]!");
    }

    #[test]
    fn keeps_ordinary_messages() {
        let msg = "This model's maximum context length is 8192 tokens (gpt-4o-mini-2024-07-18).";
        assert_eq!(redact(msg, None), msg);
    }

    #[test]
    fn long_base64ish_runs_go_jwt_segments_too() {
        let out = redact(
            "token eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0 x",
            None,
        );
        assert!(!out.contains("eyJ"), "{out}");
    }

    #[test]
    fn caps_the_length_on_a_char_boundary() {
        let out = redact(&"é ".repeat(400), None);
        assert_eq!(out.chars().count(), MAX_CHARS + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn flattens_control_characters() {
        assert_eq!(redact("a\nb\r\tc", None), "a b  c");
    }
}
