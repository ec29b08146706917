//! Requests, translation to chat, replies, and the object shapes the SDKs
//! read. Streaming has its own file.

use serde_json::{Value, json};

use super::*;
use crate::parse_json;

/// JSON as the client or host reads it: through text, so that `f32`s print
/// as written (`0.2`, not `0.20000000298`).
fn wire<T: serde::Serialize>(value: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

fn request(body: Value) -> CreateResponseRequest {
    parse_json(body.to_string().as_bytes()).unwrap()
}

/// The chat request for `body` with this turn's input as the history, as
/// JSON (what the upstream host receives).
fn chat_for(body: Value) -> Value {
    let req = request(body);
    req.validate().unwrap();
    let history = input_items(&req);
    wire(&to_chat_request(&req, &history, false).unwrap())
}

#[test]
fn input_translates_to_chat_messages() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "a string input is one user message",
            json!({"model": "m", "input": "hi"}),
            json!([{"role": "user", "content": "hi"}]),
        ),
        (
            "instructions come first, as a system message",
            json!({"model": "m", "instructions": "Be brief.", "input": "hi"}),
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"}
            ]),
        ),
        (
            "text and an image become chat content parts",
            json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"}
            ]}]}),
            json!([{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
            ]}]),
        ),
        (
            "developer messages become system messages; easy assistant messages keep their text",
            json!({"model": "m", "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use French."}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "bonjour"},
                {"role": "user", "content": "ça va ?"}
            ]}),
            json!([
                {"role": "system", "content": "Use French."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "bonjour"},
                {"role": "user", "content": "ça va ?"}
            ]),
        ),
        (
            "two parallel calls become one assistant message, then one tool message each",
            json!({"model": "m", "input": [
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "3"}, {"type": "input_text", "text": "C"}]}
            ]}),
            json!([
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": "3C"}
            ]),
        ),
        (
            "a model's text and its call are one assistant message",
            json!({"model": "m", "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{}", "status": "completed"},
                {"type": "function_call_output", "call_id": "call_a", "output": "sunny"}
            ]}),
            json!([
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}
            ]),
        ),
    ];
    for (name, body, expected) in cases {
        assert_eq!(chat_for(body)["messages"], expected, "{name}");
    }
}

#[test]
fn earlier_turns_come_before_this_turns_input() {
    let first = request(json!({"model": "m", "input": "My name is Ada."}));
    let reply = output_from_chat(
        br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello Ada."},"finish_reason":"stop"}]}"#,
    )
    .unwrap();
    let second =
        request(json!({"model": "m", "previous_response_id": "resp_1", "input": "Who am I?"}));
    let mut history = input_items(&first);
    history.extend(reply.items);
    history.extend(input_items(&second));
    let chat = wire(&to_chat_request(&second, &history, false).unwrap());
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "Who am I?"}
        ])
    );
}

