//! Conversation items: the messages, function calls and function call
//! outputs that make up a response's input and output, a conversation's
//! history and the `input_items` listing.
//!
//! One type serves as input and output so that an item a client sends is
//! stored, listed and replayed to the model unchanged. Parsing is lenient
//! where OpenAI is (messages without `type`, `content` as a plain string,
//! ids optional) and strict about item types Treaty cannot serve, so those
//! fail with a 400 instead of being silently dropped.
//!
//! An input may also name an item stored earlier (`item_reference`, which
//! the Vercel AI SDK sends for earlier assistant turns when `store` is on).
//! Resolving it needs the store, so that is the runtime's: nothing here
//! ever reads a reference's item, and [`super::to_chat_request`] refuses
//! one left unresolved.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// One item of a response's input or output.
///
/// Deserialising accepts OpenAI's "easy" input messages
/// (`{"role":"user","content":"hi"}`): a missing `type` means `message`, and
/// string content becomes one `input_text` part (`output_text` for the
/// assistant).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// `message`: text (and images or files) from someone.
    Message(MessageItem),
    /// `function_call`: the model asks the client to run a function.
    FunctionCall(FunctionCallItem),
    /// `function_call_output`: the client's result for a call.
    FunctionCallOutput(FunctionCallOutputItem),
    /// `item_reference`: an item stored earlier, by id; input only.
    ItemReference(ItemReference),
}

/// An item stored earlier, named by its id, standing for that item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemReference {
    /// The stored item's id (`msg_…`, `fc_…`, `fco_…`).
    pub id: String,
}

/// A message from the user, the model, or the system/developer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// Empty until Treaty assigns one (ids are optional in input).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub role: Role,
    pub content: Vec<ContentPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
}

/// A function call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// `fc_…`; empty until Treaty assigns one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The id that ties the call to its output (the Chat tool call id).
    /// Defaulted so a missing one is reported by `validate()` with its
    /// index rather than as a generic parse error.
    #[serde(default)]
    pub call_id: String,
    #[serde(default)]
    pub name: String,
    /// JSON-encoded arguments, as a string.
    #[serde(default)]
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
}

/// The client's result for a function call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallOutputItem {
    /// `fco_…`; empty until Treaty assigns one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default)]
    pub call_id: String,
    /// A string, or an array of text parts joined into one string (Chat
    /// tool messages carry text only).
    #[serde(deserialize_with = "output_text")]
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// Instructions; sent upstream as a system message.
    System,
    /// Instructions; sent upstream as a system message too, since not
    /// every host knows the developer role.
    Developer,
}

/// The status every item carries once stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Still streaming.
    InProgress,
    /// Finished.
    Completed,
    /// Cut off (output token limit or content filter).
    Incomplete,
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text from the user, system or developer.
    InputText { text: String },
    /// An image by URL (`https:` or `data:`) or by uploaded `file_id`.
    InputImage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        /// `low`, `high` or `auto`; the SDKs require it on the way out.
        #[serde(default = "auto")]
        detail: String,
    },
    /// A file by id or inline base64 data (`data:` URL).
    InputFile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_url: Option<String>,
    },
    /// Model text. `logprobs` are not produced, so the field is omitted.
    OutputText {
        text: String,
        #[serde(default)]
        annotations: Vec<Value>,
    },
    /// The model declining to answer.
    Refusal { refusal: String },
}

fn auto() -> String {
    "auto".to_owned()
}

impl ContentPart {
    /// An `output_text` part with no annotations.
    pub fn output_text(text: impl Into<String>) -> Self {
        ContentPart::OutputText {
            text: text.into(),
            annotations: Vec::new(),
        }
    }
}

impl Item {
    /// The item's id (empty if none was assigned yet).
    pub fn id(&self) -> &str {
        match self {
            Item::Message(m) => &m.id,
            Item::FunctionCall(c) => &c.id,
            Item::FunctionCallOutput(o) => &o.id,
            Item::ItemReference(r) => &r.id,
        }
    }

