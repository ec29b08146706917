#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Responses and Conversations APIs as a client uses them, in-process
//! on the shipped Frontier example, against the emulator: stored state and
//! its reads, chaining, streaming, tools, errors, tenant isolation, and
//! where the contracts let this instance hold state (with the ledger's
//! evidence of it).

use std::collections::HashMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

struct Gw {
    app: axum::Router,
    gateway: Gateway,
    _emulator: EmulatorHandle,
    keys: HashMap<(&'static str, &'static str, &'static str), String>,
    _dir: tempfile::TempDir,
}

/// The Frontier example under `reading`, its instance moved by `tweak`,
/// with a key per tenant × channel × product the tests use.
async fn gateway(reading: &str, tweak: impl Fn(&mut Config)) -> Gw {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &emulator.url());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.contracts.as_mut().unwrap().reading = reading.to_owned();
    config.routing.health_check_interval = std::time::Duration::ZERO;
    tweak(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let store =
        treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .unwrap();
    let mut keys = HashMap::new();
    for t in ["acme", "dod", "eurobank"] {
        for c in ["direct", "aws-marketplace"] {
            for p in ["api", "frontier"] {
                let (m, _) = treaty_keys::issue(
                    &store,
                    KeyRequest {
                        tenant: t.into(),
                        channel: c.into(),
                        product: p.into(),
                        name: None,
                        models: None,
                        declare_classes: None,
                        expires_at: None,
                    },
                )
                .await
                .unwrap();
                keys.insert((t, c, p), m.secret);
            }
        }
    }
    let gateway = Gateway::open(config, store, &env).await.unwrap();
    Gw {
        app: treaty_gateway::app(gateway.clone()),
        gateway,
        _emulator: emulator,
        keys,
        _dir: dir,
    }
}

/// The default gateway: an Azure instance under reading-openai.
async fn openai() -> Gw {
    gateway("reading-openai", |_| {}).await
}

fn on_aws(c: &mut Config) {
    c.instance = treaty_domain::Instance {
        id: "treaty-aws-useast1".into(),
        cloud: "aws".into(),
        region: "us-east".into(),
    };
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The SSE events as (event name, data JSON).
    fn events(&self) -> Vec<(String, Value)> {
        self.text()
            .split("\n\n")
            .filter(|f| !f.trim().is_empty())
            .map(|frame| {
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                (name, serde_json::from_str(&data).unwrap())
            })
            .collect()
    }
}

impl Gw {
    fn key(&self, t: &str, c: &str, p: &str) -> String {
        self.keys
            .iter()
            .find(|((kt, kc, kp), _)| (*kt, *kc, *kp) == (t, c, p))
            .map(|(_, k)| k.clone())
            .unwrap()
    }

    /// acme's direct `api` key.
    fn acme(&self) -> String {
        self.key("acme", "direct", "api")
    }

    /// dod's direct `api` key: another tenant.
    fn dod(&self) -> String {
        self.key("dod", "direct", "api")
    }

