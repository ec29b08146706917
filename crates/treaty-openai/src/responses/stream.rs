//! Streaming: `chat.completion.chunk` payloads in, Responses streaming
//! events out.
//!
//! The SDKs' `responses.stream(...)` helpers rebuild the response from the
//! events and refuse a stream that breaks their rules: `response.created`
//! first; `output_index` equal to the number of items added so far; every
//! event of an item carrying that item's id; content parts added before
//! their deltas; unique, non-empty `call_id`s; sequence numbers without
//! gaps. This translator keeps those rules by construction: at most one
//! item is open at a time and is closed (its `.done` events sent) before
//! the next is added or the response ends.
//!
//! It never performs I/O; the caller feeds it chunk payloads (the `data:`
//! of each upstream SSE event, without `[DONE]`) and writes out the
//! events.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::items::{ContentPart, FunctionCallItem, Item, ItemStatus, MessageItem, Role};
use super::new_id;
use super::object::{ResponseObject, ResponseStatus, ResponseUsage};
use super::reply::{CallIds, ChatUsage, status_for};

/// One Responses streaming event, serialised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event `type` (`response.output_text.delta`, …), also the SSE
    /// event name.
    pub kind: &'static str,
    /// Its place in the stream, from 0 without gaps.
    pub sequence_number: u64,
    /// The JSON payload, including `type` and `sequence_number`.
    pub data: String,
}

impl Event {
    /// The event as one SSE frame: `event: {type}\ndata: {json}\n\n`.
    pub fn to_sse(&self) -> Bytes {
        let mut out = String::with_capacity(self.kind.len() + self.data.len() + 16);
        out.push_str("event: ");
        out.push_str(self.kind);
        out.push_str("\ndata: ");
        out.push_str(&self.data);
        out.push_str("\n\n");
        Bytes::from(out)
    }

