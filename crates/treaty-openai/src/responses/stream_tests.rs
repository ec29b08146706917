//! The stream translator against realistic upstream chunk sequences.
//!
//! `replay` checks each stream the way the SDKs' `responses.stream(...)`
//! accumulators do (openai-python `ResponseStreamState`, openai-node
//! `accumulateResponse`): it rebuilds the response from the events and
//! fails where they would.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn translator(body: Value) -> StreamTranslator {
    let req: CreateResponseRequest = serde_json::from_value(body).unwrap();
    StreamTranslator::new(ResponseObject::from_request(
        new_id("resp"),
        1_700_000_000,
        &req,
        ResponseStatus::InProgress,
    ))
}

fn chunk(delta: Value, finish_reason: Value) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], "usage": null})
    .to_string()
}

fn text(t: &str) -> String {
    chunk(json!({"content": t}), Value::Null)
}

fn call(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> String {
    let mut function = json!({"arguments": args});
    let mut tool = json!({"index": index});
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    if let Some(id) = id {
        tool["id"] = json!(id);
        tool["type"] = json!("function");
    }
    tool["function"] = function;
    chunk(json!({"tool_calls": [tool]}), Value::Null)
}

fn finish(reason: &str) -> String {
    chunk(json!({}), json!(reason))
}

fn usage_only(input: u64, output: u64) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": input, "completion_tokens": output,
            "total_tokens": input + output, "prompt_tokens_details": {"cached_tokens": 2}}})
    .to_string()
}

/// Runs the chunks through a translator and returns every event and the
/// final response.
fn run(t: &mut StreamTranslator, chunks: &[String]) -> (Vec<Event>, ResponseObject) {
    let mut events = t.start();
    for c in chunks {
        events.extend(t.on_chunk(c.as_bytes()).unwrap());
    }
    let (end, response) = t.finish();
    events.extend(end);
    (events, response)
}

