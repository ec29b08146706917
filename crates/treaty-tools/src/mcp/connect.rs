//! Opening MCP sessions (Streamable HTTP or a stdio child process) and
//! reading rmcp's errors: which failures are the server's answer, which are
//! a broken transport, and whether a request certainly never left. Error
//! text is rebuilt from the causes so no URL (which may carry a token) or
//! header reaches a log or a model.

use super::{McpConnector, McpTransport};
use crate::ToolError;
use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use std::collections::HashMap;
use std::error::Error;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt as _;

/// An open session; the handler is the client's identity, nothing more
/// (no sampling, roots or elicitation is offered to servers).
pub(super) type Session = RunningService<RoleClient, ClientConfig>;

/// Variables a stdio server inherits from the gateway; everything else it
/// gets is in its connector's `env`.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    // Windows needs these to start most programs at all.
    "SYSTEMROOT",
    "WINDIR",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "PATHEXT",
    "COMSPEC",
];

/// How an rmcp call failed, as the pool needs to know it.
pub(super) enum Failure {
    /// The server answered with an MCP error (unknown tool, bad params).
    Reply(String),
    /// The transport broke; `delivered` unless the request certainly
    /// never reached the server.
    Transport { delivered: bool },
    /// Anything else (an unexpected reply, a cancelled session).
    Other,
}

pub(super) fn classify(error: &ServiceError) -> Failure {
    match error {
        ServiceError::McpError(data) => Failure::Reply(data.message.to_string()),
        // Also what a request waiting for its answer sees when the session
        // dies, so it may well have been delivered.
        ServiceError::TransportClosed => Failure::Transport { delivered: true },
        ServiceError::TransportSend(error) => Failure::Transport {
            delivered: !never_sent(error.error.as_ref()),
        },
        _ => Failure::Other,
    }
}

/// True when the cause shows the request did not leave: the HTTP
/// connection could not be made, or the child's stdin was already closed.
fn never_sent(error: &(dyn Error + 'static)) -> bool {
    let mut node = Some(error);
    while let Some(current) = node {
        if let Some(StreamableHttpError::Client(client)) =
            current.downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            return client.is_connect();
        }
        if let Some(client) = current.downcast_ref::<reqwest::Error>() {
            return client.is_connect();
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotConnected
            );
        }
        node = current.source();
    }
    false
}

/// Opens and initializes a session for `connector`.
pub(super) async fn open(
    connector: &McpConnector,
    http: &reqwest::Client,
) -> Result<Session, ToolError> {
    let config_error = |reason: String| ToolError::Config {
        tool: connector.id.clone(),
        reason,
    };
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("treaty", env!("CARGO_PKG_VERSION")),
    );
    let started = match &connector.transport {
        McpTransport::Http { url, headers } => {
            let mut custom = HashMap::with_capacity(headers.len());
            for (name, value) in headers {
                let name = http::HeaderName::try_from(name.as_str())
                    .map_err(|_| config_error(format!("`{name}` is not a header name")))?;
                let mut value = http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                    config_error(format!("the value of header `{name}` is not valid"))
                })?;
                value.set_sensitive(true);
                custom.insert(name, value);
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
            client.serve(transport).await
        }
        McpTransport::Stdio { command, args, env } => {
            let mut child = tokio::process::Command::new(command);
            child.args(args).env_clear();
            for name in INHERITED_ENV {
                if let Some(value) = std::env::var_os(name) {
                    child.env(name, value);
                }
            }
            child.envs(env.iter().map(|(name, value)| (name, value)));
            let (transport, stderr) = TokioChildProcess::builder(child)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|error| ToolError::Mcp {
                    connector: connector.id.clone(),
                    reason: format!("could not start `{command}`: {error}"),
                })?;
            if let Some(stderr) = stderr {
                tokio::spawn(forward_stderr(connector.id.clone(), stderr));
            }
            client.serve(transport).await
        }
    };
    started.map_err(|error| ToolError::Mcp {
        connector: connector.id.clone(),
        reason: format!("no MCP session: {}", describe_init_error(&error)),
    })
}

/// A stdio server's diagnostics go to the gateway's log, line by line, so
/// a full pipe never blocks it.
async fn forward_stderr(connector: String, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(connector = %connector, "MCP server stderr: {line}");
    }
}

/// `error` in words, without URLs.
pub(super) fn describe_service_error(error: &ServiceError) -> String {
    match error {
        ServiceError::TransportSend(error) => describe(error.error.as_ref()),
        other => other.to_string(),
    }
}

fn describe_init_error(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, context } => {
            format!("{} (while {context})", describe(error.error.as_ref()))
        }
        other => other.to_string(),
    }
}

/// Wrappers repeat their cause's text (a reqwest error's includes its URL),
/// so the text is taken at the first cause that is known, rebuilt without
/// the URL.
fn describe(error: &(dyn Error + 'static)) -> String {
    let mut node = Some(error);
    while let Some(current) = node {
        if let Some(http) = current.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return match http {
                StreamableHttpError::Client(client) => describe_reqwest(client),
                other => other.to_string(),
            };
        }
        if let Some(client) = current.downcast_ref::<reqwest::Error>() {
            return describe_reqwest(client);
        }
        node = current.source();
    }
    error.to_string()
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else if let Some(status) = error.status() {
        format!("HTTP {status}")
    } else if error.is_body() || error.is_decode() {
        "the answer broke off or could not be read".to_owned()
    } else {
        "the HTTP request failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
