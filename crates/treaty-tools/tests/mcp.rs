//! MCP over Streamable HTTP against the emulator's `/mcp`, started
//! in-process on port 0: listing and calling both tools, the errors a model
//! would see, and a new session after the server comes back.
//! (The stdio transport is tested in treaty-emulator's tests, which can
//! spawn its `treaty-mcp-stdio` binary.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_tools::{McpConnector, McpPool, McpTransport, ToolError};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn emulator_at(addr: SocketAddr) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default(), addr)
        .await
        .unwrap()
}

fn pool(url: String) -> McpPool {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = McpConnector {
        id: "orders".into(),
        transport: McpTransport::Http {
            url,
            headers: vec![("Authorization".into(), "Bearer emulated".into())],
        },
    };
    McpPool::new(reqwest::Client::new(), [connector])
}

#[tokio::test]
async fn lists_and_calls_the_emulated_tools() {
    let emulator = emulator_at("127.0.0.1:0".parse().unwrap()).await;
    let pool = pool(format!("{}/mcp", emulator.url()));

    let mut tools = pool.list_tools("orders").await.unwrap();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(names, ["check_inventory", "lookup_order"]);
    let lookup = &tools[1];
    assert!(lookup.description.contains("order"), "{lookup:?}");
    assert_eq!(lookup.input_schema["type"], "object");
    assert_eq!(
        lookup.input_schema["properties"]["order_id"]["type"],
        "string"
    );
    assert_eq!(lookup.input_schema["required"][0], "order_id");
    assert_eq!(tools[0].input_schema["properties"]["sku"]["type"], "string");

    let order = pool
        .call_tool(
            "orders",
            "lookup_order",
            r#"{"order_id":"A-1001"}"#,
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(order, "order A-1001: 3 items, shipped from us-east");
    let stock = pool
        .call_tool("orders", "check_inventory", r#"{"sku":"SKU-42"}"#, TIMEOUT)
        .await
        .unwrap();
    assert!(
        stock.starts_with("sku SKU-42: ") && stock.ends_with(" in stock at us-east"),
        "{stock}"
    );
    let again = pool
        .call_tool("orders", "check_inventory", r#"{"sku":"SKU-42"}"#, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(stock, again, "answers are deterministic");

    pool.shutdown().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn errors_say_what_went_wrong() {
    let emulator = emulator_at("127.0.0.1:0".parse().unwrap()).await;
    let pool = pool(format!("{}/mcp", emulator.url()));

    let unknown = pool
        .call_tool("orders", "cancel_order", r#"{"order_id":"A-1"}"#, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), "cancel_order: tool not found");

    let empty = pool
        .call_tool("orders", "lookup_order", r#"{"order_id":""}"#, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&empty, ToolError::Tool(message) if message == "order_id must not be empty"),
        "{empty:?}"
    );

    let missing = pool
        .call_tool("orders", "lookup_order", "{}", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(missing, ToolError::Tool(_)), "{missing:?}");

    let not_an_object = pool
        .call_tool("orders", "lookup_order", "[1]", TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(not_an_object, ToolError::InvalidArguments { .. }),
        "{not_an_object:?}"
    );

    let no_connector = pool.list_tools("billing").await.unwrap_err();
    assert!(matches!(no_connector, ToolError::UnknownConnector(id) if id == "billing"));

    // The session survived all of that.
    let order = pool
        .call_tool("orders", "lookup_order", r#"{"order_id":"B-2"}"#, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(order, "order B-2: 3 items, shipped from us-east");
    pool.shutdown().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_new_session_is_opened_when_the_server_comes_back() {
    let emulator = emulator_at("127.0.0.1:0".parse().unwrap()).await;
    let addr = emulator.addr();
    let pool = pool(format!("{}/mcp", emulator.url()));
    pool.call_tool("orders", "lookup_order", r#"{"order_id":"A-1"}"#, TIMEOUT)
        .await
        .unwrap();

    emulator.shutdown().await;
    let down = pool
        .call_tool("orders", "lookup_order", r#"{"order_id":"A-2"}"#, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(down, ToolError::Mcp { .. }), "{down:?}");
    assert!(!down.to_string().contains("127.0.0.1"), "{down}");

    // A new server on the same port knows nothing of the old session.
    let emulator = emulator_at(addr).await;
    let order = pool
        .call_tool("orders", "lookup_order", r#"{"order_id":"A-3"}"#, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(order, "order A-3: 3 items, shipped from us-east");
    assert_eq!(pool.list_tools("orders").await.unwrap().len(), 2);

    pool.shutdown().await;
    let after = pool.list_tools("orders").await.unwrap_err();
    assert!(matches!(after, ToolError::Mcp { .. }), "{after:?}");
    emulator.shutdown().await;
}
