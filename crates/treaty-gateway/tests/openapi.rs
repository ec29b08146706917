#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OpenAPI document served at `/openapi.json`, held to the gateway
//! that serves it: the document is OpenAPI 3.1 whose every `$ref`
//! resolves; the router (as `src/lib.rs` registers it) and the document
//! name the same operations, and each documented operation is routed;
//! and the bodies real requests get back (on the shipped Frontier example,
//! in-process, against the emulator, with agent workers running) validate
//! against the schema documented for their operation and status, as do
//! the frames of every event stream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

const ADMIN_TOKEN: &str = "admin-openapi-test-token";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ------------------------------------------------------------- the gateway

struct Gw {
    app: axum::Router,
    _gateway: Gateway,
    workers: Vec<tokio::task::JoinHandle<()>>,
    _emulator: EmulatorHandle,
    _dir: tempfile::TempDir,
    /// acme, direct, api.
    api: String,
    /// acme, direct, frontier: the agent platform's product.
    frontier: String,
    /// eurobank, direct, api: a tenant whose state a US instance may not hold.
    eurobank: String,
}

impl Drop for Gw {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

/// The Frontier example in front of the emulator, with the admin API on,
/// agent workers running, and three keys.
async fn gateway() -> Gw {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let env = MapEnv::new()
        .with("TREATY_EMULATOR_URL", &emulator.url())
        .with("TREATY_ADMIN_TOKEN", ADMIN_TOKEN);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let mut config = Config::load(&path, &env).unwrap();
    config.routing.health_check_interval = Duration::ZERO;
    let dir = tempfile::tempdir().unwrap();
    let store =
        treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("o.db").display()))
            .await
            .unwrap();
    let mint = async |tenant: &str, product: &str| {
        let (minted, _) = treaty_keys::issue(
            &store,
            KeyRequest {
                tenant: tenant.into(),
                channel: "direct".into(),
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
    };
    let api = mint("acme", "api").await;
    let frontier = mint("acme", "frontier").await;
    let eurobank = mint("eurobank", "api").await;
    let gateway = Gateway::open(config, store, &env).await.unwrap();
    let workers = treaty_runtime::worker::spawn_workers(&gateway.runtime);
    Gw {
        app: treaty_gateway::app(gateway.clone()),
        _gateway: gateway,
        workers,
        _emulator: emulator,
        _dir: dir,
        api,
        frontier,
        eurobank,
    }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `content-type` without parameters.
    fn media_type(&self) -> &str {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
    }

    /// The SSE frames as `{id, event, data}` objects (the fields a frame
    /// has), `data` parsed as JSON; chat's closing `data: [DONE]` is left
    /// out.
    fn frames(&self) -> Vec<Value> {
        self.text()
            .split("\n\n")
            .filter(|f| !f.trim().is_empty())
            .filter_map(|frame| {
                let mut out = serde_json::Map::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        out.insert("id".into(), json!(v.parse::<i64>().unwrap()));
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        out.insert("event".into(), json!(v));
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                // A block of comments only (the receipt) dispatches no
                // event, as SSE parsers read it.
                if data == "[DONE]" || data.is_empty() {
                    return None;
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {frame}"));
                out.insert("data".into(), data);
                Some(Value::Object(out))
            })
            .collect()
    }
}

impl Gw {
    /// Sends a request; `target` is the path with its query.
    async fn send(
        &self,
        method: &str,
        target: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(target);
        if let Some(secret) = auth {
            req = req.header("authorization", format!("Bearer {secret}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        self.send_request(req.body(body).unwrap()).await
    }

    /// Sends a request built by the caller, as it is.
    async fn send_request(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The served document.
    async fn spec(&self) -> Spec {
        let r = self.send("GET", "/openapi.json", None, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.media_type(), "application/json");
        Spec { doc: r.json() }
    }

    fn client<'a>(&'a self, spec: &'a Spec, auth: Option<&'a str>) -> Client<'a> {
        Client {
            gw: self,
            spec,
            auth,
        }
    }
}

/// Body of a call that sends none.
const NONE: Value = Value::Null;

/// One key's view of the API; every call is checked against the document.
#[derive(Clone, Copy)]
struct Client<'a> {
    gw: &'a Gw,
    spec: &'a Spec,
    auth: Option<&'a str>,
}

impl Client<'_> {
    /// Calls `route`, `"METHOD /path/{param}?query"` with `params` filling
    /// the `{…}` in order, and checks the reply against the document: its
    /// status is documented for the operation, the documented required
    /// headers are there, and its body (or every SSE frame) validates.
    async fn call(&self, route: &str, params: &[&str], body: Value) -> Reply {
        let (method, target) = route.split_once(' ').unwrap();
        let body = (!body.is_null()).then_some(body);
        let reply = self
            .gw
            .send(method, &fill(target, params), self.auth, body)
            .await;
        let template = target.split('?').next().unwrap();
        self.spec.check(&method.to_lowercase(), template, &reply);
        reply
    }

    /// [`Client::call`], expecting `status`; the JSON body.
    async fn expect(&self, status: u16, route: &str, params: &[&str], body: Value) -> Value {
        let r = self.call(route, params, body).await;
        assert_eq!(r.status, status, "{route}: {}", r.text());
        r.json()
    }
}

/// `template` with each `{…}` replaced by the next of `params`.
fn fill(template: &str, params: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = template;
    let mut values = params.iter();
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(values.next().expect("a parameter is missing"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    assert!(values.next().is_none(), "{template}: too many parameters");
    out
}

// ------------------------------------------------------------- the document

struct Spec {
    doc: Value,
}

impl Spec {
    /// Follows a `$ref` to what it names (response and header objects).
    fn resolve<'s>(&'s self, v: &'s Value) -> &'s Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self.pointer(r),
            None => v,
        }
    }

    fn pointer(&self, r: &str) -> &Value {
        let target = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r}: only local references are used"));
        self.doc
            .pointer(target)
            .unwrap_or_else(|| panic!("{r} resolves to nothing"))
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        self.doc["paths"]
            .get(template)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("{method} {template} is not documented"))
    }

    /// `(METHOD, path)` of every documented operation.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// A validator for `schema`, whose root is the whole document so that
    /// `#/components/...` references resolve.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = self.doc.clone();
        root["$defs"] = json!({ "target": schema });
        root["$ref"] = json!("#/$defs/target");
        jsonschema::draft202012::options()
            .build(&root)
            .unwrap_or_else(|e| panic!("not a valid schema ({e}): {schema}"))
    }

    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let v = self.validator(schema);
        let errors: Vec<String> = v
            .iter_errors(instance)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n  "))
        }
    }

    /// Checks a reply against the response documented for its status.
    fn check(&self, method: &str, template: &str, reply: &Reply) {
        let op = self.operation(method, template);
        let what = format!("{method} {template} → {}", reply.status);
        let response = op["responses"]
            .get(reply.status.to_string())
            .or_else(|| op["responses"].get("default"))
            .unwrap_or_else(|| panic!("{what}: status not documented; body: {}", reply.text()));
        let response = self.resolve(response);
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, h) in headers {
                if self.resolve(h)["required"] == json!(true) {
                    assert!(
                        reply.header(name).is_some(),
                        "{what}: documented header {name} is missing"
                    );
                }
            }
        }
        let media = reply.media_type();
        let content = response
            .get("content")
            .and_then(|c| c.get(media))
            .unwrap_or_else(|| panic!("{what}: content type {media:?} not documented"));
        match media {
            "application/json" => {
                if let Err(e) = self.validate(&content["schema"], &reply.json()) {
                    panic!(
                        "{what}: the body does not match the document:\n  {e}\nbody: {}",
                        reply.text()
                    );
                }
            }
            "text/event-stream" => {
                let schema = content
                    .get("x-treaty-event-schema")
                    .unwrap_or_else(|| panic!("{what}: no x-treaty-event-schema"));
                let frames = reply.frames();
                assert!(!frames.is_empty(), "{what}: an empty stream");
                for frame in &frames {
                    if let Err(e) = self.validate(schema, frame) {
                        panic!(
                            "{what}: an event does not match the document:\n  {e}\nframe: {frame}"
                        );
                    }
                }
            }
            // Prometheus text: a schema says nothing of it; the metrics
            // tests parse it.
            "application/openmetrics-text" => {
                assert!(reply.text().ends_with("# EOF\n"), "{what}: not OpenMetrics");
            }
            other => panic!("{what}: unexpected content type {other:?}"),
        }
    }
}

