//! Raw config to validated config.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use treaty_domain::{
    Channel, ChannelId, ChannelKind, Host, HostId, Instance, ModelDeployment, Product, ProductId,
    ProductKind, ProviderKind, Tenant, TenantId,
};

use crate::aws::{AwsFields, aws_settings};
use crate::env::{Env, interpolate};
use crate::raw::{RawConfig, RawHost, RawSecret};
use crate::{
    AzureApiStyle, AzureAuth, AzureSettings, Config, ConfigError, Endpoint, GeminiApi, HostConfig,
    Secret, ServerConfig, StoreConfig, UpstreamConfig,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_MAX_BODY: u64 = 8 * 1024 * 1024;

pub(crate) fn validate(
    mut raw: RawConfig,
    base_dir: &Path,
    env: &dyn Env,
) -> Result<Config, ConfigError> {
    let server = server(&raw, base_dir)?;
    let upstream = upstream(&raw)?;
    let store = StoreConfig {
        url: match &raw.store.url {
            Some(url) => interpolate(url, env).map_err(|m| {
                ConfigError::invalid("store.url", m, r#"url = "sqlite://treaty.db""#)
            })?,
            None => "sqlite://treaty.db".to_owned(),
        },
        redis_url: match &raw.store.redis_url {
            None => None,
            Some(url) => Some(interpolate(url, env).map_err(|m| {
                ConfigError::invalid(
                    "store.redis_url",
                    m,
                    r#"redis_url = "redis://127.0.0.1:6379""#,
                )
            })?),
        },
    };
    if let Some(url) = &store.redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::invalid(
                "store.redis_url",
                format!("{url:?} is not a redis:// URL"),
                r#"redis_url = "redis://127.0.0.1:6379""#,
            ));
        }
        if store.url.starts_with("sqlite:") {
            return Err(ConfigError::invalid(
                "store.redis_url",
                "Redis shares rate limits between replicas, which need PostgreSQL as the store",
                r#"url = "postgres://treaty@db/treaty"  redis_url = "redis://127.0.0.1:6379""#,
            ));
        }
    }
    if !(store.url.starts_with("sqlite:") || store.url.starts_with("postgres")) {
        return Err(ConfigError::invalid(
            "store.url",
            format!("unsupported store URL {:?}", store.url),
            r#"url = "sqlite://treaty.db"  # or "postgres://user@host/db""#,
        ));
    }
    let instance = match raw.instance {
        Some(i) => Instance {
            id: i.id,
            cloud: i.cloud,
            region: i.region,
        },
        None => Instance {
            id: "treaty".into(),
            cloud: "onprem".into(),
            region: "local".into(),
        },
    };

    let mut hosts = Vec::with_capacity(raw.hosts.len());
    let mut seen = HashSet::new();
    for (i, h) in raw.hosts.into_iter().enumerate() {
        let host = host(i, h, base_dir, env)?;
        if !seen.insert(host.host.id.clone()) {
            return Err(ConfigError::invalid(
                format!("hosts[{i}].id"),
                format!("duplicate host id {:?}", host.host.id.as_str()),
                r#"id = "azure-westus""#,
            ));
        }
        hosts.push(host);
    }

    let mut tenants = Vec::new();
    for (i, t) in raw.tenants.into_iter().enumerate() {
        let key = format!("tenants[{i}]");
        let id = id::<TenantId>(&key, &t.id, r#"id = "acme""#)?;
        if tenants.iter().any(|x: &Tenant| x.id == id) {
            return Err(dup(&key, &t.id, r#"id = "acme""#));
        }
        nonempty(
            &format!("{key}.segment"),
            &t.segment,
            r#"segment = "enterprise""#,
        )?;
        nonempty(
            &format!("{key}.data_region"),
            &t.data_region,
            r#"data_region = "us""#,
        )?;
        tenants.push(Tenant {
            id,
            segment: t.segment,
            data_region: t.data_region,
        });
    }

    let mut channels = Vec::new();
    for (i, c) in raw.channels.into_iter().enumerate() {
        let key = format!("channels[{i}]");
        let id = id::<ChannelId>(&key, &c.id, r#"id = "aws-marketplace""#)?;
        if channels.iter().any(|x: &Channel| x.id == id) {
            return Err(dup(&key, &c.id, r#"id = "aws-marketplace""#));
        }
        let kind = match c.kind.as_str() {
            "first_party" => ChannelKind::FirstParty,
            "third_party_cloud" => ChannelKind::ThirdPartyCloud,
            "reseller" => ChannelKind::Reseller,
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.kind"),
                    format!(
                        "unknown channel kind {other:?} (expected first_party, third_party_cloud or reseller)"
                    ),
                    r#"kind = "third_party_cloud""#,
                ));
            }
        };
        channels.push(Channel {
            id,
            kind,
            cloud: c.cloud,
        });
    }

    let served: HashSet<&str> = hosts
        .iter()
        .flat_map(|h| h.host.models.iter().map(|m| m.name.as_str()))
        .collect();
    let mut products = Vec::new();
    for (i, p) in raw.products.into_iter().enumerate() {
        let key = format!("products[{i}]");
        let id = id::<ProductId>(&key, &p.id, r#"id = "frontier""#)?;
        if products.iter().any(|x: &Product| x.id == id) {
            return Err(dup(&key, &p.id, r#"id = "frontier""#));
        }
        let kind = match p.kind.as_str() {
            "api" => ProductKind::Api,
            "first_party" => ProductKind::FirstParty,
            "non_api" => ProductKind::NonApi,
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.kind"),
                    format!(
                        "unknown product kind {other:?} (expected api, first_party or non_api)"
                    ),
                    r#"kind = "api""#,
                ));
            }
        };
        if let Some(models) = &p.models {
            for (j, m) in models.iter().enumerate() {
                if !served.contains(m.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.models[{j}]"),
                        format!("no host serves model {m:?}"),
                        r#"models = ["gpt-4o"]  # a name listed in some [[hosts]] models"#,
                    ));
                }
            }
        }
        products.push(Product {
            id,
            kind,
            models: p.models,
        });
    }

    let contracts = match raw.contracts {
        None => None,
        Some(c) => {
            nonempty(
                "contracts.reading",
                &c.reading,
                r#"reading = "reading-openai""#,
            )?;
            let dir = base_dir.join(&c.dir);
            if !dir.join(&c.reading).is_dir() {
                return Err(ConfigError::invalid(
                    "contracts.reading",
                    format!("no reading directory {}", dir.join(&c.reading).display()),
                    r#"dir = "contracts"  reading = "reading-openai"  # contracts/reading-openai/*.cedar"#,
                ));
            }
            let classes = c.data_classifications.unwrap_or_else(|| {
                ["public", "internal", "confidential", "restricted"]
                    .map(String::from)
                    .to_vec()
            });
            if classes.is_empty() || classes.iter().any(|d| d.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    "contracts.data_classifications",
                    "must list at least one non-empty name",
                    r#"data_classifications = ["public", "internal", "confidential"]"#,
                ));
            }
            let default = c
                .default_data_classification
                .unwrap_or_else(|| "internal".into());
            if !classes.contains(&default) {
                return Err(ConfigError::invalid(
                    "contracts.default_data_classification",
                    format!("{default:?} is not one of data_classifications"),
                    r#"default_data_classification = "internal""#,
                ));
            }
            for (i, name) in c.shadow.iter().enumerate() {
                if name == &c.reading || c.shadow[..i].contains(name) {
                    return Err(ConfigError::invalid(
                        "contracts.shadow",
                        format!("{name:?} is the reading in force or listed twice"),
                        r#"shadow = ["reading-aws", "reading-microsoft"]"#,
                    ));
                }
                if name.trim().is_empty() || !dir.join(name).is_dir() {
                    return Err(ConfigError::invalid(
                        "contracts.shadow",
                        format!("no reading directory {}", dir.join(name).display()),
                        r#"shadow = ["reading-aws"]  # contracts/reading-aws/*.cedar"#,
                    ));
                }
            }
            Some(crate::ContractsConfig {
                dir,
                reading: c.reading,
                shadow: c.shadow,
                data_classifications: classes,
                default_data_classification: default,
            })
        }
    };
    let classification = crate::ClassificationConfig {
        rules_file: raw.classification.rules_file.map(|f| base_dir.join(f)),
    };

    let r = &raw.routing;
    let strategy = r.strategy.clone().unwrap_or_else(|| "weighted".into());
    if !["weighted", "least_latency", "cost"].contains(&strategy.as_str()) {
        return Err(ConfigError::invalid(
            "routing.strategy",
            format!("unknown strategy {strategy:?} (expected weighted, least_latency or cost)"),
            r#"strategy = "least_latency""#,
        ));
    }
    let breaker_failures = r.breaker_failures.unwrap_or(5);
    if breaker_failures == 0 {
        return Err(ConfigError::invalid(
            "routing.breaker_failures",
            "must be at least 1",
            "breaker_failures = 5",
        ));
    }
    let routing = crate::RoutingConfig {
        strategy,
        health_check_interval: duration(
            "routing.health_check_interval",
            r.health_check_interval.as_deref(),
            Duration::from_secs(10),
            true,
        )?,
        breaker_failures,
        breaker_cooldown: duration(
            "routing.breaker_cooldown",
            r.breaker_cooldown.as_deref(),
            Duration::from_secs(30),
            false,
        )?,
    };
    let signing_key = ledger_key(raw.ledger.signing_key.take(), base_dir, env)?;
    let l = &raw.ledger;
    let strict = match l.durability.as_deref().unwrap_or("strict") {
        "strict" => true,
        "batched" => false,
        other => {
            return Err(ConfigError::invalid(
                "ledger.durability",
                format!("unknown durability {other:?} (expected strict or batched)"),
                r#"durability = "strict""#,
            ));
        }
    };
    let max_batch = l.max_batch.unwrap_or(512);
    if !(1..=100_000).contains(&max_batch) {
        return Err(ConfigError::invalid(
            "ledger.max_batch",
            "must be between 1 and 100000",
            "max_batch = 512",
        ));
    }
    let checkpoint_every = l.checkpoint_every.unwrap_or(1000);
    if checkpoint_every == 0 {
        return Err(ConfigError::invalid(
            "ledger.checkpoint_every",
            "must be at least 1",
            "checkpoint_every = 1000",
        ));
    }
    let ledger = crate::LedgerConfig {
        strict,
        max_batch,
        checkpoint_every,
        checkpoint_interval: duration(
            "ledger.checkpoint_interval",
            l.checkpoint_interval.as_deref(),
            Duration::from_secs(10),
            false,
        )?,
        signing_key,
        publish_dir: raw.ledger.publish_dir.as_deref().map(|d| base_dir.join(d)),
        publish_urls: ledger_urls(&raw.ledger.publish_urls)?,
        witnesses: ledger_witnesses(&raw.ledger.witnesses)?,
    };
    let mut commitments = Vec::new();
    for (i, c) in raw.commitments.iter().enumerate() {
        if !(c.amount.is_finite() && c.amount >= 0.0) {
            return Err(ConfigError::invalid(
                format!("commitments[{i}].amount"),
                "must be a non-negative number",
                "amount = 50000.0",
            ));
        }
        commitments.push(crate::CommitmentConfig {
            clause: c.clause.clone(),
            cloud: c.cloud.clone(),
            amount: c.amount,
        });
    }

    let tenant_ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let channel_ids: Vec<&str> = channels.iter().map(|c| c.id.as_str()).collect();
    let product_ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
    let limits = crate::limits::rate_limits(&raw.rate_limits, &tenant_ids, duration)?;
    let budgets = crate::limits::budgets(&raw.budgets, &tenant_ids, &channel_ids, &product_ids)?;
    let telemetry = crate::limits::telemetry(&raw.telemetry, |s| interpolate(s, env))?;

    let agents = crate::agents::validate(
        std::mem::take(&mut raw.agents),
        base_dir,
        env,
        duration,
        |key, s| secret(key, s, base_dir, env),
    )?;

    Ok(Config {
        base_dir: base_dir.to_path_buf(),
        agents,
        routing,
        ledger,
        commitments,
        limits,
        budgets,
        telemetry,
        contracts,
        classification,
        server,
        upstream,
        store,
        instance,
        hosts,
        tenants,
        channels,
        products,
    })
}