/// Rebuilds the response from `events` as the SDK helpers do, checking
/// every rule they enforce, and that the final response event agrees with
/// what the deltas built. Returns the rebuilt output.
fn replay(events: &[Event], final_response: &ResponseObject) -> Vec<Value> {
    assert!(events.len() >= 3);
    assert_eq!(events[0].kind, "response.created");
    assert_eq!(events[1].kind, "response.in_progress");
    let mut output: Vec<Value> = Vec::new();
    let mut done: Vec<bool> = Vec::new();
    let mut call_ids: Vec<String> = Vec::new();
    let mut terminal = None;
    for (n, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(
            event.sequence_number, n as u64,
            "sequence numbers have no gaps"
        );
        assert_eq!(data["sequence_number"], n as u64);
        assert_eq!(data["type"], event.kind);
        assert!(
            terminal.is_none(),
            "{} after the terminal event",
            event.kind
        );
        // Events scoped to an item carry that item's id and type.
        if let Some(item_id) = data.get("item_id") {
            let index = data["output_index"].as_u64().unwrap() as usize;
            let item = &output[index];
            assert_eq!(item_id, &item["id"], "{} item_id", event.kind);
            assert!(!done[index], "{} on an item already done", event.kind);
            let expected = if event.kind.starts_with("response.function_call") {
                "function_call"
            } else {
                "message"
            };
            assert_eq!(item["type"], expected, "{}", event.kind);
        }
        match event.kind {
            "response.created" | "response.in_progress" => {
                assert_eq!(data["response"]["status"], "in_progress");
                assert_eq!(data["response"]["output"], json!([]));
                assert_eq!(data["response"]["id"], json!(final_response.id));
            }
            "response.output_item.added" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                assert_eq!(index, output.len(), "items are added in order");
                let item = data["item"].clone();
                assert_eq!(item["status"], "in_progress");
                let id = item["id"].as_str().unwrap();
                assert!(output.iter().all(|o| o["id"] != id), "item ids are unique");
                match item["type"].as_str().unwrap() {
                    "message" => {
                        assert!(id.starts_with("msg_"));
                        assert_eq!(item["content"], json!([]));
                        assert_eq!(item["role"], "assistant");
                    }
                    "function_call" => {
                        assert!(id.starts_with("fc_"));
                        assert_eq!(item["arguments"], "");
                        let call_id = item["call_id"].as_str().unwrap().to_owned();
                        assert!(!call_id.is_empty() && !call_ids.contains(&call_id));
                        call_ids.push(call_id);
                    }
                    other => panic!("unexpected item type {other}"),
                }
                output.push(item);
                done.push(false);
            }
            "response.content_part.added" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                let content = output[index]["content"].as_array_mut().unwrap();
                assert_eq!(
                    data["content_index"].as_u64().unwrap() as usize,
                    content.len()
                );
                content.push(data["part"].clone());
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                let ci = data["content_index"].as_u64().unwrap() as usize;
                let part = &mut output[index]["content"][ci];
                let field = if event.kind == "response.output_text.delta" {
                    assert_eq!(part["type"], "output_text");
                    assert_eq!(data["logprobs"], json!([]));
                    "text"
                } else {
                    assert_eq!(part["type"], "refusal");
                    "refusal"
                };
                let delta = data["delta"].as_str().unwrap();
                assert!(!delta.is_empty());
                part[field] = json!(format!("{}{delta}", part[field].as_str().unwrap()));
            }
            "response.output_text.done"
            | "response.refusal.done"
            | "response.content_part.done" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                let ci = data["content_index"].as_u64().unwrap() as usize;
                let part = &output[index]["content"][ci];
                match event.kind {
                    "response.output_text.done" => assert_eq!(data["text"], part["text"]),
                    "response.refusal.done" => assert_eq!(data["refusal"], part["refusal"]),
                    _ => assert_eq!(&data["part"], part),
                }
            }
            "response.function_call_arguments.delta" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                let item = &mut output[index];
                let delta = data["delta"].as_str().unwrap();
                item["arguments"] =
                    json!(format!("{}{delta}", item["arguments"].as_str().unwrap()));
            }
            "response.function_call_arguments.done" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                assert_eq!(data["arguments"], output[index]["arguments"]);
                assert_eq!(data["name"], output[index]["name"]);
            }
            "response.output_item.done" => {
                let index = data["output_index"].as_u64().unwrap() as usize;
                let item = &data["item"];
                assert_eq!(item["id"], output[index]["id"]);
                assert_eq!(item["type"], output[index]["type"]);
                assert_eq!(item["call_id"], output[index]["call_id"]);
                assert_ne!(item["status"], "in_progress");
                // The finished item holds exactly what the deltas built.
                let mut built = output[index].clone();
                built["status"] = item["status"].clone();
                assert_eq!(item, &built);
                assert!(!done[index]);
                output[index] = item.clone();
                done[index] = true;
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                terminal = Some(data["response"].clone());
            }
            other => panic!("unexpected event {other}"),
        }
    }
    let terminal = terminal.expect("the stream ends with a terminal response event");
    let last = events.last().unwrap().kind;
    // A cancelled response ends with `response.incomplete`, status
    // `cancelled`; every other ending names its status.
    let status = terminal["status"].as_str().unwrap();
    if !(last == "response.incomplete" && status == "cancelled") {
        assert_eq!(status, last.trim_start_matches("response."));
    }
    if last != "response.failed" {
        assert!(
            done.iter().all(|d| *d),
            "every added item is done before the end"
        );
        assert_eq!(terminal["output"], Value::Array(output.clone()));
    }
    assert_eq!(terminal, serde_json::to_value(final_response).unwrap());
    output
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn a_cancelled_stream_closes_its_open_items_and_ends_cancelled() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let mut events = t.start();
    for c in [text("one "), text("two ")] {
        events.extend(t.on_chunk(c.as_bytes()).unwrap());
    }
    let (end, response) = t.cancel();
    events.extend(end);
    let output = replay(&events, &response);
    assert_eq!(
        &kinds(&events)[events.len() - 5..],
        [
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(response.status, ResponseStatus::Cancelled);
    assert_eq!(output[0]["status"], "incomplete");
    assert_eq!(response.output_text(), "one two ");
    // Nothing more comes after the end, whatever the host still sends.
    assert!(t.on_chunk(text("three").as_bytes()).unwrap().is_empty());
    assert!(t.finish().0.is_empty());
}

#[test]
fn a_text_stream_builds_one_message() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        text("Hel"),
        text("lo, "),
        // Multi-byte characters arrive whole in a JSON string delta.
        text("wörld 🌍"),
        text("\n\"quoted\""),
        finish("stop"),
        usage_only(9, 4),
    ];
    let (events, response) = run(&mut t, &chunks);
    let output = replay(&events, &response);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(output.len(), 1);
    assert_eq!(response.output_text(), "Hello, wörld 🌍\n\"quoted\"");
    assert_eq!(response.status, ResponseStatus::Completed);
    assert!(response.completed_at.is_some());
    let usage = response.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens),
        (9, 4, 13)
    );
    assert_eq!(usage.input_tokens_details.cached_tokens, 2);
    // The SSE frame names the event and carries the JSON on one line.
    let sse = events[4].to_sse();
    let frame = std::str::from_utf8(&sse).unwrap();
    assert!(frame.starts_with("event: response.output_text.delta\ndata: {"));
    assert!(frame.ends_with("}\n\n") && frame.matches('\n').count() == 3);
}

