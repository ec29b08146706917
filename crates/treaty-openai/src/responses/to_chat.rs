//! Translation of a Responses request plus its history into the one Chat
//! Completions request that runs the model step.
//!
//! Only what Chat Completions hosts understand is forwarded. Responses-only
//! fields (`store`, `include`, `truncation`, `reasoning`, …) are kept by
//! Treaty or echoed, never sent upstream, so that every OpenAI-compatible
//! host accepts the request.

use serde_json::Value;

use super::items::{ContentPart, FunctionCallItem, Item, MessageItem, Role};
use super::request::CreateResponseRequest;
use crate::{
    ChatCompletionRequest, ChatMessage, ContentPart as ChatPart, FunctionCall, FunctionDefinition,
    ImageUrl, MessageContent, NamedFunction, NamedToolChoice, ResponseFormat, StreamOptions, Tool,
    ToolCall, ToolChoice, ToolChoiceMode, ToolKind,
};

type Invalid = (String, String);

/// Builds the Chat Completions request for one model step.
///
/// `history` is every item the model must see, in order: earlier turns'
/// input and output items, then this turn's input items. The caller
/// assembles it (from the store and [`super::input_items`]). Errors are
/// (message, param) for a 400.
pub fn to_chat_request(
    req: &CreateResponseRequest,
    history: &[Item],
    stream: bool,
) -> Result<ChatCompletionRequest, Invalid> {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if let Some(instructions) = req.instructions.as_deref().filter(|s| !s.is_empty()) {
        messages.push(ChatMessage::System {
            content: MessageContent::Text(instructions.to_owned()),
            name: None,
        });
    }
    for item in history {
        match item {
            Item::Message(m) => messages.push(message(m)?),
            Item::FunctionCall(c) => push_tool_call(&mut messages, c),
            Item::FunctionCallOutput(o) => messages.push(ChatMessage::Tool {
                content: MessageContent::Text(o.output.clone()),
                tool_call_id: o.call_id.clone(),
            }),
            // The runtime replaces references with the items they name.
            Item::ItemReference(r) => {
                return Err((
                    format!("Item with id '{}' not found.", r.id),
                    "input".into(),
                ));
            }
        }
    }
    if messages.is_empty() {
        return Err((
            "The request has no input for the model: send 'input' or 'instructions'.".into(),
            "input".into(),
        ));
    }

    let tools = tools(req)?;
    let has_tools = tools.is_some();
    let mut chat = ChatCompletionRequest {
        model: req.model.clone(),
        messages,
        stream: None,
        stream_options: None,
        tools,
        // Chat Completions refuses these two without tools.
        tool_choice: match &req.tool_choice {
            Some(choice) if has_tools => Some(tool_choice(choice)?),
            _ => None,
        },
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| has_tools),
        response_format: response_format(req.text.as_ref())?,
        n: None,
        stop: None,
        seed: None,
        user: req.user.clone(),
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: None,
        max_completion_tokens: req.max_output_tokens,
        presence_penalty: None,
        frequency_penalty: None,
        extra: serde_json::Map::new(),
    };
    if stream {
        chat.stream = Some(true);
        chat.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: serde_json::Map::new(),
        });
    }
    Ok(chat)
}

/// One message item as a chat message. `developer` becomes `system`
/// because not every host knows the developer role.
fn message(m: &MessageItem) -> Result<ChatMessage, Invalid> {
    Ok(match m.role {
        Role::System | Role::Developer => ChatMessage::System {
            content: MessageContent::Text(joined_text(&m.content)),
            name: None,
        },
        Role::Assistant => ChatMessage::Assistant {
            content: Some(MessageContent::Text(joined_text(&m.content))),
            name: None,
            tool_calls: None,
            refusal: None,
        },
        Role::User => ChatMessage::User {
            content: user_content(&m.content)?,
            name: None,
        },
    })
}

/// All text of a message, whatever the part type (input, output, refusal).
fn joined_text(parts: &[ContentPart]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => {
                out.push_str(text)
            }
            ContentPart::Refusal { refusal } => out.push_str(refusal),
            ContentPart::InputImage { .. } | ContentPart::InputFile { .. } => {}
        }
    }
    out
}

