//! The emulated Google Gemini APIs, through both doors Google offers:
//!
//! - the Gemini API: `GET /v1beta/models` and
//!   `POST /v1beta/models/{model}:{method}` with `x-goog-api-key` (or
//!   `?key=`), methods `generateContent`, `streamGenerateContent?alt=sse`,
//!   `countTokens`, `embedContent` and `batchEmbedContents`;
//! - Vertex AI: `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`
//!   with `Authorization: Bearer`, methods `generateContent`,
//!   `streamGenerateContent?alt=sse`, `countTokens` and `predict`
//!   (text embeddings).
//!
//! It checks credentials the way Google does (the Gemini API answers a
//! wrong key with 400 `API_KEY_INVALID`, a missing one with 403; Vertex
//! answers 401 `UNAUTHENTICATED`), reads the body loosely as
//! `serde_json::Value`, refuses what Gemini refuses (empty text parts, turns
//! without parts, function schemas with keywords outside Gemini's OpenAPI
//! subset), restates the request in the Chat Completions shape and asks
//! [`ChatView::reply`] for the answer, so every emulated provider says the
//! same deterministic thing, tool calls (`[[tools:all]]` included) and tool
//! results echoed. Streams send one `GenerateContentResponse` per word or
//! per function call, `\r\n`-framed like Google's, with the finish reason
//! and full usage on the last; faults come from the `x-emulator-fault`
//! header, a `[[fault:..]]` directive or the host's queue, as on the other
//! routes, and errors use Google's `{"error":{code,message,status}}` shape
//! (429 `RESOURCE_EXHAUSTED` with a `RetryInfo`, 503 `UNAVAILABLE`, ...).
//! It never echoes the presented credential.

use crate::app::{ApiRequest, Shared};
use crate::embeddings::EmbeddingView;
use crate::faults::Fault;
use crate::reply::{ChatView, Content, Reply, completion_id};
use crate::stream::Truncated;
use axum::body::Body;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

static HOST_HEADER: HeaderName = HeaderName::from_static("x-emulator-host");
const FAULT_HEADER: &str = "x-emulator-fault";
const API_KEY: &str = "x-goog-api-key";
/// Output width when `outputDimensionality` is absent (text-embedding-005's).
const DEFAULT_DIMENSIONS: u64 = 768;

static MODELS: &[u8] = br#"{"models":[{"name":"models/emulated-model","version":"001","displayName":"Emulated model","inputTokenLimit":1048576,"outputTokenLimit":8192,"supportedGenerationMethods":["generateContent","countTokens","embedContent","batchEmbedContents"]}]}"#;

/// The schema keywords Gemini's function declarations accept (its OpenAPI
/// subset); anything else makes the real API refuse the request.
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Which of Google's two APIs a route is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    GeminiApi,
    Vertex,
}

/// A Google-shaped error response.
#[derive(Debug)]
pub(crate) struct GeminiError {
    status: StatusCode,
    message: String,
    details: Vec<Value>,
    retry_after: Option<u32>,
}