#[test]
fn tools_and_tool_choice_map_to_chat_tools() {
    let tools = json!([{"type": "function", "name": "weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}]);
    let chat = chat_for(json!({"model": "m", "input": "hi", "tools": tools,
        "tool_choice": {"type": "function", "name": "weather"}, "parallel_tool_calls": false}));
    assert_eq!(
        chat["tools"],
        json!([{"type": "function", "function": {"name": "weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}])
    );
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(chat["parallel_tool_calls"], false);

    for mode in ["auto", "none", "required"] {
        let chat =
            chat_for(json!({"model": "m", "input": "hi", "tools": tools, "tool_choice": mode}));
        assert_eq!(chat["tool_choice"], mode);
    }
    // Chat Completions refuses tool_choice and parallel_tool_calls without
    // tools, so they are dropped rather than forwarded.
    let chat = chat_for(
        json!({"model": "m", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": true}),
    );
    assert!(chat.get("tool_choice").is_none() && chat.get("parallel_tool_calls").is_none());
    assert!(chat.get("tools").is_none());
}

#[test]
fn text_format_maps_to_response_format() {
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
    let chat = chat_for(json!({"model": "m", "input": "hi", "text": {"format":
        {"type": "json_schema", "name": "answer", "schema": schema, "strict": true}}}));
    assert_eq!(
        chat["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
    let chat =
        chat_for(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(chat["response_format"], json!({"type": "json_object"}));
    let chat = chat_for(json!({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}));
    assert!(chat.get("response_format").is_none());
}

#[test]
fn sampling_limits_and_stream_flags_are_forwarded_and_responses_fields_are_not() {
    let req = request(
        json!({"model": "gpt-4o", "input": "hi", "max_output_tokens": 50,
        "temperature": 0.2, "top_p": 0.9, "user": "u1", "store": false, "stream": true,
        "metadata": {"k": "v"}, "reasoning": {"effort": "low"}, "truncation": "auto",
        "include": ["message.output_text.logprobs"], "service_tier": "auto",
        "prompt_cache_key": "p", "safety_identifier": "s", "max_tool_calls": 3}),
    );
    req.validate().unwrap();
    let chat = wire(&to_chat_request(&req, &input_items(&req), true).unwrap());
    assert_eq!(
        chat,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "stream_options": {"include_usage": true},
            "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "u1"})
    );
    let chat = wire(&to_chat_request(&req, &input_items(&req), false).unwrap());
    assert!(chat.get("stream").is_none() && chat.get("stream_options").is_none());
}

#[test]
fn images_by_file_id_are_refused_in_translation() {
    let req = request(json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "look"}, {"type": "input_image", "file_id": "file_1"}]}]}));
    let err = to_chat_request(&req, &input_items(&req), false).unwrap_err();
    assert!(err.0.contains("image_url"), "{}", err.0);
    assert_eq!(err.1, "input");
}

#[test]
fn validate_names_the_param_at_fault() {
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"model": "", "input": "hi"}), "model", "empty"),
        (
            json!({"model": "m", "input": "hi", "previous_response_id": "resp_1", "conversation": "conv_1"}),
            "conversation",
            "cannot be used together",
        ),
        (json!({"model": "m"}), "input", "required"),
        (
            json!({"model": "m", "input": "hi", "background": true}),
            "background",
            "not supported",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
            "tools[1].type",
            "only function tools are served",
        ),
        (
            json!({"model": "m", "input": "hi", "tools": [{"type": "function"}]}),
            "tools[0].name",
            "name",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": "hi"}, {"type": "function_call_output", "output": "42"}]}),
            "input[1].call_id",
            "call_id",
        ),
        (
            json!({"model": "m", "input": "hi", "metadata": many}),
            "metadata",
            "16",
        ),
        (
            json!({"model": "m", "input": "hi", "metadata": {"n": 1}}),
            "metadata.n",
            "strings",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice",
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}),
            "text.format.schema",
            "schema",
        ),
        (
            json!({"model": "m", "input": "hi", "temperature": 3}),
            "temperature",
            "between",
        ),
    ];
    for (body, param, words) in cases {
        let (message, got) = request(body.clone()).validate().unwrap_err();
        assert_eq!(got, param, "{body}");
        assert!(message.contains(words), "{message}");
    }
    let ok = request(json!({"model": "m", "input": "hi", "conversation": {"id": "conv_1"}}));
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(
        ok.conversation.as_ref().map(ConversationRef::id),
        Some("conv_1")
    );
}

