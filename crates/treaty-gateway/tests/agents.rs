#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Agents and their durable runs as a client uses them, in-process on the
//! shipped Frontier example with the run workers started, against the
//! emulator (model, webhook receiver and MCP server): a function tool
//! answered by the client, calls that wait for a person's approval (and
//! what a denial tells the model), a signed webhook call and the run's
//! event stream, MCP tools over Streamable HTTP and `allowed_tools`, the
//! Cedar `use` action refusing an EU tenant's webhook, tenant isolation of
//! every agent and run endpoint, cancellation, and run pagination.
//!
//! Each test has its own emulator, store and workers, so webhook counts
//! and run lists are the test's own.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

/// How long a run may take to reach a state the test waits for.
const DEADLINE: Duration = Duration::from_secs(20);

struct Gw {
    app: axum::Router,
    gateway: Gateway,
    emulator: EmulatorHandle,
    keys: HashMap<&'static str, String>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

/// The Frontier example under reading-openai, moved by `tweak`, with its
/// run workers started and a `frontier` key (channel `direct`) for each
/// tenant.
async fn gateway(tweak: impl Fn(&mut Config)) -> Gw {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &emulator.url());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.contracts.as_mut().unwrap().reading = "reading-openai".to_owned();
    config.routing.health_check_interval = Duration::ZERO;
    // Runs are claimed on a wake-up from this instance; the poll only
    // matters for re-queued runs, so keep it short for fast tests.
    config.agents.poll_interval = Duration::from_millis(20);
    tweak(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let store =
        treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .unwrap();
    let mut keys = HashMap::new();
    for t in ["acme", "dod", "eurobank"] {
        let (minted, _) = treaty_keys::issue(
            &store,
            KeyRequest {
                tenant: t.into(),
                channel: "direct".into(),
                product: "frontier".into(),
                name: None,
                models: None,
                declare_classes: None,
                expires_at: None,
            },
        )
        .await
        .unwrap();
        keys.insert(t, minted.secret);
    }
    let gateway = Gateway::open(config, store, &env).await.unwrap();
    let workers = treaty_runtime::worker::spawn_workers(&gateway.runtime);
    Gw {
        app: treaty_gateway::app(gateway.clone()),
        gateway,
        emulator,
        keys,
        workers,
        _dir: dir,
    }
}

/// An instance on Azure in the EU, which may hold the state of EU and US
/// tenants alike (R1 keeps eurobank's state in the EU).
fn in_the_eu(c: &mut Config) {
    c.instance = treaty_domain::Instance {
        id: "treaty-azure-westeurope".into(),
        cloud: "azure".into(),
        region: "eu-west".into(),
    };
}

struct Reply {
    status: StatusCode,
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

    /// The SSE frames as (seq, event name, data JSON).
    fn events(&self) -> Vec<(i64, String, Value)> {
        self.text()
            .split("\n\n")
            .filter(|f| !f.trim().is_empty())
            .map(|frame| {
                let (mut seq, mut name, mut data) = (0, String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        seq = v.parse().unwrap();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                (seq, name, serde_json::from_str(&data).unwrap())
            })
            .collect()
    }

    /// Asserts a client error in OpenAI's shape with this status and code.
    fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["code"], code, "{body}");
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert!(
            !error["message"].as_str().unwrap().is_empty(),
            "a message: {body}"
        );
        assert!(
            error.get("param").is_some(),
            "param is always present: {body}"
        );
        body
    }
}

