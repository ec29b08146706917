//! MCP connectors: sessions with MCP servers through the official Rust SDK
//! (`rmcp`), opened lazily on first use, kept for later calls, and opened
//! again after the transport fails. Tools are listed in the shape the
//! runtime offers models as OpenAI function tools, and called with the
//! model's JSON arguments; the answer is the text parts of the result.
//!
//! A tool call is sent again on a new session only when it certainly never
//! reached the server (the session was found dead first, or the connection
//! was refused): MCP carries no idempotency key, so a call that may have
//! run is reported as failed, not repeated. Listing tools has no side
//! effect and is retried once after any transport failure.

mod connect;

use crate::ToolError;
use connect::{Failure, Session, classify, describe_service_error};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, JsonObject, Tool};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The limit for opening a session (spawn or connect, then the handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The limit for listing a server's tools, every page included.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// An MCP server the runtime may call, under an id unique in its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpConnector {
    /// The id the runtime names the connector by.
    pub id: String,
    /// How to reach the server.
    pub transport: McpTransport,
}

/// How an MCP server is reached.
#[derive(Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// Streamable HTTP at `url`, sending `headers` (e.g. `Authorization`)
    /// with every request.
    Http {
        /// The MCP endpoint, e.g. `https://mcp.example.com/mcp`.
        url: String,
        /// Extra request headers, name then value.
        headers: Vec<(String, String)>,
    },
    /// A child process speaking MCP on its stdin and stdout. It inherits
    /// only a few variables of the gateway's environment (`PATH`, `HOME`,
    /// locale, temp dir, proxies) plus `env`, so provider keys in the
    /// gateway's environment never reach a third-party server.
    Stdio {
        /// The program, found through `PATH` if not a path.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables set for it, name then value.
        env: Vec<(String, String)>,
    },
}

/// Header and variable values are credentials more often than not, so
/// they never appear in logs.
impl fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| format!("{name}=…")).collect()
        };
        match self {
            Self::Http { url, headers } => f
                .debug_struct("Http")
                // The query string may carry a token too.
                .field("url", &url.split('?').next().unwrap_or_default())
                .field("headers", &names(headers))
                .finish(),
            Self::Stdio { command, args, env } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &names(env))
                .finish(),
        }
    }
}

/// A tool an MCP server offers, ready to be offered to a model as an
/// OpenAI function tool (`{"type":"function","function":{name,
/// description, parameters: input_schema}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDef {
    /// The tool's name on its server.
    pub name: String,
    /// What it does, for the model; empty when the server gives none.
    pub description: String,
    /// The JSON Schema of its arguments (an object schema).
    pub input_schema: serde_json::Value,
}

/// The MCP sessions of one gateway: cheap to clone (one `Arc`), shared by
/// every agent run. Call [`McpPool::shutdown`] before exit so stdio
/// servers end cleanly; dropping the last clone also ends them, without
/// waiting.
#[derive(Clone)]
pub struct McpPool {
    inner: Arc<Pool>,
}

impl fmt::Debug for McpPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpPool")
            .field("connectors", &self.inner.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Pool {
    /// Used for every HTTP connector; the runtime's client, so TLS and
    /// proxies are configured once.
    http: reqwest::Client,
    slots: HashMap<String, Slot>,
    shut_down: AtomicBool,
}

/// One connector and its session, if open.
struct Slot {
    connector: McpConnector,
    /// Held while a session is opened, an await included: concurrent first
    /// calls then share one child process or HTTP session instead of each
    /// starting their own. Calls themselves run on a cloned `Peer`, outside
    /// the lock.
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Bumped per session opened, so a failure seen on an old session
    /// does not close a newer one another caller just opened.
    generation: u64,
    session: Option<Session>,
}

/// Whether an operation may be sent again on a new session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// No side effect: after any transport failure.
    Always,
    /// Only when the request never reached the server.
    IfUndelivered,
}

