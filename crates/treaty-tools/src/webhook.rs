//! Webhook tools: one signed JSON POST per tool call, retried on failures
//! that may pass (connect errors, timeouts, 408, 429, 5xx) with the same
//! `Idempotency-Key`, so a receiver that keys its side effect on it applies
//! the effect once however often the call is delivered. Each attempt is
//! signed afresh (a new timestamp), so a late retry still passes the
//! receiver's replay window. Never logs the body, a header or the secret.

use crate::ToolError;
use crate::retry::{backoff, retry_after};
use crate::signature::sign;
use serde::Serialize;
use serde_json::value::RawValue;
use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `{run_id}:{call_id}`, identical on every attempt of one call.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Unix seconds when the attempt was signed.
pub const TIMESTAMP_HEADER: &str = "x-treaty-timestamp";
/// `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`; see [`crate::verify_signature`].
pub const SIGNATURE_HEADER: &str = "x-treaty-signature";
/// The largest answer accepted; a larger one is [`ToolError::TooLarge`],
/// since a model could not read it anyway.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How much of a refused request's body is quoted in the error.
const DETAIL_BYTES: usize = 200;

/// A tool the model calls by name and Treaty delivers as a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTool {
    /// The function name offered to the model.
    pub name: String,
    /// Where calls are POSTed.
    pub url: String,
    /// The limit for one attempt, from sending to the end of the answer.
    pub timeout: Duration,
    /// Attempts in all, the first included; 0 counts as 1.
    pub max_attempts: u32,
}

/// One tool call as the model made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation<'a> {
    /// The agent run making the call.
    pub run_id: &'a str,
    /// The model's id for this call, unique within the run.
    pub call_id: &'a str,
    /// The function name the model called.
    pub name: &'a str,
    /// The arguments as the model wrote them: JSON text, or not.
    pub arguments: &'a str,
}

/// The POSTed body. `arguments` is passed through verbatim when it is JSON
/// (no re-encoding), else as a JSON string holding the model's raw text.
#[derive(Serialize)]
struct Payload<'a> {
    run_id: &'a str,
    call_id: &'a str,
    tool: &'a str,
    arguments: Arguments<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Arguments<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

/// How one attempt ended.
enum Attempt {
    Answered(String),
    /// Worth another attempt, after at least `retry_after` if given.
    Retry {
        error: ToolError,
        retry_after: Option<Duration>,
    },
    Final(ToolError),
}

/// Delivers `call` to `tool` and returns its answer: the `output` field of
/// a JSON answer (a string as is, any other value as JSON text), else the
/// answer's text. Retries with jittered exponential backoff (honouring
/// `Retry-After` up to 30 s) until `tool.max_attempts`; a 4xx other than
/// 408 and 429 ends the call at once.
pub async fn call_webhook(
    client: &reqwest::Client,
    tool: &WebhookTool,
    signing_secret: &[u8],
    call: &Invocation<'_>,
) -> Result<String, ToolError> {
    let arguments = match serde_json::from_str::<&RawValue>(call.arguments) {
        Ok(json) => Arguments::Json(json),
        Err(_) => Arguments::Text(call.arguments),
    };
    let payload = Payload {
        run_id: call.run_id,
        call_id: call.call_id,
        tool: call.name,
        arguments,
    };
    let body = serde_json::to_vec(&payload).map_err(|error| ToolError::InvalidArguments {
        tool: tool.name.clone(),
        reason: error.to_string(),
    })?;
    let key = format!("{}:{}", call.run_id, call.call_id);
    let key = http::HeaderValue::from_str(&key).map_err(|_| ToolError::Config {
        tool: tool.name.clone(),
        reason: "the run or call id cannot be sent as an Idempotency-Key header".to_owned(),
    })?;
    let max_attempts = tool.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match tokio::time::timeout(
            tool.timeout,
            deliver(client, tool, signing_secret, &key, &body, attempt),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_elapsed) => Attempt::Retry {
                error: ToolError::TimedOut {
                    tool: tool.name.clone(),
                    attempts: attempt,
                },
                retry_after: None,
            },
        };
        let retry_after = match outcome {
            Attempt::Answered(answer) => return Ok(answer),
            Attempt::Final(error) => return Err(error),
            Attempt::Retry { error, .. } if attempt >= max_attempts => return Err(error),
            Attempt::Retry { error, retry_after } => {
                tracing::debug!(tool = %tool.name, attempt, %error, "webhook attempt failed; retrying");
                retry_after
            }
        };
        tokio::time::sleep(backoff(attempt, retry_after, rand::random())).await;
    }
}

