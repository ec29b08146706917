//! The non-streamed `chat.completion` body: the emulated [`Reply`] written
//! in OpenAI's wire shape, one identical choice per `n`.

use crate::reply::{Content, Reply, Usage};
use crate::tools::ToolCall;
use serde::Serialize;

pub(crate) fn render(
    id: &str,
    created: u64,
    model: &str,
    n: u32,
    reply: &Reply,
) -> Result<Vec<u8>, serde_json::Error> {
    let (content, tool_calls) = match &reply.content {
        Content::Text(text) => (Some(text.as_str()), None),
        Content::ToolCalls(calls) => (None, Some(calls.iter().map(WireToolCall).collect())),
    };
    let message = Message {
        role: "assistant",
        content,
        tool_calls,
        refusal: None,
    };
    let choices: Vec<Choice<'_>> = (0..n)
        .map(|index| Choice {
            index,
            message: &message,
            logprobs: None,
            finish_reason: reply.finish_reason,
        })
        .collect();
    serde_json::to_vec(&Completion {
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: "emulator",
        choices,
        usage: reply.usage,
    })
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<Choice<'a>>,
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: &'a Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
    refusal: Option<()>,
}

/// A [`ToolCall`] in the `{"id","type":"function","function":{..}}` shape.
struct WireToolCall<'a>(&'a ToolCall);

impl Serialize for WireToolCall<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        Wire {
            id: &self.0.id,
            kind: "function",
            function: Function {
                name: &self.0.name,
                arguments: &self.0.arguments,
            },
        }
        .serialize(serializer)
    }
}