impl Gw {
    fn key(&self, tenant: &str) -> &str {
        &self.keys[tenant]
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
        // An event stream ends when its run ends or waits: never hang.
        let body = tokio::time::timeout(DEADLINE, res.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: the body did not end"))
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply { status, body }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.raw("POST", path, key, Body::from(bytes)).await
    }

    async fn get(&self, path: &str, key: &str) -> Reply {
        self.raw("GET", path, key, Body::empty()).await
    }

    /// Creates an agent; asserts 200.
    async fn agent(&self, tenant: &str, body: Value) -> Value {
        let r = self.post("/v1/agents", self.key(tenant), body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Starts a run of `agent`; asserts 200.
    async fn run(&self, tenant: &str, agent: &Value, body: Value) -> Value {
        let path = format!("/v1/agents/{}/runs", agent["id"].as_str().unwrap());
        let r = self.post(&path, self.key(tenant), body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let run = r.json();
        assert_eq!(run["object"], "run");
        run
    }

    async fn retrieve(&self, tenant: &str, run_id: &str) -> Value {
        let r = self
            .get(&format!("/v1/runs/{run_id}"), self.key(tenant))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Polls the run until it ends with `status`; fails when it ends
    /// otherwise, waits for the client, or passes the deadline.
    async fn wait(&self, tenant: &str, run_id: &str, status: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let run = self.retrieve(tenant, run_id).await;
            if run["status"] == status {
                return run;
            }
            let settled = [
                "completed",
                "failed",
                "cancelled",
                "expired",
                "requires_action",
            ]
            .contains(&run["status"].as_str().unwrap());
            assert!(!settled, "the run stopped instead of '{status}': {run}");
            assert!(
                Instant::now() < deadline,
                "the run never got to '{status}': {run}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits as a client should for a run to need it: by following its
    /// events, which end when it waits (the run's status and its
    /// `run.requires_action` event are written in one transaction).
    async fn wait_for_action(&self, tenant: &str, run_id: &str) -> Value {
        let events = self.events(tenant, run_id).await;
        assert_eq!(
            kinds(&events).last(),
            Some(&"run.requires_action"),
            "the run did not wait: {events:?}"
        );
        let run = self.retrieve(tenant, run_id).await;
        assert_eq!(run["status"], "requires_action", "{run}");
        assert_eq!(
            events.last().unwrap().2["required_action"],
            run["required_action"],
            "the event says what the run waits for"
        );
        run
    }

    /// The conversation's items, oldest first.
    async fn items(&self, tenant: &str, conversation_id: &str) -> Vec<Value> {
        let r = self
            .get(
                &format!("/v1/conversations/{conversation_id}/items?order=asc&limit=100"),
                self.key(tenant),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].as_array().unwrap().clone()
    }

    /// The run's event log, read to its end.
    async fn events(&self, tenant: &str, run_id: &str) -> Vec<(i64, String, Value)> {
        let r = self
            .get(&format!("/v1/runs/{run_id}/events"), self.key(tenant))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.events()
    }
}

fn kinds(events: &[(i64, String, Value)]) -> Vec<&str> {
    events.iter().map(|(_, k, _)| k.as_str()).collect()
}

/// The text of the conversation's last item, which must be the
/// assistant's answer.
fn final_answer(items: &[Value]) -> String {
    let last = items.last().unwrap();
    assert_eq!(last["type"], "message", "{last}");
    assert_eq!(last["role"], "assistant", "{last}");
    last["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "output_text")
        .map(|p| p["text"].as_str().unwrap())
        .collect()
}

fn of_type<'a>(items: &'a [Value], kind: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["type"] == kind).collect()
}

fn weather_agent() -> Value {
    json!({"name": "forecaster", "model": "gpt-4o", "instructions": "Answer about the weather.",
           "tools": [{"type": "function", "name": "get_weather",
                      "description": "Weather in a city",
                      "parameters": {"type": "object",
                                     "properties": {"city": {"type": "string"}},
                                     "required": ["city"]}}]})
}

fn ticket_agent(approval: Value) -> Value {
    json!({"name": "filer", "model": "gpt-4o",
           "tools": [{"type": "webhook", "name": "create_ticket"}],
           "approval": approval})
}

// ------------------------------------------------------- function tools

#[tokio::test]
async fn a_function_tool_run_waits_for_the_client_and_answers_from_its_output() {
    let g = gateway(|_| {}).await;
    let agent = g.agent("acme", weather_agent()).await;
    assert_eq!(agent["object"], "agent");
    assert_eq!(agent["tools"][0]["type"], "function");
    let run = g
        .run(
            "acme",
            &agent,
            json!({"input": "What is the weather in Paris?"}),
        )
        .await;
    assert_eq!(run["agent_id"], agent["id"]);
    let id = run["id"].as_str().unwrap();
    let conv = run["conversation_id"].as_str().unwrap();

    let waiting = g.wait_for_action("acme", id).await;
    let log = g.events("acme", id).await;
    let action = &waiting["required_action"];
    assert_eq!(action["type"], "submit_tool_outputs", "{waiting}");
    let calls = action["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{waiting}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_eq!(calls[0]["kind"], "function");
    let args: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "emulated"}));
    let call_id = calls[0]["call_id"].as_str().unwrap().to_owned();
    assert_eq!(waiting["steps"], 1);

    // Wrong answers are refused in the OpenAI shape and change nothing.
    let path = format!("/v1/runs/{id}/submit_tool_outputs");
    let r = g
        .post(
            &path,
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": "call_nope", "output": "x"}]}),
        )
        .await;
    let body = r.assert_error(400, "invalid_request");
    assert_eq!(body["error"]["param"], "tool_outputs[0].call_id");
    let r = g
        .post(&path, g.key("acme"), json!({"tool_outputs": []}))
        .await;
    let body = r.assert_error(400, "invalid_request");
    assert_eq!(
        body["error"]["param"], "tool_outputs",
        "a call left unanswered"
    );
    let r = g
        .post(
            &format!("/v1/runs/{id}/approve"),
            g.key("acme"),
            json!({"approvals": [{"call_id": call_id, "approve": true}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    let still = g.retrieve("acme", id).await;
    assert_eq!(still["status"], "requires_action");
    assert_eq!(still["required_action"], waiting["required_action"]);
    assert_eq!(g.events("acme", id).await, log, "nothing logged");
    let before = g.items("acme", conv).await;
    assert!(of_type(&before, "function_call_output").is_empty());

    let r = g
        .post(
            &path,
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": call_id, "output": "18C and sunny"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let resumed = r.json();
    assert_ne!(resumed["status"], "requires_action", "{resumed}");
    assert!(resumed["required_action"].is_null(), "{resumed}");

    let done = g.wait("acme", id, "completed").await;
    assert_eq!(done["steps"], 2, "{done}");
    assert!(done["last_error"].is_null(), "{done}");
    assert!(done["required_action"].is_null(), "{done}");
    let usage = &done["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    // The conversation: the question, the call and its output once each,
    // then an answer that uses the output.
    let items = g.items("acme", conv).await;
    let types: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message",
            "function_call",
            "function_call_output",
            "message"
        ],
        "{items:?}"
    );
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[1]["call_id"], call_id.as_str());
    assert_eq!(items[1]["name"], "get_weather");
    assert_eq!(items[2]["call_id"], call_id.as_str());
    assert_eq!(items[2]["output"], "18C and sunny");
    let answer = final_answer(&items);
    assert!(answer.contains("18C and sunny"), "{answer}");

    // A run that is not waiting takes no outputs, and nothing changes.
    let r = g
        .post(
            &path,
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": call_id, "output": "again"}]}),
        )
        .await;
    let body = r.assert_error(400, "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not waiting"),
        "{body}"
    );
    assert_eq!(g.items("acme", conv).await, items);
    assert_eq!(g.retrieve("acme", id).await["status"], "completed");
}

// ------------------------------------------------------------ approvals

#[tokio::test]
async fn an_approved_webhook_call_is_made_once_and_the_run_completes() {
    let g = gateway(|_| {}).await;
    let agent = g
        .agent("acme", ticket_agent(json!({"required": ["create_ticket"]})))
        .await;
    assert_eq!(agent["approval"]["required"], json!(["create_ticket"]));
    let run = g
        .run("acme", &agent, json!({"input": "The printer is on fire."}))
        .await;
    let id = run["id"].as_str().unwrap();

    let waiting = g.wait_for_action("acme", id).await;
    let action = &waiting["required_action"];
    assert_eq!(action["type"], "approve_tool_calls", "{waiting}");
    assert_eq!(action["tool_calls"][0]["name"], "create_ticket");
    assert_eq!(action["tool_calls"][0]["kind"], "webhook");
    let call_id = action["tool_calls"][0]["call_id"].as_str().unwrap();
    assert_eq!(
        g.emulator.webhook_calls("create_ticket"),
        0,
        "nothing is sent before the approval"
    );

    // Waiting for an approval is not waiting for outputs; an unknown call
    // cannot be approved.
    let r = g
        .post(
            &format!("/v1/runs/{id}/submit_tool_outputs"),
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": call_id, "output": "forged"}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    let approve = format!("/v1/runs/{id}/approve");
    let r = g
        .post(
            &approve,
            g.key("acme"),
            json!({"approvals": [{"call_id": "call_nope", "approve": true}]}),
        )
        .await;
    let body = r.assert_error(400, "invalid_request");
    assert_eq!(body["error"]["param"], "approvals[0].call_id");
    assert_eq!(g.retrieve("acme", id).await["status"], "requires_action");

    let r = g
        .post(
            &approve,
            g.key("acme"),
            json!({"approvals": [{"call_id": call_id, "approve": true}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = g.wait("acme", id, "completed").await;
    assert_eq!(done["steps"], 2, "{done}");
    assert_eq!(g.emulator.webhook_effects("create_ticket"), 1);
    assert_eq!(g.emulator.webhook_calls("create_ticket"), 1);

    let items = g
        .items("acme", run["conversation_id"].as_str().unwrap())
        .await;
    let outputs = of_type(&items, "function_call_output");
    assert_eq!(outputs.len(), 1, "{items:?}");
    let output = outputs[0]["output"].as_str().unwrap();
    assert!(
        output.starts_with("emulated webhook create_ticket applied"),
        "{output}"
    );
    assert!(final_answer(&items).contains(output));

    // The log shows the wait and the resumption, in order.
    let events = g.events("acme", id).await;
    assert_eq!(
        kinds(&events),
        [
            "run.created",
            "run.in_progress",
            "run.step.completed",
            "run.requires_action",
            "run.queued",
            "run.in_progress",
            "tool_call.completed",
            "run.step.completed",
            "run.completed",
        ]
    );
    // A second approval of the finished run is refused.
    let r = g
        .post(
            &approve,
            g.key("acme"),
            json!({"approvals": [{"call_id": call_id, "approve": true}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(g.emulator.webhook_calls("create_ticket"), 1);
}

#[tokio::test]
async fn a_denied_call_is_never_made_and_the_model_is_told_why() {
    let g = gateway(|_| {}).await;
    let agent = g
        .agent("acme", ticket_agent(json!({"required": ["*"]})))
        .await;
    let run = g
        .run("acme", &agent, json!({"input": "Open a ticket for me."}))
        .await;
    let id = run["id"].as_str().unwrap();
    let waiting = g.wait_for_action("acme", id).await;
    let call_id = waiting["required_action"]["tool_calls"][0]["call_id"]
        .as_str()
        .unwrap();
    let r = g
        .post(
            &format!("/v1/runs/{id}/approve"),
            g.key("acme"),
            json!({"approvals": [{"call_id": call_id, "approve": false,
                                  "reason": "change freeze until Monday"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = g.wait("acme", id, "completed").await;
    assert!(done["last_error"].is_null(), "{done}");
    assert_eq!(g.emulator.webhook_calls("create_ticket"), 0);
    assert_eq!(g.emulator.webhook_effects("create_ticket"), 0);

    let items = g
        .items("acme", run["conversation_id"].as_str().unwrap())
        .await;
    let outputs = of_type(&items, "function_call_output");
    assert_eq!(outputs.len(), 1, "{items:?}");
    assert_eq!(
        outputs[0]["output"],
        "The call was not approved: change freeze until Monday."
    );
    let answer = final_answer(&items);
    assert!(answer.contains("not approved"), "{answer}");
}

#[tokio::test]
async fn an_mcp_call_that_needs_approval_is_made_once_approved() {
    let g = gateway(|_| {}).await;
    let agent = g
        .agent(
            "acme",
            json!({"name": "clerk", "model": "gpt-4o",
                   "tools": [{"type": "mcp", "connector": "orders",
                              "allowed_tools": ["lookup_order"]}],
                   "approval": {"required": ["lookup_order"]}}),
        )
        .await;
    let run = g
        .run("acme", &agent, json!({"input": "Where is my order?"}))
        .await;
    let id = run["id"].as_str().unwrap();
    let waiting = g.wait_for_action("acme", id).await;
    let call = &waiting["required_action"]["tool_calls"][0];
    assert_eq!(waiting["required_action"]["type"], "approve_tool_calls");
    assert_eq!(call["name"], "lookup_order");
    assert_eq!(call["kind"], "mcp");
    let r = g
        .post(
            &format!("/v1/runs/{id}/approve"),
            g.key("acme"),
            json!({"approvals": [{"call_id": call["call_id"], "approve": true}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    g.wait("acme", id, "completed").await;
    let items = g
        .items("acme", run["conversation_id"].as_str().unwrap())
        .await;
    assert!(
        final_answer(&items).contains("order emulated: 3 items, shipped from us-east"),
        "{items:?}"
    );
}

// -------------------------------------------------------------- webhooks

/// A webhook that holds its answer `ms` after applying it (the
/// emulator's `delay_ms`), beside `create_ticket`.
fn slow_webhook(ms: u64) -> impl Fn(&mut Config) {
    move |c: &mut Config| {
        let mut hook = c.agents.webhook("create_ticket").unwrap().clone();
        hook.name = "slow_ticket".into();
        hook.url = hook.url.replace("create_ticket", "slow_ticket");
        hook.parameters = json!({"type": "object",
            "properties": {"delay_ms": {"type": "integer", "const": ms}}});
        c.agents.webhooks.push(hook);
    }
}

#[tokio::test]
async fn the_event_stream_follows_a_run_past_an_answered_wait() {
    let g = gateway(slow_webhook(400)).await;
    let agent = g
        .agent(
            "acme",
            json!({"name": "filer", "model": "gpt-4o",
                   "tools": [{"type": "webhook", "name": "slow_ticket"}],
                   "approval": {"required": ["slow_ticket"]}}),
        )
        .await;
    let run = g.run("acme", &agent, json!({"input": "File it."})).await;
    let id = run["id"].as_str().unwrap();
    let waiting = g.wait_for_action("acme", id).await;

    let call_id = &waiting["required_action"]["tool_calls"][0]["call_id"];
    let r = g
        .post(
            &format!("/v1/runs/{id}/approve"),
            g.key("acme"),
            json!({"approvals": [{"call_id": call_id, "approve": true}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Read from the start while the webhook holds its answer: the log
    // holds the answered wait, and the stream goes on to the end.
    let events = g.events("acme", id).await;
    assert_eq!(
        kinds(&events),
        [
            "run.created",
            "run.in_progress",
            "run.step.completed",
            "run.requires_action",
            "run.queued",
            "run.in_progress",
            "tool_call.completed",
            "run.step.completed",
            "run.completed",
        ]
    );
    assert_eq!(g.emulator.webhook_effects("slow_ticket"), 1);
}

#[tokio::test]
async fn a_webhook_tool_is_called_once_signed_and_the_run_streams_its_lifecycle() {
    let g = gateway(|_| {}).await;
    let agent = g.agent("acme", ticket_agent(json!({}))).await;
    let path = format!("/v1/agents/{}/runs", agent["id"].as_str().unwrap());

    // `stream: true` follows the run live until it ends.
    let r = g
        .post(
            &path,
            g.key("acme"),
            json!({"input": "The printer is on fire.", "stream": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let live = r.events();
    let expected = [
        "run.created",
        "run.in_progress",
        "run.step.completed",
        "tool_call.completed",
        "run.step.completed",
        "run.completed",
    ];
    assert_eq!(kinds(&live), expected, "{}", r.text());
    let seqs: Vec<i64> = live.iter().map(|(s, _, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let id = live[0].2["id"].as_str().unwrap().to_owned();
    assert_eq!(live[0].2["status"], "queued");
    assert_eq!(live[3].2["name"], "create_ticket");
    assert_eq!(live[3].2["kind"], "webhook");
    assert_eq!(live[2].2["tool_calls"], 1);
    assert_eq!(live[4].2["tool_calls"], 0);
    assert_eq!(live[5].2["status"], "completed");
    assert!(!live[2].2["host"].as_str().unwrap().is_empty());

    // Exactly one request reached the receiver, and its signature was
    // good (the receiver refuses unsigned ones without an effect).
    assert_eq!(g.emulator.webhook_calls("create_ticket"), 1);
    assert_eq!(g.emulator.webhook_effects("create_ticket"), 1);
    let done = g.retrieve("acme", &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let items = g
        .items("acme", done["conversation_id"].as_str().unwrap())
        .await;
    assert_eq!(of_type(&items, "function_call_output").len(), 1);
    assert!(final_answer(&items).contains("emulated webhook create_ticket applied"));

    // Read again afterwards: the same log, and it ends; `after` skips.
    let logged = g.events("acme", &id).await;
    assert_eq!(logged, live);
    let r = g
        .get(
            &format!("/v1/runs/{id}/events?after={}", live[3].0),
            g.key("acme"),
        )
        .await;
    assert_eq!(kinds(&r.events()), ["run.step.completed", "run.completed"]);
}

// ------------------------------------------------------------------- MCP

#[tokio::test]
async fn mcp_tools_over_streamable_http_answer_and_allowed_tools_narrow_them() {
    let g = gateway(|_| {}).await;
    let all = g
        .agent(
            "acme",
            json!({"name": "clerk", "model": "gpt-4o",
                   "tools": [{"type": "mcp", "connector": "orders"}]}),
        )
        .await;
    // `[[tools:all]]` makes the emulated model call every tool offered.
    let run = g
        .run(
            "acme",
            &all,
            json!({"input": "[[tools:all]] Order A-1 and its stock?"}),
        )
        .await;
    let done = g
        .wait("acme", run["id"].as_str().unwrap(), "completed")
        .await;
    let items = g
        .items("acme", done["conversation_id"].as_str().unwrap())
        .await;
    let mut called: Vec<&str> = of_type(&items, "function_call")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    called.sort_unstable();
    assert_eq!(called, ["check_inventory", "lookup_order"], "{items:?}");
    let outputs: Vec<&str> = of_type(&items, "function_call_output")
        .iter()
        .map(|o| o["output"].as_str().unwrap())
        .collect();
    assert_eq!(outputs.len(), 2, "{items:?}");
    assert!(outputs.contains(&"order emulated: 3 items, shipped from us-east"));
    assert!(
        outputs
            .iter()
            .any(|o| o.starts_with("sku emulated: ") && o.ends_with(" in stock at us-east")),
        "{outputs:?}"
    );
    let answer = final_answer(&items);
    for o in &outputs {
        assert!(answer.contains(o), "{answer}");
    }
    let events = g.events("acme", run["id"].as_str().unwrap()).await;
    let tool_events: Vec<&Value> = events
        .iter()
        .filter(|(_, k, _)| k == "tool_call.completed")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(tool_events.len(), 2);
    assert!(tool_events.iter().all(|d| d["kind"] == "mcp"));

    // Only the allowed tool is offered, so only it is called.
    let narrow = g
        .agent(
            "acme",
            json!({"name": "stock", "model": "gpt-4o",
                   "tools": [{"type": "mcp", "connector": "orders",
                              "allowed_tools": ["check_inventory"]}]}),
        )
        .await;
    assert_eq!(
        narrow["tools"][0]["allowed_tools"],
        json!(["check_inventory"])
    );
    let run = g
        .run(
            "acme",
            &narrow,
            json!({"input": "[[tools:all]] Order A-1 and its stock?"}),
        )
        .await;
    let done = g
        .wait("acme", run["id"].as_str().unwrap(), "completed")
        .await;
    let items = g
        .items("acme", done["conversation_id"].as_str().unwrap())
        .await;
    let called: Vec<&str> = of_type(&items, "function_call")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(called, ["check_inventory"], "{items:?}");
    let answer = final_answer(&items);
    assert!(answer.contains("in stock at us-east"), "{answer}");
    assert!(!answer.contains("order emulated"), "{answer}");

    // A connector the config does not declare is refused up front.
    let r = g
        .post(
            "/v1/agents",
            g.key("acme"),
            json!({"name": "x", "model": "gpt-4o",
                   "tools": [{"type": "mcp", "connector": "nope"}]}),
        )
        .await;
    let body = r.assert_error(400, "invalid_request");
    assert_eq!(body["error"]["param"], "tools[0].connector");
}

// ------------------------------------------------------- the use action

#[tokio::test]
async fn the_use_clause_refuses_an_eu_tenants_webhook_and_not_a_us_tenants() {
    let g = gateway(in_the_eu).await;

    let euro = g.agent("eurobank", ticket_agent(json!({}))).await;
    let run = g
        .run("eurobank", &euro, json!({"input": "Open a ticket."}))
        .await;
    let id = run["id"].as_str().unwrap();
    let done = g.wait("eurobank", id, "completed").await;
    assert_eq!(
        g.emulator.webhook_calls("create_ticket"),
        0,
        "T1: nothing left for the webhook"
    );
    let items = g
        .items("eurobank", done["conversation_id"].as_str().unwrap())
        .await;
    let outputs = of_type(&items, "function_call_output");
    assert_eq!(outputs.len(), 1, "{items:?}");
    let refusal = outputs[0]["output"].as_str().unwrap();
    assert!(refusal.starts_with("Refused by contract"), "{refusal}");
    assert!(refusal.contains("reading-openai"), "{refusal}");
    assert!(refusal.contains("[clauses: T1]"), "{refusal}");
    assert!(final_answer(&items).contains("T1"), "the model is told");
    // eurobank's steps stayed in the EU (R1).
    let steps: Vec<Value> = g
        .events("eurobank", id)
        .await
        .into_iter()
        .filter(|(_, k, _)| k == "run.step.completed")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(steps.len(), 2);
    assert!(
        steps.iter().all(|s| s["host"] == "azure-westeurope"),
        "{steps:?}"
    );

    // T1 names webhooks only: eurobank's MCP tool is called.
    let mcp = g
        .agent(
            "eurobank",
            json!({"name": "clerk", "model": "gpt-4o",
                   "tools": [{"type": "mcp", "connector": "orders",
                              "allowed_tools": ["lookup_order"]}]}),
        )
        .await;
    let run = g.run("eurobank", &mcp, json!({"input": "Order?"})).await;
    let done = g
        .wait("eurobank", run["id"].as_str().unwrap(), "completed")
        .await;
    let items = g
        .items("eurobank", done["conversation_id"].as_str().unwrap())
        .await;
    assert!(final_answer(&items).contains("order emulated"), "{items:?}");

    // acme (US data region) may call the same webhook from the same instance.
    let acme = g.agent("acme", ticket_agent(json!({}))).await;
    let run = g
        .run("acme", &acme, json!({"input": "Open a ticket."}))
        .await;
    let done = g
        .wait("acme", run["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(g.emulator.webhook_effects("create_ticket"), 1);
    let items = g
        .items("acme", done["conversation_id"].as_str().unwrap())
        .await;
    let output = of_type(&items, "function_call_output")[0]["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        output.starts_with("emulated webhook create_ticket applied"),
        "{output}"
    );

    // Each call's `use` verdict is a decision in the ledger, made before
    // the call, with the tool, the run and the clauses.
    g.gateway.engine.ledger.flush().await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(
        &g.gateway.engine.store,
        treaty_ledger::Format::Jsonl,
        &mut out,
    )
    .await
    .unwrap();
    let tools: Vec<(String, String, bool, Value)> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "decision" && !l["record"]["tool"].is_null())
        .map(|l| {
            let r = &l["record"];
            assert!(r["run_id"].as_str().unwrap().starts_with("run_"), "{r}");
            (
                r["tenant"].as_str().unwrap().to_owned(),
                r["tool"]["name"].as_str().unwrap().to_owned(),
                r["tool"]["allowed"].as_bool().unwrap(),
                r["tool"]["clauses"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tools,
        [
            (
                "eurobank".into(),
                "create_ticket".into(),
                false,
                json!(["T1"])
            ),
            (
                "eurobank".into(),
                "lookup_order".into(),
                true,
                json!(["T0"])
            ),
            ("acme".into(), "create_ticket".into(), true, json!(["T0"])),
        ]
    );
}

// ------------------------------------------------------------- isolation

#[tokio::test]
async fn another_tenant_finds_none_of_an_agent_its_conversation_or_its_runs() {
    let g = gateway(|_| {}).await;
    let agent = g.agent("acme", weather_agent()).await;
    let agent_id = agent["id"].as_str().unwrap();
    let run = g.run("acme", &agent, json!({"input": "Weather?"})).await;
    let run_id = run["id"].as_str().unwrap();
    let conv = run["conversation_id"].as_str().unwrap();
    let waiting = g.wait_for_action("acme", run_id).await;
    let call_id = waiting["required_action"]["tool_calls"][0]["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let items_before = g.items("acme", conv).await;
    let log = g.events("acme", run_id).await;

    let dod = g.key("dod");
    let own = g
        .agent("dod", json!({"name": "mine", "model": "gpt-4o"}))
        .await;
    let own_run = g.run("dod", &own, json!({"input": "hello"})).await;

    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/agents/{agent_id}"), None),
        (
            "POST",
            format!("/v1/agents/{agent_id}"),
            Some(json!({"name": "stolen"})),
        ),
        ("DELETE", format!("/v1/agents/{agent_id}"), None),
        (
            "POST",
            format!("/v1/agents/{agent_id}/runs"),
            Some(json!({"input": "hi"})),
        ),
        (
            "POST",
            format!("/v1/agents/{}/runs", own["id"].as_str().unwrap()),
            Some(json!({"conversation": conv, "input": "hi"})),
        ),
        ("GET", format!("/v1/runs/{run_id}"), None),
        ("POST", format!("/v1/runs/{run_id}/cancel"), Some(json!({}))),
        (
            "POST",
            format!("/v1/runs/{run_id}/submit_tool_outputs"),
            Some(json!({"tool_outputs": [{"call_id": call_id, "output": "x"}]})),
        ),
        (
            "POST",
            format!("/v1/runs/{run_id}/approve"),
            Some(json!({"approvals": [{"call_id": call_id, "approve": true}]})),
        ),
        ("GET", format!("/v1/runs/{run_id}/events"), None),
        ("GET", format!("/v1/conversations/{conv}/items"), None),
    ];
    for (method, path, body) in attempts {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let r = g.raw(method, &path, dod, body).await;
        let e = r.assert_error(404, "not_found");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("not found") && !message.contains("acme"),
            "{method} {path}: {message}"
        );
    }

    // Lists hold only the caller's own.
    let agents = g.get("/v1/agents", dod).await.json();
    let ids: Vec<&str> = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own["id"].as_str().unwrap()]);
    let runs = g.get("/v1/runs", dod).await.json();
    let ids: Vec<&str> = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own_run["id"].as_str().unwrap()]);
    let filtered = g
        .get(&format!("/v1/runs?agent_id={agent_id}"), dod)
        .await
        .json();
    assert_eq!(filtered["data"], json!([]));
    assert_eq!(filtered["has_more"], false);

    // Nothing changed for acme, whose run still resumes.
    let again = g
        .get(&format!("/v1/agents/{agent_id}"), g.key("acme"))
        .await;
    assert_eq!(again.json(), agent);
    let still = g.retrieve("acme", run_id).await;
    assert_eq!(still["status"], "requires_action");
    assert_eq!(still["required_action"], waiting["required_action"]);
    assert_eq!(g.items("acme", conv).await, items_before);
    assert_eq!(g.events("acme", run_id).await, log);
    let r = g
        .post(
            &format!("/v1/runs/{run_id}/submit_tool_outputs"),
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": call_id, "output": "rain"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    g.wait("acme", run_id, "completed").await;
}

// ------------------------------------------------ cancelling and listing

#[tokio::test]
async fn a_waiting_run_can_be_cancelled_and_never_resumes() {
    let g = gateway(|_| {}).await;
    let agent = g.agent("acme", weather_agent()).await;
    let run = g.run("acme", &agent, json!({"input": "Weather?"})).await;
    let id = run["id"].as_str().unwrap();
    let waiting = g.wait_for_action("acme", id).await;
    let call_id = waiting["required_action"]["tool_calls"][0]["call_id"].clone();

    let r = g
        .post(&format!("/v1/runs/{id}/cancel"), g.key("acme"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cancelled = r.json();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["required_action"].is_null(), "{cancelled}");

    // Its outputs are no longer taken, and no worker picks it up again.
    let r = g
        .post(
            &format!("/v1/runs/{id}/submit_tool_outputs"),
            g.key("acme"),
            json!({"tool_outputs": [{"call_id": call_id, "output": "late"}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = g.retrieve("acme", id).await;
    assert_eq!(later["status"], "cancelled");
    assert_eq!(later["steps"], 1);
    let items = g
        .items("acme", run["conversation_id"].as_str().unwrap())
        .await;
    assert!(
        of_type(&items, "function_call_output").is_empty(),
        "{items:?}"
    );
    let events = g.events("acme", id).await;
    assert_eq!(kinds(&events).last(), Some(&"run.cancelled"));

    // Cancelling again is refused: it has ended.
    let r = g
        .post(&format!("/v1/runs/{id}/cancel"), g.key("acme"), json!({}))
        .await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_finished_run_cannot_be_cancelled() {
    let g = gateway(|_| {}).await;
    let agent = g
        .agent("acme", json!({"name": "echo", "model": "gpt-4o"}))
        .await;
    let run = g.run("acme", &agent, json!({"input": "hi"})).await;
    let id = run["id"].as_str().unwrap();
    g.wait("acme", id, "completed").await;
    let r = g
        .post(&format!("/v1/runs/{id}/cancel"), g.key("acme"), json!({}))
        .await;
    let body = r.assert_error(400, "invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("has ended (completed) and cannot be cancelled"),
        "{message}"
    );
    assert_eq!(g.retrieve("acme", id).await["status"], "completed");
}

#[tokio::test]
async fn runs_list_newest_first_in_pages() {
    let g = gateway(|_| {}).await;
    let agent = g
        .agent("acme", json!({"name": "echo", "model": "gpt-4o"}))
        .await;
    let other = g
        .agent("acme", json!({"name": "other", "model": "gpt-4o"}))
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let run = g
            .run("acme", &agent, json!({"input": format!("turn {i}")}))
            .await;
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    let elsewhere = g.run("acme", &other, json!({"input": "x"})).await;
    for id in &ids {
        g.wait("acme", id, "completed").await;
    }
    let of = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let agent_id = agent["id"].as_str().unwrap();

    let first = g
        .get(
            &format!("/v1/runs?agent_id={agent_id}&limit=2"),
            g.key("acme"),
        )
        .await
        .json();
    assert_eq!(first["object"], "list");
    assert_eq!(of(&first), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["first_id"], ids[2].as_str());
    assert_eq!(first["last_id"], ids[1].as_str());
    let second = g
        .get(
            &format!("/v1/runs?agent_id={agent_id}&limit=2&after={}", ids[1]),
            g.key("acme"),
        )
        .await
        .json();
    assert_eq!(of(&second), [ids[0].clone()]);
    assert_eq!(second["has_more"], false);
    let asc = g
        .get(
            &format!("/v1/runs?agent_id={agent_id}&order=asc"),
            g.key("acme"),
        )
        .await
        .json();
    assert_eq!(of(&asc), ids);
    let all = g.get("/v1/runs", g.key("acme")).await.json();
    assert_eq!(of(&all).len(), 4);
    assert_eq!(of(&all)[0], elsewhere["id"].as_str().unwrap());

    let r = g.get("/v1/runs?limit=0", g.key("acme")).await;
    let body = r.assert_error(400, "invalid_request");
    assert_eq!(body["error"]["param"], "limit");

    // Agents list the same way.
    let agents = g.get("/v1/agents?limit=1", g.key("acme")).await.json();
    assert_eq!(of(&agents), [other["id"].as_str().unwrap().to_owned()]);
    assert_eq!(agents["has_more"], true);
}
