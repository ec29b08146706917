//! Hosts that speak the OpenAI wire format: OpenAI, Azure OpenAI and
//! OpenAI-compatible servers (vLLM, Ollama, llama.cpp).
//!
//! One implementation serves all three; a [`Flavor`] supplies the URLs and
//! the auth header. Requests go out nearly as the client sent them and
//! replies come back untranslated. This module must not translate formats
//! (sibling providers do that) and must not retry: the gateway decides.

mod body;
mod flavor;
pub(crate) mod reply;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;
use http::header::{ACCEPT, CONTENT_TYPE};
use treaty_config::Secret;
use treaty_domain::{HostId, ModelDeployment};
use treaty_openai::{ChatCompletionRequest, EmbeddingsRequest};

pub(crate) use flavor::Flavor;
use flavor::Operation;

use crate::exchange::{self, MAX_REPLY_BYTES};
use crate::{CallOptions, ChatReply, EmbeddingsReply, Provider, UpstreamError};

pub(crate) struct OpenAiFamily {
    host: HostId,
    flavor: Flavor,
    http: reqwest::Client,
}

impl std::fmt::Debug for OpenAiFamily {
    // Only what identifies the provider: no URLs, no headers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiFamily")
            .field("host", &self.host)
            .field("kind", &self.flavor.kind)
            .finish()
    }
}

impl OpenAiFamily {
    pub(crate) fn new(host: HostId, flavor: Flavor, http: reqwest::Client) -> Self {
        OpenAiFamily { host, flavor, http }
    }

    /// The upstream request: URL, auth, `x-request-id`, JSON body.
    fn request(
        &self,
        op: Operation,
        target: &str,
        body: Vec<u8>,
        stream: bool,
        call: &CallOptions,
    ) -> reqwest::RequestBuilder {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = self
            .http
            .post(self.flavor.url(op, target))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body);
        if let Some((name, value)) = self.flavor.auth() {
            request = request.header(name, value);
        }
        match HeaderValue::from_str(&call.request_id) {
            Ok(id) => request = request.header("x-request-id", id),
            Err(_) => tracing::debug!("request id is not a valid header value; not sent upstream"),
        }
        if let Some(tp) = &call.traceparent {
            request = request.header("traceparent", tp.clone());
        }
        request
    }

    /// Posts `body` and returns the response if its status is a success.
    async fn post(
        &self,
        op: Operation,
        target: &str,
        body: Vec<u8>,
        stream: bool,
        call: &CallOptions,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = self.request(op, target, body, stream, call);
        let response = exchange::send(request, call).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let err = exchange::status_error(response, call, self.secret()).await;
        tracing::debug!(host = %self.host, error = %err, "upstream refused the request");
        Err(err)
    }

    fn secret(&self) -> Option<&str> {
        self.flavor.secret().map(Secret::expose)
    }
}

/// The serialized body. Serializing borrowed views cannot fail in
/// practice (string keys, no custom serializers), but is not assumed to.
fn encode(body: &impl serde::Serialize) -> Result<Vec<u8>, UpstreamError> {
    serde_json::to_vec(body)
        .map_err(|_| UpstreamError::Protocol("the request could not be encoded".into()))
}