    /// The payload parsed back into JSON (for tests and inspection; the hot
    /// path uses `data` as it is).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Turns one upstream chat stream into the events of one response.
///
/// Call [`start`](Self::start) once, [`on_chunk`](Self::on_chunk) per
/// upstream chunk, then [`finish`](Self::finish) when the upstream stream
/// ended normally or [`fail`](Self::fail) when it broke. Calls after the
/// end produce no events.
#[derive(Debug)]
pub struct StreamTranslator {
    /// The response being built; `output` holds the items added so far,
    /// updated in place as deltas arrive.
    response: ResponseObject,
    next_sequence: u64,
    phase: Phase,
    open: Option<Open>,
    calls: Vec<CallSlot>,
    call_ids: CallIds,
    finish_reason: Option<String>,
    usage: Option<ResponseUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Streaming,
    Ended,
}

/// The item currently receiving deltas.
#[derive(Debug, Clone, Copy)]
enum Open {
    /// A message; `part` is the kind of its last content part, if any.
    Message {
        output_index: usize,
        part: Option<PartKind>,
    },
    /// A function call, by its slot in `calls`.
    Call { slot: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

/// One upstream tool call. It becomes an output item once its name is
/// known (hosts send id and name first); arguments that arrive before are
/// held back and sent as the item's first delta.
#[derive(Debug)]
struct CallSlot {
    chat_index: Option<u64>,
    upstream_id: Option<String>,
    name: String,
    pending_arguments: String,
    output_index: Option<usize>,
}

impl StreamTranslator {
    /// A translator for `response`, which should be the in-progress object
    /// from [`ResponseObject::from_request`] (its output is replaced).
    pub fn new(mut response: ResponseObject) -> Self {
        response.status = ResponseStatus::InProgress;
        response.output.clear();
        response.usage = None;
        StreamTranslator {
            response,
            next_sequence: 0,
            phase: Phase::New,
            open: None,
            calls: Vec::new(),
            call_ids: CallIds::default(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The response as built so far.
    pub fn response(&self) -> &ResponseObject {
        &self.response
    }

    /// The upstream finish reason, once a chunk carried one. A stream that
    /// ends without one was probably cut; the caller may prefer `fail`.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// `response.created` then `response.in_progress`. Called by
    /// `on_chunk`, `finish` and `fail` if the caller did not.
    pub fn start(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.start_into(&mut out);
        out
    }

    fn start_into(&mut self, out: &mut Vec<Event>) {
        if self.phase != Phase::New {
            return;
        }
        self.phase = Phase::Streaming;
        let response = Lifecycle {
            response: &self.response,
        };
        emit(&mut self.next_sequence, out, "response.created", &response);
        emit(
            &mut self.next_sequence,
            out,
            "response.in_progress",
            &response,
        );
    }

    /// Translates one `chat.completion.chunk` payload. An error is a chunk
    /// that is not JSON, carries an `error`, or breaks the one-open-item
    /// rule (a host interleaving tool calls); the caller should then `fail`.
    pub fn on_chunk(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return Ok(out);
        }
        let chunk: Chunk<'_> = serde_json::from_slice(chunk)
            .map_err(|e| format!("the upstream stream sent an invalid chunk: {e}"))?;
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(format!("the upstream host reported an error: {message}"));
        }
        self.start_into(&mut out);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into_response());
        }
        // Treaty asks for one choice; others (n > 1) have no place here.
        if let Some(choice) = chunk
            .choices
            .into_iter()
            .find(|c| c.index.unwrap_or(0) == 0)
        {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.message_delta(PartKind::Text, &text, &mut out);
                }
                if let Some(refusal) = delta.refusal.filter(|t| !t.is_empty()) {
                    self.message_delta(PartKind::Refusal, &refusal, &mut out);
                }
                for call in delta.tool_calls.into_iter().flatten() {
                    self.call_delta(call, &mut out)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(out)
    }

    /// Closes what is open and ends with `response.completed`, or
    /// `response.incomplete` when the host stopped for `length` or
    /// `content_filter`. Returns the events and the final response (status,
    /// output items, usage).
    pub fn finish(&mut self) -> (Vec<Event>, ResponseObject) {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return (out, self.response.clone());
        }
        self.start_into(&mut out);
        // A call whose name never came is still the model's output.
        for slot in 0..self.calls.len() {
            if self.calls[slot].output_index.is_none() {
                self.add_call(slot, &mut out);
            }
        }
        let (status, details) = status_for(self.finish_reason.as_deref().unwrap_or("stop"));
        let last_status = match status {
            ResponseStatus::Incomplete => ItemStatus::Incomplete,
            _ => ItemStatus::Completed,
        };
        self.close_open(last_status, &mut out);
        self.response.usage = self.usage;
        self.response.set_status(status, details);
        let kind = match status {
            ResponseStatus::Incomplete => "response.incomplete",
            _ => "response.completed",
        };
        let response = Lifecycle {
            response: &self.response,
        };
        emit(&mut self.next_sequence, &mut out, kind, &response);
        self.phase = Phase::Ended;
        (out, self.response.clone())
    }

    /// Ends a response its client cancelled: open items close as
    /// `incomplete` and the last event is `response.incomplete` whose
    /// response has status `cancelled`. (The Responses stream has no
    /// event of its own for a cancellation; SDK stream helpers accept
    /// this one and report no final response.)
    pub fn cancel(&mut self) -> (Vec<Event>, ResponseObject) {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return (out, self.response.clone());
        }
        self.start_into(&mut out);
        self.close_open(ItemStatus::Incomplete, &mut out);
        self.response.usage = self.usage;
        self.response.set_status(ResponseStatus::Cancelled, None);
        let response = Lifecycle {
            response: &self.response,
        };
        emit(
            &mut self.next_sequence,
            &mut out,
            "response.incomplete",
            &response,
        );
        self.phase = Phase::Ended;
        (out, self.response.clone())
    }

    /// Ends with `response.failed` (status `failed`, `error: {code,
    /// message}`), leaving items as they are. `code` should be one of
    /// OpenAI's, e.g. `server_error`.
    pub fn fail(&mut self, code: &str, message: &str) -> (Vec<Event>, ResponseObject) {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return (out, self.response.clone());
        }
        self.start_into(&mut out);
        self.response.usage = self.usage;
        self.response.fail_with(code, message);
        let response = Lifecycle {
            response: &self.response,
        };
        emit(
            &mut self.next_sequence,
            &mut out,
            "response.failed",
            &response,
        );
        self.phase = Phase::Ended;
        (out, self.response.clone())
    }

    /// Text or refusal for the open message, opening the message and the
    /// content part first when needed.
    fn message_delta(&mut self, kind: PartKind, delta: &str, out: &mut Vec<Event>) {
        let (output_index, part) = match self.open {
            Some(Open::Message { output_index, part }) => (output_index, part),
            _ => {
                self.close_open(ItemStatus::Completed, out);
                (self.add_message(out), None)
            }
        };
        if part != Some(kind) {
            if part.is_some() {
                self.close_part(output_index, out);
            }
            self.add_part(output_index, kind, out);
            self.open = Some(Open::Message {
                output_index,
                part: Some(kind),
            });
        }
        let Some(Item::Message(message)) = self.response.output.get_mut(output_index) else {
            return;
        };
        let content_index = message.content.len().saturating_sub(1);
        let event = match message.content.last_mut() {
            Some(ContentPart::OutputText { text, .. }) => {
                text.push_str(delta);
                "response.output_text.delta"
            }
            Some(ContentPart::Refusal { refusal }) => {
                refusal.push_str(delta);
                "response.refusal.delta"
            }
            _ => return,
        };
        let payload = PartDelta {
            item_id: &message.id,
            output_index,
            content_index,
            delta,
            // Only text deltas carry logprobs (always empty here).
            logprobs: (kind == PartKind::Text).then_some(&[]),
        };
        emit(&mut self.next_sequence, out, event, &payload);
    }