impl GeminiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Google's canonical status name for an HTTP status.
    fn status_name(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            499 => "CANCELLED",
            500 => "INTERNAL",
            501 => "NOT_IMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "UNKNOWN",
        }
    }

    /// An injected fault, with a `RetryInfo` when a wait was asked for.
    fn injected(status: StatusCode, retry_after: Option<u32>, host: &str) -> Self {
        let mut error = Self::new(
            status,
            format!(
                "Emulated fault: host {host} answered {} as requested by the fault spec.",
                status.as_u16()
            ),
        );
        if let Some(seconds) = retry_after {
            error.retry_after = Some(seconds);
            error.details.push(json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{seconds}s"),
            }));
        }
        error
    }

    fn body(&self) -> Value {
        let mut error = json!({
            "code": self.status.as_u16(),
            "message": self.message,
            "status": Self::status_name(self.status),
        });
        if !self.details.is_empty()
            && let Some(map) = error.as_object_mut()
        {
            map.insert("details".into(), Value::Array(self.details.clone()));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for GeminiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            )],
            self.body().to_string(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `GET /v1beta/models`: the Gemini API's model list.
pub(crate) async fn models(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    request: ApiRequest,
) -> Response {
    finish(&request, async {
        shared.stats.hit(&request.host);
        check_credential(&shared, Door::GeminiApi, &request.headers, query.as_deref())?;
        let fault = pick_fault(&shared, &request, None)?;
        before_answer(&fault, &request, false).await?;
        Ok(json_response(Bytes::from_static(MODELS), &fault))
    })
    .await
}

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn gemini_api(
    State(shared): State<Arc<Shared>>,
    params: RawPathParams,
    RawQuery(query): RawQuery,
    request: ApiRequest,
) -> Response {
    let target = model_param(&params);
    finish(&request, async {
        shared.stats.hit(&request.host);
        answer(
            &shared,
            Door::GeminiApi,
            &target,
            query.as_deref(),
            &request,
        )
        .await
    })
    .await
}

/// `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}`.
pub(crate) async fn vertex(
    State(shared): State<Arc<Shared>>,
    params: RawPathParams,
    RawQuery(query): RawQuery,
    request: ApiRequest,
) -> Response {
    let target = model_param(&params);
    finish(&request, async {
        shared.stats.hit(&request.host);
        answer(&shared, Door::Vertex, &target, query.as_deref(), &request).await
    })
    .await
}

fn model_param(params: &RawPathParams) -> String {
    params
        .iter()
        .find(|(key, _)| *key == "model")
        .map(|(_, value)| value.to_owned())
        .unwrap_or_default()
}

/// Runs `work`, renders its error, and names the host on the response.
async fn finish(
    request: &ApiRequest,
    work: impl Future<Output = Result<Response, GeminiError>>,
) -> Response {
    let mut response = work.await.unwrap_or_else(IntoResponse::into_response);
    if let Ok(host) = HeaderValue::from_str(&request.host) {
        response.headers_mut().insert(HOST_HEADER.clone(), host);
    }
    response
}

async fn answer(
    shared: &Shared,
    door: Door,
    target: &str,
    query: Option<&str>,
    request: &ApiRequest,
) -> Result<Response, GeminiError> {
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    check_credential(shared, door, &request.headers, query)?;
    let Some((model, method)) = target.rsplit_once(':').filter(|(m, _)| !m.is_empty()) else {
        return Err(GeminiError::new(
            StatusCode::NOT_FOUND,
            "Emulated Gemini: expected models/{model}:{method}.",
        ));
    };
    let body: Value = serde_json::from_slice(&request.body).map_err(|error| {
        GeminiError::invalid(format!(
            "Emulated Gemini: Invalid JSON payload received ({error})."
        ))
    })?;
    match (door, method) {
        (_, "generateContent") => chat(shared, request, model, &body, false).await,
        (_, "streamGenerateContent") => {
            let sse = query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
            if !sse {
                return Err(GeminiError::invalid(
                    "Emulated Gemini: streamGenerateContent is served as server-sent events only; add ?alt=sse.",
                ));
            }
            chat(shared, request, model, &body, true).await
        }
        (_, "countTokens") => {
            let inner = body.get("generateContentRequest").unwrap_or(&body);
            let chat_body = to_chat_shape(inner, model, false)?;
            let view = ChatView::parse(&chat_body, None)
                .map_err(|_| GeminiError::invalid("Emulated Gemini: contents is not specified"))?;
            let fault = pick_fault(shared, request, None)?;
            before_answer(&fault, request, false).await?;
            let tokens = view.prompt_tokens();
            let body = json!({"totalTokens": tokens, "totalBillableCharacters": tokens * 4});
            Ok(json_response(Bytes::from(body.to_string()), &fault))
        }
        (Door::GeminiApi, "embedContent" | "batchEmbedContents") | (Door::Vertex, "predict") => {
            let (texts, dimensions) = embedding_inputs(&body, method)?;
            let fault = pick_fault(shared, request, None)?;
            before_answer(&fault, request, false).await?;
            let vectors = embed(model, &texts, dimensions)?;
            let body = match method {
                "embedContent" => json!({"embedding": {"values": vectors.first()}}),
                "batchEmbedContents" => {
                    let embeddings: Vec<Value> =
                        vectors.iter().map(|v| json!({ "values": v })).collect();
                    json!({ "embeddings": embeddings })
                }
                _ => {
                    let predictions: Vec<Value> = vectors
                        .iter()
                        .zip(&texts)
                        .map(|(v, text)| {
                            json!({"embeddings": {"values": v, "statistics": {
                                "token_count": crate::reply::words(text), "truncated": false,
                            }}})
                        })
                        .collect();
                    let characters: usize = texts.iter().map(|t| t.chars().count()).sum();
                    json!({"predictions": predictions, "metadata": {"billableCharacterCount": characters}})
                }
            };
            Ok(json_response(Bytes::from(body.to_string()), &fault))
        }
        _ => Err(GeminiError::new(
            StatusCode::NOT_FOUND,
            format!("Emulated Gemini: method {method} is not served on this API."),
        )),
    }
}

/// The credential each door wants, answered as Google answers.
fn check_credential(
    shared: &Shared,
    door: Door,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), GeminiError> {
    let expected = shared.config.api_key.as_deref();
    match door {
        Door::GeminiApi => {
            let header = headers
                .get(API_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty());
            let param = query.and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("key="))
                    .filter(|k| !k.is_empty())
            });
            let Some(key) = header.or(param) else {
                return Err(GeminiError::new(
                    StatusCode::FORBIDDEN,
                    "Emulated Gemini: Method doesn't allow unregistered callers (callers without \
                     established identity). Please use API Key or other form of API consumer \
                     identity to call this API.",
                ));
            };
            if expected.is_some_and(|expected| expected != key) {
                let mut error = GeminiError::invalid(
                    "Emulated Gemini: API key not valid. Please pass a valid API key.",
                );
                error.details.push(json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }));
                return Err(error);
            }
        }
        Door::Vertex => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty());
            let valid = token.is_some_and(|t| expected.is_none_or(|expected| expected == t));
            if !valid {
                return Err(GeminiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Emulated Vertex AI: Request had invalid authentication credentials. Expected \
                     OAuth 2 access token, login cookie or other valid authentication credential.",
                ));
            }
        }
    }
    Ok(())
}

