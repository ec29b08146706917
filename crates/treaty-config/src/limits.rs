//! `[rate_limits]`, `[[budgets]]` and a host's `rate_limit`: raw and
//! validated.
//!
//! Only the shape and the names are checked here (ids that must be
//! configured tenants, channels and products; positive limits); what the
//! numbers do belongs to `treaty-limits`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::ConfigError;

/// Validated `[telemetry]`: metrics labels and where traces go (the
/// standard `OTEL_*` variables override these).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base endpoint, e.g. `http://127.0.0.1:4318`; traces are
    /// off when neither this nor `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    /// Share of root spans sampled, 0 to 1.
    pub sample_ratio: Option<f64>,
    /// Adds a `tenant` label to request and spend metrics, and per-budget
    /// gauges. Off by default: one series per tenant can be many.
    pub tenant_labels: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
    pub tenant_labels: Option<bool>,
}

pub(crate) fn telemetry(
    raw: &RawTelemetry,
    interpolate: impl Fn(&str) -> Result<String, String>,
) -> Result<TelemetryConfig, ConfigError> {
    let otlp_endpoint = match &raw.otlp_endpoint {
        None => None,
        Some(url) => {
            let url = interpolate(url).map_err(|m| {
                ConfigError::invalid(
                    "telemetry.otlp_endpoint",
                    m,
                    r#"otlp_endpoint = "http://127.0.0.1:4318""#,
                )
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    "telemetry.otlp_endpoint",
                    format!("{url:?} is not an http(s) URL (OTLP over HTTP, protobuf)"),
                    r#"otlp_endpoint = "http://127.0.0.1:4318""#,
                ));
            }
            Some(url)
        }
    };
    if let Some(r) = raw.sample_ratio
        && !(0.0..=1.0).contains(&r)
    {
        return Err(ConfigError::invalid(
            "telemetry.sample_ratio",
            "must be between 0 and 1",
            "sample_ratio = 0.1",
        ));
    }
    Ok(TelemetryConfig {
        otlp_endpoint,
        service_name: raw.service_name.clone(),
        sample_ratio: raw.sample_ratio,
        tenant_labels: raw.tenant_labels.unwrap_or(false),
    })
}

