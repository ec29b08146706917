//! OpenAI chat requests as Gemini `GenerateContentRequest`s.
//!
//! System and developer messages become `systemInstruction`; the rest
//! becomes `contents` of `user`/`model` turns, consecutive same-role turns
//! merged. Assistant tool calls become `functionCall` parts; tool results
//! become `functionResponse` parts in a user turn (consecutive results, and
//! user text right after them, share that turn), named after the function
//! of the earlier call with the same id, since Gemini matches results by
//! name. A result that is a JSON object is sent as the response object;
//! any other text as `{"result": text}`.
//!
//! Gemini 3 refuses a replayed `functionCall` without the `thoughtSignature`
//! it was sent with, and OpenAI's format has nowhere to keep one, so the
//! first call of each replayed model turn carries Google's documented
//! sentinel that skips that check (older models ignore it).
//!
//! Sampling parameters go to `generationConfig` (`seed` folded into
//! Gemini's 32-bit range, `n` as `candidateCount`, JSON mode as
//! `responseMimeType`/`responseSchema`). Parameters Gemini has no
//! counterpart for (`user`, `logit_bias`, `parallel_tool_calls`, ...) are
//! dropped, as they do not change what a correct answer is; inputs it
//! cannot take (file ids, image URLs the chosen API cannot fetch) are
//! refused with a 400-class error.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use treaty_openai::{
    ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, ResponseFormat, ToolChoice,
    ToolChoiceMode,
};

use super::{Door, schema, untranslatable};
use crate::UpstreamError;

/// Google's documented value for a `thoughtSignature` Treaty does not have.
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// The `GenerateContentRequest` body for `req` on `door`.
pub(crate) fn translate(req: &ChatCompletionRequest, door: Door) -> Result<Value, UpstreamError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns = Turns::default();
    // Function names by call id, from the assistant turns seen so far.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for message in &req.messages {
        match message {
            ChatMessage::System { content, .. } | ChatMessage::Developer { content, .. } => {
                let text = content.text();
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
            }
            ChatMessage::User { content, .. } => turns.push("user", parts(content, door)?),
            ChatMessage::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut out = match content {
                    Some(content) => parts(content, door)?,
                    None => Vec::new(),
                };
                for (i, call) in tool_calls.iter().flatten().enumerate() {
                    names.insert(&call.id, &call.function.name);
                    let mut part = json!({"functionCall": {
                        "name": call.function.name,
                        "args": parse_arguments(&call.function.arguments)?,
                    }});
                    if i == 0
                        && let Some(map) = part.as_object_mut()
                    {
                        map.insert("thoughtSignature".into(), SKIP_SIGNATURE.into());
                    }
                    out.push(part);
                }
                turns.push("model", out);
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                let name = names.get(tool_call_id.as_str()).ok_or_else(|| {
                    untranslatable(format!(
                        "A tool message answers tool_call_id {tool_call_id:?}, which no earlier \
                         assistant message called; this host (Gemini) needs the function's name."
                    ))
                })?;
                let text = content.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "result": text }),
                };
                turns.push(
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
        }
    }
    if turns.0.is_empty() {
        return Err(untranslatable(
            "This host (Gemini) needs at least one non-empty user or assistant message.",
        ));
    }

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(turns.0));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let tools = req.tools.as_deref().unwrap_or_default();
    if !tools.is_empty() {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), t.function.name.as_str().into());
                if let Some(d) = &t.function.description {
                    f.insert("description".into(), d.as_str().into());
                }
                // Gemini refuses an object schema without properties: a
                // function without parameters simply has none.
                if let Some(parameters) = &t.function.parameters {
                    let parameters = schema::adapt(parameters);
                    if !schema::is_empty_object(&parameters) {
                        f.insert("parameters".into(), parameters);
                    }
                }
                Value::Object(f)
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = tool_config(req.tool_choice.as_ref()) {
            body.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(req);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// `toolConfig.functionCallingConfig`; only sent with tools.
fn tool_config(choice: Option<&ToolChoice>) -> Option<Value> {
    let config = match choice? {
        ToolChoice::Mode(ToolChoiceMode::None) => json!({"mode": "NONE"}),
        ToolChoice::Mode(ToolChoiceMode::Auto) => json!({"mode": "AUTO"}),
        ToolChoice::Mode(ToolChoiceMode::Required) => json!({"mode": "ANY"}),
        ToolChoice::Named(named) => {
            json!({"mode": "ANY", "allowedFunctionNames": [named.function.name]})
        }
    };
    Some(json!({ "functionCallingConfig": config }))
}

fn generation_config(req: &ChatCompletionRequest) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(k) = req.extra.get("top_k").and_then(Value::as_u64) {
        config.insert("topK".into(), k.into());
    }
    if let Some(max) = req.max_output_tokens() {
        config.insert("maxOutputTokens".into(), max.into());
    }
    if let Some(stop) = &req.stop {
        let stops: Vec<&String> = stop.as_slice().iter().filter(|s| !s.is_empty()).collect();
        if !stops.is_empty() {
            config.insert("stopSequences".into(), json!(stops));
        }
    }
    if let Some(n) = req.n.filter(|n| *n > 1) {
        config.insert("candidateCount".into(), n.into());
    }
    if let Some(seed) = req.seed {
        // Gemini's seed is an int32; folding keeps "same seed, same answer".
        let seed = i32::try_from(seed).unwrap_or_else(|_| (seed.rem_euclid(1 << 31)) as i32);
        config.insert("seed".into(), seed.into());
    }
    if let Some(p) = req.presence_penalty {
        config.insert("presencePenalty".into(), json!(p));
    }
    if let Some(p) = req.frequency_penalty {
        config.insert("frequencyPenalty".into(), json!(p));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(s) = json_schema.get("schema") {
                let s = schema::adapt(s);
                if !schema::is_empty_object(&s) {
                    config.insert("responseSchema".into(), s);
                }
            }
        }
        Some(ResponseFormat::Text) | None => {}
    }
    config
}

