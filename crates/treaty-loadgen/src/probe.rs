//! One chat completion against the target: send, time the first body byte
//! and the end of the body, and judge the answer.
//!
//! The whole body is read (a gateway has not finished a request until its
//! last byte is out), but only what the verdict needs is kept: a plain
//! answer is small and kept whole to look for `"choices"`; of a stream
//! only the last bytes, to look for `data: [DONE]`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::record::{ErrorKind, Sample};

/// Where and what to send; shared by every request of a run.
#[derive(Debug)]
pub struct Target {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    stream: bool,
    timeout: Duration,
}

/// What a target is built from.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub url: String,
    /// Extra request headers, as `name: value`.
    pub headers: Vec<String>,
    pub model: String,
    pub prompt: String,
    pub max_tokens: Option<u32>,
    pub stream: bool,
    pub timeout: Duration,
}

/// A target that could not be built from its spec.
#[derive(Debug)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

impl Target {
    pub fn new(spec: &TargetSpec) -> Result<Self, SpecError> {
        let uri: Uri = spec
            .url
            .parse()
            .map_err(|e| SpecError(format!("bad --url {:?}: {e}", spec.url)))?;
        if uri.scheme_str() != Some("http") {
            return Err(SpecError(format!(
                "--url must be plain http:// (the benchmark runs on loopback): {}",
                spec.url
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for h in &spec.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| SpecError(format!("--header {h:?} is not `name: value`")))?;
            let name = HeaderName::try_from(name.trim())
                .map_err(|e| SpecError(format!("--header {h:?}: {e}")))?;
            let value = HeaderValue::try_from(value.trim())
                .map_err(|e| SpecError(format!("--header {h:?}: {e}")))?;
            headers.append(name, value);
        }
        let mut body = serde_json::json!({
            "model": spec.model,
            "messages": [{"role": "user", "content": spec.prompt}],
            "stream": spec.stream,
        });
        if let Some(n) = spec.max_tokens {
            body["max_tokens"] = n.into();
        }
        let mut connector = HttpConnector::new();
        // Small requests on loopback: Nagle would add up to 40 ms.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(spec.timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            uri,
            headers,
            body: Bytes::from(body.to_string()),
            stream: spec.stream,
            timeout: spec.timeout,
        })
    }

    pub fn streamed(&self) -> bool {
        self.stream
    }

    /// Sends one request that was due at `due` and reports how it went.
    /// Never takes longer than the timeout (plus scheduling noise).
    pub async fn send(&self, due: Instant) -> Sample {
        let sent = Instant::now();
        let mut first_byte = None;
        let outcome = match tokio::time::timeout(self.timeout, self.exchange(&mut first_byte)).await
        {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        };
        Sample {
            due,
            sent,
            first_byte,
            done: Instant::now(),
            outcome,
        }
    }

    async fn exchange(&self, first_byte: &mut Option<Instant>) -> Result<(), ErrorKind> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        let res = self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Io
            }
        })?;
        let status = res.status();
        let mut body = res.into_body();
        let mut kept: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorKind::Io)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if first_byte.is_none() {
                *first_byte = Some(Instant::now());
            }
            keep(&mut kept, &data, self.stream);
        }
        if !status.is_success() {
            return Err(ErrorKind::Status(status.as_u16()));
        }
        if judge(&kept, self.stream) {
            Ok(())
        } else {
            Err(ErrorKind::BadReply)
        }
    }
}

/// How much of a stream's tail to keep: enough for `data: [DONE]` and the
/// blank lines and spaces around it.
const TAIL: usize = 64;

/// Appends `data` to what is kept of the body: everything for a plain
/// answer (up to 1 MiB, far above any reply here), the last [`TAIL`] bytes
/// of a stream.
fn keep(kept: &mut Vec<u8>, data: &[u8], stream: bool) {
    if stream {
        kept.extend_from_slice(data);
        if kept.len() > TAIL {
            kept.drain(..kept.len() - TAIL);
        }
    } else if kept.len() < 1 << 20 {
        kept.extend_from_slice(data);
    }
}

/// Whether what was kept of a 2xx body is a good answer.
fn judge(kept: &[u8], stream: bool) -> bool {
    let needle: &[u8] = if stream {
        b"data: [DONE]"
    } else {
        b"\"choices\""
    };
    kept.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_good_only_if_it_ends_with_done() {
        let mut kept = Vec::new();
        for chunk in [
            &b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"[..],
            &[b'x'; 500][..],
            &b"data: [DONE]\n\n"[..],
        ] {
            keep(&mut kept, chunk, true);
        }
        assert!(kept.len() <= TAIL);
        assert!(judge(&kept, true));

        let mut cut = Vec::new();
        keep(&mut cut, b"data: {\"choices\":[]}\n\n", true);
        assert!(!judge(&cut, true));
    }

    #[test]
    fn a_plain_answer_needs_choices() {
        let mut kept = Vec::new();
        keep(&mut kept, br#"{"id":"x","choi"#, false);
        keep(&mut kept, br#"ces":[]}"#, false);
        assert!(judge(&kept, false));
        assert!(!judge(br#"{"error":{"message":"no"}}"#, false));
    }

    #[test]
    fn specs_are_checked() {
        let spec = TargetSpec {
            url: "https://example.invalid/v1/chat/completions".into(),
            headers: vec![],
            model: "m".into(),
            prompt: "p".into(),
            max_tokens: None,
            stream: false,
            timeout: Duration::from_secs(1),
        };
        assert!(Target::new(&spec).is_err());
        let bad_header = TargetSpec {
            url: "http://127.0.0.1:9/v1/chat/completions".into(),
            headers: vec!["no-colon".into()],
            ..spec
        };
        assert!(Target::new(&bad_header).is_err());
    }
}
