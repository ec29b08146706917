//! The emulated providers' answers over real HTTP: chat (plain, streamed,
//! tools, JSON mode, stop and max_tokens), embeddings, models, the Azure
//! route styles and authentication.

// clippy.toml allows these only inside #[test] fns; the shared helpers
// outside them should fail just as loudly.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{chunks, client, json, post, start, start_with, streamed_text, user};
use treaty_emulator::EmulatorConfig;

#[tokio::test]
async fn chat_echoes_host_model_and_last_user_text_with_usage() {
    let emulator = start().await;
    let body = json!({"model": "gpt-4o-mini", "n": 2, "seed": 7, "user": "u1", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello there"}
    ]});
    let response = post(
        &format!("{}/azure-eastus/v1/chat/completions", emulator.url()),
        &body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-emulator-host"], "azure-eastus");
    let reply = json(response).await;
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-emu-"));
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "gpt-4o-mini");
    assert_eq!(reply["system_fingerprint"], "emulator");
    assert_eq!(reply["choices"].as_array().unwrap().len(), 2);
    assert_eq!(reply["choices"][1]["index"], 1);
    let choice = &reply["choices"][0];
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "Emulated reply from azure-eastus (gpt-4o-mini): Hello there", "refusal": null})
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    // 3+3 and 2+3 prompt words plus overhead; 7 reply words in each of 2 choices.
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 14, "total_tokens": 25})
    );

    let unlabeled = json(
        post(
            &format!("{}/v1/chat/completions", emulator.url()),
            &user("hi"),
        )
        .await,
    )
    .await;
    assert_eq!(
        unlabeled["choices"][0]["message"]["content"],
        "Emulated reply from default (gpt-4o-mini): hi"
    );
    assert_eq!(emulator.requests_for("azure-eastus"), 1);
    assert_eq!(emulator.requests_for("default"), 1);
}

#[tokio::test]
async fn content_parts_are_read_as_text() {
    let emulator = start().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"}
    ]}]});
    let reply = json(post(&format!("{}/v1/chat/completions", emulator.url()), &body).await).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Emulated reply from default (m): describe this"
    );
}

#[tokio::test]
async fn stream_concatenates_to_the_plain_text_and_ends_with_done() {
    let emulator = start().await;
    let url = format!("{}/oai/v1/chat/completions", emulator.url());
    let mut body = user("The  quick brown\tfox ");
    let plain = json(post(&url, &body).await).await;
    let text = plain["choices"][0]["message"]["content"].as_str().unwrap();

    body["stream"] = json!(true);
    let response = post(&url, &body).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let sse = response.text().await.unwrap();
    let chunks = chunks(&sse);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert!(chunks.len() > 5, "one chunk per word");
    assert_eq!(streamed_text(&chunks), text);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
}

#[tokio::test]
async fn stream_include_usage_adds_null_usage_and_a_final_usage_chunk() {
    let emulator = start().await;
    let mut body = user("count me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let sse = post(&format!("{}/v1/chat/completions", emulator.url()), &body)
        .await
        .text()
        .await
        .unwrap();
    let chunks = chunks(&sse);
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12})
    );
    assert!(
        rest.iter()
            .all(|chunk| chunk["usage"].is_null() && chunk.get("usage").is_some())
    );
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detail": {"type": "object", "properties": {"hourly": {"type": "boolean"}, "ratio": {"type": "number"}}},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city"]
        }}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"type": "string"}}
        }}}
    ])
}