async fn chat(
    shared: &Shared,
    request: &ApiRequest,
    model: &str,
    body: &Value,
    stream: bool,
) -> Result<Response, GeminiError> {
    let chat_body = to_chat_shape(body, model, stream)?;
    let view = ChatView::parse(&chat_body, None)
        .map_err(|_| GeminiError::invalid("Emulated Gemini: contents is not specified"))?;
    let directive = Fault::from_directive(&view.last_user_text);
    let fault = pick_fault(shared, request, directive)?;
    before_answer(&fault, request, stream).await?;
    let answer = Answer::new(model, view.reply(&request.host), view.n);
    if stream {
        return Ok(stream_response(shared, &answer, &fault));
    }
    Ok(json_response(
        Bytes::from(answer.body().to_string()),
        &fault,
    ))
}

/// The request restated as a Chat Completions body for [`ChatView`].
fn to_chat_shape(body: &Value, model: &str, stream: bool) -> Result<Value, GeminiError> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| GeminiError::invalid("Emulated Gemini: contents is not specified"))?;
    let mut messages = Vec::with_capacity(contents.len() + 1);
    if let Some(parts) = body
        .get("systemInstruction")
        .and_then(|s| s.get("parts"))
        .and_then(Value::as_array)
    {
        let system = texts(parts, "systemInstruction")?.join(" ");
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
    }
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                GeminiError::invalid(format!("Emulated Gemini: {at}.parts must not be empty."))
            })?;
        let text = texts(parts, &at)?;
        match content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
        {
            "user" | "function" => {
                for part in parts {
                    let Some(response) = part.get("functionResponse") else {
                        continue;
                    };
                    let name = response.get("name").and_then(Value::as_str).unwrap_or("");
                    let result = match response.get("response") {
                        Some(Value::Object(r)) if r.len() == 1 && r.contains_key("result") => {
                            match &r["result"] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            }
                        }
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": format!("call_{name}"),
                        "content": result,
                    }));
                }
                if !text.is_empty() {
                    let parts: Vec<Value> = text
                        .iter()
                        .map(|t| json!({"type": "text", "text": t}))
                        .collect();
                    messages.push(json!({"role": "user", "content": parts}));
                }
            }
            "model" => {
                let calls: Vec<Value> = parts
                    .iter()
                    .filter_map(|p| p.get("functionCall"))
                    .map(|call| {
                        let name = call.get("name").and_then(Value::as_str).unwrap_or("");
                        json!({"id": format!("call_{name}"), "type": "function", "function": {
                            "name": name,
                            "arguments": call.get("args").map(Value::to_string).unwrap_or_default(),
                        }})
                    })
                    .collect();
                let mut message = json!({"role": "assistant", "content": text.join("")});
                if !calls.is_empty()
                    && let Some(map) = message.as_object_mut()
                {
                    map.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(message);
            }
            other => {
                return Err(GeminiError::invalid(format!(
                    "Emulated Gemini: Please use a valid role: user, model (got {other:?} at {at})."
                )));
            }
        }
    }

    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), Value::Array(messages));
    if stream {
        chat.insert("stream".into(), true.into());
    }
    let mut tools = Vec::new();
    for (i, tool) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, declaration) in tool
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = declaration
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                return Err(GeminiError::invalid(format!(
                    "Emulated Gemini: tools[{i}].function_declarations[{j}].name: Name cannot be empty."
                )));
            }
            let parameters = declaration.get("parameters");
            if let Some(schema) = parameters {
                check_schema(
                    schema,
                    &format!("tools[{i}].function_declarations[{j}].parameters"),
                )?;
            }
            let parameters = parameters.or_else(|| declaration.get("parametersJsonSchema"));
            tools.push(json!({"name": name, "parameters": parameters}));
        }
    }
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
    }
    let calling = body
        .get("toolConfig")
        .and_then(|c| c.get("functionCallingConfig"));
    match calling.and_then(|c| c.get("mode")).and_then(Value::as_str) {
        Some("NONE") => {
            chat.insert("tool_choice".into(), "none".into());
        }
        Some("ANY") => {
            let allowed = calling
                .and_then(|c| c.get("allowedFunctionNames"))
                .and_then(Value::as_array);
            if let Some([only]) = allowed.map(Vec::as_slice) {
                chat.insert("tool_choice".into(), json!({ "name": only }));
            }
        }
        _ => {}
    }
    if let Some(config) = body.get("generationConfig") {
        if let Some(schema) = config.get("responseSchema") {
            check_schema(schema, "generation_config.response_schema")?;
        }
        if let Some(max) = config.get("maxOutputTokens").and_then(Value::as_u64) {
            chat.insert("max_tokens".into(), max.into());
        }
        if let Some(stops) = config.get("stopSequences").filter(|s| s.is_array()) {
            chat.insert("stop".into(), stops.clone());
        }
        if let Some(n) = config.get("candidateCount").and_then(Value::as_u64) {
            chat.insert("n".into(), n.into());
        }
        if config.get("responseMimeType").and_then(Value::as_str) == Some("application/json") {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
    }
    Ok(Value::Object(chat))
}