/// Every `$ref` in `v` (and every discriminator mapping, which names a
/// schema the same way), with where it was found.
fn references(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}/{k}");
                if k == "$ref" {
                    out.push((here.clone(), x.as_str().unwrap_or_default().to_owned()));
                }
                if k == "discriminator"
                    && let Some(mapping) = x.get("mapping").and_then(Value::as_object)
                {
                    for target in mapping.values() {
                        out.push((here.clone(), target.as_str().unwrap_or_default().to_owned()));
                    }
                }
                references(x, &here, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                references(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `(METHOD, path)` of every route `src/lib.rs` registers: each
/// `.route("PATH", get(..).post(..)...)` call, however it is split over
/// lines.
fn routed() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/app.rs");
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap();
        let args = &rest[..end];
        let path = args.split('"').nth(1).unwrap();
        let mut methods = 0;
        for (i, _) in args.char_indices() {
            let before = args[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            for m in METHODS {
                if args[i..].starts_with(m) && args[i + m.len()..].starts_with('(') {
                    out.insert((m.to_uppercase(), path.to_owned()));
                    methods += 1;
                }
            }
        }
        assert!(methods > 0, "no method found in .route({args})");
    }
    out
}

// ------------------------------------------------------------- the tests

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let g = gateway().await;
    let spec = g.spec().await;
    let doc = &spec.doc;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut refs = Vec::new();
    references(doc, "#", &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    for (at, r) in &refs {
        assert!(r.starts_with("#/"), "{at}: {r:?} is not a local reference");
        assert!(
            doc.pointer(&r[1..]).is_some(),
            "{at}: {r} resolves to nothing"
        );
    }
    // Every schema compiles as JSON Schema 2020-12 and is used somewhere.
    let used: BTreeSet<&str> = refs.iter().map(|(_, r)| r.as_str()).collect();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let r = format!("#/components/schemas/{name}");
        spec.validator(&json!({ "$ref": r }));
        assert!(used.contains(r.as_str()), "{r} is never used");
    }

    let mut ids = BTreeSet::new();
    for (method, path) in spec.operations() {
        let op = spec.operation(&method.to_lowercase(), &path);
        let what = format!("{method} {path}");
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "{what}: operationId repeats"
        );
        // Which API a client is talking to: OpenAI's or Treaty's own.
        let compat = op["x-treaty-compatibility"].as_str();
        assert!(
            matches!(compat, Some("openai" | "treaty")),
            "{what}: x-treaty-compatibility is {compat:?}"
        );
        // The path's parameters are exactly the declared path parameters.
        let in_path: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap().to_owned())
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| spec.resolve(p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(in_path, declared, "{what}: path parameters");
        // Every operation documents its success and its errors' shape.
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success response"
        );
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    spec.resolve(r)["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{what} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let g = gateway().await;
    let spec = g.spec().await;
    let routed = routed();
    assert!(routed.len() >= 36, "the route parser found only {routed:?}");
    let documented = spec.operations();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}\ndocumented but not routed: {unrouted:?}"
    );

    // What the probes below must never see.
    let r = g.send("GET", "/v1/nothing-here", Some(&g.api), None).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("unknown_url"))
    );
    let r = g.send("DELETE", "/health", None, None).await;
    assert_eq!(r.status, 405, "{}", r.text());

    // Each documented operation reaches a handler: with ids that name
    // nothing and an empty JSON object as body, it answers something it
    // documents, never the unknown-route 404 or a 405.
    for (method, path) in &documented {
        let ids: Vec<&str> = path.matches('{').map(|_| "nothing_9").collect();
        let auth = if path.starts_with("/admin") {
            ADMIN_TOKEN
        } else {
            &g.api
        };
        let body = (method == "POST").then(|| json!({}));
        let reply = g.send(method, &fill(path, &ids), Some(auth), body).await;
        assert_ne!(reply.status, 405, "{method} {path}: {}", reply.text());
        if reply.media_type() == "application/json" {
            assert_ne!(
                reply.json()["error"]["code"],
                "unknown_url",
                "{method} {path} is documented but not routed"
            );
        }
        spec.check(&method.to_lowercase(), path, &reply);
    }
}

