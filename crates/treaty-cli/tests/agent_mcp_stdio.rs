#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! An MCP connector over stdio: the config names a command (here the
//! `treaty` binary itself, `treaty emulate --mcp-stdio`), the gateway
//! starts it as a child process when an agent first needs its tools, and
//! a run calls them and answers from their results. The gateway runs
//! in-process on port 0 with its workers; the model is the emulator.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, http, write_example};
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig};
use treaty_keys::KeyRequest;

/// Appends a stdio connector running the emulated MCP tools.
fn stdio_connector(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = format!(
        "{text}\n[[agents.connectors]]\nid = \"orders_stdio\"\ncommand = {BIN:?}\n\
         args = [\"emulate\", \"--mcp-stdio\"]\ntimeout = \"20s\"\n"
    );
    std::fs::write(config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_calls_the_tools_of_a_stdio_connector_and_answers_from_them() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_example(dir.path());
    stdio_connector(&path);
    let env = MapEnv::new().with("TREATY_EMULATOR_URL", &emulator.url());
    let config = Config::load(&path, &env).unwrap();
    let connector = config.agents.connector("orders_stdio").unwrap();
    assert_eq!(
        connector.transport,
        treaty_config::ConnectorTransport::Stdio {
            command: BIN.to_owned(),
            args: vec!["emulate".into(), "--mcp-stdio".into()],
        }
    );
    let store = treaty_store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("treaty.db").display()
    ))
    .await
    .unwrap();
    let (key, _) = treaty_keys::issue(
        &store,
        KeyRequest {
            tenant: "acme".into(),
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
    let key = key.secret;
    let gateway = treaty_gateway::Gateway::open(config, store, &env)
        .await
        .unwrap();
    let workers = treaty_runtime::worker::spawn_workers(&gateway.runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(treaty_gateway::serve(
        listener,
        treaty_gateway::app(gateway.clone()),
        async move {
            let _ = stopped.await;
        },
    ));

    let client = http();
    let res = client
        .post(format!("{base}/v1/agents"))
        .bearer_auth(&key)
        .json(&json!({"name": "clerk", "model": "gpt-4o",
                      "tools": [{"type": "mcp", "connector": "orders_stdio"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let agent: Value = res.json().await.unwrap();
    // `[[tools:all]]` makes the emulated model call every tool offered.
    let res = client
        .post(format!(
            "{base}/v1/agents/{}/runs",
            agent["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .json(&json!({"input": "[[tools:all]] Where is order A-1, and is it in stock?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let run: Value = res.json().await.unwrap();
    let run_id = run["id"].as_str().unwrap();

    // The first call starts the child process: allow for that.
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let r: Value = client
            .get(format!("{base}/v1/runs/{run_id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !["queued", "in_progress"].contains(&r["status"].as_str().unwrap()) {
            break r;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["steps"], 2, "{done}");

    let items: Value = client
        .get(format!(
            "{base}/v1/conversations/{}/items?order=asc&limit=100",
            done["conversation_id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = items["data"].as_array().unwrap();
    let mut called: Vec<&str> = items
        .iter()
        .filter(|i| i["type"] == "function_call")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    called.sort_unstable();
    assert_eq!(called, ["check_inventory", "lookup_order"], "{items:?}");
    let outputs: Vec<&str> = items
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap())
        .collect();
    assert!(
        outputs.contains(&"order emulated: 3 items, shipped from us-east"),
        "{outputs:?}"
    );
    assert!(
        outputs
            .iter()
            .any(|o| o.starts_with("sku emulated: ") && o.ends_with(" in stock at us-east")),
        "{outputs:?}"
    );
    let last = items.last().unwrap();
    assert_eq!(last["role"], "assistant", "{last}");
    let answer = last["content"][0]["text"].as_str().unwrap();
    assert!(
        answer.contains("order emulated: 3 items, shipped from us-east"),
        "the answer uses the stdio tool's result: {answer}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    for w in workers {
        w.abort();
    }
    // Stops the child process.
    gateway.runtime.shutdown().await;
}