    async fn raw(&self, method: &str, path: &str, key: &str, body: Body) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(body)
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.raw(
            "POST",
            path,
            key,
            Body::from(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    async fn get(&self, path: &str, key: &str) -> Reply {
        self.raw("GET", path, key, Body::empty()).await
    }

    async fn delete(&self, path: &str, key: &str) -> Reply {
        self.raw("DELETE", path, key, Body::empty()).await
    }

    /// Creates a response with acme's key; asserts 200.
    async fn respond(&self, body: Value) -> Value {
        let r = self.post("/v1/responses", &self.acme(), body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Every decision record in the ledger, in order.
    async fn decisions(&self) -> Vec<Value> {
        self.gateway.engine.ledger.flush().await.unwrap();
        let mut out = Vec::new();
        treaty_ledger::export(
            &self.gateway.engine.store,
            treaty_ledger::Format::Jsonl,
            &mut out,
        )
        .await
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["kind"] == "decision")
            .map(|l| l["record"].clone())
            .collect()
    }
}

fn input(text: &str) -> Value {
    json!({"model": "gpt-4o", "input": text})
}

/// The concatenated `output_text` parts, as the SDKs' `output_text`.
fn output_text(response: &Value) -> String {
    let mut out = String::new();
    for item in response["output"].as_array().unwrap() {
        if item["type"] == "message" {
            for part in item["content"].as_array().unwrap() {
                if part["type"] == "output_text" {
                    out.push_str(part["text"].as_str().unwrap());
                }
            }
        }
    }
    out
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}])
}

// ------------------------------------------------------------- responses

#[tokio::test]
async fn a_stored_response_reads_back_as_it_was_returned() {
    let g = openai().await;
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            input("Plan the onboarding agent."),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-treaty-host").unwrap().starts_with("azure-"));
    assert_eq!(r.header("x-treaty-class"), Some("stateless_api"));
    let created = r.json();
    assert_eq!(created["object"], "response");
    assert_eq!(created["status"], "completed");
    assert_eq!(created["store"], true);
    assert!(created["id"].as_str().unwrap().starts_with("resp_"));
    let text = output_text(&created);
    assert!(text.starts_with("Emulated reply from azure-"), "{text}");
    assert!(text.ends_with("Plan the onboarding agent."), "{text}");
    let usage = &created["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    let id = created["id"].as_str().unwrap();
    let got = g.get(&format!("/v1/responses/{id}"), &g.acme()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json(), created);
}

#[tokio::test]
async fn an_unstored_response_cannot_be_read_back_and_holds_no_state() {
    let g = openai().await;
    let mut body = input("Nothing to keep.");
    body["store"] = json!(false);
    let created = g.respond(body).await;
    assert_eq!(created["store"], false);
    assert!(output_text(&created).ends_with("Nothing to keep."));
    let id = created["id"].as_str().unwrap();
    let got = g.get(&format!("/v1/responses/{id}"), &g.acme()).await;
    assert_eq!(got.status, 404, "{}", got.text());
    assert_eq!(got.json()["error"]["code"], "not_found");

    // One decision: the request itself, stateless, no hold verdict.
    let decisions = g.decisions().await;
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    let d = &decisions[0];
    assert!(d.get("runtime").is_none(), "{d}");
    assert_eq!(d["model_step"], false);
    assert_eq!(d["workload_class"], "stateless_api");
    assert_eq!(d["route"], "/v1/responses");
}

#[tokio::test]
async fn chaining_keeps_the_earlier_turns_in_context() {
    let g = openai().await;
    let first = g.respond(input("My name is Ada.")).await;
    let second = g
        .respond(json!({"model": "gpt-4o", "input": "I live in Paris.",
                        "previous_response_id": first["id"]}))
        .await;
    assert_eq!(second["previous_response_id"], first["id"]);
    let third = g
        .respond(json!({"model": "gpt-4o", "input": "[[recall]] who am I?",
                        "previous_response_id": second["id"]}))
        .await;
    let text = output_text(&third);
    assert!(
        text.ends_with("earlier user messages: My name is Ada. | I live in Paris."),
        "{text}"
    );
    // Without the link, the model sees nothing earlier.
    let alone = g.respond(input("[[recall]] who am I?")).await;
    assert!(
        output_text(&alone).ends_with("earlier user messages: "),
        "{}",
        output_text(&alone)
    );
}

#[tokio::test]
async fn input_items_list_newest_first_with_a_cursor() {
    let g = openai().await;
    let created = g
        .respond(json!({"model": "gpt-4o", "input": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
        ]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/responses/{id}/input_items");
    let all = g.get(&path, &g.acme()).await;
    assert_eq!(all.status, 200, "{}", all.text());
    let all = all.json();
    assert_eq!(all["object"], "list");
    assert_eq!(all["has_more"], false);
    let texts: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three", "two", "one"], "desc by default");
    let all_ids = ids(&all);
    assert_eq!(all["first_id"], all_ids[0].as_str());
    assert_eq!(all["last_id"], all_ids[2].as_str());

    let page = g.get(&format!("{path}?limit=1"), &g.acme()).await.json();
    assert_eq!(
        (ids(&page), &page["has_more"]),
        (vec![all_ids[0].clone()], &json!(true))
    );
    let next = g
        .get(&format!("{path}?limit=1&after={}", all_ids[0]), &g.acme())
        .await
        .json();
    assert_eq!(ids(&next), [all_ids[1].clone()]);
    assert_eq!(next["has_more"], true);
    let asc = g.get(&format!("{path}?order=asc"), &g.acme()).await.json();
    let mut reversed = all_ids.clone();
    reversed.reverse();
    assert_eq!(ids(&asc), reversed);
}

#[tokio::test]
async fn a_deleted_response_is_gone_and_a_finished_one_cannot_be_cancelled() {
    let g = openai().await;
    let created = g.respond(input("short-lived")).await;
    let id = created["id"].as_str().unwrap();

    let cancel = g
        .post(&format!("/v1/responses/{id}/cancel"), &g.acme(), json!({}))
        .await;
    assert_eq!(cancel.status, 400, "{}", cancel.text());
    assert_eq!(cancel.json()["error"]["type"], "invalid_request_error");

    let deleted = g.delete(&format!("/v1/responses/{id}"), &g.acme()).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"], true);
    assert_eq!(deleted.json()["id"], id);
    for path in [
        format!("/v1/responses/{id}"),
        format!("/v1/responses/{id}/input_items"),
    ] {
        assert_eq!(g.get(&path, &g.acme()).await.status, 404, "{path}");
    }
    assert_eq!(
        g.delete(&format!("/v1/responses/{id}"), &g.acme())
            .await
            .status,
        404
    );
    let chained = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "more", "previous_response_id": id}),
        )
        .await;
    assert_eq!(chained.status, 404);
}

#[tokio::test]
async fn a_stream_follows_the_event_rules_and_is_stored_as_it_ended() {
    let g = openai().await;
    let prompt = "Stream these seven words to me please.";
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": prompt, "stream": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.events();
    assert!(events.len() > 4, "{events:?}");
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events[1].0, "response.in_progress");
    assert_eq!(events.last().unwrap().0, "response.completed");
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "the event name is its type");
        assert_eq!(data["sequence_number"], i as u64, "no gaps: {name}");
    }
    let created = &events[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert!(deltas.ends_with(prompt), "{deltas}");
    let done = events
        .iter()
        .find(|(n, _)| n == "response.output_text.done")
        .unwrap();
    assert_eq!(done.1["text"], deltas.as_str());
    let last = &events.last().unwrap().1["response"];
    assert_eq!(last["status"], "completed");
    assert_eq!(last["id"], created["id"]);
    assert_eq!(output_text(last), deltas);
    assert!(last["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let id = last["id"].as_str().unwrap();
    let stored = g.get(&format!("/v1/responses/{id}"), &g.acme()).await;
    assert_eq!(stored.status, 200);
    assert_eq!(&stored.json(), last, "stored as the final event said");
}

#[tokio::test]
async fn a_function_tool_round_trip_answers_from_the_result() {
    let g = openai().await;
    let first = g
        .respond(
            json!({"model": "gpt-4o", "input": "What is the weather in Paris?",
                        "tools": weather_tool()}),
        )
        .await;
    let output = first["output"].as_array().unwrap();
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call in {first}"));
    assert_eq!(call["name"], "get_weather");
    assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));
    serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap();

    let second = g
        .respond(
            json!({"model": "gpt-4o", "previous_response_id": first["id"],
                        "tools": weather_tool(),
                        "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                   "output": "{\"temperature_c\": 21}"}]}),
        )
        .await;
    let text = output_text(&second);
    assert!(
        text.contains("tool results: {\"temperature_c\": 21}"),
        "{second}"
    );

    // The same turn streamed: a function call item built from deltas.
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "Weather in Oslo?", "tools": weather_tool(),
                   "stream": true}),
        )
        .await;
    let events = r.events();
    let last = &events.last().unwrap().1["response"];
    assert_eq!(events.last().unwrap().0, "response.completed", "{events:?}");
    let call = &last["output"][0];
    assert_eq!(call["type"], "function_call", "{last}");
    let args: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(call["arguments"], args.as_str());
}