#[tokio::test]
async fn responses_and_conversations_match_the_document() {
    let g = gateway().await;
    let spec = g.spec().await;
    let c = g.client(&spec, Some(&g.api));

    // A stored response, read back, and its input.
    let body = json!({"model": "gpt-4o", "input": "Say hello.", "metadata": {"case": "openapi"}});
    let first = c.expect(200, "POST /v1/responses", &[], body).await;
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["status"], "completed");
    c.expect(200, "GET /v1/responses/{id}", &[id], NONE).await;
    let route = "GET /v1/responses/{id}/input_items?limit=1&order=asc";
    let items = c.expect(200, route, &[id], NONE).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 1);

    // A function call, and its output in the next turn.
    let tools = json!([{"type": "function", "name": "add", "description": "Adds.",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}]);
    let body = json!({"model": "gpt-4o", "previous_response_id": id, "tools": tools,
        "input": [{"role": "user", "content": "What is 2 + 2?"}]});
    let called = c.expect(200, "POST /v1/responses", &[], body).await;
    let fc = &called["output"][0];
    assert_eq!(fc["type"], "function_call", "{called}");
    let body = json!({"model": "gpt-4o", "previous_response_id": called["id"], "tools": tools,
        "input": [{"type": "function_call_output", "call_id": fc["call_id"], "output": "4"}]});
    let answered = c.expect(200, "POST /v1/responses", &[], body).await;
    assert_eq!(answered["output"][0]["type"], "message");

    // A streamed response: every frame validates and names its type.
    let body = json!({"model": "gpt-4o", "input": "Stream, please.", "stream": true});
    let streamed = c.call("POST /v1/responses", &[], body).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert_eq!(streamed.media_type(), "text/event-stream");
    let frames = streamed.frames();
    for f in &frames {
        assert_eq!(f["event"], f["data"]["type"]);
    }
    assert_eq!(frames.last().unwrap()["event"], "response.completed");

    // A finished response cannot be cancelled; it can be deleted.
    let e = c
        .expect(400, "POST /v1/responses/{id}/cancel", &[id], NONE)
        .await;
    assert_eq!(e["error"]["code"], "invalid_request");
    c.expect(200, "DELETE /v1/responses/{id}", &[id], NONE)
        .await;

    // A conversation, its items, a response in it, and its edits.
    let body = json!({"items": [{"role": "user", "content": "Hello."}],
        "metadata": {"topic": "greeting"}});
    let conv = c.expect(200, "POST /v1/conversations", &[], body).await;
    let cv = conv["id"].as_str().unwrap();
    let body = json!({"items": [{"type": "message", "role": "assistant", "content": "Hi!"}]});
    c.expect(200, "POST /v1/conversations/{id}/items", &[cv], body)
        .await;
    let body = json!({"model": "gpt-4o", "conversation": cv, "input": "And now?"});
    c.expect(200, "POST /v1/responses", &[], body).await;
    let route = "GET /v1/conversations/{id}/items?order=asc&limit=2";
    let page = c.expect(200, route, &[cv], NONE).await;
    assert_eq!(page["has_more"], true, "{page}");
    let last = page["last_id"].as_str().unwrap();
    let route = "GET /v1/conversations/{id}/items?order=asc&after={item}";
    c.expect(200, route, &[cv, last], NONE).await;
    let item = "/v1/conversations/{id}/items/{item_id}";
    c.expect(200, &format!("GET {item}"), &[cv, last], NONE)
        .await;
    let body = json!({"metadata": {"topic": "changed"}});
    c.expect(200, "POST /v1/conversations/{id}", &[cv], body)
        .await;
    c.expect(200, "GET /v1/conversations/{id}", &[cv], NONE)
        .await;
    c.expect(200, &format!("DELETE {item}"), &[cv, last], NONE)
        .await;
    c.expect(200, "DELETE /v1/conversations/{id}", &[cv], NONE)
        .await;
}