fn server(raw: &RawConfig, base_dir: &Path) -> Result<ServerConfig, ConfigError> {
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse().map_err(|_| {
        ConfigError::invalid(
            "server.listen",
            format!("{listen_text:?} is not an address:port"),
            r#"listen = "127.0.0.1:8080""#,
        )
    })?;
    let max_body = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if max_body == 0 || max_body > (1 << 30) {
        return Err(ConfigError::invalid(
            "server.max_body_bytes",
            "must be between 1 byte and 1 GiB",
            "max_body_bytes = 8388608  # 8 MiB",
        ));
    }
    Ok(ServerConfig {
        listen,
        max_body_bytes: max_body as usize,
        admin_token_env: raw
            .server
            .admin_token_env
            .clone()
            .unwrap_or_else(|| "TREATY_ADMIN_TOKEN".to_owned()),
        auditor_token_env: raw
            .server
            .auditor_token_env
            .clone()
            .unwrap_or_else(|| "TREATY_AUDITOR_TOKEN".to_owned()),
        ui_session_idle: duration(
            "server.ui_session_idle",
            raw.server.ui_session_idle.as_deref(),
            Duration::from_secs(8 * 3600),
            false,
        )?,
        key_cache_ttl: duration(
            "server.key_cache_ttl",
            raw.server.key_cache_ttl.as_deref(),
            Duration::from_secs(5),
            true,
        )?,
        header_read_timeout: duration(
            "server.header_read_timeout",
            raw.server.header_read_timeout.as_deref(),
            Duration::from_secs(30),
            false,
        )?,
        body_read_timeout: duration(
            "server.body_read_timeout",
            raw.server.body_read_timeout.as_deref(),
            Duration::from_secs(30),
            false,
        )?,
        max_connections: match raw.server.max_connections.unwrap_or(10_000) {
            0 => {
                return Err(ConfigError::invalid(
                    "server.max_connections",
                    "must be at least 1",
                    "max_connections = 10000",
                ));
            }
            n => n,
        },
        max_uri_bytes: bytes_within(
            "server.max_uri_bytes",
            raw.server.max_uri_bytes,
            8 * 1024,
            ServerConfig::URI_BYTES_CEILING,
            "max_uri_bytes = 8192",
        )?,
        max_header_bytes: bytes_within(
            "server.max_header_bytes",
            raw.server.max_header_bytes,
            32 * 1024,
            ServerConfig::HEADER_BYTES_CEILING,
            "max_header_bytes = 32768",
        )?,
        tls: raw
            .server
            .tls
            .as_ref()
            .map(|t| tls(t, base_dir))
            .transpose()?,
    })
}