/// Turns being built, merging a turn into the previous one when the roles
/// match.
#[derive(Default)]
struct Turns(Vec<Value>);

impl Turns {
    fn push(&mut self, role: &str, parts: Vec<Value>) {
        // Gemini refuses a turn without parts; an empty message says
        // nothing, so dropping it keeps the rest valid.
        if parts.is_empty() {
            return;
        }
        if let Some(last) = self.0.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(existing)) = last.get_mut("parts")
        {
            existing.extend(parts);
            return;
        }
        self.0.push(json!({"role": role, "parts": parts}));
    }
}

/// Parts for OpenAI message content. Empty text is dropped: Gemini refuses
/// empty text parts.
fn parts(content: &MessageContent, door: Door) -> Result<Vec<Value>, UpstreamError> {
    match content {
        MessageContent::Text(text) if text.is_empty() => Ok(Vec::new()),
        MessageContent::Text(text) => Ok(vec![json!({ "text": text })]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match part {
                    ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                        if !text.is_empty() {
                            out.push(json!({ "text": text }));
                        }
                    }
                    ContentPart::ImageUrl { image_url } => out.push(image(&image_url.url, door)?),
                    ContentPart::InputAudio { input_audio } => out.push(audio(input_audio)?),
                    ContentPart::File { file } => out.push(file_part(file)?),
                }
            }
            Ok(out)
        }
    }
}

/// An image part: `data:` URLs go inline; Vertex fetches `https:` and
/// `gs:` URLs itself, the Gemini API only its own Files API URIs.
fn image(url: &str, door: Door) -> Result<Value, UpstreamError> {
    if url.starts_with("data:") {
        return inline(url, "image");
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let fetchable = lower.starts_with("https://") || lower.starts_with("http://");
    let gcs = lower.starts_with("gs://");
    match door {
        Door::GeminiApi if is_files_api(url) => {
            let mut data = json!({ "fileUri": url });
            if let (Some(map), Some(mime)) = (data.as_object_mut(), image_mime(url)) {
                map.insert("mimeType".into(), mime.into());
            }
            Ok(json!({ "fileData": data }))
        }
        Door::GeminiApi if fetchable || gcs => Err(untranslatable(
            "This host (Gemini API) cannot fetch image URLs; send the image as a base64 \
             data: URL (data:image/png;base64,...).",
        )),
        Door::Vertex if fetchable || gcs => {
            let mime = image_mime(url).ok_or_else(|| {
                untranslatable(
                    "This host (Vertex AI) needs an image URL ending in .png, .jpg, .jpeg, .webp, \
                     .gif, .heic or .heif to tell its type; otherwise send a base64 data: URL.",
                )
            })?;
            Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
        }
        _ => Err(untranslatable(
            "Image URLs must be http(s), gs:// or base64 data URLs.",
        )),
    }
}

/// `https://generativelanguage.googleapis.com/.../files/...`
fn is_files_api(url: &str) -> bool {
    url.strip_prefix("https://generativelanguage.googleapis.com/")
        .is_some_and(|rest| rest.contains("files/"))
}

fn image_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

/// An `inlineData` part from a base64 `data:` URL.
fn inline(url: &str, what: &str) -> Result<Value, UpstreamError> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let (meta, data) = rest.split_once(',').ok_or_else(|| {
        untranslatable(format!("The {what} data URL has no ',' before its data."))
    })?;
    let mime = meta.strip_suffix(";base64").ok_or_else(|| {
        untranslatable(format!(
            "The {what} data URL must be base64 (data:<type>;base64,<data>)."
        ))
    })?;
    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
}

/// `input_audio` (`{data, format}`) as an `inlineData` part.
fn audio(input: &Value) -> Result<Value, UpstreamError> {
    let data = input.get("data").and_then(Value::as_str);
    let format = input.get("format").and_then(Value::as_str);
    match (data, format) {
        (Some(data), Some(format)) if !format.is_empty() => Ok(json!({"inlineData": {
            "mimeType": format!("audio/{format}"),
            "data": data,
        }})),
        _ => Err(untranslatable(
            "An input_audio part needs base64 'data' and a 'format'.",
        )),
    }
}

/// A `file` part: inline `file_data` (a data URL) is sent as `inlineData`;
/// uploaded file ids mean nothing to Google.
fn file_part(file: &Value) -> Result<Value, UpstreamError> {
    match file.get("file_data").and_then(Value::as_str) {
        Some(data) if data.starts_with("data:") => inline(data, "file"),
        _ => Err(untranslatable(
            "This host (Gemini) takes files only as base64 'file_data' data URLs, not file ids.",
        )),
    }
}

/// A tool call's arguments as the `args` object Gemini wants.
fn parse_arguments(arguments: &str) -> Result<Value, UpstreamError> {
    // Some clients send "" for a call without arguments.
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(untranslatable(
            "An assistant tool call's 'arguments' is not a JSON object; this host (Gemini) needs one.",
        )),
    }
}
