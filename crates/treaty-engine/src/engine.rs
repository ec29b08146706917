//! The engine's shared state, built once from a validated config.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use treaty_config::{Config, Env};
use treaty_keys::KeyChecker;
use treaty_policy::{Policy, PolicyError};
use treaty_providers::Provider;
use treaty_router::{BreakerSettings, Commitment, Router, Strategy};
use treaty_store::Store;

/// Everything a request needs, shared behind an `Arc`: the config, the
/// store, the key checker, the decision core, the router, the ledger and
/// one provider per host.
pub struct Engine {
    pub config: Arc<Config>,
    pub store: Store,
    pub(crate) keys: KeyChecker,
    pub router: Router,
    pub policy: Policy,
    pub ledger: treaty_ledger::Ledger,
    /// One provider per configured host, in the same order as
    /// `config.hosts` (and so as router indices).
    pub(crate) providers: Vec<Arc<dyn Provider>>,
    /// The upstream HTTP client (the runtime's tools share it).
    pub http: reqwest::Client,
    /// Budgets and rate limits, admitted and settled on the model-call
    /// path ([`crate::admission`]).
    pub limits: treaty_limits::Limits,
    /// What `/metrics` serves; fed where every request ends
    /// ([`crate::outcome`]).
    pub metrics: Arc<treaty_telemetry::Metrics>,
    /// SHA-256 of the admin token; `None` disables the admin API.
    admin_token_hash: Option<[u8; 32]>,
    /// SHA-256 of the auditor token (the UI's read-only role); `None`
    /// disables that role.
    auditor_token_hash: Option<[u8; 32]>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("hosts", &self.providers.len())
            .field("admin", &self.admin_token_hash.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the upstream HTTP client: {0}")]
    Http(#[source] treaty_providers::ProviderError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] treaty_ledger::LedgerError),
    #[error("cannot start budgets and rate limits: {0}")]
    Limits(#[from] treaty_limits::LimitsError),
    #[error("ledger.witnesses: the key of {url}: {detail}")]
    WitnessKey { url: String, detail: String },
    #[error("cannot set up host {host}: {source}")]
    Provider {
        host: String,
        #[source]
        source: treaty_providers::ProviderError,
    },
}

impl Engine {
    /// Opens the ledger on `store` with the config's settings, starts
    /// this replica's budgets and rate limits, then builds the engine.
    /// `env` supplies the admin token.
    pub async fn open(
        config: Config,
        store: Store,
        env: &dyn Env,
    ) -> Result<Arc<Engine>, BuildError> {
        let metrics = Arc::new(treaty_telemetry::Metrics::new(
            config.telemetry.tenant_labels,
        ));
        let mut settings = ledger_settings(&config)?;
        let observed = metrics.clone();
        settings.on_batch = Some(treaty_ledger::BatchObserver(Arc::new(move |n, took| {
            observed.ledger_batch(n, took.as_secs_f64())
        })));
        let ledger = treaty_ledger::Ledger::open(store.clone(), settings).await?;
        let limits = treaty_limits::Limits::start(
            treaty_limits::Settings::from_config(&config, replica_name(&config)),
            Some(store.clone()),
            treaty_limits::Clock::System,
        )
        .await?;
        Engine::build(config, store, ledger, limits, metrics, env)
    }

    /// Builds the engine around an open ledger and started limits.
    pub fn build(
        config: Config,
        store: Store,
        ledger: treaty_ledger::Ledger,
        limits: treaty_limits::Limits,
        metrics: Arc<treaty_telemetry::Metrics>,
        env: &dyn Env,
    ) -> Result<Arc<Engine>, BuildError> {
        let config = Arc::new(config);
        let http = treaty_providers::http_client(&config.upstream).map_err(BuildError::Http)?;
        let providers = config
            .hosts
            .iter()
            .map(|h| {
                treaty_providers::for_host(h, http.clone()).map_err(|source| BuildError::Provider {
                    host: h.id().to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Policy::load(config.clone())?;
        let router = Router::new(
            config.hosts.iter().map(|h| h.host.clone()).collect(),
            config
                .routing
                .strategy
                .parse()
                .unwrap_or(Strategy::Weighted),
            BreakerSettings {
                failures: config.routing.breaker_failures,
                cooldown: config.routing.breaker_cooldown,
            },
            config
                .commitments
                .iter()
                .map(|c| Commitment::new(&c.clause, &c.cloud, c.amount))
                .collect(),
        );
        let bound_config = config.clone();
        let keys = KeyChecker::new(store.clone(), config.server.key_cache_ttl, move |row| {
            bound_config.tenant(&row.tenant).is_some()
                && bound_config.channel(&row.channel).is_some()
                && bound_config.product(&row.product).is_some()
        });
        let token_hash = |name: &str| -> Option<[u8; 32]> {
            env.var(name)
                .filter(|t| !t.is_empty())
                .map(|t| Sha256::digest(t.as_bytes()).into())
        };
        let admin_token_hash = token_hash(&config.server.admin_token_env);
        let auditor_token_hash = token_hash(&config.server.auditor_token_env);
        Ok(Arc::new(Engine {
            limits,
            metrics,
            config,
            store,
            keys,
            router,
            policy,
            ledger,
            providers,
            http,
            admin_token_hash,
            auditor_token_hash,
        }))
    }

    /// Probes every host every `routing.health_check_interval` until the
    /// returned task is aborted or the engine is dropped. A probe is a
    /// cheap authenticated GET; its outcome feeds the host's circuit
    /// breaker exactly like a request's, so a host that comes back is
    /// found without risking client traffic on it.
    pub fn spawn_health_checks(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.config.routing.health_check_interval;
        if interval.is_zero() {
            return None;
        }
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            // The first probe waits one interval: at start every circuit
            // is closed and there is nothing to learn yet.
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { return };
                let timeout = engine.config.upstream.first_byte_timeout.min(interval);
                let probes = engine.providers.iter().enumerate().map(|(i, p)| {
                    let p = p.clone();
                    async move {
                        let started = std::time::Instant::now();
                        (i, p.probe(timeout).await, started.elapsed())
                    }
                });
                for (i, result, latency) in futures_util::future::join_all(probes).await {
                    if let Err(e) = &result {
                        tracing::debug!(host = %engine.config.hosts[i].id(), error = %e, "health probe failed");
                    }
                    // Only a failure or a recovery changes state; a healthy
                    // probe of a closed circuit must not skew latency EWMA.
                    let health = engine.router.health(i);
                    if result.is_err() || health.state() != treaty_router::HostState::Closed {
                        engine.router.observe(i, result.is_ok(), latency);
                    }
                }
            }
        }))
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token_hash.is_some()
    }

    /// Compares digests in constant time, so response timing says nothing
    /// about how much of a guessed token was right.
    pub fn admin_token_matches(&self, presented: &str) -> bool {
        let Some(expected) = &self.admin_token_hash else {
            return false;
        };
        digest_matches(expected, presented)
    }

    /// Whether `presented` is the auditor token, compared like the admin
    /// token. An auditor may read and verify, never change.
    pub fn auditor_token_matches(&self, presented: &str) -> bool {
        let Some(expected) = &self.auditor_token_hash else {
            return false;
        };
        digest_matches(expected, presented)
    }

    /// The `/metrics` page: the gauges read at scrape time (breakers,
    /// the ledger's queue, budgets, the limits' counters) brought up to
    /// date, then everything rendered.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        for (i, h) in self.config.hosts.iter().enumerate() {
            use treaty_router::HostState;
            let state = match self.router.health(i).state() {
                HostState::Closed => treaty_telemetry::BreakerState::Closed,
                HostState::HalfOpen => treaty_telemetry::BreakerState::HalfOpen,
                HostState::Open => treaty_telemetry::BreakerState::Open,
            };
            m.breaker_state(h.id().as_str(), state);
        }
        m.ledger_queue_depth(self.ledger.stats().queue_depth);
        let budgets = self.limits.budgets();
        m.budgets(budgets.iter().map(|b| {
            (
                b.id.as_str(),
                b.limit_micros,
                b.spent_micros + b.reserved_micros,
            )
        }));
        let stats = self.limits.stats();
        m.limits_counters(stats.soft_crossings, stats.store_errors);
        m.render()
    }

    /// Records an administrative change in the ledger, durably, with who
    /// made it. Called after the change: a failure here is a 503 and an
    /// error in the log, and the change stands (it cannot be taken back
    /// atomically with the store's other tables).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: String,
    ) -> Result<(), crate::Error> {
        let record = treaty_ledger::AdminRecord {
            at_ms: treaty_domain::now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        };
        tracing::info!(actor, action, target, "admin change");
        self.ledger
            .append(treaty_ledger::Entry::Admin(record))
            .await
            .map(|_| ())
            .map_err(crate::Error::ledger)
    }