/// `[server.tls]`: both files named; they are read when the server starts.
fn tls(raw: &crate::raw::RawTls, base_dir: &Path) -> Result<crate::TlsConfig, ConfigError> {
    let file = |key: &str, value: &Option<String>, example: &str| match value.as_deref() {
        Some(f) if !f.trim().is_empty() => Ok(base_dir.join(f)),
        _ => Err(ConfigError::invalid(
            key,
            "is required when [server.tls] is present",
            example,
        )),
    };
    Ok(crate::TlsConfig {
        cert_file: file(
            "server.tls.cert_file",
            &raw.cert_file,
            r#"cert_file = "tls/fullchain.pem""#,
        )?,
        key_file: file(
            "server.tls.key_file",
            &raw.key_file,
            r#"key_file = "tls/privkey.pem""#,
        )?,
        reload_interval: duration(
            "server.tls.reload_interval",
            raw.reload_interval.as_deref(),
            Duration::from_secs(10),
            false,
        )?,
    })
}

/// A size limit of the request head: from 1 KiB (every client's ordinary
/// requests fit) to `ceiling`, `default` when absent.
fn bytes_within(
    key: &str,
    value: Option<u64>,
    default: usize,
    ceiling: usize,
    example: &str,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(n) if (1024..=ceiling as u64).contains(&n) => Ok(n as usize),
        Some(_) => Err(ConfigError::invalid(
            key,
            format!("must be between 1024 and {ceiling} bytes"),
            example,
        )),
    }
}

