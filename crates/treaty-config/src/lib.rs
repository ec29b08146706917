//! Treaty's configuration: TOML in, a validated [`Config`] out.
//!
//! Parsing happens in two steps, as in tensorzero and pingora: [`raw`]
//! mirrors the file with `deny_unknown_fields`, so a misspelt key is an
//! error with its line; [`validate`] turns it into typed, checked values or
//! a [`ConfigError`] that names the key and shows a correct example.
//! Secrets are read from environment variables or files named in the
//! config, never from the file itself, and are redacted in `Debug`.
//! Environment access goes through the [`Env`] trait so tests and the demo
//! can supply their own values without touching the process environment.

mod aws;
mod env;
mod error;
mod limits;
mod raw;
mod secret;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod agents;
pub use agents::{AgentsConfig, ConnectorConfig, ConnectorTransport, WebhookConfig};
pub use env::{Env, MapEnv, ProcessEnv};
pub use error::ConfigError;
pub use limits::{
    BudgetConfig, BudgetPeriod, BudgetScope, LimitsConfig, RateLimit, TelemetryConfig,
};
pub use secret::Secret;
use treaty_domain::{Channel, Host, HostId, Instance, Product, Tenant};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub store: StoreConfig,
    pub instance: Instance,
    pub hosts: Vec<HostConfig>,
    pub tenants: Vec<Tenant>,
    pub channels: Vec<Channel>,
    pub products: Vec<Product>,
    /// `None`: no contracts; every request is admitted and every host
    /// serving the model is allowed.
    pub contracts: Option<ContractsConfig>,
    pub classification: ClassificationConfig,
    pub routing: RoutingConfig,
    pub ledger: LedgerConfig,
    pub agents: AgentsConfig,
    /// Committed spend per cloud, for preference clauses such as P1.
    pub commitments: Vec<CommitmentConfig>,
    /// `[rate_limits]`: per key, per tenant, failed authentications.
    pub limits: LimitsConfig,
    /// `[[budgets]]`, written to the store when the gateway starts.
    pub budgets: Vec<BudgetConfig>,
    /// `[telemetry]`: metrics labels, OTLP traces.
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// `true` (strict, the default): a request's decision record is
    /// durable before any upstream call. `false` (batched): durable before
    /// the response completes.
    pub strict: bool,
    /// Most records committed in one transaction.
    pub max_batch: usize,
    /// Sign a checkpoint every this many records...
    pub checkpoint_every: u64,
    /// ...or this often, whichever comes first.
    pub checkpoint_interval: Duration,
    /// The log's signing key, outside the store; `None`: a key file beside
    /// the SQLite store, created on first start.
    pub signing_key: Option<LedgerKeyConfig>,
    /// An append-only directory each checkpoint is written to (absolute).
    pub publish_dir: Option<PathBuf>,
    /// Endpoints each checkpoint note is POSTed to.
    pub publish_urls: Vec<String>,
    /// Witnesses asked to cosign each checkpoint.
    pub witnesses: Vec<WitnessConfig>,
}

/// Where the ledger's signing key is: a key file (as `treaty ledger keygen`
/// writes it), or an environment variable holding the same text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerKeyConfig {
    File(PathBuf),
    Env { name: String, value: Secret },
}

/// A tlog-witness: its URL prefix and its cosigner key
/// (`name+id+base64`, type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessConfig {
    pub url: String,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// `weighted`, `least_latency` or `cost`.
    pub strategy: String,
    /// How often hosts are probed; zero disables active checks.
    pub health_check_interval: Duration,
    /// Consecutive failures that open a host's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit keeps a host out before a probe.
    pub breaker_cooldown: Duration,
}

#[derive(Debug, Clone)]
pub struct CommitmentConfig {
    /// The preference clause this commitment backs, e.g. `P1`.
    pub clause: String,
    pub cloud: String,
    /// Committed spend for the period, in cost units.
    pub amount: f64,
}

/// Where the contract readings are and which one is in force.
#[derive(Debug, Clone)]
pub struct ContractsConfig {
    /// The directory holding one sub-directory per reading (absolute).
    pub dir: PathBuf,
    /// The reading in force (a sub-directory of `dir`); `--reading`
    /// overrides it.
    pub reading: String,
    /// The data classifications requests may carry
    /// (`x-treaty-data-classification`).
    pub data_classifications: Vec<String>,
    /// The classification of requests that carry none.
    pub default_data_classification: String,
    /// Other readings evaluated beside the one in force on live traffic
    /// and recorded with each decision, never enforced.
    pub shadow: Vec<String>,
}

impl ContractsConfig {
    /// The directory of the reading in force.
    pub fn reading_dir(&self) -> PathBuf {
        self.dir.join(&self.reading)
    }