    /// The `type` tag as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Message(_) => "message",
            Item::FunctionCall(_) => "function_call",
            Item::FunctionCallOutput(_) => "function_call_output",
            Item::ItemReference(_) => "item_reference",
        }
    }

    /// The id prefix Treaty uses for this kind of item.
    pub(crate) fn id_prefix(&self) -> &'static str {
        match self {
            Item::Message(_) => "msg",
            Item::FunctionCall(_) => "fc",
            Item::FunctionCallOutput(_) => "fco",
            // Never used: a reference always names an id.
            Item::ItemReference(_) => "item",
        }
    }

    pub(crate) fn id_mut(&mut self) -> &mut String {
        match self {
            Item::Message(m) => &mut m.id,
            Item::FunctionCall(c) => &mut c.id,
            Item::FunctionCallOutput(o) => &mut o.id,
            Item::ItemReference(r) => &mut r.id,
        }
    }

    /// Sets the item's status; a reference has none of its own.
    pub(crate) fn set_status(&mut self, status: ItemStatus) {
        let slot = match self {
            Item::Message(m) => &mut m.status,
            Item::FunctionCall(c) => &mut c.status,
            Item::FunctionCallOutput(o) => &mut o.status,
            Item::ItemReference(_) => return,
        };
        *slot = Some(status);
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(d)?;
        let Value::Object(map) = &mut value else {
            return Err(D::Error::custom("expected an input item object"));
        };
        let kind = normalise_easy_message(map).map_err(D::Error::custom)?;
        // Going through `Value` loses serde_path_to_error's outer tracking,
        // so the inner path is put into the message instead. Each variant
        // is read directly (not through a serde-tagged enum, which would
        // lose the inner path too); the `type` key is ignored there.
        let result = match kind {
            Kind::Message => serde_path_to_error::deserialize(value).map(Item::Message),
            Kind::FunctionCall => serde_path_to_error::deserialize(value).map(Item::FunctionCall),
            Kind::FunctionCallOutput => {
                serde_path_to_error::deserialize(value).map(Item::FunctionCallOutput)
            }
            Kind::ItemReference => serde_path_to_error::deserialize(value).map(Item::ItemReference),
        };
        result.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                D::Error::custom(inner)
            } else {
                D::Error::custom(format_args!("at '{path}': {inner}"))
            }
        })
    }
}

enum Kind {
    Message,
    FunctionCall,
    FunctionCallOutput,
    ItemReference,
}

/// Applies OpenAI's input shorthands in place and refuses item types Treaty
/// cannot serve with a message that says so.
fn normalise_easy_message(map: &mut Map<String, Value>) -> Result<Kind, String> {
    let kind = match map.get("type") {
        None => "message",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("an item's 'type' must be a string".into()),
    };
    match kind {
        "message" => {}
        "function_call" => return Ok(Kind::FunctionCall),
        "function_call_output" => return Ok(Kind::FunctionCallOutput),
        "item_reference" => return Ok(Kind::ItemReference),
        other => {
            return Err(format!(
                "input items of type '{other}' are not supported; Treaty serves \
                 'message', 'function_call', 'function_call_output' and 'item_reference' \
                 items"
            ));
        }
    }
    let assistant = map.get("role").and_then(Value::as_str) == Some("assistant");
    if let Some(content) = map.get_mut("content")
        && let Value::String(text) = content
    {
        let part_type = if assistant {
            "output_text"
        } else {
            "input_text"
        };
        let mut part = Map::new();
        part.insert("type".into(), Value::String(part_type.into()));
        part.insert("text".into(), Value::String(std::mem::take(text)));
        *content = Value::Array(vec![Value::Object(part)]);
    }
    Ok(Kind::Message)
}
/// `function_call_output.output`: a string, or text parts joined.
fn output_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or an array of input_text parts")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let mut out = String::new();
            while let Some(part) = seq.next_element::<ContentPart>()? {
                match part {
                    ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => {
                        out.push_str(&text)
                    }
                    _ => {
                        return Err(A::Error::custom(
                            "function call outputs may hold text parts only: \
                             Chat Completions tool messages carry text",
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}