fn upstream(raw: &RawConfig) -> Result<UpstreamConfig, ConfigError> {
    let u = &raw.upstream;
    let max_attempts = u.max_attempts.unwrap_or(3);
    if !(1..=10).contains(&max_attempts) {
        return Err(ConfigError::invalid(
            "upstream.max_attempts",
            "must be between 1 and 10",
            "max_attempts = 3",
        ));
    }
    Ok(UpstreamConfig {
        connect_timeout: duration(
            "upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
            false,
        )?,
        first_byte_timeout: duration(
            "upstream.first_byte_timeout",
            u.first_byte_timeout.as_deref(),
            Duration::from_secs(60),
            false,
        )?,
        total_timeout: duration(
            "upstream.total_timeout",
            u.total_timeout.as_deref(),
            Duration::from_secs(600),
            false,
        )?,
        max_attempts,
    })
}

fn duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let name = key.rsplit('.').next().unwrap_or(key);
    let d = humantime::parse_duration(text).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("{text:?} is not a duration: {e}"),
            format!("{name} = \"30s\""),
        )
    })?;
    if d.is_zero() && !zero_ok {
        return Err(ConfigError::invalid(
            key,
            "must be greater than zero",
            format!("{name} = \"30s\""),
        ));
    }
    Ok(d)
}