impl McpPool {
    /// A pool for `connectors`, none connected yet. HTTP connectors use
    /// `http`; a later connector with an id already seen replaces it.
    pub fn new(http: reqwest::Client, connectors: impl IntoIterator<Item = McpConnector>) -> Self {
        let slots = connectors
            .into_iter()
            .map(|connector| {
                let slot = Slot {
                    connector: connector.clone(),
                    state: tokio::sync::Mutex::default(),
                };
                (connector.id, slot)
            })
            .collect();
        Self {
            inner: Arc::new(Pool {
                http,
                slots,
                shut_down: AtomicBool::new(false),
            }),
        }
    }

    /// The connector ids, in no particular order.
    pub fn connector_ids(&self) -> impl Iterator<Item = &str> {
        self.inner.slots.keys().map(String::as_str)
    }

    /// Every tool `connector_id` offers (all pages), connecting first if needed.
    pub async fn list_tools(&self, connector_id: &str) -> Result<Vec<ToolDef>, ToolError> {
        let tools = self
            .run(
                connector_id,
                "tools/list",
                Replay::Always,
                LIST_TIMEOUT,
                |peer| async move { peer.list_all_tools().await },
            )
            .await?;
        Ok(tools.into_iter().map(tool_def).collect())
    }

    /// Calls tool `name` of `connector_id` with the model's JSON arguments
    /// (an object; empty text or `null` for none) and returns its text
    /// parts joined by newlines (its structured content as JSON when it has
    /// no text). A result flagged `isError`, or an MCP error reply such as
    /// an unknown tool, is [`ToolError::Tool`] with the server's message.
    /// `timeout` bounds the call itself; opening a session first has its
    /// own 30 s limit.
    pub async fn call_tool(
        &self,
        connector_id: &str,
        name: &str,
        arguments_json: &str,
        timeout: Duration,
    ) -> Result<String, ToolError> {
        let arguments = parse_arguments(name, arguments_json)?;
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        let result = self
            .run(connector_id, name, Replay::IfUndelivered, timeout, |peer| {
                let params = params.clone();
                async move { peer.call_tool(params).await }
            })
            .await?;
        answer(result)
    }

    /// Ends every session: stdio servers get their stdin closed and are
    /// waited for (then terminated, then killed, a few seconds apart, as
    /// the MCP spec describes); later calls fail.
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        for slot in self.inner.slots.values() {
            // Waits for a session being opened right now, then ends it.
            let session = slot.state.lock().await.session.take();
            if let Some(mut session) = session {
                let _ = session.close().await;
            }
        }
    }

    /// Runs `op` on `connector_id`'s session, opening one first if needed,
    /// and once more on a new session after a transport failure that
    /// `replay` allows.
    async fn run<T, F, Fut>(
        &self,
        connector_id: &str,
        what: &str,
        replay: Replay,
        timeout: Duration,
        op: F,
    ) -> Result<T, ToolError>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let slot = self
            .inner
            .slots
            .get(connector_id)
            .ok_or_else(|| ToolError::UnknownConnector(connector_id.to_owned()))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (peer, generation) = self.session(slot).await?;
            let error = match tokio::time::timeout(timeout, op(peer)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                // A slow tool is not a broken session: it stays open.
                Err(_elapsed) => {
                    return Err(ToolError::TimedOut {
                        tool: what.to_owned(),
                        attempts,
                    });
                }
            };
            let delivered = match classify(&error) {
                // An MCP error reply's message is terse ("tool not
                // found"), so it is prefixed with what was asked for.
                Failure::Reply(message) => {
                    return Err(ToolError::Tool(format!("{what}: {message}")));
                }
                Failure::Other => return Err(mcp_error(connector_id, &error)),
                Failure::Transport { delivered } => delivered,
            };
            slot.forget(generation).await;
            let replayable = replay == Replay::Always || !delivered;
            if attempts > 1 || !replayable {
                return Err(mcp_error(connector_id, &error));
            }
            tracing::debug!(
                connector = connector_id,
                %what,
                error = %describe_service_error(&error),
                "MCP transport failed; reconnecting once"
            );
        }
    }

    /// The open session of `slot`, opened now if there is none or it died.
    async fn session(&self, slot: &Slot) -> Result<(Peer<RoleClient>, u64), ToolError> {
        let mut state = slot.state.lock().await;
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(ToolError::Mcp {
                connector: slot.connector.id.clone(),
                reason: "the MCP pool is shut down".to_owned(),
            });
        }
        if let Some(session) = &state.session
            && !session.is_closed()
            && !session.peer().is_transport_closed()
        {
            return Ok((session.peer().clone(), state.generation));
        }
        // Dropping a dead session cancels its task, which ends its child.
        state.session = None;
        let session = tokio::time::timeout(
            CONNECT_TIMEOUT,
            connect::open(&slot.connector, &self.inner.http),
        )
        .await
        .map_err(|_elapsed| ToolError::Mcp {
            connector: slot.connector.id.clone(),
            reason: format!(
                "no MCP session within {} s (spawn or connect, then the handshake)",
                CONNECT_TIMEOUT.as_secs()
            ),
        })??;
        state.generation += 1;
        let peer = session.peer().clone();
        state.session = Some(session);
        Ok((peer, state.generation))
    }
}