/// One signed POST and its answer, classified.
async fn deliver(
    client: &reqwest::Client,
    tool: &WebhookTool,
    secret: &[u8],
    key: &http::HeaderValue,
    body: &[u8],
    attempt: u32,
) -> Attempt {
    let timestamp = unix_now().to_string();
    let Some(signature) = sign(secret, &timestamp, body) else {
        return Attempt::Final(ToolError::Config {
            tool: tool.name.clone(),
            reason: "the signing secret was refused".to_owned(),
        });
    };
    let request = client
        .post(&tool.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(IDEMPOTENCY_KEY_HEADER, key.clone())
        .header(TIMESTAMP_HEADER, timestamp)
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_vec());
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return failed(tool, attempt, error),
    };
    let status = response.status();
    if status.is_success() {
        return match read_capped(response, MAX_ANSWER_BYTES).await {
            Ok(Some(answer)) => Attempt::Answered(output(&answer)),
            Ok(None) => Attempt::Final(ToolError::TooLarge {
                tool: tool.name.clone(),
                limit: MAX_ANSWER_BYTES,
            }),
            Err(error) => failed(tool, attempt, error),
        };
    }
    let retryable = status.is_server_error()
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT;
    let retry_after = retry_after(response.headers());
    let detail = if retryable {
        String::new()
    } else {
        detail(response).await
    };
    let error = ToolError::Status {
        tool: tool.name.clone(),
        status: status.as_u16(),
        attempts: attempt,
        detail,
    };
    if retryable {
        Attempt::Retry { error, retry_after }
    } else {
        Attempt::Final(error)
    }
}

/// A transport failure: retried unless the request could never be sent.
fn failed(tool: &WebhookTool, attempt: u32, error: reqwest::Error) -> Attempt {
    if error.is_builder() {
        return Attempt::Final(ToolError::Config {
            tool: tool.name.clone(),
            reason: "the webhook URL cannot be used".to_owned(),
        });
    }
    let error = if error.is_timeout() {
        ToolError::TimedOut {
            tool: tool.name.clone(),
            attempts: attempt,
        }
    } else {
        ToolError::Unreachable {
            tool: tool.name.clone(),
            attempts: attempt,
            reason: describe(error),
        }
    };
    // A failure after the request left (a reset mid-answer) is retried
    // too: the Idempotency-Key makes a second delivery harmless.
    Attempt::Retry {
        error,
        retry_after: None,
    }
}

/// The error and its causes, without the URL (which may carry a token).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The body, or `None` once it is longer than `limit`.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// `: ` and the start of a refused request's body, for the error.
async fn detail(response: reqwest::Response) -> String {
    let Ok(Some(body)) = read_capped(response, 64 * 1024).await else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    match text.char_indices().nth(DETAIL_BYTES) {
        Some((cut, _)) => format!(": {}…", &text[..cut]),
        None => format!(": {text}"),
    }
}

/// The text the model reads: a JSON answer's `output`, else the answer.
fn output(answer: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(answer)
        && let Some(output) = fields.remove("output")
    {
        return match output {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
    }
    String::from_utf8_lossy(answer).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_output_when_there_is_one() {
        assert_eq!(output(br#"{"output":"done"}"#), "done");
        assert_eq!(output(br#"{"output":{"n":1}}"#), r#"{"n":1}"#);
        assert_eq!(output(br#"{"result":1}"#), r#"{"result":1}"#);
        assert_eq!(output(b"plain text"), "plain text");
    }

    #[test]
    fn arguments_pass_through_verbatim_or_as_a_string() {
        let body = |arguments| {
            let arguments = match serde_json::from_str::<&RawValue>(arguments) {
                Ok(json) => Arguments::Json(json),
                Err(_) => Arguments::Text(arguments),
            };
            serde_json::to_string(&Payload {
                run_id: "r",
                call_id: "c",
                tool: "t",
                arguments,
            })
            .unwrap()
        };
        assert_eq!(
            body(r#"{"b":1,"a":[2]}"#),
            r#"{"run_id":"r","call_id":"c","tool":"t","arguments":{"b":1,"a":[2]}}"#
        );
        assert_eq!(
            body("{not json"),
            r#"{"run_id":"r","call_id":"c","tool":"t","arguments":"{not json"}"#
        );
    }
}