fn host(i: usize, h: RawHost, base_dir: &Path, env: &dyn Env) -> Result<HostConfig, ConfigError> {
    let key = format!("hosts[{i}]");
    let id = id::<HostId>(&key, &h.id, r#"id = "azure-eastus""#)?;
    let provider: ProviderKind = h.provider.parse().map_err(|()| {
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|p| p.as_str()).collect();
        ConfigError::invalid(
            format!("{key}.provider"),
            format!(
                "unknown provider {:?} (expected one of {})",
                h.provider,
                names.join(", ")
            ),
            r#"provider = "azure_openai""#,
        )
    })?;
    nonempty(&format!("{key}.cloud"), &h.cloud, r#"cloud = "azure""#)?;
    nonempty(&format!("{key}.region"), &h.region, r#"region = "us-east""#)?;

    let base_url = interpolate(&h.base_url, env)
        .map_err(|m| ConfigError::invalid(format!("{key}.base_url"), m, example_url(provider)))?;
    if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        || base_url.len() <= "https://".len()
    {
        return Err(ConfigError::invalid(
            format!("{key}.base_url"),
            format!("{base_url:?} is not an http(s) URL"),
            example_url(provider),
        ));
    }
    let base_url = base_url.trim_end_matches('/').to_owned();

    let api_key = match h.api_key {
        None => None,
        Some(s) => Some(secret(&format!("{key}.api_key"), s, base_dir, env)?),
    };
    let needs_key = matches!(
        provider,
        ProviderKind::Openai
            | ProviderKind::AzureOpenai
            | ProviderKind::Anthropic
            | ProviderKind::Gemini
    );
    if needs_key && api_key.is_none() {
        return Err(ConfigError::invalid(
            format!("{key}.api_key"),
            format!("provider {provider} needs a credential"),
            r#"api_key = { env = "AZURE_OPENAI_API_KEY" }  # or { file = "secrets/azure.key" }"#,
        ));
    }

    let azure = if provider == ProviderKind::AzureOpenai {
        let api_style = match h.api_style.as_deref().unwrap_or("deployments") {
            "deployments" => AzureApiStyle::Deployments {
                api_version: h.api_version.clone().ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.api_version"),
                        "Azure deployment URLs need an api-version",
                        r#"api_version = "2024-10-21"  # or api_style = "v1""#,
                    )
                })?,
            },
            "v1" => AzureApiStyle::V1,
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.api_style"),
                    format!("unknown Azure API style {other:?} (expected deployments or v1)"),
                    r#"api_style = "deployments""#,
                ));
            }
        };
        let auth = match h.auth.as_deref().unwrap_or("api_key") {
            "api_key" => AzureAuth::ApiKey,
            "bearer" => AzureAuth::Bearer,
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.auth"),
                    format!("unknown Azure auth {other:?} (expected api_key or bearer)"),
                    r#"auth = "api_key""#,
                ));
            }
        };
        Some(AzureSettings { api_style, auth })
    } else {
        for (field, set) in [
            ("api_version", h.api_version.is_some()),
            ("api_style", h.api_style.is_some()),
            ("auth", h.auth.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    format!("`{field}` applies to azure_openai hosts only"),
                    r#"provider = "azure_openai""#,
                ));
            }
        }
        None
    };
    let gemini = gemini_api(
        &key,
        &id,
        provider,
        [&h.gemini_api, &h.project, &h.location],
    )?;
    let aws = aws_settings(
        &key,
        provider,
        api_key.is_some(),
        AwsFields {
            region: &h.aws_region,
            access_key_id: &h.aws_access_key_id,
            secret_access_key: &h.aws_secret_access_key,
            session_token: &h.aws_session_token,
        },
        base_dir,
        env,
    )?;

    let rate_limit =
        crate::limits::rate_limit(&format!("{key}.rate_limit"), h.rate_limit.as_ref())?;
    if h.models.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.models"),
            "a host must serve at least one model",
            r#"models = [{ name = "gpt-4o", target = "gpt-4o-prod", input_cost_per_mtok = 2.5, output_cost_per_mtok = 10.0 }]"#,
        ));
    }
    let mut models: Vec<ModelDeployment> = Vec::with_capacity(h.models.len());
    for (j, m) in h.models.into_iter().enumerate() {
        let mkey = format!("{key}.models[{j}]");
        nonempty(&format!("{mkey}.name"), &m.name, r#"name = "gpt-4o""#)?;
        if models.iter().any(|x| x.name == m.name) {
            return Err(dup(
                &format!("{mkey}.name"),
                &m.name,
                r#"name = "gpt-4o-mini""#,
            ));
        }
        if m.input_cost_per_mtok < 0.0 || m.output_cost_per_mtok < 0.0 {
            return Err(ConfigError::invalid(
                mkey,
                "costs must not be negative",
                "input_cost_per_mtok = 2.5",
            ));
        }
        let target = m.target.unwrap_or_else(|| m.name.clone());
        models.push(ModelDeployment {
            name: m.name,
            target,
            input_cost_per_mtok: m.input_cost_per_mtok,
            output_cost_per_mtok: m.output_cost_per_mtok,
        });
    }

    Ok(HostConfig {
        host: Arc::new(Host {
            id,
            cloud: h.cloud,
            region: h.region,
            provider,
            certifications: h.certifications,
            models,
            weight: h.weight.unwrap_or(1),
        }),
        endpoint: Endpoint {
            base_url,
            api_key,
            azure,
            gemini,
            aws,
        },
        rate_limit,
    })
}