#[tokio::test]
async fn bad_requests_are_refused_in_the_openai_shape() {
    let g = openai().await;
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "x", "previous_response_id": "resp_nope"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "previous_response_id");
    assert_eq!(r.json()["error"]["code"], "not_found");
    // Refused before any state is held: the ledger has no hold for it.
    assert_eq!(g.decisions().await, Vec::<Value>::new());

    let r = g
        .raw(
            "POST",
            "/v1/responses",
            &g.acme(),
            Body::from("{\"model\": "),
        )
        .await;
    assert_eq!(r.status, 400);
    let e = r.json()["error"].clone();
    let mut fields: Vec<&String> = e.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["code", "message", "param", "type"]);
    assert_eq!(e["type"], "invalid_request_error");

    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "x", "background": true}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "background");

    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "x", "conversation": "conv_nope"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["param"], "conversation");

    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "x", "tools": [{"type": "web_search"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "tools[0].type");

    let r = g
        .get("/v1/responses/resp_nope/input_items?limit=0", &g.acme())
        .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // An unknown model: refused before any state is decided on or kept.
    let before = g.decisions().await.len();
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-9", "input": "x"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert_eq!(g.decisions().await.len(), before);
}

// --------------------------------------------------------- conversations

#[tokio::test]
async fn a_conversation_collects_each_turn_in_order() {
    let g = openai().await;
    let conv = g
        .post(
            "/v1/conversations",
            &g.acme(),
            json!({"items": [{"role": "user", "content": "My name is Ada."},
                             {"role": "assistant", "content": "Hello Ada."}],
                   "metadata": {"topic": "intro"}}),
        )
        .await;
    assert_eq!(conv.status, 200, "{}", conv.text());
    let conv = conv.json();
    assert_eq!(conv["object"], "conversation");
    assert_eq!(conv["metadata"], json!({"topic": "intro"}));
    let id = conv["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("conv_"));
    let path = format!("/v1/conversations/{id}");
    assert_eq!(g.get(&path, &g.acme()).await.json(), conv);

    let turn = g
        .respond(json!({"model": "gpt-4o", "input": "[[recall]] who am I?",
                        "conversation": id}))
        .await;
    assert_eq!(turn["conversation"], json!({"id": id}));
    assert!(
        output_text(&turn).ends_with("earlier user messages: My name is Ada."),
        "{}",
        output_text(&turn)
    );
    let added = g
        .post(
            &format!("{path}/items"),
            &g.acme(),
            json!({"items": [{"role": "user", "content": "I live in Paris."}]}),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(added.json()["data"].as_array().unwrap().len(), 1);
    let again = g
        .respond(json!({"model": "gpt-4o", "input": "[[recall]] and where?",
                        "conversation": {"id": id}}))
        .await;
    assert!(
        output_text(&again).ends_with("earlier user messages: My name is Ada. | I live in Paris."),
        "{}",
        output_text(&again)
    );

    // Items: the two initial ones, then each turn's input and output.
    let items = g.get(&format!("{path}/items?order=asc"), &g.acme()).await;
    assert_eq!(items.status, 200, "{}", items.text());
    let items = items.json();
    let texts: Vec<String> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 7, "{texts:?}");
    assert_eq!(texts[0], "My name is Ada.");
    assert_eq!(texts[1], "Hello Ada.");
    assert_eq!(texts[2], "[[recall]] who am I?");
    assert_eq!(texts[3], output_text(&turn));
    assert_eq!(texts[4], "I live in Paris.");
    assert_eq!(texts[5], "[[recall]] and where?");
    assert_eq!(texts[6], output_text(&again));
    assert_eq!(items["data"][3]["role"], "assistant");
    assert_eq!(items["data"][3]["id"], turn["output"][0]["id"]);
    let all = ids(&items);

    // Newest first by default; pages of two, in order.
    let newest = g.get(&format!("{path}/items"), &g.acme()).await.json();
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(ids(&newest), reversed);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("{path}/items?order=asc&limit=2&after={a}"),
            None => format!("{path}/items?order=asc&limit=2"),
        };
        let page = g.get(&q, &g.acme()).await.json();
        paged.extend(ids(&page));
        if page["has_more"] == false {
            break;
        }
        after = Some(page["last_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(paged, all);
    let desc = g
        .get(&format!("{path}/items?order=desc&limit=3"), &g.acme())
        .await
        .json();
    assert_eq!(ids(&desc), [all[6].clone(), all[5].clone(), all[4].clone()]);
    assert_eq!(desc["has_more"], true);

    // One item, then without it.
    let one = g.get(&format!("{path}/items/{}", all[1]), &g.acme()).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["content"][0]["text"], "Hello Ada.");
    let gone = g
        .delete(&format!("{path}/items/{}", all[1]), &g.acme())
        .await;
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_eq!(gone.json()["id"], id.as_str());
    assert_eq!(
        g.get(&format!("{path}/items/{}", all[1]), &g.acme())
            .await
            .status,
        404
    );
    let items = g
        .get(&format!("{path}/items?limit=100"), &g.acme())
        .await
        .json();
    assert_eq!(items["data"].as_array().unwrap().len(), 6);

    // Metadata replaced.
    let updated = g
        .post(&path, &g.acme(), json!({"metadata": {"topic": "moved"}}))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["metadata"], json!({"topic": "moved"}));
    assert_eq!(
        g.get(&path, &g.acme()).await.json()["metadata"]["topic"],
        "moved"
    );

    // Deleted: every read is a 404.
    let deleted = g.delete(&path, &g.acme()).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.json(),
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    assert_eq!(g.get(&path, &g.acme()).await.status, 404);
    assert_eq!(g.get(&format!("{path}/items"), &g.acme()).await.status, 404);
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "hi", "conversation": id}),
        )
        .await;
    assert_eq!(r.status, 404);
}

