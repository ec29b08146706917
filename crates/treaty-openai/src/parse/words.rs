//! serde's messages, said in a client developer's words: what was expected
//! and what came, with JSON's names for types (`an integer`, `an object`),
//! never Rust's (`u32`, `struct AgentCreate`), and without serde's source
//! position or backticks.
//!
//! serde's messages follow a handful of fixed templates (`invalid type:
//! X, expected Y`, `missing field `f``, ...); they are matched here, and
//! anything else (a message Treaty's own parsers wrote) passes through
//! with its quoting made plain.

/// What a message is about, when it names a field itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A required field is absent.
    Missing,
    /// A field the type does not have.
    Unknown,
    /// A field given twice.
    Duplicate,
    /// Anything else: a wrong type or value.
    Other,
}

/// A message rewritten, with the field path it adds to serde's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Said {
    pub kind: Kind,
    /// A path below serde's (`content[0].text`): a parser that reads
    /// through `serde_json::Value` reports the inner path in its message.
    below: Option<String>,
    /// The field the message names (a missing, unknown or duplicate one).
    field: Option<String>,
    pub text: String,
}

impl Said {
    /// The full path of the offending field, given serde's path (`.` for
    /// the document itself), or `None` for the document.
    pub fn field_under(&self, path: &str) -> Option<String> {
        let mut out = if path == "." {
            String::new()
        } else {
            path.to_owned()
        };
        if let Some(below) = &self.below {
            join(&mut out, below);
        }
        // serde's path already ends at an unknown or duplicate field (its
        // key was read), but not at a missing one.
        if let Some(field) = &self.field
            && (self.kind == Kind::Missing || out.rsplit(['.', ']']).next() != Some(field.as_str()))
        {
            join(&mut out, field);
        }
        (!out.is_empty()).then_some(out)
    }
}

fn join(path: &mut String, part: &str) {
    if !path.is_empty() && !part.starts_with('[') {
        path.push('.');
    }
    path.push_str(part);
}

/// serde_json's message without its ` at line L column C` suffix.
pub(super) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(t) => t.to_owned(),
        None => text,
    }
}

/// A JSON syntax error: what is wrong, and where as a person counts.
pub(super) fn syntax(e: &serde_json::Error) -> String {
    let message = without_position(e);
    let what = match message.as_str() {
        "EOF while parsing a value" => "the body ends in the middle of a value",
        "EOF while parsing a list" => "the body ends inside an array",
        "EOF while parsing an object" => "the body ends inside an object",
        "EOF while parsing a string" => "the body ends inside a string",
        "expected `:`" => "expected ':' after an object key",
        "expected `,` or `]`" => "expected ',' or ']' in an array",
        "expected `,` or `}`" => "expected ',' or '}' in an object",
        "expected ident" => "expected true, false or null",
        "expected value" => "expected a JSON value",
        "key must be a string" => "object keys must be strings in double quotes",
        "trailing comma" => "a trailing comma before a closing bracket",
        "trailing characters" => "more follows the JSON object",
        "invalid escape" => "a string holds an invalid escape",
        "invalid number" => "a number is malformed",
        "number out of range" => "a number is too large",
        "invalid unicode code point" => "a string holds an invalid \\u escape",
        "unexpected end of hex escape" => "a \\u escape is cut short",
        "lone leading surrogate in hex escape" => "a string holds an unpaired \\u surrogate",
        "control character (\\u0000-\\u001F) found while parsing a string" => {
            "a string holds an unescaped control character"
        }
        "recursion limit exceeded" => "values are nested too deeply",
        other => return located(&plain(other), e),
    };
    located(what, e)
}

fn located(what: &str, e: &serde_json::Error) -> String {
    match (e.line(), e.column()) {
        (0, _) => what.to_owned(),
        (1, c) => format!("{what} (at character {c})"),
        (l, c) => format!("{what} (line {l}, character {c})"),
    }
}