#[tokio::test]
async fn tools_answer_with_a_call_built_from_the_schema() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut body = user("weather in Paris?");
    body["tools"] = weather_tools();
    let reply = json(post(&url, &body).await).await;
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("call_") && id.len() == 29, "{id}");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"city": "emulated", "unit": "celsius", "days": 1,
               "detail": {"hourly": true, "ratio": 1.5}, "tags": []})
    );
    // Same request, same id.
    let again = json(post(&url, &body).await).await;
    assert_eq!(again["choices"][0]["message"]["tool_calls"][0]["id"], id);

    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    let forced = json(post(&url, &body).await).await;
    assert_eq!(
        forced["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );

    body["tool_choice"] = json!("none");
    let none = json(post(&url, &body).await).await;
    assert_eq!(none["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn tools_all_directive_makes_parallel_calls_unless_disabled() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut body = user("both please [[tools:all]]");
    body["tools"] = weather_tools();
    let reply = json(post(&url, &body).await).await;
    let calls = reply["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<_> = calls
        .iter()
        .map(|call| call["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_ne!(calls[0]["id"], calls[1]["id"]);

    // Streamed calls reassemble to the same calls.
    body["stream"] = json!(true);
    let sse = post(&url, &body).await.text().await.unwrap();
    let chunks = chunks(&sse);
    let mut streamed = vec![(String::new(), String::new(), String::new()); 2];
    for chunk in &chunks {
        for delta in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let slot = &mut streamed[delta["index"].as_u64().unwrap() as usize];
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(delta["type"], "function");
                slot.0 = id.to_owned();
                slot.1 = delta["function"]["name"].as_str().unwrap().to_owned();
            } else {
                assert!(delta["function"]["arguments"].as_str().unwrap().len() <= 8);
            }
            slot.2
                .push_str(delta["function"]["arguments"].as_str().unwrap());
        }
    }
    for (call, (id, name, arguments)) in calls.iter().zip(&streamed) {
        assert_eq!(call["id"], id.as_str());
        assert_eq!(call["function"]["name"], name.as_str());
        assert_eq!(call["function"]["arguments"], arguments.as_str());
    }
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    body["stream"] = json!(false);
    body["parallel_tool_calls"] = json!(false);
    let single = json(post(&url, &body).await).await;
    assert_eq!(
        single["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn tool_results_are_summarized() {
    let emulator = start().await;
    let body = json!({"model": "m", "tools": weather_tools(), "messages": [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}
    ]});
    let reply =
        json(post(&format!("{}/h1/v1/chat/completions", emulator.url()), &body).await).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Emulated reply from h1 (m): tool results: sunny; noon"
    );
}

#[tokio::test]
async fn stop_and_max_tokens_cut_the_text() {
    let emulator = start().await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let mut body = user("one two three four");
    body["stop"] = json!(["three", "zzz"]);
    let stopped = json(post(&url, &body).await).await;
    assert_eq!(
        stopped["choices"][0]["message"]["content"],
        "Emulated reply from default (gpt-4o-mini): one two "
    );
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");

    let mut body = user("one two three four");
    body["max_tokens"] = json!(7);
    let cut = json(post(&url, &body).await).await;
    assert_eq!(
        cut["choices"][0]["message"]["content"],
        "Emulated reply from default (gpt-4o-mini): one two"
    );
    assert_eq!(cut["choices"][0]["finish_reason"], "length");
    assert_eq!(cut["usage"]["completion_tokens"], 7);

    body["stream"] = json!(true);
    let sse = post(&url, &body).await.text().await.unwrap();
    let chunks = chunks(&sse);
    assert_eq!(
        streamed_text(&chunks),
        "Emulated reply from default (gpt-4o-mini): one two"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn json_mode_returns_a_json_object_string() {
    let emulator = start().await;
    let mut body = user("give json");
    body["response_format"] = json!({"type": "json_object"});
    let reply = json(post(&format!("{}/x/v1/chat/completions", emulator.url()), &body).await).await;
    let content: Value =
        serde_json::from_str(reply["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content,
        json!({"emulated": true, "host": "x", "model": "gpt-4o-mini", "echo": "give json"})
    );
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_400s() {
    let emulator = start().await;
    let response = client()
        .post(format!("{}/v1/chat/completions", emulator.url()))
        .bearer_auth("k")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = json(response).await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parse the JSON body")
    );

    let response = post(
        &format!("{}/v1/chat/completions", emulator.url()),
        &json!({"model": "m"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"]["param"], "messages");
}

fn decode_base64(embedding: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(embedding.as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn floats(embedding: &Value) -> Vec<f32> {
    embedding
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn embeddings_float_and_base64_agree_and_are_unit_length() {
    let emulator = start().await;
    let url = format!("{}/v1/embeddings", emulator.url());
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"]});
    let float = json(post(&url, &body).await).await;
    assert_eq!(float["object"], "list");
    assert_eq!(float["model"], "text-embedding-3-small");
    assert_eq!(
        float["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = float["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    let first = floats(&data[0]["embedding"]);
    assert_eq!(first.len(), 1536);
    let norm: f64 = first
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert_ne!(first, floats(&data[1]["embedding"]));

    let mut body64 = body.clone();
    body64["encoding_format"] = json!("base64");
    let encoded = json(post(&url, &body64).await).await;
    assert_eq!(decode_base64(&encoded["data"][0]["embedding"]), first);

    let small = json(
        post(
            &url,
            &json!({"model": "m", "input": "hi", "dimensions": 256}),
        )
        .await,
    )
    .await;
    assert_eq!(floats(&small["data"][0]["embedding"]).len(), 256);

    let tokens = json(post(&url, &json!({"model": "m", "input": [[1, 2, 3], [4]]})).await).await;
    assert_eq!(tokens["data"].as_array().unwrap().len(), 2);
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);

    for empty in [json!(""), json!([])] {
        let response = post(&url, &json!({"model": "m", "input": empty})).await;
        assert_eq!(response.status(), 400);
        assert_eq!(
            json(response).await["error"]["type"],
            "invalid_request_error"
        );
    }
}

#[tokio::test]
async fn models_lists_the_emulated_model() {
    let emulator = start().await;
    let response = client()
        .get(format!("{}/oai/v1/models", emulator.url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        json!({"object": "list", "data": [{"id": "emulated-model", "object": "model", "created": 0, "owned_by": "treaty-emulator"}]})
    );
}

#[tokio::test]
async fn azure_deployment_routes_need_api_version_and_echo_the_deployment() {
    let emulator = start().await;
    let base = format!(
        "{}/azure-eastus/openai/deployments/gpt4o-prod",
        emulator.url()
    );
    let send = |url: String, body: Value| async move {
        client()
            .post(url)
            .header("api-key", "azure-key")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap()
    };
    let missing = send(format!("{base}/chat/completions"), user("hi")).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        json(missing).await,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );

    let ok = send(
        format!("{base}/chat/completions?api-version=2024-10-21"),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let reply = json(ok).await;
    assert_eq!(reply["model"], "gpt4o-prod");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Emulated reply from azure-eastus (gpt4o-prod): hi"
    );

    let embeddings = send(
        format!("{base}/embeddings?api-version=2024-10-21"),
        json!({"input": "hi"}),
    )
    .await;
    assert_eq!(json(embeddings).await["model"], "gpt4o-prod");

    // v1 style: model in the body, Entra bearer token accepted.
    let v1 = post(
        &format!("{}/azure-westus/openai/v1/chat/completions", emulator.url()),
        &user("hey"),
    )
    .await;
    assert_eq!(v1.status(), 200);
    assert_eq!(v1.headers()["x-emulator-host"], "azure-westus");
    let embeddings = post(
        &format!("{}/openai/v1/embeddings", emulator.url()),
        &json!({"model": "e", "input": "x"}),
    )
    .await;
    assert_eq!(embeddings.status(), 200);
}

#[tokio::test]
async fn missing_or_wrong_keys_get_401_without_echo() {
    let emulator = start_with(EmulatorConfig {
        api_key: Some("right-key".to_owned()),
        ..EmulatorConfig::default()
    })
    .await;
    let url = format!("{}/v1/chat/completions", emulator.url());
    let body = serde_json::to_vec(&user("hi")).unwrap();
    let missing = client().post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let error = json(missing).await;
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], Value::Null);

    let wrong = client()
        .post(&url)
        .bearer_auth("wrong-secret-key")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains("wrong-secret-key"));

    // An Azure api-key header is not an OpenAI credential.
    let azure_style = client()
        .post(&url)
        .header("api-key", "right-key")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(azure_style.status(), 401);

    let right = client()
        .post(&url)
        .bearer_auth("right-key")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}