    /// The directory of any reading by name.
    pub fn dir_of(&self, reading: &str) -> PathBuf {
        self.dir.join(reading)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClassificationConfig {
    /// A rules file (absolute); `None` uses Treaty's defaults. A reading
    /// directory's own `classification.toml` takes precedence.
    pub rules_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// The environment variable holding the admin token; admin routes are
    /// disabled when it is unset.
    pub admin_token_env: String,
    /// The environment variable holding the auditor token: the web UI's
    /// read-only role (browse and verify, never change); off when unset.
    pub auditor_token_env: String,
    /// A web UI session unused this long is over (sliding).
    pub ui_session_idle: Duration,
    /// How long a verified virtual key is trusted before the store is asked
    /// again. Revocations made elsewhere take effect within this time.
    pub key_cache_ttl: Duration,
    /// A client must send a request's whole header block within this,
    /// from the connection's start or the end of its previous response
    /// (so it also bounds an idle keep-alive connection).
    pub header_read_timeout: Duration,
    /// The most time between two chunks of a request body.
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A longer request URL (path and query) is refused with 414.
    pub max_uri_bytes: usize,
    /// A larger header block (names, values and their separators) is
    /// refused with 431.
    pub max_header_bytes: usize,
    /// `[server.tls]`: terminate TLS on the listener; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: the certificate the listener serves.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM: the certificate, then any intermediates (relative paths are
    /// from the config file's folder).
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often both files are read again; a changed pair that loads is
    /// served from then on (default 10 s).
    pub reload_interval: Duration,
}

impl ServerConfig {
    /// The largest `max_uri_bytes`: hyper refuses longer URLs itself,
    /// with an empty 414, before Treaty sees the request.
    pub const URI_BYTES_CEILING: usize = 65_534;
    /// The largest `max_header_bytes`; the edge buffers a request head of
    /// up to both ceilings so that it can answer in the OpenAI shape.
    pub const HEADER_BYTES_CEILING: usize = 256 * 1024;
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Deadline for the first byte of the upstream's answer (headers).
    pub first_byte_timeout: Duration,
    /// Deadline for the whole upstream exchange, streams included.
    pub total_timeout: Duration,
    /// Attempts per request across allowed hosts, the first included.
    pub max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative to the config file) or `postgres://...`.
    pub url: String,
    /// `redis://...`: where several replicas share rate-limit buckets
    /// (PostgreSQL itself when unset).
    pub redis_url: Option<String>,
}

/// A host as contracts see it, plus how to reach it.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub host: Arc<Host>,
    pub endpoint: Endpoint,
    /// The upstream's quota, kept under across replicas; a host at it is
    /// skipped like one whose breaker is open.
    pub rate_limit: RateLimit,
}

impl HostConfig {
    pub fn id(&self) -> &HostId {
        &self.host.id
    }
}

/// How to reach a host and authenticate to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Set for `azure_openai` hosts only.
    pub azure: Option<AzureSettings>,
    /// Set for `gemini` hosts only; `None` there means the Gemini API.
    pub gemini: Option<GeminiApi>,
    /// Set for `bedrock` hosts only.
    pub aws: Option<AwsSettings>,
}

/// How a `bedrock` host signs its requests (SigV4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The signing region, e.g. `us-east-1`.
    pub region: String,
    /// Credentials named in the config. `None`: the standard AWS chain
    /// (environment variables, shared credentials file, web identity).
    pub credentials: Option<AwsCredentials>,
}

/// An access key pair (and session token) given in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Not a secret by AWS's rules (it shows in ARNs and CloudTrail), but
    /// Treaty never prints it either.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    pub api_style: AzureApiStyle,
    pub auth: AzureAuth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureApiStyle {
    /// `/openai/deployments/{deployment}/...?api-version=...`
    Deployments { api_version: String },
    /// The newer `/openai/v1/...` path with the model in the body.
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureAuth {
    /// The `api-key` header.
    ApiKey,
    /// `Authorization: Bearer` with a Microsoft Entra token.
    Bearer,
}

/// Which Google API a `gemini` host is: both speak `generateContent`, they
/// differ in URL shape and credential. `api_key` is the API key for the
/// Gemini API and the OAuth access token for Vertex AI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeminiApi {
    /// `{base}/v1beta/models/{model}:generateContent` with `x-goog-api-key`.
    Gemini,
    /// `{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`
    /// with `Authorization: Bearer`.
    Vertex { project: String, location: String },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, &base_dir, env).map_err(|e| e.in_file(path))
    }

    /// Parses and validates config text; relative paths resolve against
    /// `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string(),
        })?;
        validate::validate(raw, base_dir, env)
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id.as_str() == id)
    }

    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id.as_str() == id)
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id.as_str() == id)
    }

    pub fn host(&self, id: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.host.id.as_str() == id)
    }

    /// Checks that a key's binding names configured entities.
    pub fn check_binding(&self, tenant: &str, channel: &str, product: &str) -> Result<(), String> {
        if self.tenant(tenant).is_none() {
            return Err(format!(
                "unknown tenant {tenant:?}; configured: {}",
                ids(self.tenants.iter().map(|t| t.id.as_str()))
            ));
        }
        if self.channel(channel).is_none() {
            return Err(format!(
                "unknown channel {channel:?}; configured: {}",
                ids(self.channels.iter().map(|c| c.id.as_str()))
            ));
        }
        if self.product(product).is_none() {
            return Err(format!(
                "unknown product {product:?}; configured: {}",
                ids(self.products.iter().map(|p| p.id.as_str()))
            ));
        }
        Ok(())
    }

    /// Every public model name some host serves, sorted and deduplicated.
    pub fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .hosts
            .iter()
            .flat_map(|h| h.host.models.iter().map(|m| m.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Resolves the store URL: a relative SQLite path is taken relative to
    /// the config file, not the working directory.
    pub fn store_url(&self) -> String {
        resolve_store_url(&self.store.url, &self.base_dir)
    }
}

fn ids<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// Makes a relative `sqlite://` path absolute against `base_dir`; other
/// URLs are returned as they are.
pub fn resolve_store_url(url: &str, base_dir: &Path) -> String {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if !path.starts_with('/') && path != ":memory:" {
            let abs = base_dir.join(path);
            let mut out = format!("sqlite://{}", abs.display());
            if let Some(q) = query {
                out.push('?');
                out.push_str(q);
            }
            return out;
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests;