#[test]
fn unsupported_items_and_bad_input_fail_at_parse_with_a_reason() {
    let err = parse_json::<CreateResponseRequest>(
        br#"{"model":"m","input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("input[1]"));
    assert!(
        err.message.contains("'reasoning' are not supported"),
        "{}",
        err.message
    );

    let err = parse_json::<CreateResponseRequest>(br#"{"model":"m","input":42}"#).unwrap_err();
    assert!(
        err.message.contains("a string or an array of input items"),
        "{}",
        err.message
    );

    let err = parse_json::<CreateResponseRequest>(
        br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_txt","text":"a"}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("input[0].content[0].type"));
    assert!(err.message.contains("'input_txt'"), "{}", err.message);

    let err = parse_json::<CreateResponseRequest>(
        br#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"https://x"}]}]}"#,
    )
    .unwrap_err();
    assert!(err.message.contains("text parts only"), "{}", err.message);
}

#[test]
fn input_items_get_ids_and_status_and_keep_given_ids() {
    let req = request(json!({"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "message", "id": "msg_given", "role": "user", "content": [{"type": "input_text", "text": "again"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}
    ]}));
    let items = input_items(&req);
    let ids: Vec<&str> = items.iter().map(Item::id).collect();
    assert!(
        ids[0].starts_with("msg_") && ids[0].len() == 4 + 32,
        "{}",
        ids[0]
    );
    assert_eq!(ids[1], "msg_given");
    assert!(ids[2].starts_with("fc_") && ids[3].starts_with("fco_"));
    let json = wire(&items);
    for item in json.as_array().unwrap() {
        assert_eq!(item["status"], "completed");
    }
    assert_eq!(
        json[0]["content"],
        json!([{"type": "input_text", "text": "hi"}])
    );
    // The same request yields fresh ids each time; v7 ids sort by time.
    let again = input_items(&req);
    assert_ne!(again[0].id(), items[0].id());
    assert!(again[0].id() > items[0].id());

    let items = input_items(&request(json!({"model": "m", "input": "hello"})));
    assert_eq!(
        items[0],
        Item::Message(MessageItem {
            id: items[0].id().to_owned(),
            role: Role::User,
            content: vec![ContentPart::InputText {
                text: "hello".into()
            }],
            status: Some(ItemStatus::Completed),
        })
    );
}

#[test]
fn a_text_reply_becomes_one_message_item() {
    let out = output_from_chat(br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
        "message":{"role":"assistant","content":"Hello there."},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,
        "prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":0}}}"#)
    .unwrap();
    assert_eq!(out.finish_reason, "stop");
    assert_eq!(out.items.len(), 1);
    let item = wire(&out.items[0]);
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["type"], "message");
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    assert_eq!(
        item["content"],
        json!([{"type": "output_text", "text": "Hello there.", "annotations": []}])
    );
    assert_eq!(
        wire(&out.usage),
        json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 8},
            "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    );
}

#[test]
fn parallel_tool_calls_become_function_call_items() {
    let out = output_from_chat(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[
          {"id":"call_a","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
          {"id":"call_b","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
        "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":20,"total_tokens":25}}"#)
    .unwrap();
    assert_eq!(out.items.len(), 2, "no message item without text");
    let calls: Vec<&FunctionCallItem> = out
        .items
        .iter()
        .filter_map(|i| match i {
            Item::FunctionCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls[0].call_id, "call_a");
    assert_eq!(calls[1].call_id, "call_b");
    assert_eq!(calls[1].arguments, r#"{"city":"Oslo"}"#);
    assert!(
        calls
            .iter()
            .all(|c| c.id.starts_with("fc_") && c.name == "weather")
    );
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(
        status_for(&out.finish_reason),
        (ResponseStatus::Completed, None)
    );
    assert_eq!(out.usage.total_tokens, 25);
}

#[test]
fn missing_or_repeated_call_ids_are_replaced() {
    let out = output_from_chat(
        br#"{"choices":[{"message":{"content":"ok","tool_calls":[
          {"type":"function","function":{"name":"a","arguments":{"x":1}}},
          {"id":"same","type":"function","function":{"name":"b","arguments":"{}"}},
          {"id":"same","type":"function","function":{"name":"c","arguments":"{}"}}]},
        "finish_reason":"tool_calls"}]}"#,
    )
    .unwrap();
    let ids: Vec<String> = out
        .items
        .iter()
        .filter_map(|i| match i {
            Item::FunctionCall(c) => Some(c.call_id.clone()),
            _ => None,
        })
        .collect();
    assert!(ids[0].starts_with("call_"));
    assert_eq!(ids[1], "same");
    assert!(ids[2].starts_with("call_") && ids[2] != "same");
    let Item::FunctionCall(first) = &out.items[1] else {
        panic!()
    };
    assert_eq!(
        first.arguments, r#"{"x":1}"#,
        "object arguments are re-encoded"
    );
    assert_eq!(out.usage, ResponseUsage::default());
}