#[test]
fn two_parallel_tool_calls_stream_as_two_function_call_items() {
    let mut t = translator(json!({"model": "m", "input": "Weather in Paris and Oslo?",
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]}));
    let chunks = [
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        call(0, Some("call_a"), Some("weather"), ""),
        call(0, None, None, "{\"ci"),
        call(0, None, None, "ty\": \"Pa"),
        call(0, None, None, "ris\"}"),
        call(1, Some("call_b"), Some("weather"), ""),
        call(1, None, None, "{\"city\":"),
        call(1, None, None, " \"Oslo\"}"),
        finish("tool_calls"),
        usage_only(20, 30),
    ];
    let (events, response) = run(&mut t, &chunks);
    let output = replay(&events, &response);
    assert_eq!(output.len(), 2);
    assert_eq!(output[0]["call_id"], "call_a");
    assert_eq!(output[1]["call_id"], "call_b");
    assert_eq!(output[0]["arguments"], r#"{"city": "Paris"}"#);
    assert_eq!(output[1]["arguments"], r#"{"city": "Oslo"}"#);
    assert!(
        output
            .iter()
            .all(|o| o["status"] == "completed" && o["name"] == "weather")
    );
    // The first call is finished before the second starts, so a client can
    // run it early.
    let first_done = events
        .iter()
        .position(|e| e.kind == "response.output_item.done")
        .unwrap();
    let second_added = events
        .iter()
        .rposition(|e| e.kind == "response.output_item.added")
        .unwrap();
    assert!(first_done < second_added);
    assert_eq!(response.status, ResponseStatus::Completed);
    assert_eq!(response.usage.unwrap().output_tokens, 30);
}

#[test]
fn text_then_a_tool_call_closes_the_message_first() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let chunks = [
        text("Let me "),
        text("check."),
        call(0, Some("call_1"), Some("lookup"), "{}"),
        finish("tool_calls"),
    ];
    let (events, response) = run(&mut t, &chunks);
    let output = replay(&events, &response);
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["arguments"], "{}");
    let message_done = kinds(&events)
        .iter()
        .position(|k| *k == "response.output_item.done")
        .unwrap();
    let call_added = kinds(&events)
        .iter()
        .rposition(|k| *k == "response.output_item.added")
        .unwrap();
    assert!(message_done < call_added);
    assert_eq!(response.output_text(), "Let me check.");
    assert_eq!(response.usage, None, "no usage chunk, no usage");
}

