//! Prometheus metrics: the catalogue, the registry, and `/metrics` text.
//!
//! [`CATALOGUE`] describes every metric once (name as scraped, type, unit,
//! help, labels); [`Metrics::new`] registers exactly those, and a test
//! checks the rendered text and the README against it. Naming follows
//! Prometheus: Treaty's own metrics carry one `treaty_` prefix, base units
//! (seconds, USD) in the name, `_total` on counters. Where OpenTelemetry's
//! GenAI semantic conventions define a metric, its Prometheus spelling is
//! used unprefixed (`gen_ai.client.token.usage` is scraped as
//! `gen_ai_client_token_usage`), so GenAI dashboards work unchanged.
//!
//! Cardinality: no key or tenant id is a label by default. With
//! `tenant_labels` on, requests and spend carry `tenant`, and per-budget
//! gauges are exported (a budget's id names its key or tenant). Label
//! values that come from configuration (hosts, models, routes, classes,
//! clauses) are interned on first sight, so recording allocates nothing
//! once warm. Recording never blocks on I/O; rendering walks the registry.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{
    EncodeLabel as _, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelSetEncoder,
    LabelValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// As scraped (counters without their `_total` suffix, which the text
    /// format adds).
    pub name: &'static str,
    pub kind: Kind,
    /// The base unit, also the name's suffix; `""` for counts.
    pub unit: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

macro_rules! def {
    ($name:literal, $kind:ident, $unit:literal, $labels:expr, $help:literal) => {
        MetricDef {
            name: $name,
            kind: Kind::$kind,
            unit: $unit,
            help: $help,
            labels: $labels,
        }
    };
}

/// Every metric Treaty exports. `tenant` is only present with
/// `tenant_labels` on; `treaty_budget_*_usd` only then too.
pub const CATALOGUE: &[MetricDef] = &[
    def!(
        "treaty_requests",
        Counter,
        "",
        &["route", "host", "class", "status", "tenant"],
        "Requests answered, by route, serving host (none when refused), workload class and HTTP status."
    ),
    def!(
        "treaty_request_duration_seconds",
        Histogram,
        "seconds",
        &["route", "class"],
        "Time from a request's arrival to its last byte."
    ),
    def!(
        "treaty_added_duration_seconds",
        Histogram,
        "seconds",
        &["route"],
        "Treaty's own time in a request: total minus time spent waiting on upstreams."
    ),
    def!(
        "treaty_decisions",
        Counter,
        "",
        &["class", "verdict"],
        "Contract decisions, admitted or refused."
    ),
    def!(
        "treaty_refusals",
        Counter,
        "",
        &["clause"],
        "Refused requests by each clause that refused them."
    ),
    def!(
        "treaty_upstream_attempts",
        Counter,
        "",
        &["host", "outcome"],
        "Attempts at upstream hosts, by outcome (ok, or the error code)."
    ),
    def!(
        "treaty_failovers",
        Counter,
        "",
        &["host"],
        "Attempts that failed over from a host to the next allowed one."
    ),
    def!(
        "treaty_upstream_duration_seconds",
        Histogram,
        "seconds",
        &["host"],
        "Upstream latency per attempt: to the full answer, or for streams to the first event."
    ),
    def!(
        "treaty_breaker_state",
        Gauge,
        "",
        &["host"],
        "Each host's circuit: 0 closed, 1 half-open, 2 open, 3 at its rate limit."
    ),
    def!(
        "treaty_ledger_queue_depth",
        Gauge,
        "",
        &[],
        "Ledger records waiting for the writer."
    ),
    def!(
        "treaty_ledger_batch_size",
        Histogram,
        "",
        &[],
        "Records committed per ledger batch (one sync each)."
    ),
    def!(
        "treaty_ledger_commit_duration_seconds",
        Histogram,
        "seconds",
        &[],
        "Time to commit one ledger batch."
    ),
    def!(
        "treaty_spend_usd",
        Counter,
        "usd",
        &["tenant"],
        "Settled spend, in USD."
    ),
    def!(
        "treaty_budget_limit_usd",
        Gauge,
        "usd",
        &["budget"],
        "Each budget's amount for its period (tenant_labels only)."
    ),
    def!(
        "treaty_budget_remaining_usd",
        Gauge,
        "usd",
        &["budget"],
        "Each budget's amount not yet spent this period, as this replica knows it (tenant_labels only)."
    ),
    def!(
        "treaty_budgets_exhausted",
        Gauge,
        "",
        &[],
        "Budgets with nothing left this period."
    ),
    def!(
        "treaty_budget_soft_crossings",
        Counter,
        "",
        &[],
        "Soft budget thresholds crossed."
    ),
    def!(
        "treaty_rate_limited",
        Counter,
        "",
        &["scope", "kind"],
        "Requests refused by a rate limit (scope key, tenant or host; kind requests or tokens) or a budget (kind budget)."
    ),
    def!(
        "treaty_auth_failures_limited",
        Counter,
        "",
        &[],
        "Authentication attempts refused because their address failed too often."
    ),
    def!(
        "treaty_limits_store_errors",
        Counter,
        "",
        &[],
        "Failed exchanges with the shared state of budgets and rate limits (rate limits then count locally)."
    ),
    def!(
        "gen_ai_client_token_usage",
        Histogram,
        "",
        &[
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "gen_ai_token_type"
        ],
        "OpenTelemetry GenAI gen_ai.client.token.usage: tokens per call, input and output."
    ),
    def!(
        "gen_ai_client_operation_duration_seconds",
        Histogram,
        "seconds",
        &[
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "error_type"
        ],
        "OpenTelemetry GenAI gen_ai.client.operation.duration: one model call as the client sees it."
    ),
    def!(
        "gen_ai_server_time_to_first_token_seconds",
        Histogram,
        "seconds",
        &[
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model"
        ],
        "OpenTelemetry GenAI gen_ai.server.time_to_first_token: until the first streamed token."
    ),
];

