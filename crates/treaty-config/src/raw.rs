//! The config file as written: every table denies unknown keys.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub store: RawStore,
    pub instance: Option<RawInstance>,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
    #[serde(default)]
    pub channels: Vec<RawChannel>,
    #[serde(default)]
    pub products: Vec<RawProduct>,
    pub contracts: Option<RawContracts>,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub commitments: Vec<RawCommitment>,
    #[serde(default)]
    pub classification: RawClassification,
    #[serde(default)]
    pub agents: crate::agents::RawAgents,
    #[serde(default)]
    pub rate_limits: crate::limits::RawRateLimits,
    #[serde(default)]
    pub budgets: Vec<crate::limits::RawBudget>,
    #[serde(default)]
    pub telemetry: crate::limits::RawTelemetry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContracts {
    pub dir: String,
    pub reading: String,
    pub data_classifications: Option<Vec<String>>,
    pub default_data_classification: Option<String>,
    #[serde(default)]
    pub shadow: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLedger {
    pub durability: Option<String>,
    pub max_batch: Option<usize>,
    pub checkpoint_every: Option<u64>,
    pub checkpoint_interval: Option<String>,
    pub signing_key: Option<RawSecret>,
    pub publish_dir: Option<String>,
    #[serde(default)]
    pub publish_urls: Vec<String>,
    #[serde(default)]
    pub witnesses: Vec<RawWitness>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    pub url: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouting {
    pub strategy: Option<String>,
    pub health_check_interval: Option<String>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommitment {
    pub clause: String,
    pub cloud: String,
    pub amount: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClassification {
    pub rules_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub admin_token_env: Option<String>,
    pub auditor_token_env: Option<String>,
    pub ui_session_idle: Option<String>,
    pub key_cache_ttl: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_uri_bytes: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub reload_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub total_timeout: Option<String>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub url: Option<String>,
    /// Redis for the shared rate-limit buckets of several replicas.
    pub redis_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstance {
    pub id: String,
    pub cloud: String,
    pub region: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    pub id: String,
    pub cloud: String,
    pub region: String,
    pub provider: String,
    pub base_url: String,
    pub api_key: Option<RawSecret>,
    pub api_version: Option<String>,
    pub api_style: Option<String>,
    pub auth: Option<String>,
    /// `gemini` hosts: `"gemini"` (the default) or `"vertex"`.
    pub gemini_api: Option<String>,
    /// Vertex AI's project and location (`gemini_api = "vertex"` only).
    pub project: Option<String>,
    pub location: Option<String>,
    #[serde(default)]
    pub certifications: Vec<String>,
    pub weight: Option<u32>,
    /// `bedrock` hosts: the SigV4 signing region (required there).
    pub aws_region: Option<String>,
    /// `bedrock` hosts: explicit credentials instead of the standard chain.
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<RawSecret>,
    pub aws_session_token: Option<RawSecret>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// The upstream's own quota, kept under across replicas.
    pub rate_limit: Option<crate::limits::RawRateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub name: String,
    pub target: Option<String>,
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    #[serde(default)]
    pub output_cost_per_mtok: f64,
}

/// `{ env = "NAME" }` or `{ file = "path" }`; an inline string is refused
/// during validation so the error can say what to write instead.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSecret {
    Ref(RawSecretRef),
    Inline(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    pub id: String,
    pub segment: String,
    pub data_region: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
    pub id: String,
    pub kind: String,
    pub cloud: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProduct {
    pub id: String,
    pub kind: String,
    pub models: Option<Vec<String>>,
}