// ------------------------------------------------------------- isolation

#[tokio::test]
async fn another_tenant_sees_none_of_it() {
    let g = openai().await;
    let (acme, dod) = (g.acme(), g.dod());
    let resp = g.respond(input("acme's secret plan")).await;
    let rid = resp["id"].as_str().unwrap().to_owned();
    let conv = g
        .post(
            "/v1/conversations",
            &acme,
            json!({"items": [{"role": "user", "content": "acme's notes"}]}),
        )
        .await
        .json();
    let cid = conv["id"].as_str().unwrap().to_owned();
    let item = g
        .get(&format!("/v1/conversations/{cid}/items"), &acme)
        .await
        .json();
    let iid = item["data"][0]["id"].as_str().unwrap().to_owned();

    let not_found = |r: Reply, what: &str| {
        assert_eq!(r.status, 404, "{what}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "not_found", "{what}");
        assert!(!r.text().contains("acme's"), "{what} leaks content");
    };
    not_found(
        g.get(&format!("/v1/responses/{rid}"), &dod).await,
        "GET response",
    );
    not_found(
        g.get(&format!("/v1/responses/{rid}/input_items"), &dod)
            .await,
        "input_items",
    );
    not_found(
        g.post(&format!("/v1/responses/{rid}/cancel"), &dod, json!({}))
            .await,
        "cancel",
    );
    not_found(
        g.delete(&format!("/v1/responses/{rid}"), &dod).await,
        "DELETE response",
    );
    not_found(
        g.post(
            "/v1/responses",
            &dod,
            json!({"model": "gpt-4o", "input": "[[recall]]", "previous_response_id": rid}),
        )
        .await,
        "previous_response_id",
    );
    let c = format!("/v1/conversations/{cid}");
    not_found(g.get(&c, &dod).await, "GET conversation");
    not_found(
        g.post(&c, &dod, json!({"metadata": {"x": "y"}})).await,
        "update conversation",
    );
    not_found(g.get(&format!("{c}/items"), &dod).await, "list items");
    not_found(
        g.post(
            &format!("{c}/items"),
            &dod,
            json!({"items": [{"role": "user", "content": "intrusion"}]}),
        )
        .await,
        "create items",
    );
    not_found(g.get(&format!("{c}/items/{iid}"), &dod).await, "GET item");
    not_found(
        g.delete(&format!("{c}/items/{iid}"), &dod).await,
        "DELETE item",
    );
    not_found(
        g.post(
            "/v1/responses",
            &dod,
            json!({"model": "gpt-4o", "input": "[[recall]]", "conversation": cid}),
        )
        .await,
        "response in conversation",
    );
    not_found(g.delete(&c, &dod).await, "DELETE conversation");

    // acme still has everything, untouched.
    assert_eq!(
        g.get(&format!("/v1/responses/{rid}"), &acme).await.json(),
        resp
    );
    let items = g.get(&format!("{c}/items"), &acme).await.json();
    assert_eq!(ids(&items), [iid]);
    assert_eq!(g.get(&c, &acme).await.json()["metadata"], json!({}));
}

// ------------------------------------------------------------- placement

#[tokio::test]
async fn an_aws_instance_may_hold_frontier_state_only_under_reading_aws() {
    let body = || input("Frontier agent turn.");
    let microsoft = gateway("reading-microsoft", on_aws).await;
    for channel in ["direct", "aws-marketplace"] {
        let r = microsoft
            .post(
                "/v1/responses",
                &microsoft.key("acme", channel, "frontier"),
                body(),
            )
            .await;
        assert_eq!(r.status, 403, "{channel}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "contract_refused");
        // Through aws-marketplace C4m refuses the sale itself first.
        let expected = if channel == "direct" { "C2" } else { "C4m" };
        assert_eq!(r.header("x-treaty-clauses"), Some(expected), "{channel}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected)
        );
    }
    // The API product's state is not first-party: held here, while its
    // model step still runs on Azure (C1), another cloud than the instance.
    let api = microsoft
        .post("/v1/responses", &microsoft.acme(), body())
        .await;
    assert_eq!(api.status, 200, "{}", api.text());
    let api_id = api.json()["id"].as_str().unwrap().to_owned();
    let decisions = microsoft.decisions().await;
    let refused = &decisions[0];
    assert_eq!(refused["product"], "frontier");
    assert_eq!(refused["channel"], "direct");
    assert_eq!(refused["workload_class"], "stateful_agent");
    assert_eq!(refused["refused"], "contract_refused");
    assert_eq!(
        refused["runtime"],
        json!({"instance": "treaty-aws-useast1", "cloud": "aws", "region": "us-east",
               "allowed": false, "clauses": ["C2"]})
    );
    assert!(
        decisions
            .iter()
            .all(|d| d["model_step"] == false || d["run_id"] == api_id.as_str()),
        "a refused response made no model step"
    );
    let step = decisions
        .iter()
        .find(|d| d["model_step"] == true && d["run_id"] == api_id.as_str())
        .unwrap();
    assert_eq!(step["workload_class"], "stateless_api");
    assert!(
        step["chosen"].as_str().unwrap().starts_with("azure-"),
        "{step}"
    );
    assert_eq!(step["route"], "/v1/chat/completions");

    let aws = gateway("reading-aws", on_aws).await;
    let r = aws
        .post(
            "/v1/responses",
            &aws.key("acme", "direct", "frontier"),
            body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let host = r.header("x-treaty-host").unwrap().to_owned();
    assert_eq!(r.header("x-treaty-class"), Some("non_api_product"));
    let decisions = aws.decisions().await;
    let hold = decisions
        .iter()
        .find(|d| d["run_id"] == id.as_str() && d["model_step"] == false)
        .unwrap();
    assert_eq!(hold["workload_class"], "stateful_agent");
    assert_eq!(hold["runtime"]["allowed"], true);
    assert_eq!(hold["runtime"]["cloud"], "aws");
    assert!(
        hold["runtime"]["clauses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "H0"),
        "{hold}"
    );
    assert!(hold["refused"].is_null());
    let step = decisions
        .iter()
        .find(|d| d["run_id"] == id.as_str() && d["model_step"] == true)
        .unwrap();
    assert_eq!(step["workload_class"], "non_api_product");
    assert_eq!(step["chosen"], host.as_str());
    assert_eq!(step["product"], "frontier");
    assert_eq!(step["tenant"], "acme");
    assert!(step.get("runtime").is_none());
    assert!(
        step["request_id"].as_str().unwrap().ends_with(".1"),
        "{step}"
    );
    assert_eq!(
        format!("{}.1", hold["request_id"].as_str().unwrap()),
        step["request_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn conversations_ask_to_hold_state_too() {
    let g = gateway("reading-microsoft", on_aws).await;
    let r = g
        .post(
            "/v1/conversations",
            &g.key("acme", "direct", "frontier"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-treaty-clauses"), Some("C2"));
    let r = g.post("/v1/conversations", &g.acme(), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let decisions = g.decisions().await;
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["runtime"]["allowed"], false);
    assert_eq!(decisions[1]["runtime"]["allowed"], true);
    assert_eq!(decisions[1]["run_id"], r.json()["id"]);
}

// ----------------------------------------------------- endings and cancels

#[tokio::test]
async fn a_cut_off_reply_is_incomplete_streamed_or_not() {
    let g = openai().await;
    let body = json!({"model": "gpt-4o", "input": "one two three four five six seven",
                      "max_output_tokens": 3});
    let plain = g.respond(body.clone()).await;
    assert_eq!(plain["status"], "incomplete", "{plain}");
    assert_eq!(plain["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(plain["output"][0]["status"], "incomplete");

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = g.post("/v1/responses", &g.acme(), streamed).await;
    let events = r.events();
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.incomplete", "{events:?}");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let id = last["response"]["id"].as_str().unwrap();
    let stored = g
        .get(&format!("/v1/responses/{id}"), &g.acme())
        .await
        .json();
    assert_eq!(stored, last["response"]);
}

#[tokio::test]
async fn a_stream_cut_by_the_host_ends_failed_and_is_stored_failed() {
    let g = openai().await;
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "stream": true,
                   "input": "a b c d e f g h i j [[fault:truncate=2]]"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.events();
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string());
    let id = last["response"]["id"].as_str().unwrap();
    let stored = g
        .get(&format!("/v1/responses/{id}"), &g.acme())
        .await
        .json();
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored, last["response"]);
}

#[tokio::test]
async fn a_response_being_streamed_can_be_cancelled() {
    let g = openai().await;
    let conv = g
        .post("/v1/conversations", &g.acme(), json!({}))
        .await
        .json();
    let conv = conv["id"].as_str().unwrap();
    let body = json!({"model": "gpt-4o", "stream": true, "conversation": conv,
                      "input": "one two three four five six seven eight [[fault:slow=100]]"});
    let req = Request::builder()
        .method("POST")
        .uri("/v1/responses")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", g.acme()))
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let res = g.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    // The first frame is `response.created`, naming the response.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    let data = first.split("data: ").nth(1).unwrap().trim();
    let id = serde_json::from_str::<Value>(data).unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = g
        .post(&format!("/v1/responses/{id}/cancel"), &g.acme(), json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(cancelled.json()["id"], id.as_str());
    // The live stream stops: its last event is the response, cancelled,
    // and it never claims to have completed.
    let rest = body.collect().await.unwrap().to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    assert!(!rest.contains("response.completed"), "{rest}");
    let last = rest
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .last()
        .unwrap();
    assert!(last.starts_with("event: response.incomplete\n"), "{last}");
    let last: Value = serde_json::from_str(last.split("data: ").nth(1).unwrap().trim()).unwrap();
    assert_eq!(last["response"]["status"], "cancelled");
    assert_eq!(last["response"]["id"], id.as_str());
    let stored = g
        .get(&format!("/v1/responses/{id}"), &g.acme())
        .await
        .json();
    assert_eq!(stored["status"], "cancelled");
    let items = g
        .get(&format!("/v1/conversations/{conv}/items"), &g.acme())
        .await
        .json();
    assert_eq!(items["data"], json!([]), "a cancelled turn does not join");
}

#[tokio::test]
async fn a_streamed_turn_joins_its_conversation() {
    let g = openai().await;
    let conv = g
        .post(
            "/v1/conversations",
            &g.acme(),
            json!({"items": [{"role": "user", "content": "My name is Ada."}]}),
        )
        .await
        .json();
    let id = conv["id"].as_str().unwrap();
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "stream": true, "conversation": id,
                   "input": "[[recall]] who?"}),
        )
        .await;
    let events = r.events();
    let last = &events.last().unwrap().1["response"];
    assert!(output_text(last).ends_with("earlier user messages: My name is Ada."));
    let items = g
        .get(
            &format!("/v1/conversations/{id}/items?order=asc"),
            &g.acme(),
        )
        .await
        .json();
    let data = items["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{items}");
    assert_eq!(data[2]["id"], last["output"][0]["id"]);
    assert_eq!(data[2]["content"][0]["text"], output_text(last).as_str());
}

#[tokio::test]
async fn parallel_calls_come_back_as_one_item_each_and_answer_together() {
    let g = openai().await;
    let mut tools = weather_tool();
    tools
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function", "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}));
    let ask = json!({"model": "gpt-4o", "input": "Weather and time? [[tools:all]]",
                     "tools": tools});
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = g.post("/v1/responses", &g.acme(), streamed).await;
    let events = r.events();
    assert_eq!(events.last().unwrap().0, "response.completed", "{events:?}");
    let from_stream = &events.last().unwrap().1["response"];
    let names: Vec<&str> = from_stream["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_time"]);

    let first = g.respond(ask).await;
    let calls: Vec<&Value> = first["output"].as_array().unwrap().iter().collect();
    assert_eq!(calls.len(), 2, "{first}");
    let outputs: Vec<Value> = calls
        .iter()
        .zip(["sunny", "noon"])
        .map(|(c, out)| json!({"type": "function_call_output", "call_id": c["call_id"], "output": out}))
        .collect();
    let second = g
        .respond(
            json!({"model": "gpt-4o", "previous_response_id": first["id"],
                        "tools": tools, "input": outputs}),
        )
        .await;
    assert!(
        output_text(&second).ends_with("tool results: sunny; noon"),
        "{second}"
    );
}

#[tokio::test]
async fn an_item_id_names_one_item_of_a_conversation() {
    let g = openai().await;
    let item = json!({"id": "msg_mine", "role": "user", "content": "hello"});
    let twice = g
        .post(
            "/v1/conversations",
            &g.acme(),
            json!({"items": [item, item]}),
        )
        .await;
    assert_eq!(twice.status, 400, "{}", twice.text());
    assert_eq!(twice.json()["error"]["param"], "items[1].id");
    let conv = g
        .post("/v1/conversations", &g.acme(), json!({"items": [item]}))
        .await;
    assert_eq!(conv.status, 200, "{}", conv.text());
    let id = conv.json()["id"].as_str().unwrap().to_owned();

    let again = g
        .post(
            &format!("/v1/conversations/{id}/items"),
            &g.acme(),
            json!({"items": [{"role": "user", "content": "new"}, item]}),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()["error"]["param"], "items[1].id");
    assert!(
        again.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("msg_mine")
    );

    // Refused before the model step: a turn is never answered and lost.
    let turn = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "conversation": id, "input": [item]}),
        )
        .await;
    assert_eq!(turn.status, 400, "{}", turn.text());
    assert_eq!(turn.json()["error"]["param"], "input[0].id");
    let items = g
        .get(&format!("/v1/conversations/{id}/items"), &g.acme())
        .await
        .json();
    assert_eq!(ids(&items), ["msg_mine"]);
}