/// An interned label value: cloning is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(Arc<str>);

impl EncodeLabelValue for &Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestLabels {
    route: Label,
    host: Label,
    class: Label,
    status: u16,
    tenant: Option<Label>,
}

/// By hand, so that `tenant` is left out rather than written empty when
/// tenant labels are off.
impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("route", &self.route).encode(encoder.encode_label())?;
        ("host", &self.host).encode(encoder.encode_label())?;
        ("class", &self.class).encode(encoder.encode_label())?;
        ("status", self.status as u64).encode(encoder.encode_label())?;
        if let Some(t) = &self.tenant {
            ("tenant", t).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteClass {
    route: Label,
    class: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteOnly {
    route: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Decision {
    class: Label,
    verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClauseLabel {
    clause: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostOutcome {
    host: Label,
    outcome: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostLabel {
    host: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TenantLabel {
    tenant: Option<Label>,
}

impl EncodeLabelSet for TenantLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match &self.tenant {
            Some(t) => ("tenant", t).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BudgetLabel {
    budget: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Limited {
    scope: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenUsage {
    gen_ai_operation_name: Label,
    gen_ai_provider_name: Label,
    gen_ai_request_model: Label,
    gen_ai_token_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Operation {
    gen_ai_operation_name: Label,
    gen_ai_provider_name: Label,
    gen_ai_request_model: Label,
    error_type: Option<Label>,
}

/// `error_type` only on failed calls, as the GenAI conventions say.
impl EncodeLabelSet for Operation {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("gen_ai_operation_name", &self.gen_ai_operation_name).encode(encoder.encode_label())?;
        ("gen_ai_provider_name", &self.gen_ai_provider_name).encode(encoder.encode_label())?;
        ("gen_ai_request_model", &self.gen_ai_request_model).encode(encoder.encode_label())?;
        if let Some(e) = &self.error_type {
            ("error_type", e).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FirstToken {
    gen_ai_operation_name: Label,
    gen_ai_provider_name: Label,
    gen_ai_request_model: Label,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // From 0.5 ms (Treaty's own time) to 80 s (long generations).
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
        40.0, 80.0,
    ])
}

fn added_seconds() -> Histogram {
    // Treaty's overhead lives in microseconds.
    Histogram::new([
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
    ])
}

fn tokens() -> Histogram {
    // OpenTelemetry GenAI's advised boundaries for token usage.
    Histogram::new([
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ])
}

fn operation_seconds() -> Histogram {
    // OpenTelemetry GenAI's advised boundaries for operation duration.
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
}

fn first_token_seconds() -> Histogram {
    // OpenTelemetry GenAI's advised boundaries for time to first token.
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

fn batch_sizes() -> Histogram {
    Histogram::new([
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ])
}

/// A metric of the catalogue, boxed so one table can hold every type.
type AnyMetric = Box<dyn EncodeMetric + Send + Sync>;

/// A boxed metric the registry accepts (it takes sized, `Debug` types).
struct Boxed(&'static str, AnyMetric);

impl std::fmt::Debug for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl EncodeMetric for Boxed {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.1.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.1.metric_type()
    }
}

/// Registers one metric of the catalogue under its name and unit (the
/// registry appends the unit to the name, so it is cut from it first).
fn register(r: &mut Registry, def: &MetricDef, metric: AnyMetric) {
    let metric = Boxed(def.name, metric);
    match def.unit {
        "seconds" => r.register_with_unit(
            def.name.trim_end_matches("_seconds"),
            def.help,
            Unit::Seconds,
            metric,
        ),
        "usd" => r.register_with_unit(
            def.name.trim_end_matches("_usd"),
            def.help,
            Unit::Other("usd".into()),
            metric,
        ),
        _ => r.register(def.name, def.help, metric),
    }
}

/// What a finished request says.
#[derive(Debug, Clone, Copy)]
pub struct RequestDone<'a> {
    pub route: &'a str,
    /// The host that served; `None` when refused or failed.
    pub host: Option<&'a str>,
    pub class: &'a str,
    pub status: u16,
    pub tenant: &'a str,
    pub total_seconds: f64,
    /// Total minus time waiting on upstreams.
    pub added_seconds: f64,
}

/// One model call as the GenAI conventions see it.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    /// `chat`, `embeddings`, ...
    pub operation: &'a str,
    /// `openai`, `azure.ai.openai`, `aws.bedrock`, `anthropic`, `gcp.gemini`.
    pub provider: &'a str,
    pub request_model: &'a str,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub seconds: f64,
    /// Streams: seconds to the first token.
    pub first_token_seconds: Option<f64>,
    /// The error's type when the call failed.
    pub error_type: Option<&'a str>,
}

/// Circuit states as `treaty_breaker_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
    RateLimited = 3,
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    tenant_labels: bool,
    interned: RwLock<HashSet<Arc<str>>>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Hist<RouteClass>,
    added_duration: Hist<RouteOnly>,
    decisions: Family<Decision, Counter>,
    refusals: Family<ClauseLabel, Counter>,
    attempts: Family<HostOutcome, Counter>,
    failovers: Family<HostLabel, Counter>,
    upstream_duration: Hist<HostLabel>,
    breaker: Family<HostLabel, Gauge>,
    ledger_queue: Gauge,
    ledger_batch: Histogram,
    ledger_commit: Histogram,
    spend: Family<TenantLabel, Counter<f64, std::sync::atomic::AtomicU64>>,
    budget_limit: Family<BudgetLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    budget_remaining: Family<BudgetLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    budgets_exhausted: Gauge,
    soft_crossings: Counter,
    rate_limited: Family<Limited, Counter>,
    auth_limited: Counter,
    store_errors: Counter,
    token_usage: Hist<TokenUsage>,
    operation: Hist<Operation>,
    first_token: Hist<FirstToken>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("tenant_labels", &self.tenant_labels)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers the catalogue. `tenant_labels` adds a `tenant` label to
    /// requests and spend, and per-budget gauges.
    pub fn new(tenant_labels: bool) -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            tenant_labels,
            interned: RwLock::new(HashSet::new()),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(seconds),
            added_duration: Family::new_with_constructor(added_seconds),
            decisions: Family::default(),
            refusals: Family::default(),
            attempts: Family::default(),
            failovers: Family::default(),
            upstream_duration: Family::new_with_constructor(seconds),
            breaker: Family::default(),
            ledger_queue: Gauge::default(),
            ledger_batch: batch_sizes(),
            ledger_commit: seconds(),
            spend: Family::default(),
            budget_limit: Family::default(),
            budget_remaining: Family::default(),
            budgets_exhausted: Gauge::default(),
            soft_crossings: Counter::default(),
            rate_limited: Family::default(),
            auth_limited: Counter::default(),
            store_errors: Counter::default(),
            token_usage: Family::new_with_constructor(tokens),
            operation: Family::new_with_constructor(operation_seconds),
            first_token: Family::new_with_constructor(first_token_seconds),
        };
        m.register()
    }

    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        for def in CATALOGUE {
            let put = |r: &mut Registry, metric| register(r, def, metric);
            match def.name {
                "treaty_requests" => put(r, Box::new(self.requests.clone())),
                "treaty_request_duration_seconds" => {
                    put(r, Box::new(self.request_duration.clone()))
                }
                "treaty_added_duration_seconds" => put(r, Box::new(self.added_duration.clone())),
                "treaty_decisions" => put(r, Box::new(self.decisions.clone())),
                "treaty_refusals" => put(r, Box::new(self.refusals.clone())),
                "treaty_upstream_attempts" => put(r, Box::new(self.attempts.clone())),
                "treaty_failovers" => put(r, Box::new(self.failovers.clone())),
                "treaty_upstream_duration_seconds" => {
                    put(r, Box::new(self.upstream_duration.clone()))
                }
                "treaty_breaker_state" => put(r, Box::new(self.breaker.clone())),
                "treaty_ledger_queue_depth" => put(r, Box::new(self.ledger_queue.clone())),
                "treaty_ledger_batch_size" => put(r, Box::new(self.ledger_batch.clone())),
                "treaty_ledger_commit_duration_seconds" => {
                    put(r, Box::new(self.ledger_commit.clone()))
                }
                "treaty_spend_usd" => put(r, Box::new(self.spend.clone())),
                "treaty_budget_limit_usd" => put(r, Box::new(self.budget_limit.clone())),
                "treaty_budget_remaining_usd" => put(r, Box::new(self.budget_remaining.clone())),
                "treaty_budgets_exhausted" => put(r, Box::new(self.budgets_exhausted.clone())),
                "treaty_budget_soft_crossings" => put(r, Box::new(self.soft_crossings.clone())),
                "treaty_rate_limited" => put(r, Box::new(self.rate_limited.clone())),
                "treaty_auth_failures_limited" => put(r, Box::new(self.auth_limited.clone())),
                "treaty_limits_store_errors" => put(r, Box::new(self.store_errors.clone())),
                "gen_ai_client_token_usage" => put(r, Box::new(self.token_usage.clone())),
                "gen_ai_client_operation_duration_seconds" => {
                    put(r, Box::new(self.operation.clone()))
                }
                "gen_ai_server_time_to_first_token_seconds" => {
                    put(r, Box::new(self.first_token.clone()))
                }
                _ => {}
            }
        }
        self
    }

    /// Interns a label value; allocates only the first time it is seen.
    fn label(&self, value: &str) -> Label {
        if let Some(v) = self
            .interned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(value)
        {
            return Label(Arc::clone(v));
        }
        let mut set = self.interned.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = set.get(value) {
            return Label(Arc::clone(v));
        }
        let v: Arc<str> = Arc::from(value);
        set.insert(Arc::clone(&v));
        Label(v)
    }

    fn tenant(&self, tenant: &str) -> Option<Label> {
        self.tenant_labels.then(|| self.label(tenant))
    }

    /// A request finished (any status).
    pub fn request(&self, r: &RequestDone<'_>) {
        let route = self.label(r.route);
        let class = self.label(r.class);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                host: self.label(r.host.unwrap_or("none")),
                class: class.clone(),
                status: r.status,
                tenant: self.tenant(r.tenant),
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteClass {
                route: route.clone(),
                class,
            })
            .observe(r.total_seconds);
        self.added_duration
            .get_or_create(&RouteOnly { route })
            .observe(r.added_seconds.max(0.0));
    }

    /// A contract decision; a refusal names its clauses.
    pub fn decision(&self, class: &str, admitted: bool, refusing_clauses: &[&str]) {
        self.decisions
            .get_or_create(&Decision {
                class: self.label(class),
                verdict: if admitted { "admitted" } else { "refused" },
            })
            .inc();
        for clause in refusing_clauses {
            self.refusals
                .get_or_create(&ClauseLabel {
                    clause: self.label(clause),
                })
                .inc();
        }
    }

    /// One attempt at a host: `outcome` is `ok` or the error code; a
    /// failed attempt followed by another host is a failover.
    pub fn attempt(&self, host: &str, outcome: &str, seconds: f64, failed_over: bool) {
        let host = self.label(host);
        self.attempts
            .get_or_create(&HostOutcome {
                host: host.clone(),
                outcome: self.label(outcome),
            })
            .inc();
        self.upstream_duration
            .get_or_create(&HostLabel { host: host.clone() })
            .observe(seconds);
        if failed_over {
            self.failovers.get_or_create(&HostLabel { host }).inc();
        }
    }

    pub fn breaker_state(&self, host: &str, state: BreakerState) {
        self.breaker
            .get_or_create(&HostLabel {
                host: self.label(host),
            })
            .set(state as i64);
    }

    pub fn ledger_queue_depth(&self, records: u64) {
        self.ledger_queue.set(records as i64);
    }

    pub fn ledger_batch(&self, records: usize, commit_seconds: f64) {
        self.ledger_batch.observe(records as f64);
        self.ledger_commit.observe(commit_seconds);
    }

    /// Settled spend of one call.
    pub fn spend(&self, tenant: &str, cost_micros: i64) {
        if cost_micros > 0 {
            self.spend
                .get_or_create(&TenantLabel {
                    tenant: self.tenant(tenant),
                })
                .inc_by(cost_micros as f64 / 1e6);
        }
    }

    /// Budgets as a replica knows them: (id, limit, spent) in micro-USD;
    /// called before rendering. Per-budget gauges only with tenant labels.
    pub fn budgets<'a>(&self, budgets: impl IntoIterator<Item = (&'a str, i64, i64)>) {
        let mut exhausted = 0;
        for (id, limit, spent) in budgets {
            let remaining = (limit - spent).max(0);
            exhausted += i64::from(remaining == 0);
            if self.tenant_labels {
                let l = BudgetLabel {
                    budget: self.label(id),
                };
                self.budget_limit.get_or_create(&l).set(limit as f64 / 1e6);
                self.budget_remaining
                    .get_or_create(&l)
                    .set(remaining as f64 / 1e6);
            }
        }
        self.budgets_exhausted.set(exhausted);
    }

    /// The limits' own counters (`treaty_limits::StatsSnapshot`), which
    /// only grow: brought up to date before rendering.
    pub fn limits_counters(&self, soft_crossings: u64, store_errors: u64) {
        for (counter, total) in [
            (&self.soft_crossings, soft_crossings),
            (&self.store_errors, store_errors),
        ] {
            let now = counter.get();
            if total > now {
                counter.inc_by(total - now);
            }
        }
    }

    /// A request refused by a limit: scope `key`, `tenant`, `host`; kind
    /// `requests`, `tokens` or `budget`.
    pub fn rate_limited(&self, scope: &'static str, kind: &'static str) {
        self.rate_limited
            .get_or_create(&Limited { scope, kind })
            .inc();
    }

    pub fn auth_failure_limited(&self) {
        self.auth_limited.inc();
    }

    /// A model call, as the GenAI conventions measure it.
    pub fn model_call(&self, c: &ModelCall<'_>) {
        let (op, provider, model) = (
            self.label(c.operation),
            self.label(c.provider),
            self.label(c.request_model),
        );
        for (kind, n) in [("input", c.input_tokens), ("output", c.output_tokens)] {
            if let Some(n) = n {
                self.token_usage
                    .get_or_create(&TokenUsage {
                        gen_ai_operation_name: op.clone(),
                        gen_ai_provider_name: provider.clone(),
                        gen_ai_request_model: model.clone(),
                        gen_ai_token_type: kind,
                    })
                    .observe(n as f64);
            }
        }
        self.operation
            .get_or_create(&Operation {
                gen_ai_operation_name: op.clone(),
                gen_ai_provider_name: provider.clone(),
                gen_ai_request_model: model.clone(),
                error_type: c.error_type.map(|e| self.label(e)),
            })
            .observe(c.seconds);
        if let Some(s) = c.first_token_seconds {
            self.first_token
                .get_or_create(&FirstToken {
                    gen_ai_operation_name: op,
                    gen_ai_provider_name: provider,
                    gen_ai_request_model: model,
                })
                .observe(s);
        }
    }

    /// The `/metrics` text (OpenMetrics; send with [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Encoding into a String cannot fail; keep the page parseable.
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}
