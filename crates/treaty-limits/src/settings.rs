//! What the limits of one replica are, from the validated config.

use std::collections::HashMap;
use std::time::Duration;

use treaty_config::Config;

use crate::budget::{BudgetSpec, Scope};
use crate::period::Period;

/// Requests and tokens per minute; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSpec {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// Where the shared state of rate limits lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// One process: buckets in memory, budgets persisted in the store.
    Embedded,
    /// Several replicas: buckets (and budgets) in the store (PostgreSQL).
    Store,
    /// Several replicas: buckets in Redis, budgets in the store.
    Redis { url: String, prefix: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// This replica's name in the shared state; leases are held per
    /// replica, so two live replicas must never share one.
    pub replica: String,
    pub sharing: Sharing,
    /// Every key's limits, unless overridden.
    pub key: RateSpec,
    /// Every tenant's limits, unless overridden.
    pub tenant: RateSpec,
    pub key_overrides: HashMap<String, RateSpec>,
    pub tenant_overrides: HashMap<String, RateSpec>,
    /// Per host, in configured order: (host id, its quota).
    pub hosts: Vec<(String, RateSpec)>,
    /// Failed authentications per source address per minute.
    pub auth_failures_per_minute: Option<u32>,
    /// Budgets from the config file, written to the store at start.
    pub budgets: Vec<BudgetSpec>,
    /// How often spend is written and leases renewed or returned.
    pub sync_interval: Duration,
    /// How often budget definitions are reloaded (CLI and admin changes).
    pub refresh_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replica: "treaty".into(),
            sharing: Sharing::Embedded,
            key: RateSpec::default(),
            tenant: RateSpec::default(),
            key_overrides: HashMap::new(),
            tenant_overrides: HashMap::new(),
            hosts: Vec::new(),
            auth_failures_per_minute: None,
            budgets: Vec::new(),
            sync_interval: Duration::from_millis(200),
            refresh_interval: Duration::from_secs(5),
        }
    }
}

impl Settings {
    /// The limits a config describes. `replica` names this process in
    /// the shared state: unique per live process (the instance id plus
    /// the process's start, say), since two live replicas under one name
    /// would overwrite each other's leases. On SQLite (embedded) the name
    /// is fixed instead, so a process restarted after a crash takes over
    /// its own lease rather than waiting for it to expire. Sharing follows
    /// the store: SQLite is embedded; PostgreSQL shares buckets in the
    /// store, or in Redis when `store.redis_url` is set.
    pub fn from_config(config: &Config, replica: String) -> Settings {
        let l = &config.limits;
        let spec = |r: &treaty_config::RateLimit| RateSpec {
            requests_per_minute: r.requests_per_minute,
            tokens_per_minute: r.tokens_per_minute,
        };
        let sharing = if config.store.url.starts_with("sqlite:") {
            Sharing::Embedded
        } else {
            match &config.store.redis_url {
                Some(url) => Sharing::Redis {
                    url: url.clone(),
                    prefix: "treaty:rl:".into(),
                },
                None => Sharing::Store,
            }
        };
        let replica = match sharing {
            Sharing::Embedded => "embedded".to_owned(),
            _ => replica,
        };
        Settings {
            replica,
            sharing,
            key: spec(&l.key),
            tenant: spec(&l.tenant),
            key_overrides: l
                .key_overrides
                .iter()
                .map(|(k, r)| (k.clone(), spec(r)))
                .collect(),
            tenant_overrides: l
                .tenant_overrides
                .iter()
                .map(|(k, r)| (k.clone(), spec(r)))
                .collect(),
            hosts: config
                .hosts
                .iter()
                .map(|h| (h.id().to_string(), spec(&h.rate_limit)))
                .collect(),
            auth_failures_per_minute: l.auth_failures_per_minute,
            budgets: config
                .budgets
                .iter()
                .map(|b| BudgetSpec {
                    scope: match &b.scope {
                        treaty_config::BudgetScope::Key(k) => Scope::Key(k.clone()),
                        treaty_config::BudgetScope::Tenant(t) => Scope::Tenant(t.clone()),
                        treaty_config::BudgetScope::Offer {
                            tenant,
                            channel,
                            product,
                        } => Scope::Offer {
                            tenant: tenant.clone(),
                            channel: channel.clone(),
                            product: product.clone(),
                        },
                    },
                    period: match b.period {
                        treaty_config::BudgetPeriod::Day => Period::Day,
                        treaty_config::BudgetPeriod::Month => Period::Month,
                        treaty_config::BudgetPeriod::Total => Period::Total,
                    },
                    limit_micros: b.amount_micros,
                    soft_percents: b.soft_percents.clone(),
                })
                .collect(),
            sync_interval: l.sync_interval,
            refresh_interval: Settings::default().refresh_interval,
        }
    }