    /// Forgets a cached key verdict (after a revocation here).
    pub fn forget_key(&self, secret_hash: &str) {
        self.keys.forget(secret_hash);
    }
}

/// This engine's name in the limits' shared state: the instance id, the
/// process id, the start time and the engine's number in the process, so
/// two live replicas never share one even when their configs name the
/// same instance.
fn replica_name(config: &Config) -> String {
    static ENGINES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{}/{}/{}/{}",
        config.instance.id,
        std::process::id(),
        treaty_domain::now_ms(),
        ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The ledger's settings from a validated config: durability, batching,
/// checkpoints, where the signing key comes from (never the store) and
/// where checkpoints are published.
pub fn ledger_settings(config: &Config) -> Result<treaty_ledger::LedgerSettings, BuildError> {
    use treaty_config::LedgerKeyConfig;
    use treaty_ledger::{Durability, PublishSettings, SignerSource, WitnessTarget};
    let l = &config.ledger;
    let key = match &l.signing_key {
        None => SignerSource::Auto,
        Some(LedgerKeyConfig::File(path)) => SignerSource::File {
            path: path.clone(),
            generate: false,
        },
        Some(LedgerKeyConfig::Env { name, value }) => SignerSource::Env {
            name: name.clone(),
            value: value.expose().to_owned(),
        },
    };
    let witnesses = l
        .witnesses
        .iter()
        .map(|w| {
            Ok(WitnessTarget {
                url: w.url.clone(),
                key: treaty_ledger::note::VerifierKey::parse(&w.key).map_err(|e| {
                    BuildError::WitnessKey {
                        url: w.url.clone(),
                        detail: e.to_string(),
                    }
                })?,
            })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    Ok(treaty_ledger::LedgerSettings {
        durability: if l.strict {
            Durability::Strict
        } else {
            Durability::Batched
        },
        max_batch: l.max_batch,
        checkpoint_every: l.checkpoint_every,
        checkpoint_interval: l.checkpoint_interval,
        key,
        publish: PublishSettings {
            dir: l.publish_dir.clone(),
            urls: l.publish_urls.clone(),
            witnesses,
        },
        ..treaty_ledger::LedgerSettings::default()
    })
}

/// Whether `presented` hashes to `expected`, compared in constant time.
pub fn digest_matches(expected: &[u8; 32], presented: &str) -> bool {
    let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    expected
        .iter()
        .zip(got.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}