/// A user message's parts; one text part is sent as a plain string, which
/// every host accepts.
fn user_content(parts: &[ContentPart]) -> Result<MessageContent, Invalid> {
    if let [ContentPart::InputText { text }] = parts {
        return Ok(MessageContent::Text(text.clone()));
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(match part {
            ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => {
                ChatPart::Text { text: text.clone() }
            }
            ContentPart::Refusal { refusal } => ChatPart::Text {
                text: refusal.clone(),
            },
            ContentPart::InputImage {
                image_url, detail, ..
            } => match image_url {
                Some(url) => ChatPart::ImageUrl {
                    image_url: ImageUrl {
                        url: url.clone(),
                        detail: Some(detail.clone()),
                    },
                },
                None => {
                    return Err((
                        "Images given by 'file_id' are not supported; send 'image_url' \
                         (an https: or data: URL) instead."
                            .into(),
                        "input".into(),
                    ));
                }
            },
            ContentPart::InputFile {
                file_id,
                file_data,
                filename,
                file_url,
            } => {
                if file_url.is_some() {
                    return Err((
                        "Files given by 'file_url' are not supported; send 'file_data' \
                         or 'file_id' instead."
                            .into(),
                        "input".into(),
                    ));
                }
                let mut file = serde_json::Map::new();
                for (key, value) in [
                    ("file_id", file_id),
                    ("file_data", file_data),
                    ("filename", filename),
                ] {
                    if let Some(v) = value {
                        file.insert(key.into(), Value::String(v.clone()));
                    }
                }
                ChatPart::File {
                    file: Value::Object(file),
                }
            }
        });
    }
    Ok(MessageContent::Parts(out))
}

/// Appends a function call to the assistant message just before it, so that
/// a turn's text and parallel calls become one assistant message, as Chat
/// Completions expects; otherwise starts a new assistant message.
fn push_tool_call(messages: &mut Vec<ChatMessage>, c: &FunctionCallItem) {
    let call = ToolCall {
        id: c.call_id.clone(),
        kind: ToolKind::Function,
        function: FunctionCall {
            name: c.name.clone(),
            arguments: c.arguments.clone(),
        },
    };
    if let Some(ChatMessage::Assistant { tool_calls, .. }) = messages.last_mut() {
        tool_calls.get_or_insert_with(Vec::new).push(call);
        return;
    }
    messages.push(ChatMessage::Assistant {
        content: None,
        name: None,
        tool_calls: Some(vec![call]),
        refusal: None,
    });
}

fn tools(req: &CreateResponseRequest) -> Result<Option<Vec<Tool>>, Invalid> {
    if req.tools.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(req.tools.len());
    for (i, tool) in req.tools.iter().enumerate() {
        // `validate()` refuses these too; checked again so this function is
        // safe on its own.
        if tool.kind != "function" {
            return Err((
                format!(
                    "Tools of type '{}' are not supported: only function tools are served.",
                    tool.kind
                ),
                format!("tools[{i}].type"),
            ));
        }
        out.push(Tool {
            kind: ToolKind::Function,
            function: FunctionDefinition {
                name: tool.name.clone().unwrap_or_default(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
                strict: tool.strict,
            },
        });
    }
    Ok(Some(out))
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, Invalid> {
    let mode = |m| Ok(ToolChoice::Mode(m));
    match choice {
        Value::String(s) if s == "auto" => mode(ToolChoiceMode::Auto),
        Value::String(s) if s == "none" => mode(ToolChoiceMode::None),
        Value::String(s) if s == "required" => mode(ToolChoiceMode::Required),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok(ToolChoice::Named(NamedToolChoice {
                    kind: ToolKind::Function,
                    function: NamedFunction {
                        name: name.to_owned(),
                    },
                })),
                None => Err(bad_tool_choice()),
            }
        }
        _ => Err(bad_tool_choice()),
    }
}

fn bad_tool_choice() -> Invalid {
    (
        "'tool_choice' must be \"auto\", \"none\", \"required\" or \
         {\"type\": \"function\", \"name\": \"…\"}."
            .into(),
        "tool_choice".into(),
    )
}

/// `text.format` as a Chat `response_format`; plain text needs none.
fn response_format(text: Option<&Value>) -> Result<Option<ResponseFormat>, Invalid> {
    let Some(format) = text.and_then(|t| t.get("format")) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            // Responses flattens what Chat nests under `json_schema`.
            let mut schema = serde_json::Map::new();
            for key in ["name", "description", "schema", "strict"] {
                if let Some(v) = format.get(key) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(ResponseFormat::JsonSchema {
                json_schema: Value::Object(schema),
            }))
        }
        Some(other) => Err((
            format!("Text format '{other}' is not supported."),
            "text.format.type".into(),
        )),
    }
}