    pub(crate) fn key_spec(&self, key: &str) -> Option<RateSpec> {
        Some(self.key_overrides.get(key).copied().unwrap_or(self.key))
    }

    pub(crate) fn tenant_spec(&self, tenant: &str) -> Option<RateSpec> {
        Some(
            self.tenant_overrides
                .get(tenant)
                .copied()
                .unwrap_or(self.tenant),
        )
    }

    /// How long a lease counts in the store if never renewed.
    pub(crate) fn lease_ms(&self) -> i64 {
        (self.sync_interval.as_millis() as i64 * 10).max(3_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[store]
url = "STORE"
REDIS

[rate_limits]
key = { requests_per_minute = 600 }
auth_failures_per_minute = 10

[[rate_limits.overrides]]
tenant = "acme"
tokens_per_minute = 90000

[[budgets]]
tenant = "acme"
amount_usd = 12.5
period = "day"
soft_thresholds = [80]

[[hosts]]
id = "vllm"
cloud = "onprem"
region = "us-east"
provider = "openai_compatible"
base_url = "http://127.0.0.1:8000"
rate_limit = { tokens_per_minute = 1000000 }
models = [{ name = "llama" }]

[[tenants]]
id = "acme"
segment = "enterprise"
data_region = "us"
"#;

    fn settings(store: &str, redis: &str) -> Settings {
        let text = CONFIG.replace("STORE", store).replace("REDIS", redis);
        let config = Config::from_toml(
            &text,
            std::path::Path::new("/tmp"),
            &treaty_config::MapEnv::new(),
        )
        .unwrap();
        Settings::from_config(&config, "gw-1-1765000000".into())
    }

    #[test]
    fn the_store_decides_where_limits_are_shared() {
        let s = settings("sqlite://t.db", "");
        assert_eq!(
            (s.sharing.clone(), s.replica.as_str()),
            (Sharing::Embedded, "embedded")
        );
        let s = settings("postgres://db/treaty", "");
        assert_eq!(
            (s.sharing.clone(), s.replica.as_str()),
            (Sharing::Store, "gw-1-1765000000")
        );
        let s = settings(
            "postgres://db/treaty",
            "redis_url = \"redis://127.0.0.1:6379\"",
        );
        assert!(matches!(s.sharing, Sharing::Redis { .. }));
        assert_eq!(s.key.requests_per_minute, Some(600));
        assert_eq!(
            s.tenant_spec("acme").unwrap().tokens_per_minute,
            Some(90_000)
        );
        assert_eq!(s.tenant_spec("other").unwrap(), RateSpec::default());
        assert_eq!(s.auth_failures_per_minute, Some(10));
        assert_eq!(
            s.hosts,
            [(
                "vllm".to_owned(),
                RateSpec {
                    requests_per_minute: None,
                    tokens_per_minute: Some(1_000_000)
                }
            )]
        );
        assert_eq!(s.budgets[0].id(), "tenant/acme/day");
        assert_eq!(
            (
                s.budgets[0].limit_micros,
                s.budgets[0].soft_percents.clone()
            ),
            (12_500_000, vec![80])
        );
    }
}
