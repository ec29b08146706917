//! `[agents]`: the agent runtime's workers, and the tools agents may use
//! beyond the client's own functions: webhook tools and MCP connectors.
//!
//! Webhooks and connectors are declared here, by the operator, never
//! through the API: a connector may start a process and a webhook sends a
//! run's data to a URL, so what an agent can reach is configuration, and
//! which tenants' agents may call them is a contract question (the Cedar
//! `use` action).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::raw::RawSecret;
use crate::{Env, Secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgents {
    pub workers: Option<usize>,
    pub lease: Option<String>,
    pub poll_interval: Option<String>,
    pub max_steps: Option<u32>,
    pub webhook_secret: Option<RawSecret>,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    #[serde(default)]
    pub connectors: Vec<RawConnector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub parameters: Option<toml::Value>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnector {
    pub id: String,
    pub url: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub timeout: Option<String>,
}

/// The agent runtime's settings.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    /// Runs worked on at once by this instance.
    pub workers: usize,
    /// How long a worker holds a run between saves; a run whose worker
    /// died is taken over after this.
    pub lease: Duration,
    /// How often idle workers look for runs.
    pub poll_interval: Duration,
    /// Model steps a run may take before it fails.
    pub max_steps: u32,
    /// Signs webhook requests (HMAC-SHA256); required with webhooks.
    pub webhook_secret: Option<Secret>,
    pub webhooks: Vec<WebhookConfig>,
    pub connectors: Vec<ConnectorConfig>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            workers: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            max_steps: 16,
            webhook_secret: None,
            webhooks: Vec::new(),
            connectors: Vec::new(),
        }
    }
}

impl AgentsConfig {
    pub fn webhook(&self, name: &str) -> Option<&WebhookConfig> {
        self.webhooks.iter().find(|w| w.name == name)
    }

    pub fn connector(&self, id: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.id == id)
    }
}

/// A webhook tool: the model calls it like a function; Treaty POSTs the
/// call, signed, to `url`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    /// The JSON schema of the arguments.
    pub parameters: serde_json::Value,
    pub timeout: Duration,
    pub max_attempts: u32,
}

/// An MCP server whose tools agents may use.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub id: String,
    pub transport: ConnectorTransport,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorTransport {
    /// Streamable HTTP at this URL.
    Http { url: String },
    /// A child process speaking MCP on stdin/stdout.
    Stdio { command: String, args: Vec<String> },
}

pub(crate) fn validate(
    raw: RawAgents,
    base_dir: &Path,
    env: &dyn Env,
    duration: impl Fn(&str, Option<&str>, Duration, bool) -> Result<Duration, ConfigError>,
    secret: impl Fn(&str, RawSecret) -> Result<Secret, ConfigError>,
) -> Result<AgentsConfig, ConfigError> {
    let d = AgentsConfig::default();
    let workers = raw.workers.unwrap_or(d.workers);
    if !(1..=256).contains(&workers) {
        return Err(ConfigError::invalid(
            "agents.workers",
            "must be between 1 and 256",
            "workers = 4",
        ));
    }
    let max_steps = raw.max_steps.unwrap_or(d.max_steps);
    if max_steps == 0 {
        return Err(ConfigError::invalid(
            "agents.max_steps",
            "must be at least 1",
            "max_steps = 16",
        ));
    }
    let mut webhooks = Vec::new();
    for (i, w) in raw.webhooks.into_iter().enumerate() {
        let key = format!("agents.webhooks[{i}]");
        if w.name.is_empty()
            || !w
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "must be a tool name: letters, digits, '_' and '-'",
                r#"name = "create_ticket""#,
            ));
        }
        if webhooks.iter().any(|x: &WebhookConfig| x.name == w.name) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("webhook {:?} is declared twice", w.name),
                r#"name = "create_ticket""#,
            ));
        }
        let url = crate::env::interpolate(&w.url, env)
            .map_err(|m| ConfigError::invalid(format!("{key}.url"), m, EXAMPLE_URL))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{key}.url"),
                "must be an http:// or https:// URL",
                EXAMPLE_URL,
            ));
        }
        let parameters = match w.parameters {
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(v) => serde_json::to_value(v).map_err(|e| {
                ConfigError::invalid(
                    format!("{key}.parameters"),
                    format!("is not a JSON schema: {e}"),
                    r#"parameters = { type = "object", properties = { id = { type = "string" } } }"#,
                )
            })?,
        };
        webhooks.push(WebhookConfig {
            name: w.name,
            description: w.description,
            url,
            parameters,
            timeout: duration(
                &format!("{key}.timeout"),
                w.timeout.as_deref(),
                Duration::from_secs(10),
                false,
            )?,
            max_attempts: w.max_attempts.unwrap_or(3).clamp(1, 10),
        });
    }
    let mut connectors = Vec::new();
    for (i, c) in raw.connectors.into_iter().enumerate() {
        let key = format!("agents.connectors[{i}]");
        if c.id.is_empty() || connectors.iter().any(|x: &ConnectorConfig| x.id == c.id) {
            return Err(ConfigError::invalid(
                format!("{key}.id"),
                "must be a unique, non-empty connector id",
                r#"id = "orders""#,
            ));
        }
        let transport = match (c.url, c.command) {
            (Some(url), None) => ConnectorTransport::Http {
                url: crate::env::interpolate(&url, env)
                    .map_err(|m| ConfigError::invalid(format!("{key}.url"), m, EXAMPLE_MCP))?,
            },
            (None, Some(command)) => ConnectorTransport::Stdio {
                command: resolve_command(&command, base_dir),
                args: c.args,
            },
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    "give exactly one of `url` (Streamable HTTP) or `command` (stdio)",
                    EXAMPLE_MCP,
                ));
            }
        };
        connectors.push(ConnectorConfig {
            id: c.id,
            transport,
            timeout: duration(
                &format!("{key}.timeout"),
                c.timeout.as_deref(),
                Duration::from_secs(10),
                false,
            )?,
        });
    }
    let webhook_secret = match raw.webhook_secret {
        Some(s) => Some(secret("agents.webhook_secret", s)?),
        None if !webhooks.is_empty() => {
            return Err(ConfigError::invalid(
                "agents.webhook_secret",
                "webhook tools are declared, so requests to them must be signed",
                r#"webhook_secret = { file = "secrets/webhook.key" }"#,
            ));
        }
        None => None,
    };
    Ok(AgentsConfig {
        workers,
        lease: duration("agents.lease", raw.lease.as_deref(), d.lease, false)?,
        poll_interval: duration(
            "agents.poll_interval",
            raw.poll_interval.as_deref(),
            d.poll_interval,
            false,
        )?,
        max_steps,
        webhook_secret,
        webhooks,
        connectors,
    })
}

const EXAMPLE_URL: &str = r#"url = "https://hooks.example.com/create_ticket""#;
const EXAMPLE_MCP: &str =
    r#"url = "http://127.0.0.1:4010/mcp"  # or command = "my-mcp-server", args = []"#;

/// A command with a path separator is relative to the config file.
fn resolve_command(command: &str, base_dir: &Path) -> String {
    if command.contains('/') && !command.starts_with('/') {
        base_dir.join(command).display().to_string()
    } else {
        command.to_owned()
    }
}