/// A data error (wrong type, unknown or missing field, bad value).
pub(super) fn in_words(message: &str) -> Said {
    let mut said = Said {
        kind: Kind::Other,
        below: None,
        field: None,
        text: String::new(),
    };
    let mut rest = message;
    // `at 'content[0].text': ...`, from parsers that read a `Value`.
    if let Some(after) = rest.strip_prefix("at '")
        && let Some((path, tail)) = after.split_once("': ")
    {
        said.below = Some(path.to_owned());
        rest = tail;
    }
    if let Some(field) = quoted_field(rest, "missing field `") {
        said.kind = Kind::Missing;
        said.field = Some(field.to_owned());
        said.text = "is required".to_owned();
    } else if let Some(field) = quoted_field(rest, "unknown field `") {
        said.kind = Kind::Unknown;
        said.field = Some(field.to_owned());
        said.text = match rest.split_once("`, expected ") {
            Some((_, allowed)) => format!("; expected {}", plain(allowed)),
            None => String::new(),
        };
    } else if let Some(field) = quoted_field(rest, "duplicate field `") {
        said.kind = Kind::Duplicate;
        said.field = Some(field.to_owned());
    } else if let Some(tail) = rest.strip_prefix("invalid type: ") {
        said.text = mismatch(tail);
    } else if let Some(tail) = rest.strip_prefix("invalid value: ") {
        said.text = mismatch(tail);
    } else if let Some(tail) = rest.strip_prefix("unknown variant `") {
        said.text = match tail.split_once("`, expected ") {
            Some((value, allowed)) => {
                format!("unknown value '{value}', expected {}", plain(allowed))
            }
            None => format!("unknown value '{}'", tail.split('`').next().unwrap_or(tail)),
        };
    } else if rest.starts_with("data did not match any variant") {
        said.text = "the value is in none of the accepted forms".to_owned();
    } else {
        said.text = match rest {
            "invalid digit found in string" => "expected an integer".to_owned(),
            "cannot parse integer from empty string" => "expected an integer, got nothing".into(),
            "number too large to fit in target type" => "the number is too large".to_owned(),
            "number too small to fit in target type" => "the number is too small".to_owned(),
            "invalid float literal" => "expected a number".to_owned(),
            "provided string was not `true` or `false`" => "expected true or false".to_owned(),
            other => plain(other),
        };
    }
    said
}

fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// `X, expected Y` as `expected Y', got X'`.
fn mismatch(tail: &str) -> String {
    // What came may hold ", expected " inside a quoted string; what was
    // expected never does, so split at the last one.
    match tail.rsplit_once(", expected ") {
        Some((got, expected)) => format!("expected {}, got {}", wanted(expected), came(got)),
        None => plain(tail),
    }
}

/// serde's `Expected`, in JSON's terms.
fn wanted(expected: &str) -> String {
    let said = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" | "u128" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a borrowed string" | "a string" | "a character" => "a string",
        "a sequence" => "an array",
        "a map" => "an object",
        "unit" => "null",
        "option" => "a value or null",
        "variant identifier" | "field identifier" => "a string",
        e if e.starts_with("struct ")
            || e.starts_with("tuple struct ")
            || e.starts_with("a tuple of size ")
            || e.starts_with("tuple of ") =>
        {
            "an object"
        }
        e if e.starts_with("internally tagged enum ")
            || e.starts_with("adjacently tagged enum ")
            || e.starts_with("struct variant ") =>
        {
            "an object with a 'type'"
        }
        e if e.starts_with("enum ") || e.starts_with("unit variant ") => {
            "one of the allowed values"
        }
        other => return plain(other),
    };
    said.to_owned()
}

/// serde's `Unexpected`, in JSON's terms.
fn came(got: &str) -> String {
    if let Some(s) = got.strip_prefix("string ") {
        return format!("the string {s}");
    }
    for prefix in ["integer `", "floating point `"] {
        if let Some(n) = got.strip_prefix(prefix) {
            return format!("the number {}", n.trim_end_matches('`'));
        }
    }
    match got {
        "boolean `true`" => "true".to_owned(),
        "boolean `false`" => "false".to_owned(),
        "null" | "unit value" => "null".to_owned(),
        "sequence" => "an array".to_owned(),
        "map" => "an object".to_owned(),
        other => plain(other),
    }
}

/// serde's backtick quoting as plain quotes.
fn plain(text: &str) -> String {
    text.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_read_plainly() {
        let cases = [
            (
                "invalid type: string \"a, expected b\", expected u32",
                "expected an integer from 0 to 4294967295, got the string \"a, expected b\"",
            ),
            (
                "invalid value: integer `4294967296`, expected u32",
                "expected an integer from 0 to 4294967295, got the number 4294967296",
            ),
            (
                "invalid type: sequence, expected struct AgentCreate",
                "expected an object, got an array",
            ),
            (
                "invalid type: map, expected internally tagged enum AgentTool",
                "expected an object with a 'type', got an object",
            ),
            (
                "unknown variant `robot`, expected `user` or `assistant`",
                "unknown value 'robot', expected 'user' or 'assistant'",
            ),
            (
                "data did not match any variant of untagged enum ToolChoice",
                "the value is in none of the accepted forms",
            ),
        ];
        for (serde, ours) in cases {
            assert_eq!(in_words(serde).text, ours);
        }
    }

    #[test]
    fn named_fields_join_the_path() {
        let said = in_words("at 'content[0]': missing field `text`");
        assert_eq!(said.kind, Kind::Missing);
        assert_eq!(
            said.field_under("input[2]").as_deref(),
            Some("input[2].content[0].text")
        );
        let said = in_words("unknown field `bogus`, expected `name` or `model`");
        assert_eq!(said.kind, Kind::Unknown);
        assert_eq!(said.field_under(".").as_deref(), Some("bogus"));
        assert_eq!(said.field_under("bogus").as_deref(), Some("bogus"));
        assert_eq!(
            said.field_under("tools[0].bogus").as_deref(),
            Some("tools[0].bogus")
        );
        assert_eq!(said.text, "; expected 'name' or 'model'");
        assert_eq!(in_words("x").field_under("."), None);
    }
}