/// `gemini_api`, `project` and `location`: which Google API a `gemini` host
/// is, and for Vertex AI where the model lives. Refused on other providers
/// and, for `project`/`location`, on the Gemini API, so a half-switched
/// host is caught here rather than by a 404 at the first request.
fn gemini_api(
    key: &str,
    id: &HostId,
    provider: ProviderKind,
    [api, project, location]: [&Option<String>; 3],
) -> Result<Option<GeminiApi>, ConfigError> {
    const VERTEX: &str =
        r#"gemini_api = "vertex"  project = "my-project"  location = "us-central1""#;
    if provider != ProviderKind::Gemini {
        for (field, set) in [
            ("gemini_api", api.is_some()),
            ("project", project.is_some()),
            ("location", location.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    format!("host {id}: `{field}` applies to gemini hosts only"),
                    r#"provider = "gemini""#,
                ));
            }
        }
        return Ok(None);
    }
    match api.as_deref().unwrap_or("gemini") {
        "gemini" => {
            for (field, set) in [
                ("project", project.is_some()),
                ("location", location.is_some()),
            ] {
                if set {
                    return Err(ConfigError::invalid(
                        format!("{key}.{field}"),
                        format!(
                            "host {id}: `{field}` applies to Vertex AI only; this host uses the Gemini API"
                        ),
                        VERTEX,
                    ));
                }
            }
            Ok(Some(GeminiApi::Gemini))
        }
        "vertex" => {
            // Both become path segments of every request URL.
            let segment = |field: &str, value: Option<&String>| {
                let value = value.map(|v| v.trim()).unwrap_or_default();
                if value.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.{field}"),
                        format!("host {id}: Vertex AI hosts need a {field}"),
                        VERTEX,
                    ));
                }
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                {
                    return Err(ConfigError::invalid(
                        format!("{key}.{field}"),
                        format!(
                            "host {id}: {field} {value:?} may only hold letters, digits, '-', '_', '.' and ':'"
                        ),
                        VERTEX,
                    ));
                }
                Ok(value.to_owned())
            };
            Ok(Some(GeminiApi::Vertex {
                project: segment("project", project.as_ref())?,
                location: segment("location", location.as_ref())?,
            }))
        }
        other => Err(ConfigError::invalid(
            format!("{key}.gemini_api"),
            format!("host {id}: unknown gemini_api {other:?} (expected gemini or vertex)"),
            r#"gemini_api = "gemini"  # or "vertex" with project and location"#,
        )),
    }
}