#[test]
fn a_cut_off_reply_makes_an_incomplete_response() {
    let req = request(json!({"model": "m", "input": "Write a saga.", "max_output_tokens": 5}));
    let out = output_from_chat(br#"{"choices":[{"message":{"role":"assistant","content":"Once upon a"},
        "finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}}"#)
    .unwrap();
    let mut response = ResponseObject::from_request("resp_1", 1, &req, ResponseStatus::InProgress);
    response.complete_with(out);
    let json = wire(&response);
    assert_eq!(json["status"], "incomplete");
    assert_eq!(
        json["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(json["output"][0]["status"], "incomplete");
    assert_eq!(json["completed_at"], Value::Null);
    assert_eq!(response.output_text(), "Once upon a");
    assert_eq!(json["usage"]["output_tokens"], 5);

    assert_eq!(
        status_for("content_filter"),
        (
            ResponseStatus::Incomplete,
            Some(IncompleteDetails {
                reason: "content_filter".into()
            })
        )
    );
    assert_eq!(status_for("stop").0, ResponseStatus::Completed);
    assert!(
        output_from_chat(br#"{"choices":[]}"#)
            .unwrap_err()
            .contains("no choices")
    );
    assert!(output_from_chat(b"not json").is_err());
}

#[test]
fn the_response_object_has_the_fields_the_sdks_read() {
    let req = request(
        json!({"model": "gpt-4o", "input": "hi", "instructions": "Be brief.",
        "metadata": {"team": "a"}, "conversation": "conv_1", "store": false,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
    );
    let response =
        ResponseObject::from_request("resp_1", 1_700_000_000, &req, ResponseStatus::InProgress);
    let json = wire(&response);
    for field in [
        "id",
        "object",
        "created_at",
        "status",
        "error",
        "incomplete_details",
        "instructions",
        "max_output_tokens",
        "model",
        "output",
        "parallel_tool_calls",
        "previous_response_id",
        "conversation",
        "reasoning",
        "store",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_p",
        "truncation",
        "usage",
        "user",
        "metadata",
        "background",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert!(
        json.get("output_text").is_none(),
        "the SDKs compute output_text"
    );
    assert_eq!(json["object"], "response");
    assert_eq!(json["created_at"], 1_700_000_000);
    assert_eq!(json["status"], "in_progress");
    assert_eq!(json["instructions"], "Be brief.");
    assert_eq!(json["conversation"], json!({"id": "conv_1"}));
    assert_eq!(json["store"], false);
    assert_eq!(json["parallel_tool_calls"], true);
    assert_eq!(json["temperature"], 1.0);
    assert_eq!(json["top_p"], 1.0);
    assert_eq!(json["tool_choice"], "auto");
    assert_eq!(json["text"], json!({"format": {"type": "text"}}));
    assert_eq!(json["reasoning"], json!({"effort": null, "summary": null}));
    assert_eq!(json["truncation"], "disabled");
    assert_eq!(json["metadata"], json!({"team": "a"}));
    assert_eq!(json["background"], false);
    assert_eq!(
        json["tools"],
        json!([{"type": "function", "name": "f", "parameters": {"type": "object"}}])
    );
    // Stored and read back unchanged.
    let back: ResponseObject = serde_json::from_value(json).unwrap();
    assert_eq!(back, response);

    let mut failed = response.clone();
    failed.fail_with("server_error", "upstream timed out");
    let json = wire(&failed);
    assert_eq!(json["status"], "failed");
    assert_eq!(
        json["error"],
        json!({"code": "server_error", "message": "upstream timed out"})
    );
}

#[test]
fn conversation_shapes_match_the_sdks() {
    let create: ConversationCreate =
        parse_json(br#"{"items":[{"role":"user","content":"hi"}],"metadata":{"topic":"demo"}}"#)
            .unwrap();
    assert_eq!(create.validate(), Ok(()));
    let items = create.items();
    assert!(items[0].id().starts_with("msg_"));

    let conversation =
        Conversation::new(1_700_000_000, create.metadata.clone().unwrap_or_default());
    let json = wire(&conversation);
    assert!(json["id"].as_str().unwrap().starts_with("conv_"));
    assert_eq!(json["object"], "conversation");
    assert_eq!(json["metadata"], json!({"topic": "demo"}));

    let list = wire(&ItemList::new(items.clone(), false));
    assert_eq!(list["object"], "list");
    assert_eq!(list["first_id"], items[0].id());
    assert_eq!(list["last_id"], items[0].id());
    assert_eq!(list["has_more"], false);
    assert_eq!(list["data"][0]["type"], "message");
    let empty = wire(&ItemList::new(Vec::new(), false));
    assert_eq!(empty["data"], json!([]));

    assert_eq!(
        wire(&Deleted::conversation("conv_1")),
        json!({"id": "conv_1", "object": "conversation.deleted", "deleted": true})
    );
    assert_eq!(
        wire(&Deleted::response("resp_1")),
        json!({"id": "resp_1", "object": "response", "deleted": true})
    );

    let too_many: ConversationCreate = serde_json::from_value(json!({
        "items": (0..21).map(|_| json!({"role": "user", "content": "x"})).collect::<Vec<_>>()
    }))
    .unwrap();
    assert_eq!(too_many.validate().unwrap_err().1, "items");
    let update: ConversationUpdate = parse_json(br#"{"metadata":{"a":"b"}}"#).unwrap();
    assert_eq!(update.validate(), Ok(()));
    let bad: ConversationItemsCreate =
        parse_json(br#"{"items":[{"type":"function_call_output","output":"x"}]}"#).unwrap();
    assert_eq!(bad.validate().unwrap_err().1, "items[0].call_id");
}

#[test]
fn new_ids_have_the_prefix_and_a_uuid() {
    for prefix in ["resp", "msg", "fc", "fco", "conv", "item"] {
        let id = new_id(prefix);
        let (p, hex) = id.split_once('_').unwrap();
        assert_eq!(p, prefix);
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

#[test]
fn item_references_parse_keep_their_id_and_never_reach_the_model_unresolved() {
    let req: CreateResponseRequest = parse_json(
        br#"{"model":"m","input":[{"role":"user","content":"hi"},{"type":"item_reference","id":"msg_1"}]}"#,
    )
    .unwrap();
    assert_eq!(req.validate(), Ok(()));
    let items = input_items(&req);
    assert_eq!(
        items[1],
        Item::ItemReference(ItemReference { id: "msg_1".into() })
    );
    assert_eq!(items[1].kind(), "item_reference");
    // Written back as it came.
    assert_eq!(
        serde_json::to_value(&items[1]).unwrap(),
        json!({"type": "item_reference", "id": "msg_1"})
    );
    let (message, _) = to_chat_request(&req, &items, false).unwrap_err();
    assert!(message.contains("msg_1"), "{message}");

    let err = parse_json::<CreateResponseRequest>(
        br#"{"model":"m","input":[{"type":"item_reference"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("input[0].id"));
    assert_eq!(err.message, "Missing required parameter: 'input[0].id'.");
}