    fn add_message(&mut self, out: &mut Vec<Event>) -> usize {
        let output_index = self.response.output.len();
        self.response.output.push(Item::Message(MessageItem {
            id: new_id("msg"),
            role: Role::Assistant,
            content: Vec::new(),
            status: Some(ItemStatus::InProgress),
        }));
        self.open = Some(Open::Message {
            output_index,
            part: None,
        });
        self.item_event("response.output_item.added", output_index, out);
        output_index
    }

    fn add_part(&mut self, output_index: usize, kind: PartKind, out: &mut Vec<Event>) {
        let Some(Item::Message(message)) = self.response.output.get_mut(output_index) else {
            return;
        };
        message.content.push(match kind {
            PartKind::Text => ContentPart::output_text(""),
            PartKind::Refusal => ContentPart::Refusal {
                refusal: String::new(),
            },
        });
        self.part_event("response.content_part.added", output_index, out);
    }

    /// `output_text.done` / `refusal.done`, then `content_part.done`, for
    /// the message's last part.
    fn close_part(&mut self, output_index: usize, out: &mut Vec<Event>) {
        let Some(Item::Message(message)) = self.response.output.get(output_index) else {
            return;
        };
        let content_index = message.content.len().saturating_sub(1);
        let item_id = &message.id;
        match message.content.last() {
            Some(ContentPart::OutputText { text, .. }) => {
                let payload = TextDone {
                    item_id,
                    output_index,
                    content_index,
                    text,
                    logprobs: &[],
                };
                emit(
                    &mut self.next_sequence,
                    out,
                    "response.output_text.done",
                    &payload,
                );
            }
            Some(ContentPart::Refusal { refusal }) => {
                let payload = RefusalDone {
                    item_id,
                    output_index,
                    content_index,
                    refusal,
                };
                emit(
                    &mut self.next_sequence,
                    out,
                    "response.refusal.done",
                    &payload,
                );
            }
            _ => return,
        }
        self.part_event("response.content_part.done", output_index, out);
    }

    /// Arguments (and the id and name before them) for one tool call.
    fn call_delta(&mut self, call: DeltaToolCall<'_>, out: &mut Vec<Event>) -> Result<(), String> {
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let named = name.as_deref().is_some_and(|n| !n.is_empty());
        let slot = self.slot_for(call.index, id, named);
        let calls = &mut self.calls[slot];
        if calls.upstream_id.is_none() {
            calls.upstream_id = id.map(str::to_owned);
        }
        // Some hosts repeat the name on every chunk; the first one counts.
        if let Some(name) = name.filter(|n| !n.is_empty())
            && calls.name.is_empty()
        {
            calls.name = name.into_owned();
        }
        let arguments = arguments.unwrap_or_default();
        match calls.output_index {
            None => {
                calls.pending_arguments.push_str(&arguments);
                if !calls.name.is_empty() {
                    self.add_call(slot, out);
                }
            }
            Some(_) if arguments.is_empty() => {}
            Some(output_index) => {
                if !matches!(self.open, Some(Open::Call { slot: s }) if s == slot) {
                    return Err(
                        "the upstream host interleaved the arguments of parallel tool calls, \
                         which this gateway cannot stream"
                            .into(),
                    );
                }
                self.arguments_delta(output_index, &arguments, out);
            }
        }
        Ok(())
    }

    /// The slot a tool call delta belongs to: by `index`, or a new one when
    /// the index is new or the host starts a new call id on a known index.
    /// Hosts that send no `index` at all get a new call for each new id, or
    /// for each new name when they send no ids either.
    fn slot_for(&mut self, index: Option<u64>, id: Option<&str>, named: bool) -> usize {
        let known = match index {
            Some(i) => self.calls.iter().rposition(|c| c.chat_index == Some(i)),
            None => self.calls.len().checked_sub(1),
        };
        let same_call = |c: &CallSlot| match (id, c.upstream_id.as_deref()) {
            (Some(new), Some(old)) => new == old,
            // Without index or id, a second name means a second call.
            (None, _) if index.is_none() => !named || c.name.is_empty(),
            _ => true,
        };
        match known {
            Some(slot) if same_call(&self.calls[slot]) => slot,
            _ => {
                self.calls.push(CallSlot {
                    chat_index: index,
                    upstream_id: None,
                    name: String::new(),
                    pending_arguments: String::new(),
                    output_index: None,
                });
                self.calls.len() - 1
            }
        }
    }