#[tokio::test]
async fn eu_state_is_not_held_by_a_us_instance() {
    let g = openai().await;
    let key = g.key("eurobank", "direct", "api");
    // R1 covers holding state: this instance is in us-east.
    let r = g.post("/v1/responses", &key, input("Bonjour.")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-treaty-clauses"), Some("R1"));
    let r = g.post("/v1/conversations", &key, json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Stateless, the same request runs in the EU.
    let mut body = input("Bonjour.");
    body["store"] = json!(false);
    let r = g.post("/v1/responses", &key, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-treaty-host"), Some("azure-westeurope"));
}

#[tokio::test]
async fn a_batched_ledger_still_records_every_step_before_the_end() {
    let g = gateway("reading-openai", |c| c.ledger.strict = false).await;
    let plain = g.respond(input("batched plain")).await;
    let r = g
        .post(
            "/v1/responses",
            &g.acme(),
            json!({"model": "gpt-4o", "input": "batched stream", "stream": true}),
        )
        .await;
    let events = r.events();
    assert_eq!(events.last().unwrap().0, "response.completed");
    let streamed = events.last().unwrap().1["response"]["id"].clone();
    let decisions = g.decisions().await;
    for id in [&plain["id"], &streamed] {
        let for_it: Vec<&Value> = decisions.iter().filter(|d| &d["run_id"] == id).collect();
        assert_eq!(for_it.len(), 2, "a hold and a step for {id}");
        assert_eq!(for_it[0]["runtime"]["allowed"], true);
        assert_eq!(for_it[1]["model_step"], true);
    }
}

/// The Vercel AI SDK's loop with `store` on: earlier turns come back as
/// `item_reference` inputs, resolved from the tenant's own stored items
/// (input and output) so the model sees them; another tenant's id, or an
/// unstored one, answers as an unknown id does.
#[tokio::test]
async fn item_references_name_the_tenants_own_stored_items() {
    let g = openai().await;
    let first = g.respond(input("My name is Ada.")).await;
    let rid = first["id"].as_str().unwrap();
    let answer_id = first["output"][0]["id"].as_str().unwrap().to_owned();
    let asked = g
        .get(&format!("/v1/responses/{rid}/input_items"), &g.acme())
        .await
        .json();
    let question_id = asked["data"][0]["id"].as_str().unwrap().to_owned();

    let second = g
        .respond(json!({"model": "gpt-4o", "input": [
            {"type": "item_reference", "id": question_id},
            {"type": "item_reference", "id": answer_id},
            {"role": "user", "content": "[[recall]] who am I?"},
        ]}))
        .await;
    let text = output_text(&second);
    assert!(
        text.ends_with("earlier user messages: My name is Ada."),
        "{text}"
    );
    // Stored as the items they named.
    let sid = second["id"].as_str().unwrap();
    let items = g
        .get(
            &format!("/v1/responses/{sid}/input_items?order=asc"),
            &g.acme(),
        )
        .await
        .json();
    assert_eq!(items["data"][0]["id"], question_id.as_str());
    assert_eq!(items["data"][1]["id"], answer_id.as_str());
    assert_eq!(items["data"][1]["role"], "assistant");
    assert_eq!(items["data"][1]["content"], first["output"][0]["content"]);

    // A conversation may be started from stored items too.
    let conv = g
        .post(
            "/v1/conversations",
            &g.acme(),
            json!({"items": [{"type": "item_reference", "id": answer_id}]}),
        )
        .await;
    assert_eq!(conv.status, 200, "{}", conv.text());

    // Another tenant's id, an unknown one and an unstored response's are
    // answered alike, naming the input item.
    let unstored = g
        .respond(json!({"model": "gpt-4o", "input": "hi", "store": false}))
        .await;
    let unstored_id = unstored["output"][0]["id"].as_str().unwrap().to_owned();
    let refused = |id: &str, key: String| {
        let g = &g;
        let id = id.to_owned();
        async move {
            let r = g
                .post(
                    "/v1/responses",
                    &key,
                    json!({"model": "gpt-4o", "input": [
                        {"role": "user", "content": "hi"},
                        {"type": "item_reference", "id": id},
                    ]}),
                )
                .await;
            assert_eq!(r.status, 404, "{id}: {}", r.text());
            let e = r.json()["error"].clone();
            assert_eq!(e["code"], "not_found");
            assert_eq!(e["param"], "input[1]");
            assert_eq!(e["message"], format!("Item with id '{id}' not found."));
        }
    };
    refused(&answer_id, g.dod()).await;
    refused(&answer_id, g.key("acme", "direct", "frontier")).await;
    refused("msg_nothing", g.acme()).await;
    refused(&unstored_id, g.acme()).await;
}