#[test]
fn hosts_without_index_or_ids_still_get_separate_calls() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    // One chunk with two complete calls, no index and no ids.
    let both = chunk(
        json!({"tool_calls": [
            {"function": {"name": "a", "arguments": "{\"x\":1}"}},
            {"function": {"name": "b", "arguments": "{}"}}
        ]}),
        json!("tool_calls"),
    );
    let (events, response) = run(&mut t, &[both]);
    let output = replay(&events, &response);
    assert_eq!(output.len(), 2);
    assert_eq!(
        (output[0]["name"].as_str(), output[1]["name"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(output[0]["arguments"], "{\"x\":1}");
    assert!(output[0]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_ne!(output[0]["call_id"], output[1]["call_id"]);
}

#[test]
fn arguments_before_the_name_are_held_back() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let chunks = [
        call(0, Some("call_1"), None, "{\"q\":"),
        call(0, None, Some("search"), "\"x\"}"),
        finish("tool_calls"),
    ];
    let (events, response) = run(&mut t, &chunks);
    let output = replay(&events, &response);
    assert_eq!(output[0]["name"], "search");
    assert_eq!(output[0]["arguments"], "{\"q\":\"x\"}");
}

#[test]
fn a_length_stop_ends_with_response_incomplete() {
    let mut t = translator(json!({"model": "m", "input": "Write a saga.", "max_output_tokens": 3}));
    let (events, response) = run(
        &mut t,
        &[text("Once upon"), finish("length"), usage_only(5, 3)],
    );
    let output = replay(&events, &response);
    assert_eq!(events.last().unwrap().kind, "response.incomplete");
    assert_eq!(response.status, ResponseStatus::Incomplete);
    assert_eq!(
        response.incomplete_details,
        Some(IncompleteDetails {
            reason: "max_output_tokens".into()
        })
    );
    assert_eq!(output[0]["status"], "incomplete");
    assert_eq!(response.completed_at, None);
}

#[test]
fn a_refusal_streams_as_a_refusal_part() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let chunks = [
        chunk(json!({"refusal": "I can't "}), Value::Null),
        chunk(json!({"refusal": "help with that."}), Value::Null),
        finish("stop"),
    ];
    let (events, response) = run(&mut t, &chunks);
    let output = replay(&events, &response);
    assert_eq!(
        output[0]["content"],
        json!([{"type": "refusal", "refusal": "I can't help with that."}])
    );
    assert!(kinds(&events).contains(&"response.refusal.done"));
    assert_eq!(response.output_text(), "");
}

#[test]
fn a_broken_upstream_ends_with_response_failed() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let mut events = t.start();
    events.extend(t.on_chunk(text("partial").as_bytes()).unwrap());
    let err = t
        .on_chunk(br#"{"error":{"message":"overloaded","type":"server_error"}}"#)
        .unwrap_err();
    assert!(err.contains("overloaded"), "{err}");
    assert!(t.on_chunk(b"{not json").is_err());
    let (end, response) = t.fail("server_error", &err);
    events.extend(end);
    replay(&events, &response);
    assert_eq!(events.last().unwrap().kind, "response.failed");
    let data = events.last().unwrap().json();
    assert_eq!(data["response"]["error"]["code"], "server_error");
    assert_eq!(response.status, ResponseStatus::Failed);
    // Nothing follows the end.
    assert!(t.on_chunk(text("late").as_bytes()).unwrap().is_empty());
    assert!(t.finish().0.is_empty());
}

#[test]
fn interleaved_tool_call_arguments_are_an_error_not_a_corrupt_stream() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    t.start();
    t.on_chunk(call(0, Some("a"), Some("f"), "{").as_bytes())
        .unwrap();
    t.on_chunk(call(1, Some("b"), Some("g"), "{").as_bytes())
        .unwrap();
    assert!(t.on_chunk(call(0, None, None, "}").as_bytes()).is_err());
}

#[test]
fn finish_without_chunks_still_makes_a_valid_stream() {
    let mut t = translator(json!({"model": "m", "input": "hi"}));
    let (events, response) = t.finish();
    replay(&events, &response);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    assert!(response.output.is_empty());
}

/// One step of a generated upstream stream.
#[derive(Debug, Clone)]
enum Step {
    Text(String),
    NewCall(String),
    Args(String),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        "\\PC{1,6}".prop_map(Step::Text),
        "[a-z]{1,8}".prop_map(Step::NewCall),
        "[{}\":, a-z0-9]{1,6}".prop_map(Step::Args),
    ]
}

proptest! {
    /// Whatever mix of text and tool calls a host streams, the events obey
    /// the SDKs' rules and add up to what the host sent.
    #[test]
    fn any_chunk_sequence_makes_a_valid_stream(steps in prop::collection::vec(step(), 0..24)) {
        let mut t = translator(json!({"model": "m", "input": "hi"}));
        let mut chunks = Vec::new();
        let mut sent_text = String::new();
        let mut sent_args = String::new();
        let mut calls = 0u64;
        // Hosts stream a call's arguments right after its name, never after
        // later text (that case is refused, see the interleaving test).
        let mut in_call = false;
        for s in &steps {
            match s {
                Step::Text(s) => {
                    sent_text.push_str(s);
                    chunks.push(text(s));
                    in_call = false;
                }
                Step::NewCall(name) => {
                    calls += 1;
                    chunks.push(call(calls, Some(&format!("call_{calls}")), Some(name), ""));
                    in_call = true;
                }
                Step::Args(a) if in_call => {
                    sent_args.push_str(a);
                    chunks.push(call(calls, None, None, a));
                }
                Step::Args(_) => {}
            }
        }
        chunks.push(finish("stop"));
        let (events, response) = run(&mut t, &chunks);
        let output = replay(&events, &response);
        prop_assert_eq!(response.output_text(), sent_text);
        let args: String = output.iter().filter_map(|o| o["arguments"].as_str()).collect();
        prop_assert_eq!(args, sent_args);
        let call_items = output.iter().filter(|o| o["type"] == "function_call").count();
        prop_assert_eq!(call_items as u64, calls);
    }

    /// Arbitrary bytes are an error or events, never a panic.
    #[test]
    fn arbitrary_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut t = translator(json!({"model": "m", "input": "hi"}));
        let _ = t.on_chunk(&bytes);
        let _ = t.finish();
    }
}