/// The text of `text` parts; Gemini refuses an empty one.
fn texts<'a>(parts: &'a [Value], at: &str) -> Result<Vec<&'a str>, GeminiError> {
    let mut out = Vec::new();
    for part in parts {
        if let Some(text) = part.get("text") {
            match text.as_str() {
                Some(t) if !t.is_empty() => out.push(t),
                _ => {
                    return Err(GeminiError::invalid(format!(
                        "Emulated Gemini: Unable to submit request because it has an empty text \
                         parameter ({at})."
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Refuses schema keywords outside Gemini's OpenAPI subset, as the real
/// API does ("Unknown name ... Cannot find field").
fn check_schema(schema: &Value, at: &str) -> Result<(), GeminiError> {
    let Some(object) = schema.as_object() else {
        return Ok(());
    };
    for (key, value) in object {
        if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
            return Err(GeminiError::invalid(format!(
                "Emulated Gemini: Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
            )));
        }
        match key.as_str() {
            "properties" => {
                let properties = value.as_object().filter(|p| !p.is_empty()).ok_or_else(|| {
                    GeminiError::invalid(format!(
                        "Emulated Gemini: {at}.properties: should be non-empty for OBJECT type"
                    ))
                })?;
                for (name, property) in properties {
                    check_schema(property, &format!("{at}.properties[{name}].value"))?;
                }
            }
            "items" => check_schema(value, &format!("{at}.items"))?,
            "anyOf" => {
                for (i, member) in value.as_array().into_iter().flatten().enumerate() {
                    check_schema(member, &format!("{at}.any_of[{i}]"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The texts to embed and the output width asked for.
fn embedding_inputs(body: &Value, method: &str) -> Result<(Vec<String>, u64), GeminiError> {
    let text_of = |content: Option<&Value>| -> Result<String, GeminiError> {
        let parts = content
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| GeminiError::invalid("Emulated Gemini: content.parts is required."))?;
        Ok(texts(parts, "content")?.join(" "))
    };
    let dimensions = |value: Option<&Value>| value.and_then(Value::as_u64);
    let (texts, dims) = match method {
        "embedContent" => (
            vec![text_of(body.get("content"))?],
            dimensions(body.get("outputDimensionality")),
        ),
        "batchEmbedContents" => {
            let requests = body
                .get("requests")
                .and_then(Value::as_array)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| GeminiError::invalid("Emulated Gemini: requests is required."))?;
            let texts = requests
                .iter()
                .map(|r| text_of(r.get("content")))
                .collect::<Result<Vec<_>, _>>()?;
            let dims = requests
                .first()
                .and_then(|r| dimensions(r.get("outputDimensionality")));
            (texts, dims)
        }
        _ => {
            let instances = body
                .get("instances")
                .and_then(Value::as_array)
                .filter(|i| !i.is_empty())
                .ok_or_else(|| {
                    GeminiError::invalid("Emulated Vertex AI: instances is required.")
                })?;
            let texts = instances
                .iter()
                .map(|i| {
                    i.get("content")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            GeminiError::invalid(
                                "Emulated Vertex AI: instances[].content is required.",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let dims = dimensions(
                body.get("parameters")
                    .and_then(|p| p.get("outputDimensionality")),
            );
            (texts, dims)
        }
    };
    if texts.iter().any(String::is_empty) {
        return Err(GeminiError::invalid(
            "Emulated Gemini: every content needs some text.",
        ));
    }
    Ok((texts, dims.unwrap_or(DEFAULT_DIMENSIONS)))
}

/// Deterministic vectors, the same the OpenAI routes give for the texts.
fn embed(model: &str, texts: &[String], dimensions: u64) -> Result<Vec<Value>, GeminiError> {
    let body = json!({"model": model, "input": texts, "dimensions": dimensions});
    let rendered = EmbeddingView::parse(&body, None)
        .and_then(|view| {
            view.render()
                .map_err(|e| crate::error::ApiError::internal(e.to_string()))
        })
        .map_err(|_| {
            GeminiError::invalid(
                "Emulated Gemini: outputDimensionality must be between 1 and 65536.",
            )
        })?;
    let list: Value = serde_json::from_slice(&rendered)
        .map_err(|e| GeminiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(list
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("embedding").cloned())
        .collect())
}

fn pick_fault(
    shared: &Shared,
    request: &ApiRequest,
    directive: Option<Result<Fault, crate::FaultParseError>>,
) -> Result<Fault, GeminiError> {
    if let Some(value) = request.headers.get(FAULT_HEADER) {
        let spec = value
            .to_str()
            .map_err(|_| GeminiError::invalid("The x-emulator-fault header must be ASCII."))?;
        return Fault::parse(spec).map_err(|e| GeminiError::invalid(e.to_string()));
    }
    if let Some(directive) = directive {
        return directive.map_err(|e| GeminiError::invalid(e.to_string()));
    }
    Ok(shared.faults.take(&request.host).unwrap_or_default())
}

/// Faults that act before any response bytes, as on the other routes.
async fn before_answer(
    fault: &Fault,
    request: &ApiRequest,
    stream: bool,
) -> Result<(), GeminiError> {
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.reset {
        let Some(kill) = &request.kill else {
            return Err(GeminiError::invalid(
                "Emulated fault: reset needs the emulator's own server (Emulator::start or serve).",
            ));
        };
        kill.trigger();
        return std::future::pending().await;
    }
    if let Some(status) = fault.status {
        return Err(GeminiError::injected(
            status,
            fault.retry_after,
            &request.host,
        ));
    }
    if let Some(stall) = fault.stall
        && !(stream && fault.stall_after.is_some())
    {
        tokio::time::sleep(stall).await;
    }
    Ok(())
}

/// The emulated answer in Gemini's terms.
struct Answer {
    id: String,
    model: String,
    candidates: u32,
    parts: Vec<Value>,
    /// `true`: one part per stream event (function calls); `false`: the one
    /// text part is streamed word by word.
    calls: bool,
    finish_reason: &'static str,
    prompt_tokens: u64,
    output_tokens: u64,
}

impl Answer {
    fn new(model: &str, reply: Reply, candidates: u32) -> Self {
        let (parts, calls) = match reply.content {
            Content::Text(text) => (vec![json!({ "text": text })], false),
            Content::ToolCalls(calls) => (
                calls
                    .into_iter()
                    .map(|c| {
                        let args: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        json!({"functionCall": {"name": c.name, "args": args}})
                    })
                    .collect(),
                true,
            ),
        };
        // Function calls end with STOP on Gemini: the caller sees the parts.
        let finish_reason = match reply.finish_reason {
            "length" => "MAX_TOKENS",
            _ => "STOP",
        };
        Self {
            id: completion_id().replace("chatcmpl-emu-", "emu"),
            model: model.to_owned(),
            candidates: candidates.max(1),
            parts,
            calls,
            finish_reason,
            prompt_tokens: reply.usage.prompt_tokens,
            output_tokens: reply.usage.completion_tokens,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.output_tokens,
            "totalTokenCount": self.prompt_tokens + self.output_tokens,
        })
    }

    /// One response; `finish` adds the finish reason and full usage.
    /// Candidate 0 omits its `index` in streams, as protobuf JSON does.
    fn response(&self, parts: &[Value], finish: bool, stream: bool) -> Value {
        let candidates: Vec<Value> = (0..self.candidates)
            .map(|index| {
                let mut candidate = json!({"content": {"role": "model", "parts": parts}});
                if let Some(map) = candidate.as_object_mut() {
                    if finish {
                        map.insert("finishReason".into(), self.finish_reason.into());
                    }
                    if index > 0 || !stream {
                        map.insert("index".into(), index.into());
                    }
                }
                candidate
            })
            .collect();
        let usage = if finish {
            self.usage()
        } else {
            json!({ "promptTokenCount": self.prompt_tokens })
        };
        json!({
            "candidates": candidates,
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }

    fn body(&self) -> Value {
        self.response(&self.parts, true, false)
    }

    /// The SSE events, in order, each flagged when it carries content
    /// (what `truncate=N` counts); the last one finishes.
    fn events(&self) -> Vec<Bytes> {
        let frame = |value: Value| Bytes::from(format!("data: {value}\r\n\r\n"));
        let pieces: Vec<Value> = if self.calls {
            self.parts.clone()
        } else {
            let text = self
                .parts
                .first()
                .and_then(|p| p.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let words: Vec<Value> = text
                .split_inclusive(char::is_whitespace)
                .map(|w| json!({ "text": w }))
                .collect();
            if words.is_empty() {
                vec![json!({ "text": "" })]
            } else {
                words
            }
        };
        let last = pieces.len().saturating_sub(1);
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, part)| frame(self.response(&[part], i == last, true)))
            .collect()
    }
}

struct Paced {
    events: std::vec::IntoIter<Bytes>,
    sent: u32,
    delay: Duration,
    stall: Option<(u32, Duration)>,
    truncate: Option<u32>,
    malformed: bool,
    done: bool,
}

fn stream_response(shared: &Shared, answer: &Answer, fault: &Fault) -> Response {
    let state = Paced {
        events: answer.events().into_iter(),
        sent: 0,
        delay: fault.slow.unwrap_or(shared.config.chunk_delay),
        stall: fault.stall_after.zip(fault.stall),
        truncate: fault.truncate,
        malformed: fault.malformed,
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.stall {
            Some((after, stall)) if after == st.sent => tokio::time::sleep(stall).await,
            _ if st.sent > 0 && !st.delay.is_zero() => tokio::time::sleep(st.delay).await,
            _ => {}
        }
        // Gemini's stream has no terminator, so a cut must come before the
        // event that finishes it, however few events there are.
        let last = st.events.len() <= 1;
        if st.truncate.is_some_and(|limit| st.sent >= limit || last) {
            st.done = true;
            return Some((Truncated::after_flush::<Bytes>().await, st));
        }
        if st.malformed && st.sent == 1 {
            st.malformed = false;
            st.sent += 1;
            return Some((
                Ok(Bytes::from_static(b"data: {\"candidates\": [\r\n\r\n")),
                st,
            ));
        }
        let bytes = st.events.next()?;
        st.sent += 1;
        Some((Ok(bytes), st))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A finished JSON body, unless a fault spoils it (as on the other routes).
fn json_response(body: Bytes, fault: &Fault) -> Response {
    let json = |body: Body| {
        let mut response = Response::new(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        response
    };
    if fault.malformed {
        return json(Body::from(Bytes::from_static(b"{\"candidates\": ")));
    }
    if fault.truncate.is_some() {
        let full = body.len();
        let half = body.slice(..full / 2);
        let parts = futures_util::stream::iter([Ok(half)])
            .chain(futures_util::stream::once(Truncated::after_flush()));
        let mut response = json(Body::from_stream(parts));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
        return response;
    }
    json(Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_restate_as_chat_bodies() {
        let body = json!({
            "systemInstruction": {"parts": [{"text": "s"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"a": 1}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "w", "response": {"result": "sunny"}}},
                    {"text": "and?"}]}
            ],
            "tools": [{"functionDeclarations": [{"name": "w",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}},
            "generationConfig": {"maxOutputTokens": 5, "stopSequences": ["X"], "candidateCount": 2}
        });
        let chat = to_chat_shape(&body, "g", true).unwrap();
        assert_eq!(
            chat,
            json!({"model": "g", "stream": true, "max_tokens": 5, "stop": ["X"], "n": 2,
            "tools": [{"name": "w", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}],
            "tool_choice": {"name": "w"},
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "call_w", "type": "function",
                    "function": {"name": "w", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_w", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "and?"}]}
            ]})
        );
    }

    #[test]
    fn what_gemini_refuses_is_refused() {
        for body in [
            json!({"contents": []}),
            json!({"contents": [{"role": "user", "parts": []}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": ""}]}]}),
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [{"name": "w", "parameters":
                    {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [{"name": "w", "parameters":
                    {"type": "object", "properties": {}}}]}]}),
        ] {
            let error = to_chat_shape(&body, "g", false).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body}");
        }
    }

    #[test]
    fn streams_finish_on_the_last_event_only() {
        let view_body = json!({"model": "g", "messages": [{"role": "user", "content": "a b"}]});
        let view = ChatView::parse(&view_body, None).unwrap();
        let answer = Answer::new("g", view.reply("h"), 1);
        let events = answer.events();
        let parsed: Vec<Value> = events
            .iter()
            .map(|b| {
                let text = std::str::from_utf8(b).unwrap();
                assert!(text.starts_with("data: ") && text.ends_with("\r\n\r\n"));
                serde_json::from_str(&text[6..text.len() - 4]).unwrap()
            })
            .collect();
        let text: String = parsed
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(text, "Emulated reply from h (g): a b");
        let (last, rest) = parsed.split_last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"]["totalTokenCount"],
            answer.usage()["totalTokenCount"]
        );
        assert!(
            rest.iter()
                .all(|e| e["candidates"][0].get("finishReason").is_none())
        );
        assert!(
            rest.iter()
                .all(|e| e["candidates"][0].get("index").is_none())
        );
    }

    #[test]
    fn errors_have_googles_shape() {
        let error = GeminiError::injected(StatusCode::TOO_MANY_REQUESTS, Some(3), "h");
        let body = error.body();
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][0]["retryDelay"], "3s");
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
}