#[async_trait::async_trait]
impl Provider for OpenAiFamily {
    async fn probe(&self, timeout: std::time::Duration) -> Result<(), UpstreamError> {
        let mut request = self.http.get(self.flavor.url(Operation::Models, ""));
        if let Some((name, value)) = self.flavor.auth() {
            request = request.header(name, value);
        }
        let call = CallOptions {
            first_byte_timeout: timeout,
            deadline: tokio::time::Instant::now() + timeout,
            request_id: "health-probe".to_owned(),
            traceparent: None,
        };
        let response = exchange::send(request, &call).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(exchange::status_error(response, &call, self.secret()).await)
        }
    }

    fn host_id(&self) -> &HostId {
        &self.host
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<ChatReply, UpstreamError> {
        let body = encode(&body::OutgoingChat::new(req, &deployment.target))?;
        let stream = req.is_stream();
        let response = self
            .post(Operation::Chat, &deployment.target, body, stream, call)
            .await?;
        if stream {
            let bytes = response
                .bytes_stream()
                .map(|r: Result<Bytes, reqwest::Error>| r.map_err(exchange::body_error));
            return Ok(ChatReply::Stream(reply::decode_chat_stream(
                bytes,
                req.include_usage(),
                call.deadline,
                self.flavor.secret().cloned(),
            )));
        }
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let usage = reply::probe_body(&body)?;
        Ok(ChatReply::Full { body, usage })
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        deployment: &ModelDeployment,
        call: &CallOptions,
    ) -> Result<EmbeddingsReply, UpstreamError> {
        let body = encode(&body::OutgoingEmbeddings::new(req, &deployment.target))?;
        let response = self
            .post(Operation::Embeddings, &deployment.target, body, false, call)
            .await?;
        let body = exchange::read_body(response, call.deadline, MAX_REPLY_BYTES).await?;
        let usage = reply::probe_body(&body)?;
        Ok(EmbeddingsReply { body, usage })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use treaty_config::{AzureApiStyle, AzureAuth, AzureSettings, Endpoint, UpstreamConfig};

    use super::*;

    fn provider(
        flavor: fn(&HostId, &Endpoint) -> Result<Flavor, crate::ProviderError>,
        endpoint: Endpoint,
    ) -> OpenAiFamily {
        let host = HostId::new("h").unwrap();
        let http = crate::http_client(&UpstreamConfig {
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(1),
            max_attempts: 1,
        })
        .unwrap();
        OpenAiFamily::new(host.clone(), flavor(&host, &endpoint).unwrap(), http)
    }

    fn endpoint(base: &str, key: Option<&str>, azure: Option<AzureSettings>) -> Endpoint {
        Endpoint {
            base_url: base.into(),
            api_key: key.map(Secret::new),
            azure,
            gemini: None,
            aws: None,
        }
    }

    /// URL and the headers that matter, as sent.
    fn sent(p: &OpenAiFamily, op: Operation, stream: bool) -> (String, Vec<(String, String)>) {
        let call = CallOptions {
            first_byte_timeout: Duration::from_secs(1),
            deadline: tokio::time::Instant::now() + Duration::from_secs(1),
            request_id: "req-42".into(),
            traceparent: None,
        };
        let request = p
            .request(op, "dep-1", b"{}".to_vec(), stream, &call)
            .build()
            .unwrap();
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (request.url().to_string(), headers)
    }

    fn headers(auth: Option<(&str, &str)>, accept: &str) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = [
            ("accept", accept),
            ("content-type", "application/json"),
            ("x-request-id", "req-42"),
        ]
        .into_iter()
        .chain(auth)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        h.sort();
        h
    }

    #[test]
    fn each_flavor_sends_its_url_and_headers() {
        let openai = provider(
            Flavor::openai,
            endpoint("https://api.openai.com", Some("sk-1"), None),
        );
        assert_eq!(
            sent(&openai, Operation::Chat, true),
            (
                "https://api.openai.com/v1/chat/completions".into(),
                headers(Some(("authorization", "Bearer sk-1")), "text/event-stream")
            )
        );
        let azure = provider(
            Flavor::azure,
            endpoint(
                "https://x.openai.azure.com",
                Some("az-1"),
                Some(AzureSettings {
                    api_style: AzureApiStyle::Deployments {
                        api_version: "2024-10-21".into(),
                    },
                    auth: AzureAuth::ApiKey,
                }),
            ),
        );
        assert_eq!(
            sent(&azure, Operation::Embeddings, false),
            (
                "https://x.openai.azure.com/openai/deployments/dep-1/embeddings?api-version=2024-10-21".into(),
                headers(Some(("api-key", "az-1")), "application/json")
            )
        );
        let azure_v1 = provider(
            Flavor::azure,
            endpoint(
                "https://x.openai.azure.com",
                Some("entra-1"),
                Some(AzureSettings {
                    api_style: AzureApiStyle::V1,
                    auth: AzureAuth::Bearer,
                }),
            ),
        );
        assert_eq!(
            sent(&azure_v1, Operation::Chat, false),
            (
                "https://x.openai.azure.com/openai/v1/chat/completions".into(),
                headers(
                    Some(("authorization", "Bearer entra-1")),
                    "application/json"
                )
            )
        );
        let keyless = provider(Flavor::compatible, endpoint("http://vllm:8000", None, None));
        assert_eq!(
            sent(&keyless, Operation::Chat, false),
            (
                "http://vllm:8000/v1/chat/completions".into(),
                headers(None, "application/json")
            )
        );
        let keyed = provider(
            Flavor::compatible,
            endpoint("http://vllm:8000", Some("t"), None),
        );
        assert_eq!(
            sent(&keyed, Operation::Embeddings, false).1,
            headers(Some(("authorization", "Bearer t")), "application/json")
        );
    }

    #[test]
    fn debug_shows_no_secrets_or_urls() {
        let p = provider(
            Flavor::openai,
            endpoint("https://internal.example", Some("sk-secret"), None),
        );
        let text = format!("{p:?}");
        assert!(
            !text.contains("sk-secret") && !text.contains("internal"),
            "{text}"
        );
    }
}