impl Slot {
    /// Drops the session opened as `generation` if it is still the current one.
    async fn forget(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            state.session = None;
        }
    }
}

fn mcp_error(connector_id: &str, error: &ServiceError) -> ToolError {
    ToolError::Mcp {
        connector: connector_id.to_owned(),
        reason: describe_service_error(error),
    }
}

/// MCP takes arguments as an object; models sometimes send nothing.
fn parse_arguments(tool: &str, text: &str) -> Result<Option<JsonObject>, ToolError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(object)) => Ok(Some(object)),
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(_) => Err(ToolError::InvalidArguments {
            tool: tool.to_owned(),
            reason: "expected a JSON object".to_owned(),
        }),
        Err(error) => Err(ToolError::InvalidArguments {
            tool: tool.to_owned(),
            reason: format!("not JSON: {error}"),
        }),
    }
}

fn tool_def(tool: Tool) -> ToolDef {
    ToolDef {
        name: tool.name.into_owned(),
        description: tool
            .description
            .map(|text| text.into_owned())
            .unwrap_or_default(),
        input_schema: serde_json::Value::Object(Arc::unwrap_or_clone(tool.input_schema)),
    }
}

/// The text a model reads from a tool result.
fn answer(result: CallToolResult) -> Result<String, ToolError> {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(ContentBlock::as_text)
        .map(|text| text.text.as_str())
        .collect();
    let text = match (texts.is_empty(), &result.structured_content) {
        (true, Some(structured)) => structured.to_string(),
        _ => texts.join("\n"),
    };
    if result.is_error == Some(true) {
        return Err(ToolError::Tool(text));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_an_object_or_nothing() {
        assert_eq!(parse_arguments("t", "").unwrap(), None);
        assert_eq!(parse_arguments("t", "null").unwrap(), None);
        assert_eq!(parse_arguments("t", r#"{"a":1}"#).unwrap().unwrap()["a"], 1);
        assert!(matches!(
            parse_arguments("t", "[1]"),
            Err(ToolError::InvalidArguments { .. })
        ));
        assert!(matches!(
            parse_arguments("t", "{oops"),
            Err(ToolError::InvalidArguments { .. })
        ));
    }

    #[test]
    fn text_parts_are_joined_and_is_error_is_a_tool_error() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(answer(ok).unwrap(), "a\nb");
        let failed = CallToolResult::error(vec![ContentBlock::text("no such order")]);
        assert!(matches!(answer(failed), Err(ToolError::Tool(m)) if m == "no such order"));
    }

    #[test]
    fn debug_output_hides_header_and_env_values() {
        let http = McpTransport::Http {
            url: "https://mcp.example.com/mcp?token=s3cret".into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
        };
        let stdio = McpTransport::Stdio {
            command: "server".into(),
            args: vec![],
            env: vec![("API_KEY".into(), "s3cret".into())],
        };
        for transport in [http, stdio] {
            let text = format!("{transport:?}");
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
}
