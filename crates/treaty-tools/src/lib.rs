//! The tools an agent run calls: signed, retried webhooks and MCP servers
//! reached through the official Rust SDK (`rmcp`), over Streamable HTTP or
//! a stdio child process. The agent runtime decides *when* to call a tool;
//! this crate owns *how*: the wire format, signing, retries, sessions and
//! turning answers into the text a model reads.
//!
//! It never logs or returns secrets: errors name the tool and what failed,
//! never a header, a signing secret or a URL (which may carry a token).
//!
//! ```no_run
//! # async fn demo(client: reqwest::Client) -> Result<(), treaty_tools::ToolError> {
//! use std::time::Duration;
//! use treaty_tools::{Invocation, WebhookTool, call_webhook};
//! let tool = WebhookTool {
//!     name: "refund".into(),
//!     url: "https://hooks.example.com/refund".into(),
//!     timeout: Duration::from_secs(10),
//!     max_attempts: 3,
//! };
//! let call = Invocation {
//!     run_id: "run_1",
//!     call_id: "call_1",
//!     name: "refund",
//!     arguments: r#"{"order_id":"A-17"}"#,
//! };
//! let answer = call_webhook(&client, &tool, b"shared secret", &call).await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```

mod error;
mod mcp;
mod retry;
mod signature;
mod webhook;

pub use error::ToolError;
pub use mcp::{McpConnector, McpPool, McpTransport, ToolDef};
pub use signature::verify_signature;
pub use webhook::{
    IDEMPOTENCY_KEY_HEADER, Invocation, MAX_ANSWER_BYTES, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    WebhookTool, call_webhook,
};