/// Requests and tokens per minute; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// Validated `[rate_limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Every key's limits unless overridden.
    pub key: RateLimit,
    /// Every tenant's limits unless overridden.
    pub tenant: RateLimit,
    /// By key id.
    pub key_overrides: HashMap<String, RateLimit>,
    /// By tenant id.
    pub tenant_overrides: HashMap<String, RateLimit>,
    /// Failed authentications per source address per minute.
    pub auth_failures_per_minute: Option<u32>,
    /// How often replicas write spend and renew or return leases.
    pub sync_interval: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            key: RateLimit::default(),
            tenant: RateLimit::default(),
            key_overrides: HashMap::new(),
            tenant_overrides: HashMap::new(),
            auth_failures_per_minute: None,
            sync_interval: Duration::from_millis(200),
        }
    }
}

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetScope {
    Key(String),
    Tenant(String),
    Offer {
        tenant: String,
        channel: String,
        product: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    Day,
    Month,
    Total,
}

/// A validated `[[budgets]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    pub scope: BudgetScope,
    pub period: BudgetPeriod,
    /// Micro-USD.
    pub amount_micros: i64,
    /// Percentages of the amount that log and count when crossed.
    pub soft_percents: Vec<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    pub key: Option<RawRateLimit>,
    pub tenant: Option<RawRateLimit>,
    #[serde(default)]
    pub overrides: Vec<RawOverride>,
    pub auth_failures_per_minute: Option<u32>,
    pub sync_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverride {
    pub key: Option<String>,
    pub tenant: Option<String>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub key: Option<String>,
    pub tenant: Option<String>,
    pub channel: Option<String>,
    pub product: Option<String>,
    pub amount_usd: f64,
    pub period: Option<String>,
    #[serde(default)]
    pub soft_thresholds: Vec<u8>,
}

const RATE_EXAMPLE: &str = "key = { requests_per_minute = 600, tokens_per_minute = 200000 }";
const BUDGET_EXAMPLE: &str =
    r#"tenant = "acme"  amount_usd = 500.0  period = "month"  soft_thresholds = [50, 80]"#;

pub(crate) fn rate_limit(key: &str, raw: Option<&RawRateLimit>) -> Result<RateLimit, ConfigError> {
    let Some(raw) = raw else {
        return Ok(RateLimit::default());
    };
    for (field, v) in [
        ("requests_per_minute", raw.requests_per_minute),
        ("tokens_per_minute", raw.tokens_per_minute),
    ] {
        if v == Some(0) {
            return Err(ConfigError::invalid(
                format!("{key}.{field}"),
                "must be at least 1 (leave it out for no limit)",
                RATE_EXAMPLE,
            ));
        }
    }
    Ok(RateLimit {
        requests_per_minute: raw.requests_per_minute,
        tokens_per_minute: raw.tokens_per_minute,
    })
}

/// `ids`: the configured tenants, channels and products, to check names
/// against.
pub(crate) fn rate_limits(
    raw: &RawRateLimits,
    tenants: &[&str],
    duration: impl Fn(&str, Option<&str>, Duration, bool) -> Result<Duration, ConfigError>,
) -> Result<LimitsConfig, ConfigError> {
    let mut out = LimitsConfig {
        key: rate_limit("rate_limits.key", raw.key.as_ref())?,
        tenant: rate_limit("rate_limits.tenant", raw.tenant.as_ref())?,
        auth_failures_per_minute: raw.auth_failures_per_minute,
        sync_interval: duration(
            "rate_limits.sync_interval",
            raw.sync_interval.as_deref(),
            Duration::from_millis(200),
            false,
        )?,
        ..LimitsConfig::default()
    };
    if raw.auth_failures_per_minute == Some(0) {
        return Err(ConfigError::invalid(
            "rate_limits.auth_failures_per_minute",
            "must be at least 1 (leave it out for no limit)",
            "auth_failures_per_minute = 20",
        ));
    }
    if out.sync_interval > Duration::from_secs(10) {
        return Err(ConfigError::invalid(
            "rate_limits.sync_interval",
            "must be at most 10s: leases expire after ten intervals, and a dead replica's hold on a budget lasts that long",
            r#"sync_interval = "200ms""#,
        ));
    }
    for (i, o) in raw.overrides.iter().enumerate() {
        let key = format!("rate_limits.overrides[{i}]");
        let limit = rate_limit(
            &key,
            Some(&RawRateLimit {
                requests_per_minute: o.requests_per_minute,
                tokens_per_minute: o.tokens_per_minute,
            }),
        )?;
        const EXAMPLE: &str =
            r#"tenant = "acme"  requests_per_minute = 10000  # or key = "key_0123456789abcdef""#;
        match (&o.key, &o.tenant) {
            (Some(k), None) => {
                check_key_id(&format!("{key}.key"), k, EXAMPLE)?;
                if out.key_overrides.insert(k.clone(), limit).is_some() {
                    return Err(ConfigError::invalid(
                        format!("{key}.key"),
                        format!("key {k:?} is overridden twice"),
                        EXAMPLE,
                    ));
                }
            }
            (None, Some(t)) => {
                check_named(&format!("{key}.tenant"), "tenant", t, tenants, EXAMPLE)?;
                if out.tenant_overrides.insert(t.clone(), limit).is_some() {
                    return Err(ConfigError::invalid(
                        format!("{key}.tenant"),
                        format!("tenant {t:?} is overridden twice"),
                        EXAMPLE,
                    ));
                }
            }
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    "give exactly one of `key` or `tenant`",
                    EXAMPLE,
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) fn budgets(
    raw: &[RawBudget],
    tenants: &[&str],
    channels: &[&str],
    products: &[&str],
) -> Result<Vec<BudgetConfig>, ConfigError> {
    let mut out: Vec<BudgetConfig> = Vec::with_capacity(raw.len());
    for (i, b) in raw.iter().enumerate() {
        let key = format!("budgets[{i}]");
        let scope = match (&b.key, &b.tenant, &b.channel, &b.product) {
            (Some(k), None, None, None) => {
                check_key_id(&format!("{key}.key"), k, BUDGET_EXAMPLE)?;
                BudgetScope::Key(k.clone())
            }
            (None, Some(t), None, None) => {
                check_named(
                    &format!("{key}.tenant"),
                    "tenant",
                    t,
                    tenants,
                    BUDGET_EXAMPLE,
                )?;
                BudgetScope::Tenant(t.clone())
            }
            (None, Some(t), Some(c), Some(p)) => {
                check_named(
                    &format!("{key}.tenant"),
                    "tenant",
                    t,
                    tenants,
                    BUDGET_EXAMPLE,
                )?;
                check_named(
                    &format!("{key}.channel"),
                    "channel",
                    c,
                    channels,
                    BUDGET_EXAMPLE,
                )?;
                check_named(
                    &format!("{key}.product"),
                    "product",
                    p,
                    products,
                    BUDGET_EXAMPLE,
                )?;
                BudgetScope::Offer {
                    tenant: t.clone(),
                    channel: c.clone(),
                    product: p.clone(),
                }
            }
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    "a budget covers one key (`key`), one tenant (`tenant`), or one tenant's product through one channel (`tenant`, `channel` and `product`)",
                    BUDGET_EXAMPLE,
                ));
            }
        };
        let period = match b.period.as_deref().unwrap_or("month") {
            "day" => BudgetPeriod::Day,
            "month" => BudgetPeriod::Month,
            "total" => BudgetPeriod::Total,
            other => {
                return Err(ConfigError::invalid(
                    format!("{key}.period"),
                    format!(
                        "unknown period {other:?} (expected day, month or total; resets are at UTC midnight)"
                    ),
                    r#"period = "month""#,
                ));
            }
        };
        if !(b.amount_usd.is_finite() && (0.0..=1e12).contains(&b.amount_usd)) {
            return Err(ConfigError::invalid(
                format!("{key}.amount_usd"),
                "must be a number of USD between 0 and 1e12",
                "amount_usd = 500.0",
            ));
        }
        let mut soft = b.soft_thresholds.clone();
        if soft.iter().any(|p| !(1..=100).contains(p)) {
            return Err(ConfigError::invalid(
                format!("{key}.soft_thresholds"),
                "thresholds are percentages of the amount, between 1 and 100",
                "soft_thresholds = [50, 80]",
            ));
        }
        soft.sort_unstable();
        soft.dedup();
        let budget = BudgetConfig {
            scope,
            period,
            amount_micros: (b.amount_usd * 1e6).round() as i64,
            soft_percents: soft,
        };
        if out
            .iter()
            .any(|o| o.scope == budget.scope && o.period == budget.period)
        {
            return Err(ConfigError::invalid(
                key,
                "another budget has the same scope and period",
                BUDGET_EXAMPLE,
            ));
        }
        out.push(budget);
    }
    Ok(out)
}

fn check_named(
    key: &str,
    what: &str,
    value: &str,
    known: &[&str],
    example: &str,
) -> Result<(), ConfigError> {
    if known.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        key,
        format!("unknown {what} {value:?}; configured: {}", known.join(", ")),
        example,
    ))
}

/// Key ids are `key_` and 16 lowercase hex digits (`treaty keys list`).
fn check_key_id(key: &str, value: &str, example: &str) -> Result<(), ConfigError> {
    let ok = value.strip_prefix("key_").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        return Ok(());
    }
    Err(ConfigError::invalid(
        key,
        format!(
            "{value:?} is not a key id (`key_` and 16 hex digits, as `treaty keys list` shows)"
        ),
        example,
    ))
}