fn example_url(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::AzureOpenai => r#"base_url = "https://my-resource.openai.azure.com""#,
        ProviderKind::Openai => r#"base_url = "https://api.openai.com""#,
        ProviderKind::Gemini => {
            r#"base_url = "https://generativelanguage.googleapis.com"  # Vertex AI: "https://us-central1-aiplatform.googleapis.com""#
        }
        ProviderKind::Bedrock => r#"base_url = "https://bedrock-runtime.us-east-1.amazonaws.com""#,
        _ => r#"base_url = "http://127.0.0.1:8000"  # serves /v1/chat/completions"#,
    }
}

pub(crate) fn secret(
    key: &str,
    raw: RawSecret,
    base_dir: &Path,
    env: &dyn Env,
) -> Result<Secret, ConfigError> {
    const EXAMPLE: &str =
        r#"api_key = { env = "OPENAI_API_KEY" }  # or { file = "secrets/openai.key" }"#;
    let r = match raw {
        RawSecret::Inline(_) => {
            return Err(ConfigError::invalid(
                key,
                "secrets are never written in the config; name an environment variable or a file",
                EXAMPLE,
            ));
        }
        RawSecret::Ref(r) => r,
    };
    let value = match (r.env, r.file) {
        (Some(name), None) => env.var(&name).ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!("environment variable {name} is not set"),
                EXAMPLE,
            )
        })?,
        (None, Some(file)) => {
            let path = base_dir.join(&file);
            std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    key,
                    format!("cannot read secret file {}: {e}", path.display()),
                    EXAMPLE,
                )
            })?
        }
        _ => {
            return Err(ConfigError::invalid(
                key,
                "give exactly one of `env` or `file`",
                EXAMPLE,
            ));
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "the secret is empty", EXAMPLE));
    }
    Ok(Secret::new(value))
}

