#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every operation on stored state passes the contract gate.
//!
//! Two gateways share one store, as two replicas would: instance A on
//! Azure and instance B on AWS, under reading-openai, where C2 lets only
//! Azure instances hold Frontier state and C4 lets `azure-marketplace`
//! sell no Frontier. acme's key `acme/aws-marketplace/frontier` creates a
//! stored response, a conversation, agents and runs on A. Then every
//! operation on them is tried by:
//!
//! * another tenant's key (`dod/aws-marketplace/frontier`) and the same
//!   tenant's key of another product (`acme/direct/api`), on both
//!   instances: 404, exactly as for an unknown id, and nothing recorded;
//! * acme's key through a channel C4 refuses
//!   (`acme/azure-marketplace/frontier`): 403 naming C4, recorded as a
//!   decision that names the operation;
//! * the creating key on instance B, which C2 forbids to hold Frontier
//!   state: 403 naming C2, recorded with B's refused `hold` verdict.
//!
//! After each refusal every object is exactly as it was. The matrix runs
//! on SQLite and on PostgreSQL (skipped, visibly, without a server).

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

const DEADLINE: Duration = Duration::from_secs(20);

struct Instance {
    app: axum::Router,
    gateway: Gateway,
}

struct World {
    a: Instance,
    b: Instance,
    owner: String,
    other_tenant: String,
    other_product: String,
    refused_channel: String,
    workers: Vec<tokio::task::JoinHandle<()>>,
    _emulator: EmulatorHandle,
    _keys: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

struct Reply {
    status: u16,
    request_id: String,
    clauses: Option<String>,
    body: Value,
}

async fn key(store: &treaty_store::Store, tenant: &str, channel: &str, product: &str) -> String {
    let (minted, _) = treaty_keys::issue(
        store,
        KeyRequest {
            tenant: tenant.into(),
            channel: channel.into(),
            product: product.into(),
            name: None,
            models: None,
            declare_classes: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    minted.secret
}

async fn world(url: &str) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &emulator.url());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.contracts.as_mut().unwrap().reading = "reading-openai".to_owned();
    config.routing.health_check_interval = Duration::ZERO;
    config.agents.poll_interval = Duration::from_millis(20);
    // Replicas on PostgreSQL share one configured signing key.
    let keys = tempfile::tempdir().unwrap();
    if url.starts_with("postgres") {
        let key = keys.path().join("ledger.key");
        treaty_ledger::keygen(&key, "treaty-gate-test").unwrap();
        config.ledger.signing_key = Some(treaty_config::LedgerKeyConfig::File(key));
    }
    let mut on_aws = config.clone();
    on_aws.instance = treaty_domain::Instance {
        id: "treaty-aws-useast1".into(),
        cloud: "aws".into(),
        region: "us-east".into(),
    };
    let store_a = treaty_store::Store::open(url).await.unwrap();
    let store_b = treaty_store::Store::open(url).await.unwrap();
    let owner = key(&store_a, "acme", "aws-marketplace", "frontier").await;
    let other_tenant = key(&store_a, "dod", "aws-marketplace", "frontier").await;
    let other_product = key(&store_a, "acme", "direct", "api").await;
    let refused_channel = key(&store_a, "acme", "azure-marketplace", "frontier").await;
    let a = Gateway::open(config, store_a, &env).await.unwrap();
    let b = Gateway::open(on_aws, store_b, &env).await.unwrap();
    // Only A works on runs: B may not hold them.
    let workers = treaty_runtime::worker::spawn_workers(&a.runtime);
    World {
        a: Instance {
            app: treaty_gateway::app(a.clone()),
            gateway: a,
        },
        b: Instance {
            app: treaty_gateway::app(b.clone()),
            gateway: b,
        },
        owner,
        other_tenant,
        other_product,
        refused_channel,
        workers,
        _emulator: emulator,
        _keys: keys,
    }
}

impl Instance {
    async fn send(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Reply {
        let body = match body {
            Some(v) => Body::from(serde_json::to_vec(v).unwrap()),
            None => Body::empty(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(body)
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let request_id = header("x-request-id").unwrap();
        let clauses = header("x-treaty-clauses");
        let bytes = tokio::time::timeout(DEADLINE, res.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: the body did not end"))
            .unwrap()
            .to_bytes();
        let body = if bytes.starts_with(b"{") {
            serde_json::from_slice(&bytes).unwrap()
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Reply {
            status,
            request_id,
            clauses,
            body,
        }
    }

    /// The ledger's decision records for one request id.
    async fn decisions(&self, request_id: &str) -> Vec<Value> {
        let engine = &self.gateway.engine;
        engine.ledger.flush().await.unwrap();
        let mut out = Vec::new();
        treaty_ledger::export(&engine.store, treaty_ledger::Format::Jsonl, &mut out)
            .await
            .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["kind"] == "decision" && r["record"]["request_id"] == request_id)
            .map(|r| r["record"].clone())
            .collect()
    }
}

/// What acme created on A.
struct Objects {
    response: String,
    conversation: String,
    item: String,
    agent: String,
    waiting_for_outputs: String,
    waiting_for_approval: String,
}

async fn create_objects(w: &World) -> Objects {
    let a = &w.a;
    let ok = |r: Reply| {
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let response = ok(a
        .send(
            "POST",
            "/v1/responses",
            &w.owner,
            Some(&json!({"model": "gpt-4o", "input": "hello", "store": true})),
        )
        .await);
    let conversation = ok(a
        .send(
            "POST",
            "/v1/conversations",
            &w.owner,
            Some(&json!({"items": [{"type": "message", "role": "user", "content": "hi"}]})),
        )
        .await);
    let conv_id = conversation["id"].as_str().unwrap().to_owned();
    let items = ok(a
        .send(
            "GET",
            &format!("/v1/conversations/{conv_id}/items"),
            &w.owner,
            None,
        )
        .await);
    let agent = ok(a
        .send(
            "POST",
            "/v1/agents",
            &w.owner,
            Some(&json!({"name": "forecaster", "model": "gpt-4o",
                "tools": [{"type": "function", "name": "get_weather",
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]})),
        )
        .await);
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let ticket_agent = ok(a
        .send(
            "POST",
            "/v1/agents",
            &w.owner,
            Some(&json!({"name": "filer", "model": "gpt-4o",
                "tools": [{"type": "webhook", "name": "create_ticket"}],
                "approval": {"required": ["create_ticket"]}})),
        )
        .await);
    let start = |agent: String| async move {
        let run = ok(w
            .a
            .send(
                "POST",
                &format!("/v1/agents/{agent}/runs"),
                &w.owner,
                Some(&json!({"input": "go"})),
            )
            .await);
        let id = run["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let run = ok(w
                .a
                .send("GET", &format!("/v1/runs/{id}"), &w.owner, None)
                .await);
            if run["status"] == "requires_action" {
                return id;
            }
            assert!(Instant::now() < deadline, "the run never waited: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let waiting_for_outputs = start(agent_id.clone()).await;
    let waiting_for_approval = start(ticket_agent["id"].as_str().unwrap().to_owned()).await;
    Objects {
        response: response["id"].as_str().unwrap().to_owned(),
        conversation: conv_id,
        item: items["data"][0]["id"].as_str().unwrap().to_owned(),
        agent: agent_id,
        waiting_for_outputs,
        waiting_for_approval,
    }
}

/// One operation: its name in the ledger, and the request that makes it.
struct Op {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// A list: another tenant or product gets its own (empty) list.
    list: bool,
}

fn operations(o: &Objects) -> Vec<Op> {
    let op = |name, method, path: String, body: Option<Value>| Op {
        name,
        method,
        path,
        body,
        list: false,
    };
    let (r, c, i, g) = (&o.response, &o.conversation, &o.item, &o.agent);
    let (w1, w2) = (&o.waiting_for_outputs, &o.waiting_for_approval);
    vec![
        op(
            "responses.retrieve",
            "GET",
            format!("/v1/responses/{r}"),
            None,
        ),
        op(
            "responses.input_items",
            "GET",
            format!("/v1/responses/{r}/input_items"),
            None,
        ),
        op(
            "responses.cancel",
            "POST",
            format!("/v1/responses/{r}/cancel"),
            None,
        ),
        op(
            "responses.delete",
            "DELETE",
            format!("/v1/responses/{r}"),
            None,
        ),
        op(
            "responses.create",
            "POST",
            "/v1/responses".into(),
            Some(json!({"model": "gpt-4o", "input": "more", "previous_response_id": r})),
        ),
        op(
            "responses.create",
            "POST",
            "/v1/responses".into(),
            Some(json!({"model": "gpt-4o", "input": "more", "conversation": c})),
        ),
        op(
            "conversations.retrieve",
            "GET",
            format!("/v1/conversations/{c}"),
            None,
        ),
        op(
            "conversations.update",
            "POST",
            format!("/v1/conversations/{c}"),
            Some(json!({"metadata": {"k": "v"}})),
        ),
        op(
            "conversations.delete",
            "DELETE",
            format!("/v1/conversations/{c}"),
            None,
        ),
        op(
            "conversations.items.create",
            "POST",
            format!("/v1/conversations/{c}/items"),
            Some(json!({"items": [{"type": "message", "role": "user", "content": "x"}]})),
        ),
        op(
            "conversations.items.list",
            "GET",
            format!("/v1/conversations/{c}/items"),
            None,
        ),
        op(
            "conversations.items.retrieve",
            "GET",
            format!("/v1/conversations/{c}/items/{i}"),
            None,
        ),
        op(
            "conversations.items.delete",
            "DELETE",
            format!("/v1/conversations/{c}/items/{i}"),
            None,
        ),
        op("agents.retrieve", "GET", format!("/v1/agents/{g}"), None),
        op(
            "agents.update",
            "POST",
            format!("/v1/agents/{g}"),
            Some(json!({"name": "renamed"})),
        ),
        op("agents.delete", "DELETE", format!("/v1/agents/{g}"), None),
        op(
            "runs.create",
            "POST",
            format!("/v1/agents/{g}/runs"),
            Some(json!({"input": "again"})),
        ),
        op(
            "runs.create",
            "POST",
            format!("/v1/agents/{g}/runs"),
            Some(json!({"input": "again", "conversation": c})),
        ),
        op("runs.retrieve", "GET", format!("/v1/runs/{w1}"), None),
        op("runs.events", "GET", format!("/v1/runs/{w1}/events"), None),
        op(
            "runs.submit_tool_outputs",
            "POST",
            format!("/v1/runs/{w1}/submit_tool_outputs"),
            Some(json!({"tool_outputs": [{"call_id": "call_x", "output": "sunny"}]})),
        ),
        op(
            "runs.approve",
            "POST",
            format!("/v1/runs/{w2}/approve"),
            Some(json!({"approvals": [{"call_id": "call_x", "approve": true}]})),
        ),
        op("runs.cancel", "POST", format!("/v1/runs/{w1}/cancel"), None),
        Op {
            list: true,
            ..op("agents.list", "GET", "/v1/agents".into(), None)
        },
        Op {
            list: true,
            ..op("runs.list", "GET", "/v1/runs".into(), None)
        },
    ]
}

/// Everything acme holds, as acme reads it on A.
async fn snapshot(w: &World, o: &Objects) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        format!("/v1/responses/{}", o.response),
        format!("/v1/responses/{}/input_items", o.response),
        format!("/v1/conversations/{}", o.conversation),
        format!("/v1/conversations/{}/items?limit=100", o.conversation),
        format!("/v1/agents/{}", o.agent),
        format!("/v1/runs/{}", o.waiting_for_outputs),
        format!("/v1/runs/{}", o.waiting_for_approval),
        "/v1/agents?limit=100".to_owned(),
        "/v1/runs?limit=100".to_owned(),
    ] {
        let r = w.a.send("GET", &path, &w.owner, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        out.insert(path, r.body);
    }
    Value::Object(out)
}

/// Ids of acme's objects, none of which another tenant or product may see.
fn owner_ids(o: &Objects) -> [&str; 5] {
    [
        &o.response,
        &o.conversation,
        &o.agent,
        &o.waiting_for_outputs,
        &o.waiting_for_approval,
    ]
}

async fn matrix(url: &str) {
    let w = world(url).await;
    let o = create_objects(&w).await;
    let before = snapshot(&w, &o).await;

    for op in operations(&o) {
        let what = format!("{} {} ({})", op.method, op.path, op.name);
        // Another tenant, or the same tenant's other product, on either
        // instance: nothing to see.
        for (who, key) in [
            ("another tenant", &w.other_tenant),
            ("another product", &w.other_product),
        ] {
            for (instance, at) in [("A", &w.a), ("B", &w.b)] {
                let r = at.send(op.method, &op.path, key, op.body.as_ref()).await;
                if op.list {
                    // Its own list, which holds none of acme's objects
                    // (or a refusal of its own on B).
                    if r.status == 200 {
                        let text = r.body.to_string();
                        for id in owner_ids(&o) {
                            assert!(
                                !text.contains(id),
                                "{what} by {who} on {instance} lists {id}"
                            );
                        }
                    } else {
                        assert_eq!(r.status, 403, "{what} by {who} on {instance}: {}", r.body);
                    }
                    continue;
                }
                assert_eq!(r.status, 404, "{what} by {who} on {instance}: {}", r.body);
                assert_eq!(r.body["error"]["code"], "not_found", "{what}: {}", r.body);
                assert!(
                    at.decisions(&r.request_id).await.is_empty(),
                    "{what} by {who} on {instance}: nothing is decided about an object the caller may not know of"
                );
            }
        }

        // A channel that may no longer sell Frontier (C4).
        let r =
            w.a.send(op.method, &op.path, &w.refused_channel, op.body.as_ref())
                .await;
        assert_eq!(
            r.status, 403,
            "{what} through azure-marketplace: {}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "contract_refused", "{}", r.body);
        assert_eq!(r.clauses.as_deref(), Some("C4"), "{what}");
        let d = w.a.decisions(&r.request_id).await;
        assert_eq!(d.len(), 1, "{what}: one decision recorded: {d:?}");
        assert_eq!(d[0]["operation"], op.name, "{what}");
        assert_eq!(d[0]["admitted"], false, "{what}");
        assert_eq!(d[0]["admit_clauses"], json!(["C4"]), "{what}");
        assert_eq!(d[0]["refused"], "contract_refused");

        // The creating key on an instance C2 forbids to hold Frontier.
        let r =
            w.b.send(op.method, &op.path, &w.owner, op.body.as_ref())
                .await;
        assert_eq!(r.status, 403, "{what} on the AWS instance: {}", r.body);
        assert_eq!(r.clauses.as_deref(), Some("C2"), "{what}: {}", r.body);
        let d = w.b.decisions(&r.request_id).await;
        assert_eq!(d.len(), 1, "{what} on B: one decision recorded: {d:?}");
        assert_eq!(d[0]["operation"], op.name, "{what}");
        assert_eq!(d[0]["instance"], "treaty-aws-useast1");
        assert_eq!(d[0]["runtime"]["allowed"], false, "{what}");
        assert_eq!(d[0]["runtime"]["cloud"], "aws");
        assert_eq!(d[0]["runtime"]["clauses"], json!(["C2"]));

        assert_eq!(
            snapshot(&w, &o).await,
            before,
            "{what}: a refused operation changed nothing"
        );
    }

    // The same operations by acme on A are allowed and recorded with the
    // hold this instance may make.
    let r =
        w.a.send("GET", &format!("/v1/agents/{}", o.agent), &w.owner, None)
            .await;
    assert_eq!(r.status, 200);
    let d = w.a.decisions(&r.request_id).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["operation"], "agents.retrieve");
    assert_eq!(d[0]["runtime"]["allowed"], true);
    assert_eq!(d[0]["runtime"]["instance"], "treaty-azure-eastus");
    assert_eq!(d[0]["runtime"]["clauses"], json!(["H0"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_operation_passes_the_gate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gate.db").display());
    matrix(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_operation_passes_the_gate_on_postgres() {
    let Some(url) = treaty_store::test_pg::fresh_database("gate").await else {
        return;
    };
    matrix(&url).await;
    treaty_store::test_pg::drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_can_neither_run_read_nor_change_a_frontier_agent_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(&format!("sqlite://{}", dir.path().join("two.db").display())).await;
    let agent =
        w.a.send(
            "POST",
            "/v1/agents",
            &w.owner,
            Some(&json!({"name": "frontier agent", "model": "gpt-4o"})),
        )
        .await;
    assert_eq!(agent.status, 200, "{}", agent.body);
    let id = agent.body["id"].as_str().unwrap();
    for (instance, at) in [("Azure", &w.a), ("AWS", &w.b)] {
        for (method, path, body) in [
            (
                "POST",
                format!("/v1/agents/{id}/runs"),
                Some(json!({"input": "hi"})),
            ),
            ("GET", format!("/v1/agents/{id}"), None),
            (
                "POST",
                format!("/v1/agents/{id}"),
                Some(json!({"name": "mine now"})),
            ),
            ("DELETE", format!("/v1/agents/{id}"), None),
        ] {
            let r = at
                .send(method, &path, &w.other_product, body.as_ref())
                .await;
            assert_eq!(
                r.status, 404,
                "{method} {path} with the api key on {instance}: {}",
                r.body
            );
        }
    }
    // The agent is untouched, and no run of it exists.
    let r =
        w.a.send("GET", &format!("/v1/agents/{id}"), &w.owner, None)
            .await;
    assert_eq!(r.body["name"], "frontier agent");
    let runs = w.a.send("GET", "/v1/runs", &w.owner, None).await;
    assert_eq!(runs.body["data"], json!([]), "{}", runs.body);
}