#[tokio::test]
async fn chat_embeddings_and_models_match_the_document() {
    let g = gateway().await;
    let spec = g.spec().await;
    let c = g.client(&spec, Some(&g.api));

    let hi = json!([{"role": "user", "content": "Hi."}]);
    let body = json!({"model": "gpt-4o", "messages": hi});
    c.expect(200, "POST /v1/chat/completions", &[], body).await;
    let body = json!({"model": "gpt-4o", "messages": hi, "stream": true,
        "stream_options": {"include_usage": true}});
    let streamed = c.call("POST /v1/chat/completions", &[], body).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed.text().trim_end().ends_with("data: [DONE]"));
    let body = json!({"model": "text-embedding-3-small", "input": ["one", "two"]});
    c.expect(200, "POST /v1/embeddings", &[], body).await;
    let models = c.expect(200, "GET /v1/models", &[], NONE).await;
    assert!(!models["data"].as_array().unwrap().is_empty());
    c.expect(200, "GET /v1/models/{model}", &["gpt-4o"], NONE)
        .await;
}

/// Reads a run until its status is `want`.
async fn run_until(c: Client<'_>, run: &str, want: &str) -> Value {
    for _ in 0..400 {
        let r = c.expect(200, "GET /v1/runs/{id}", &[run], NONE).await;
        if r["status"] == want {
            return r;
        }
        assert!(
            !matches!(
                r["status"].as_str(),
                Some("failed" | "cancelled" | "expired")
            ),
            "waiting for {want}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never became {want}");
}

#[tokio::test]
async fn agents_and_runs_match_the_document() {
    let g = gateway().await;
    let spec = g.spec().await;
    let c = g.client(&spec, Some(&g.frontier));

    // An agent whose first tool (the one the emulator calls) is the
    // client's function: its run waits for the function's output.
    let body = json!({
        "name": "helper", "model": "gpt-4o", "instructions": "Be brief.",
        "tools": [
            {"type": "function", "name": "lookup", "description": "Looks a word up.",
             "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}},
            {"type": "webhook", "name": "create_ticket"}
        ],
        "metadata": {"team": "docs"}
    });
    let agent = c.expect(200, "POST /v1/agents", &[], body).await;
    let a = agent["id"].as_str().unwrap();
    c.expect(200, "GET /v1/agents/{id}", &[a], NONE).await;
    let body = json!({"input": "Look up 'treaty'.", "metadata": {"k": "v"}});
    let run = c.expect(200, "POST /v1/agents/{id}/runs", &[a], body).await;
    let r = run["id"].as_str().unwrap();
    let waiting = run_until(c, r, "requires_action").await;
    assert_eq!(waiting["required_action"]["type"], "submit_tool_outputs");
    let call_id = &waiting["required_action"]["tool_calls"][0]["call_id"];
    let body = json!({"tool_outputs": [{"call_id": call_id, "output": "a formal agreement"}]});
    c.expect(200, "POST /v1/runs/{id}/submit_tool_outputs", &[r], body)
        .await;
    let done = run_until(c, r, "completed").await;
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let events = c.call("GET /v1/runs/{id}/events?after=0", &[r], NONE).await;
    assert_eq!(events.status, 200, "{}", events.text());
    let names: Vec<Value> = events.frames().iter().map(|f| f["event"].clone()).collect();
    for want in [
        "run.created",
        "run.step.completed",
        "run.requires_action",
        "run.queued",
        "run.completed",
    ] {
        assert!(
            names.contains(&json!(want)),
            "{want} missing from {names:?}"
        );
    }
    let e = c.expect(400, "POST /v1/runs/{id}/cancel", &[r], NONE).await;
    assert_eq!(e["error"]["code"], "invalid_request");

    // An agent whose webhook call waits for approval: denied, the run
    // still completes, and Treaty reports the call it answered.
    let body = json!({"name": "filer", "model": "gpt-4o",
        "tools": [{"type": "webhook", "name": "create_ticket"}],
        "approval": {"required": ["create_ticket"]}});
    let gated = c.expect(200, "POST /v1/agents", &[], body).await;
    let input = json!([{"role": "user", "content": "File a ticket about the outage."}]);
    let route = "POST /v1/agents/{id}/runs";
    let run = c
        .expect(
            200,
            route,
            &[gated["id"].as_str().unwrap()],
            json!({"input": input}),
        )
        .await;
    let r2 = run["id"].as_str().unwrap();
    let waiting = run_until(c, r2, "requires_action").await;
    assert_eq!(waiting["required_action"]["type"], "approve_tool_calls");
    let call_id = &waiting["required_action"]["tool_calls"][0]["call_id"];
    let body =
        json!({"approvals": [{"call_id": call_id, "approve": false, "reason": "not today"}]});
    c.expect(200, "POST /v1/runs/{id}/approve", &[r2], body)
        .await;
    run_until(c, r2, "completed").await;
    let events = c.call("GET /v1/runs/{id}/events", &[r2], NONE).await;
    let frames = events.frames();
    assert!(
        frames.iter().any(|f| f["event"] == "tool_call.completed"),
        "{}",
        events.text()
    );

    // A streamed run ends when it waits for the client; cancelled then.
    let body = json!({"input": "Look up 'clause'.", "stream": true});
    let streamed = c.call("POST /v1/agents/{id}/runs", &[a], body).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let frames = streamed.frames();
    assert_eq!(frames.last().unwrap()["event"], "run.requires_action");
    let r3 = frames[0]["data"]["id"].as_str().unwrap();
    let cancelled = c
        .expect(200, "POST /v1/runs/{id}/cancel", &[r3], NONE)
        .await;
    assert_eq!(cancelled["status"], "cancelled");

    // Lists, an update (to an MCP connector's tools) and a deletion.
    let runs = c
        .expect(200, "GET /v1/runs?agent_id={a}&limit=1", &[a], NONE)
        .await;
    assert_eq!(runs["has_more"], true, "{runs}");
    let agents = c
        .expect(200, "GET /v1/agents?limit=1&order=asc", &[], NONE)
        .await;
    assert_eq!(agents["first_id"], a);
    let body =
        json!({"tools": [{"type": "mcp", "connector": "orders", "allowed_tools": ["get_order"]}]});
    let updated = c.expect(200, "POST /v1/agents/{id}", &[a], body).await;
    assert_eq!(updated["tools"][0]["connector"], "orders");
    c.expect(200, "DELETE /v1/agents/{id}", &[a], NONE).await;
}

#[tokio::test]
async fn health_admin_and_errors_match_the_document() {
    let g = gateway().await;
    let spec = g.spec().await;
    let anyone = g.client(&spec, None);
    anyone.expect(200, "GET /health", &[], NONE).await;
    anyone.expect(200, "GET /ready", &[], NONE).await;

    // The admin API.
    let admin = g.client(&spec, Some(ADMIN_TOKEN));
    let body = json!({"tenant": "acme", "channel": "direct", "product": "api", "name": "docs",
        "models": ["gpt-4o"], "expires_at": "2099-01-01T00:00:00Z", "declare_classes": ["batch"]});
    let key = admin.expect(201, "POST /admin/keys", &[], body).await;
    admin.expect(200, "GET /admin/keys", &[], NONE).await;
    let id = key["id"].as_str().unwrap();
    admin
        .expect(200, "DELETE /admin/keys/{id}", &[id], NONE)
        .await;
    let body = json!({"tenant": "acme", "channel": "direct", "product": "api",
        "route": "/v1/responses", "body": {"store": true}});
    admin.expect(200, "POST /admin/explain", &[], body).await;
    let intruder = g.client(&spec, Some("not-the-token"));
    let e = intruder.expect(401, "GET /admin/keys", &[], NONE).await;
    assert_eq!(e["error"]["code"], "invalid_admin_token");

    // 400, 401, 403 and 404, each in OpenAI's shape.
    let api = g.client(&spec, Some(&g.api));
    let e = api
        .expect(400, "POST /v1/responses", &[], json!({"model": "gpt-4o"}))
        .await;
    assert_eq!(e["error"]["code"], "invalid_request");
    assert_eq!(e["error"]["param"], "input");
    let e = api.expect(400, "GET /v1/runs?limit=0", &[], NONE).await;
    assert_eq!(e["error"]["param"], "limit");
    let e = anyone.expect(401, "GET /v1/models", &[], NONE).await;
    assert_eq!(e["error"]["code"], "invalid_api_key");
    let e = intruder.expect(401, "GET /v1/models", &[], NONE).await;
    assert_eq!(e["error"]["code"], "invalid_api_key");
    // This instance is in the US: it may not hold an EU tenant's state.
    let eu = g.client(&spec, Some(&g.eurobank));
    let r = eu.call("POST /v1/conversations", &[], json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "contract_refused");
    assert!(r.header("x-treaty-clauses").is_some());
    let e = api
        .expect(404, "GET /v1/responses/{id}", &["resp_nothing"], NONE)
        .await;
    assert_eq!(e["error"]["code"], "not_found");
    let e = api
        .expect(404, "GET /v1/models/{model}", &["no-such-model"], NONE)
        .await;
    assert_eq!(e["error"]["code"], "model_not_found");
    let frontier = g.client(&spec, Some(&g.frontier));
    let route = "POST /v1/agents/{id}/runs";
    let e = frontier
        .expect(404, route, &["agent_nothing"], json!({"input": "hi"}))
        .await;
    assert_eq!(e["error"]["code"], "not_found");
}

/// Refusals of the request itself, before any route reads it (a body not
/// declared JSON, or not an object; a URL or header block over the
/// limits), are documented for the operation they reach.
#[tokio::test]
async fn refusals_of_the_request_itself_match_the_document() {
    let g = gateway().await;
    let spec = g.spec().await;
    let post = |path: &str, content_type: Option<&str>, body: &str| {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("authorization", format!("Bearer {}", g.frontier));
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.body(Body::from(body.to_owned())).unwrap()
    };
    for (path, content_type, body, status) in [
        ("/v1/agents", Some("text/plain"), "{}", 415),
        ("/v1/chat/completions", None, "{}", 415),
        (
            "/v1/responses",
            Some("application/x-www-form-urlencoded"),
            "a=1",
            415,
        ),
        ("/v1/conversations", Some("application/json"), "[]", 400),
        ("/v1/embeddings", Some("application/json"), "\"text\"", 400),
    ] {
        let r = g.send_request(post(path, content_type, body)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        spec.check("post", path, &r);
    }
    let long = format!("/v1/models?pad={}", "a".repeat(9 * 1024));
    let r = g.send("GET", &long, Some(&g.api), None).await;
    assert_eq!(r.status, 414, "{}", r.text());
    spec.check("get", "/v1/models", &r);
    let req = Request::builder()
        .uri("/health")
        .header("x-pad", "b".repeat(40 * 1024))
        .body(Body::empty())
        .unwrap();
    let r = g.send_request(req).await;
    assert_eq!(r.status, 431, "{}", r.text());
    spec.check("get", "/health", &r);
}

/// The document's own promises about a few shapes, so that loosening a
/// schema (dropping a `required` field, an enum value) fails here even
/// where no flow reaches it.
#[tokio::test]
async fn the_schemas_hold_what_clients_rely_on() {
    let g = gateway().await;
    let spec = g.spec().await;
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let enums: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "RunStatus",
            vec![
                "queued",
                "in_progress",
                "requires_action",
                "completed",
                "failed",
                "cancelled",
                "expired",
            ],
        ),
        (
            "ResponseStatus",
            vec![
                "completed",
                "failed",
                "in_progress",
                "cancelled",
                "queued",
                "incomplete",
            ],
        ),
    ]);
    for (name, values) in enums {
        assert_eq!(
            spec.doc["components"]["schemas"][name]["enum"],
            json!(values),
            "{name}"
        );
    }
    // A run without any one of its fields is refused.
    let run = json!({"id": "run_1", "object": "run", "agent_id": "agent_1",
        "conversation_id": "conv_1", "status": "queued", "created_at": 1, "model": "gpt-4o",
        "instructions": null, "required_action": null, "last_error": null,
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}, "steps": 0,
        "metadata": {}});
    spec.validate(&schema("Run"), &run).unwrap();
    for field in run.as_object().unwrap().keys() {
        let mut partial = run.clone();
        partial.as_object_mut().unwrap().remove(field);
        let refused = spec.validate(&schema("Run"), &partial).is_err();
        assert!(refused, "a run without {field} passes");
    }
    // OpenAI objects tolerate fields they do not know; errors too.
    let error = json!({"error": {"message": "m", "type": "invalid_request_error",
        "param": null, "code": "x", "new": 1}});
    spec.validate(&schema("Error"), &error).unwrap();
    let page = json!({"object": "list", "data": [], "first_id": null, "last_id": null,
        "has_more": false, "new": 1});
    spec.validate(&schema("ItemList"), &page).unwrap();
    let short = json!({"object": "list", "data": []});
    assert!(spec.validate(&schema("ItemList"), &short).is_err());

    // The ranges and sizes the server enforces are stated, so a client
    // generated from the document refuses what the server would.
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    spec.validate(&schema("ChatCompletionRequest"), &chat)
        .unwrap();
    for (param, value) in [
        ("max_tokens", json!(0)),
        ("max_completion_tokens", json!(0)),
        ("temperature", json!(2.5)),
        ("top_p", json!(1.5)),
        ("n", json!(0)),
        ("presence_penalty", json!(-2.5)),
        ("frequency_penalty", json!(2.5)),
        ("top_logprobs", json!(21)),
    ] {
        let mut body = chat.clone();
        body[param] = value;
        let refused = spec
            .validate(&schema("ChatCompletionRequest"), &body)
            .is_err();
        assert!(refused, "{param} out of range passes");
    }
    let agent = json!({"name": "a", "model": "gpt-4o"});
    spec.validate(&schema("AgentCreateRequest"), &agent)
        .unwrap();
    let function = |name: String| json!({"type": "function", "name": name});
    let many_keys: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (field, value) in [
        ("name", json!("n".repeat(257))),
        ("instructions", json!("i".repeat(256_001))),
        (
            "tools",
            json!(
                (0..129)
                    .map(|i| function(format!("f{i}")))
                    .collect::<Vec<_>>()
            ),
        ),
        ("tools", json!([function("f".repeat(65))])),
        ("metadata", json!(many_keys)),
        ("metadata", json!({"k": 1})),
        ("approval", json!({"required": vec!["t"; 129]})),
    ] {
        let mut body = agent.clone();
        body[field] = value;
        let refused = spec.validate(&schema("AgentCreateRequest"), &body).is_err();
        assert!(refused, "an agent with too large a {field} passes");
    }
    let tokens = json!({"model": "m", "input": [4_294_967_296u64]});
    assert!(
        spec.validate(&schema("EmbeddingsRequest"), &tokens)
            .is_err()
    );
}