/// `ledger.signing_key`: a file (its path, read by the ledger, which may
/// also create it) or an environment variable (read now).
fn ledger_key(
    raw: Option<RawSecret>,
    base_dir: &Path,
    env: &dyn Env,
) -> Result<Option<crate::LedgerKeyConfig>, ConfigError> {
    const KEY: &str = "ledger.signing_key";
    const EXAMPLE: &str = r#"signing_key = { file = "secrets/ledger.key" }  # or { env = "TREATY_LEDGER_KEY" }; create one with `treaty ledger keygen --out FILE`"#;
    let Some(raw) = raw else { return Ok(None) };
    let RawSecret::Ref(r) = raw else {
        return Err(ConfigError::invalid(
            KEY,
            "the signing key is never written in the config; name a file or an environment variable",
            EXAMPLE,
        ));
    };
    match (r.env, r.file) {
        (None, Some(file)) => Ok(Some(crate::LedgerKeyConfig::File(base_dir.join(file)))),
        (Some(name), None) => {
            let value = env
                .var(&name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        KEY,
                        format!("environment variable {name} is not set"),
                        EXAMPLE,
                    )
                })?;
            Ok(Some(crate::LedgerKeyConfig::Env {
                name,
                value: Secret::new(value.trim()),
            }))
        }
        _ => Err(ConfigError::invalid(
            KEY,
            "give exactly one of `env` or `file`",
            EXAMPLE,
        )),
    }
}

fn ledger_urls(urls: &[String]) -> Result<Vec<String>, ConfigError> {
    for (i, u) in urls.iter().enumerate() {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("ledger.publish_urls[{i}]"),
                format!("{u:?} is not an http(s) URL"),
                r#"publish_urls = ["https://audit.example.com/treaty/checkpoints"]"#,
            ));
        }
    }
    Ok(urls.to_vec())
}

fn ledger_witnesses(
    raw: &[crate::raw::RawWitness],
) -> Result<Vec<crate::WitnessConfig>, ConfigError> {
    const EXAMPLE: &str = r#"[[ledger.witnesses]]
url = "https://witness.example.com"
key = "witness.example.com/w1+1c4b2f3e+BGb..."  # as `treaty witness` prints it"#;
    raw.iter()
        .enumerate()
        .map(|(i, w)| {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    format!("ledger.witnesses[{i}].url"),
                    format!("{:?} is not an http(s) URL", w.url),
                    EXAMPLE,
                ));
            }
            if w.key.split('+').count() < 3 {
                return Err(ConfigError::invalid(
                    format!("ledger.witnesses[{i}].key"),
                    "a witness key is name+id+base64",
                    EXAMPLE,
                ));
            }
            Ok(crate::WitnessConfig {
                url: w.url.clone(),
                key: w.key.clone(),
            })
        })
        .collect()
}

fn id<T: std::str::FromStr<Err = treaty_domain::IdError>>(
    key: &str,
    value: &str,
    example: &str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|e: treaty_domain::IdError| {
        ConfigError::invalid(format!("{key}.id"), e.to_string(), example)
    })
}

fn dup(key: &str, value: &str, example: &str) -> ConfigError {
    ConfigError::invalid(key, format!("duplicate id {value:?}"), example)
}

fn nonempty(key: &str, value: &str, example: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::invalid(key, "must not be empty", example))
    } else {
        Ok(())
    }
}