    /// Adds the function call item for `slot`, then sends any arguments
    /// that arrived before its name.
    fn add_call(&mut self, slot: usize, out: &mut Vec<Event>) {
        self.close_open(ItemStatus::Completed, out);
        let output_index = self.response.output.len();
        let call = &mut self.calls[slot];
        call.output_index = Some(output_index);
        let pending = std::mem::take(&mut call.pending_arguments);
        let item = FunctionCallItem {
            id: new_id("fc"),
            call_id: self.call_ids.claim(call.upstream_id.as_deref()),
            name: call.name.clone(),
            arguments: String::new(),
            status: Some(ItemStatus::InProgress),
        };
        self.response.output.push(Item::FunctionCall(item));
        self.open = Some(Open::Call { slot });
        self.item_event("response.output_item.added", output_index, out);
        if !pending.is_empty() {
            self.arguments_delta(output_index, &pending, out);
        }
    }

    fn arguments_delta(&mut self, output_index: usize, delta: &str, out: &mut Vec<Event>) {
        let Some(Item::FunctionCall(call)) = self.response.output.get_mut(output_index) else {
            return;
        };
        call.arguments.push_str(delta);
        let payload = ArgumentsDelta {
            item_id: &call.id,
            output_index,
            delta,
        };
        emit(
            &mut self.next_sequence,
            out,
            "response.function_call_arguments.delta",
            &payload,
        );
    }

    /// Sends the `.done` events of the open item, if any, and marks it
    /// `status`.
    fn close_open(&mut self, status: ItemStatus, out: &mut Vec<Event>) {
        let output_index = match self.open.take() {
            None => return,
            Some(Open::Message { output_index, part }) => {
                if part.is_some() {
                    self.close_part(output_index, out);
                }
                output_index
            }
            Some(Open::Call { slot }) => {
                let Some(output_index) = self.calls[slot].output_index else {
                    return;
                };
                if let Some(Item::FunctionCall(call)) = self.response.output.get(output_index) {
                    let payload = ArgumentsDone {
                        item_id: &call.id,
                        output_index,
                        name: &call.name,
                        arguments: &call.arguments,
                    };
                    emit(
                        &mut self.next_sequence,
                        out,
                        "response.function_call_arguments.done",
                        &payload,
                    );
                }
                output_index
            }
        };
        if let Some(item) = self.response.output.get_mut(output_index) {
            item.set_status(status);
        }
        self.item_event("response.output_item.done", output_index, out);
    }

    fn item_event(&mut self, kind: &'static str, output_index: usize, out: &mut Vec<Event>) {
        if let Some(item) = self.response.output.get(output_index) {
            let payload = ItemEvent { output_index, item };
            emit(&mut self.next_sequence, out, kind, &payload);
        }
    }

    /// A `content_part.added`/`.done` event for the message's last part.
    fn part_event(&mut self, kind: &'static str, output_index: usize, out: &mut Vec<Event>) {
        let Some(Item::Message(message)) = self.response.output.get(output_index) else {
            return;
        };
        if let Some(part) = message.content.last() {
            let payload = PartEvent {
                item_id: &message.id,
                output_index,
                content_index: message.content.len() - 1,
                part,
            };
            emit(&mut self.next_sequence, out, kind, &payload);
        }
    }
}

/// Serialises `payload` under `type` and the next sequence number.
fn emit<T: Serialize>(next: &mut u64, out: &mut Vec<Event>, kind: &'static str, payload: &T) {
    let sequence_number = *next;
    *next += 1;
    let envelope = Envelope {
        kind,
        sequence_number,
        payload,
    };
    // Plain structs with string keys cannot fail to serialise.
    let data = serde_json::to_string(&envelope).unwrap_or_default();
    out.push(Event {
        kind,
        sequence_number,
        data,
    });
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    #[serde(flatten)]
    payload: &'a T,
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    response: &'a ResponseObject,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: usize,
    item: &'a Item,
}

#[derive(Serialize)]
struct PartEvent<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: &'a ContentPart,
}

#[derive(Serialize)]
struct PartDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<&'a [Value; 0]>,
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    text: &'a str,
    logprobs: &'a [Value; 0],
}

#[derive(Serialize)]
struct RefusalDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    refusal: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

/// The parts of a `chat.completion.chunk` the translator reads. Strings
/// borrow from the payload when they hold no escapes.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<DeltaToolCall<'a>>>,
}

#[derive(Deserialize)]
struct DeltaToolCall<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<DeltaFunction<'a>>,
}

#[derive(Deserialize)]
struct DeltaFunction<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}
