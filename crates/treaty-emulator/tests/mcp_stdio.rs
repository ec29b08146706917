//! The emulated MCP server over stdio, started as a child process
//! (this crate's `treaty-mcp-stdio` binary) by Treaty's real MCP client,
//! treaty-tools' `McpPool`: the same tools and answers as over HTTP, and
//! the child ends when the pool shuts down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use treaty_tools::{McpConnector, McpPool, McpTransport, ToolError};

const TIMEOUT: Duration = Duration::from_secs(10);

fn pool() -> McpPool {
    // reqwest is built with `rustls-no-provider`; the pool's client (unused
    // by stdio connectors) needs a provider even so.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = McpConnector {
        id: "local".into(),
        transport: McpTransport::Stdio {
            command: env!("CARGO_BIN_EXE_treaty-mcp-stdio").into(),
            args: vec![],
            env: vec![("RUST_LOG".into(), "off".into())],
        },
    };
    McpPool::new(reqwest::Client::new(), [connector])
}

#[tokio::test]
async fn lists_and_calls_the_tools_over_stdio() {
    let pool = pool();
    let mut names: Vec<String> = pool
        .list_tools("local")
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    names.sort();
    assert_eq!(names, ["check_inventory", "lookup_order"]);

    // Concurrent first calls on a clone share the one child process.
    let clone = pool.clone();
    let (order, stock) = tokio::join!(
        pool.call_tool("local", "lookup_order", r#"{"order_id":"A-1001"}"#, TIMEOUT),
        clone.call_tool("local", "check_inventory", r#"{"sku":"SKU-42"}"#, TIMEOUT),
    );
    assert_eq!(
        order.unwrap(),
        "order A-1001: 3 items, shipped from us-east"
    );
    assert!(stock.unwrap().starts_with("sku SKU-42: "));

    let unknown = pool
        .call_tool("local", "cancel_order", "{}", TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), "cancel_order: tool not found");

    pool.shutdown().await;
    let after = pool
        .call_tool("local", "lookup_order", r#"{"order_id":"A-1"}"#, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(after, ToolError::Mcp { .. }), "{after:?}");
}
