//! Budgets and rate limits per key, per tenant and per host, that hold
//! across replicas without a network round trip in front of every request.
//!
//! The model-call path calls [`Limits::admit`] once per model call, before
//! dispatch, with who is asking ([`Subject`]) and an upper bound of what
//! the call may cost ([`Estimate`]). It gets a [`Permit`] (whose
//! [`Permit::headers`] are OpenAI's `x-ratelimit-*`) or a typed
//! [`Refusal`] (429 `insufficient_quota` naming the budget, 429
//! `rate_limit_exceeded` with the wait). After the call,
//! [`Permit::settle`] charges the real usage and cost. Per upstream host,
//! [`Limits::host_has_capacity`] lets routing skip a host at its quota
//! like an open breaker, and [`Limits::acquire_host`] takes from it before
//! each attempt. [`AuthGuard`] limits failed authentication per address.
//!
//! # How limits hold across replicas
//!
//! Every limit is a counter in a shared store that each replica draws
//! from in *leases*: a replica takes a share once, spends it locally
//! under a mutex held for a few integer operations (no I/O, no await, no
//! allocation), and goes back to the store only when the share runs out,
//! to write spend, to renew, or to give an idle share back. One
//! background task per replica (the syncer) does that store traffic.
//!
//! * **Budgets** (micro-USD per day, month or in total, UTC calendar):
//!   [`Limits::admit`] reserves the call's estimated cost from the
//!   replica's free share; [`Permit::settle`] turns it into the real cost.
//!   The store grants a free share only out of what neither settled spend
//!   nor any replica's live lease (reservations in flight, free shares)
//!   holds, in one transaction serialised on the budget's spend row. So
//!   admitted cost never exceeds the budget; spend can pass it only by
//!   what calls cost beyond their estimate (the estimate is meant as an
//!   upper bound) — at most the reservations in flight. A lease not
//!   renewed (a replica killed) expires after `lease` and stops counting;
//!   its reservations expire with it.
//! * **No false `insufficient_quota`.** A replica short of room while
//!   others hold free shares flags the budget *contended*: every replica
//!   gives its free share back at its next sync, and the short one asks
//!   again after two sync intervals. It refuses only when settled spend,
//!   every replica's reservations and the request's estimate together
//!   pass the budget.
//! * **Rate limits** (requests and tokens per minute, per key, tenant and
//!   host) are token buckets holding a minute's allowance. Several
//!   replicas share one bucket in the store; each takes leases of a
//!   sixteenth of the allowance (beyond what the request lacks), and
//!   gives back what it has not used after five seconds idle. Tokens are taken from the shared bucket before
//!   they are spent, so the limit holds exactly (a tokens-per-minute
//!   estimate corrected at settle may overdraw by the correction). A
//!   request is refused only after asking the shared bucket: it can be
//!   refused while other replicas hold unused leased tokens, at most a
//!   sixteenth of the allowance per replica — the stated tolerance. A
//!   client staying below its limit by that margin is never refused.
//!
//! # Where the shared state lives
//!
//! * **Embedded** (one process, SQLite): buckets are local; budgets lease
//!   their whole remaining amount from SQLite (nobody else can want it),
//!   so a request never waits on the disk; settled spend is written every
//!   sync interval and on shutdown, and read back at start.
//! * **PostgreSQL** (several replicas, the default choice): budgets as
//!   above, in transactions; buckets in an UNLOGGED table, one
//!   `UPDATE ... RETURNING` per lease.
//! * **PostgreSQL + Redis**: budgets stay in PostgreSQL (spend must be
//!   durable and is written rarely); buckets move to Redis, one Lua script
//!   per lease.
//!
//! Why PostgreSQL alone is the default: with leases the store is off the
//! request path (measured in `benches/admit.rs` and README "Running
//! several replicas": admit+settle costs the same with either store), so
//! what is left to compare is the lease round trip, paid only when a
//! share runs out. Redis makes that round trip a few times cheaper, but
//! adds a service to run, secure and watch, and a second place where
//! state lives. Choose Redis when leases are frequent: many keys near
//! their limits, or PostgreSQL far from the gateways.
//!
//! When the store cannot be reached: budgets fail closed ([`Refusal::Unavailable`],
//! a 503: money is not spent blind), rate limits fail open (the request
//! is counted locally only and the failure logged and counted), so an
//! outage of the rate-limit store does not take the gateway down.

mod auth;
mod bucket;
mod budget;
mod period;
mod refusal;
mod settings;
mod shared;
mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use auth::AuthGuard;
pub use bucket::Snapshot;
pub use budget::{
    AmountError, BudgetSpec, BudgetView, Scope, format_usd, list_budgets, parse_budget, parse_usd,
};
pub use period::{Period, rfc3339};
pub use refusal::{
    BudgetRefusal, HeaderText, LimitKind, LimitScope, RateHeaders, RateRefusal, Refusal,
    format_duration,
};
pub use settings::{RateSpec, Settings, Sharing};
use tokio::sync::{mpsc, oneshot};
use treaty_store::Store;

use crate::bucket::{Bucket, SCALE};
use crate::budget::Cell;
use crate::shared::SharedBuckets;
use crate::sync::{BudgetIndex, Job};

/// What can go wrong talking to the shared state.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error(transparent)]
    Store(#[from] treaty_store::StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("budgets need a store")]
    NoStore,
    #[error("the limits syncer has stopped")]
    Closed,
}

/// Where time comes from: the system clock, or one tests move by hand.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

/// Who is calling: the key and what it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a str,
    pub tenant: &'a str,
    pub channel: &'a str,
    pub product: &'a str,
}

/// An upper bound of what a call may use: tokens (prompt estimate plus
/// the most it may generate) and cost in micro-USD at the dearest host it
/// may be sent to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    pub tokens: u32,
    pub cost_micros: i64,
}

/// What a call used, from the upstream's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub tokens: u64,
}

/// Counters for metrics; every field only grows.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    admitted: AtomicU64,
    refused_budget: AtomicU64,
    refused_rate: AtomicU64,
    refused_host: AtomicU64,
    soft_crossings: AtomicU64,
    store_errors: AtomicU64,
    leases: AtomicU64,
    budget_syncs: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub admitted: u64,
    pub refused_budget: u64,
    pub refused_rate: u64,
    pub refused_host: u64,
    /// Soft budget thresholds crossed.
    pub soft_crossings: u64,
    /// Failed exchanges with the shared state.
    pub store_errors: u64,
    /// Token leases taken from the shared buckets.
    pub leases: u64,
    /// Budget syncs with the store.
    pub budget_syncs: u64,
}

/// One budget as this replica sees it, for metrics and `budgets list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub id: String,
    pub period: Period,
    pub limit_micros: i64,
    /// Written by every replica as of the last sync, plus this one's
    /// unwritten spend.
    pub spent_micros: i64,
    /// Reservations in flight here.
    pub reserved_micros: i64,
}

/// A subject's buckets: requests and tokens per minute.
#[derive(Debug)]
pub(crate) struct Pair {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Pair {
    fn new(name: &str, spec: RateSpec, leased: bool, now: i64) -> Option<Pair> {
        if spec.requests_per_minute.is_none() && spec.tokens_per_minute.is_none() {
            return None;
        }
        Some(Pair {
            requests: spec
                .requests_per_minute
                .map(|n| Bucket::new(format!("{name}/rpm"), n, leased, now)),
            tokens: spec
                .tokens_per_minute
                .map(|n| Bucket::new(format!("{name}/tpm"), n, leased, now)),
        })
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.requests.iter().chain(self.tokens.iter())
    }
}

pub(crate) struct Inner {
    settings: Settings,
    clock: Clock,
    store: Option<Store>,
    shared: Option<SharedBuckets>,
    /// Per key and per tenant; `None` caches "no limit" for that subject.
    keys: RwLock<HashMap<Box<str>, Option<Arc<Pair>>>>,
    tenants: RwLock<HashMap<Box<str>, Option<Arc<Pair>>>>,
    hosts: Vec<Option<Arc<Pair>>>,
    budgets: RwLock<Arc<BudgetIndex>>,
    jobs: mpsc::UnboundedSender<Job>,
    stats: Stats,
    auth: Option<AuthGuard>,
}

/// The limits of one replica. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("replica", &self.inner.settings.replica)
            .field("shared", &self.inner.shared)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Starts the limits of this replica: connects the shared buckets
    /// (when [`Sharing`] says so), writes the configured budgets to the
    /// store, loads every budget, and spawns the syncer. Must run inside
    /// a Tokio runtime. Budgets need `store`; without one, configured
    /// budgets are an error and only rate limits apply.
    pub async fn start(
        settings: Settings,
        store: Option<Store>,
        clock: Clock,
    ) -> Result<Limits, LimitsError> {
        let now = clock.now_ms();
        let shared = match &settings.sharing {
            Sharing::Embedded => None,
            Sharing::Store => Some(SharedBuckets::Store(
                store.clone().ok_or(LimitsError::NoStore)?,
            )),
            Sharing::Redis { url, prefix } => Some(SharedBuckets::Redis(
                shared::RedisBuckets::connect(url, prefix).await?,
            )),
        };
        let leased = shared.is_some();
        if let Some(store) = &store {
            for b in &settings.budgets {
                store.put_budget(&b.to_row("config", now)).await?;
            }
        } else if !settings.budgets.is_empty() {
            return Err(LimitsError::NoStore);
        }
        let index = match &store {
            Some(s) => BudgetIndex::build(&s.list_budgets().await?, None),
            None => BudgetIndex::default(),
        };
        let hosts = settings
            .hosts
            .iter()
            .map(|(id, spec)| Pair::new(&format!("host/{id}"), *spec, leased, now).map(Arc::new))
            .collect();
        let (jobs, rx) = mpsc::unbounded_channel();
        let auth = settings
            .auth_failures_per_minute
            .map(|n| AuthGuard::new(n, clock.clone()));
        let inner = Arc::new(Inner {
            clock,
            store,
            shared,
            keys: RwLock::new(HashMap::new()),
            tenants: RwLock::new(HashMap::new()),
            hosts,
            budgets: RwLock::new(Arc::new(index)),
            jobs,
            stats: Stats::default(),
            auth,
            settings,
        });
        tokio::spawn(sync::run(Arc::downgrade(&inner), rx));
        Ok(Limits { inner })
    }

    /// Admits one model call, or says why not. Takes a request (and the
    /// estimated tokens) from the key's and the tenant's buckets, then
    /// reserves the estimated cost in every budget covering the call. All
    /// or nothing: on a refusal nothing stays taken. Waits on the shared
    /// state only when a lease ran out.
    pub async fn admit(&self, who: &Subject<'_>, estimate: Estimate) -> Result<Permit, Refusal> {
        let inner = &self.inner;
        let key = pair(
            &inner.keys,
            who.key,
            || {
                inner
                    .settings
                    .key_spec(who.key)
                    .map(|s| (format!("key/{}", who.key), s))
            },
            inner,
        );
        let tenant = pair(
            &inner.tenants,
            who.tenant,
            || {
                inner
                    .settings
                    .tenant_spec(who.tenant)
                    .map(|s| (format!("tenant/{}", who.tenant), s))
            },
            inner,
        );
        let tokens = i64::from(estimate.tokens);
        let takes = [
            (key.as_deref(), LimitScope::Key),
            (tenant.as_deref(), LimitScope::Tenant),
        ];
        if let Err(r) = self.take_rates(&takes, tokens).await {
            inner.stats.refused_rate.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        let budgets = inner.budget_lists(who);
        let mut permit = Permit {
            inner: Arc::clone(inner),
            key,
            tenant,
            budgets,
            cost: estimate.cost_micros.max(0),
            tokens,
            reserved: 0,
            settled: false,
        };
        if let Err(r) = permit.reserve_budgets().await {
            inner.stats.refused_budget.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        inner.stats.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// Takes one request and `tokens` from each subject's buckets, all or
    /// nothing.
    async fn take_rates(
        &self,
        takes: &[(Option<&Pair>, LimitScope)],
        tokens: i64,
    ) -> Result<(), Refusal> {
        let now = self.inner.clock.now_ms();
        // (bucket, units) taken so far, to give back on a refusal.
        let mut taken: [Option<(&Bucket, i64)>; 4] = [None; 4];
        let mut n = 0;
        for (pair, scope) in takes {
            let Some(pair) = pair else { continue };
            for (bucket, units, kind) in [
                (pair.requests.as_ref(), 1, LimitKind::Requests),
                (pair.tokens.as_ref(), tokens, LimitKind::Tokens),
            ] {
                let Some(bucket) = bucket else { continue };
                if let Err(r) = self.take(bucket, units, now, *scope, kind).await {
                    for (b, u) in taken.iter().flatten() {
                        b.give(*u, now);
                    }
                    return Err(self.with_headers(r, takes));
                }
                if n < taken.len() {
                    taken[n] = Some((bucket, units));
                    n += 1;
                }
            }
        }
        Ok(())
    }

    /// Takes `units` from one bucket, leasing more from the shared bucket
    /// when this replica's lease is short.
    async fn take(
        &self,
        bucket: &Bucket,
        units: i64,
        now: i64,
        scope: LimitScope,
        kind: LimitKind,
    ) -> Result<(), Refusal> {
        let short = match bucket.try_take(units, now) {
            Ok(()) => return Ok(()),
            Err(short) => short,
        };
        let mut wait_for = short;
        if let Some(shared) = &self.inner.shared {
            let want = bucket.lease_size(short);
            match shared
                .take(&bucket.id, want, bucket.capacity(), bucket.per_minute, now)
                .await
            {
                Ok(t) => {
                    self.inner.stats.leases.fetch_add(1, Ordering::Relaxed);
                    bucket.add_lease(t.granted, t.level, now);
                    match bucket.try_take(units, now) {
                        Ok(()) => return Ok(()),
                        Err(s) => wait_for = s,
                    }
                }
                Err(e) => {
                    // Fail open: counted here only (see the crate docs).
                    self.inner
                        .stats
                        .store_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, bucket = %bucket.id, "rate-limit store unreachable; admitting on local counts");
                    bucket.force_take(units, now);
                    return Ok(());
                }
            }
        }
        let never = units * SCALE > bucket.capacity();
        Err(Refusal::RateLimited(RateRefusal {
            scope,
            kind,
            per_minute: bucket.per_minute as u64,
            requested: units as u64,
            retry_after: (!never)
                .then(|| std::time::Duration::from_millis(bucket.wait_ms(wait_for).max(1))),
            headers: RateHeaders::default(),
        }))
    }

    fn with_headers(&self, mut r: Refusal, takes: &[(Option<&Pair>, LimitScope)]) -> Refusal {
        if let Refusal::RateLimited(rate) = &mut r {
            rate.headers = headers(
                takes.iter().filter_map(|(p, _)| *p),
                self.inner.clock.now_ms(),
            );
        }
        r
    }

    /// Whether host `index` (in configured order) has room for one more
    /// request as far as this replica knows; routing skips a host without
    /// room like one whose breaker is open. Hosts without limits always
    /// have room.
    pub fn host_has_capacity(&self, index: usize) -> bool {
        let now = self.inner.clock.now_ms();
        match self.inner.hosts.get(index).and_then(Option::as_deref) {
            None => true,
            Some(p) => {
                p.requests.as_ref().is_none_or(|b| b.has(1, now))
                    && p.tokens.as_ref().is_none_or(|b| b.has(1, now))
            }
        }
    }

    /// Takes one request and `tokens` from host `index`'s quota before an
    /// attempt there. A refusal means: try the next host.
    pub async fn acquire_host(&self, index: usize, tokens: u32) -> Result<HostPermit, Refusal> {
        let pair = self.inner.hosts.get(index).cloned().flatten();
        if let Some(p) = &pair
            && let Err(r) = self
                .take_rates(&[(Some(p), LimitScope::Host)], i64::from(tokens))
                .await
        {
            self.inner
                .stats
                .refused_host
                .fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        Ok(HostPermit {
            inner: Arc::clone(&self.inner),
            pair,
            tokens: i64::from(tokens),
            settled: false,
        })
    }

    /// Where the rate-limit buckets live: `embedded`, `postgres` or `redis`.
    pub fn sharing(&self) -> &'static str {
        self.inner
            .shared
            .as_ref()
            .map_or("embedded", SharedBuckets::name)
    }

    /// One round trip to the shared buckets (a take of nothing), for
    /// readiness checks; `Ok` at once when buckets are embedded.
    pub async fn probe(&self) -> Result<(), LimitsError> {
        match &self.inner.shared {
            None => Ok(()),
            Some(shared) => {
                let now = self.inner.clock.now_ms();
                shared.take("probe", 0, SCALE, 1, now).await.map(|_| ())
            }
        }
    }

    /// Stops this replica's syncer without writing spend or giving
    /// anything back, as a crash would (its leases then expire in the
    /// store). For tests of what the other replicas see.
    pub fn abandon(&self) {
        let _ = self.inner.jobs.send(Job::Abandon);
    }

    /// The failed-authentication limiter, when configured.
    pub fn auth(&self) -> Option<&AuthGuard> {
        self.inner.auth.as_ref()
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            admitted: get(&s.admitted),
            refused_budget: get(&s.refused_budget),
            refused_rate: get(&s.refused_rate),
            refused_host: get(&s.refused_host),
            soft_crossings: get(&s.soft_crossings),
            store_errors: get(&s.store_errors),
            leases: get(&s.leases),
            budget_syncs: get(&s.budget_syncs),
        }
    }

    /// Every budget this replica enforces, with its spend as known here.
    pub fn budgets(&self) -> Vec<BudgetStatus> {
        let index = self.inner.index();
        let now = self.inner.clock.now_ms();
        index
            .all
            .iter()
            .map(|c| {
                let mut s = c.share();
                s.roll(c.period, now);
                BudgetStatus {
                    id: c.id.to_string(),
                    period: c.period,
                    limit_micros: s.limit(),
                    spent_micros: s.spent(),
                    reserved_micros: s.reserved,
                }
            })
            .collect()
    }

    /// Writes spend, renews or returns leases and reloads budgets now,
    /// instead of at the next sync interval.
    pub async fn sync_now(&self) -> Result<(), LimitsError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::SyncNow(tx))
            .map_err(|_| LimitsError::Closed)?;
        rx.await.map_err(|_| LimitsError::Closed)
    }

    /// Writes all spend, gives every free share and leased token back, and
    /// stops the syncer. Reservations still in flight keep their leases
    /// until they expire.
    pub async fn shutdown(&self) -> Result<(), LimitsError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Shutdown(tx))
            .map_err(|_| LimitsError::Closed)?;
        rx.await.map_err(|_| LimitsError::Closed)
    }
}

/// The subject's buckets, created on first sight.
fn pair(
    map: &RwLock<HashMap<Box<str>, Option<Arc<Pair>>>>,
    name: &str,
    spec: impl FnOnce() -> Option<(String, RateSpec)>,
    inner: &Inner,
) -> Option<Arc<Pair>> {
    if let Some(p) = map.read().unwrap_or_else(|p| p.into_inner()).get(name) {
        return p.clone();
    }
    let now = inner.clock.now_ms();
    let made =
        spec().and_then(|(id, s)| Pair::new(&id, s, inner.shared.is_some(), now).map(Arc::new));
    map.write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(name.into())
        .or_insert(made)
        .clone()
}

fn headers<'a>(pairs: impl Iterator<Item = &'a Pair>, now: i64) -> RateHeaders {
    let mut h = RateHeaders::default();
    for p in pairs {
        if let Some(b) = &p.requests {
            RateHeaders::tighten(&mut h.requests, b.snapshot(now));
        }
        if let Some(b) = &p.tokens {
            RateHeaders::tighten(&mut h.tokens, b.snapshot(now));
        }
    }
    h
}

impl Inner {
    fn index(&self) -> Arc<BudgetIndex> {
        Arc::clone(&self.budgets.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn budget_lists(&self, who: &Subject<'_>) -> [Option<Arc<[Arc<Cell>]>>; 3] {
        let index = self.index();
        [
            index.by_key.get(who.key).cloned(),
            index.by_tenant.get(who.tenant).cloned(),
            index.by_offer.get(who.tenant).and_then(|offers| {
                offers
                    .iter()
                    .find(|o| &*o.channel == who.channel && &*o.product == who.product)
                    .map(|o| Arc::clone(&o.cells))
            }),
        ]
    }
}

/// One admitted call. Settle it with what it used; dropped unsettled, it
/// gives its reservations and estimated tokens back (the request itself
/// stays counted).
pub struct Permit {
    inner: Arc<Inner>,
    key: Option<Arc<Pair>>,
    tenant: Option<Arc<Pair>>,
    budgets: [Option<Arc<[Arc<Cell>]>>; 3],
    /// Estimated cost reserved in each budget.
    cost: i64,
    /// Estimated tokens taken from the token buckets.
    tokens: i64,
    /// How many budget cells hold a reservation (in `cells()` order).
    reserved: usize,
    settled: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("cost", &self.cost)
            .field("tokens", &self.tokens)
            .field("budgets", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl Permit {
    fn cells(&self) -> impl Iterator<Item = &Arc<Cell>> {
        self.budgets.iter().flatten().flat_map(|l| l.iter())
    }

    /// Reserves the estimate in every budget; on a refusal, releases what
    /// was reserved.
    async fn reserve_budgets(&mut self) -> Result<(), Refusal> {
        let now = self.inner.clock.now_ms();
        let mut i = 0;
        loop {
            let Some(cell) = self.cells().nth(i).cloned() else {
                return Ok(());
            };
            let reserved_here = {
                let mut s = cell.share();
                s.roll(cell.period, now);
                s.reserve(self.cost, now).is_ok()
            };
            if !reserved_here {
                let (tx, rx) = oneshot::channel();
                let sent = self.inner.jobs.send(Job::Demand {
                    cell: Arc::clone(&cell),
                    need: self.cost,
                    attempt: 0,
                    reply: tx,
                });
                let answer = match sent {
                    Ok(()) => rx.await.unwrap_or(Err(Refusal::Unavailable)),
                    Err(_) => Err(Refusal::Unavailable),
                };
                if let Err(r) = answer {
                    // All or nothing: the request itself is given back too.
                    self.release_budgets();
                    self.give_tokens_back();
                    self.give_requests_back();
                    self.settled = true;
                    return Err(r);
                }
            }
            i += 1;
            self.reserved = i;
        }
    }

    fn release_budgets(&mut self) {
        let cost = self.cost;
        for cell in self.cells().take(self.reserved) {
            cell.share().release(cost);
        }
        self.reserved = 0;
    }

    fn give_tokens_back(&self) {
        let now = self.inner.clock.now_ms();
        for p in [&self.key, &self.tenant].into_iter().flatten() {
            if let Some(b) = &p.tokens {
                b.give(self.tokens, now);
            }
        }
    }

    fn give_requests_back(&self) {
        let now = self.inner.clock.now_ms();
        for p in [&self.key, &self.tenant].into_iter().flatten() {
            if let Some(b) = &p.requests {
                b.give(1, now);
            }
        }
    }

    /// The `x-ratelimit-*` numbers for the response: the caller's most
    /// constraining request and token limits, now.
    pub fn headers(&self) -> RateHeaders {
        headers(
            [&self.key, &self.tenant]
                .into_iter()
                .flatten()
                .map(|p| &**p),
            self.inner.clock.now_ms(),
        )
    }

    /// Charges what the call used: tokens beyond (or short of) the
    /// estimate are taken from (or given back to) the token buckets, and
    /// each budget's reservation becomes `cost_micros` of spend.
    pub fn settle(mut self, usage: Usage, cost_micros: i64) {
        let now = self.inner.clock.now_ms();
        let used = i64::try_from(usage.tokens).unwrap_or(i64::MAX);
        for p in [&self.key, &self.tenant].into_iter().flatten() {
            if let Some(b) = &p.tokens {
                match used - self.tokens {
                    0 => {}
                    more if more > 0 => b.force_take(more, now),
                    less => b.give(-less, now),
                }
            }
        }
        let cost = cost_micros.max(0);
        for cell in self.cells().take(self.reserved) {
            let crossed = {
                let mut s = cell.share();
                s.settle(self.cost, cost);
                s.cross_soft()
            };
            for percent in crossed {
                self.inner
                    .stats
                    .soft_crossings
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(budget = %cell.id, percent, "budget soft threshold crossed");
            }
        }
        self.settled = true;
    }
}

impl Permit {
    /// Settles a call that was served but whose host reported no usage:
    /// charged its estimate, the bound it was admitted under, since a
    /// served call cannot be shown to have cost less.
    pub fn settle_as_estimated(self) {
        let (tokens, cost) = (self.tokens, self.cost);
        self.settle(
            Usage {
                tokens: u64::try_from(tokens).unwrap_or(0),
            },
            cost,
        );
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.release_budgets();
            self.give_tokens_back();
        }
    }
}

/// One attempt's share of a host's quota.
pub struct HostPermit {
    inner: Arc<Inner>,
    pair: Option<Arc<Pair>>,
    tokens: i64,
    settled: bool,
}

impl std::fmt::Debug for HostPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPermit")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl HostPermit {
    /// Keeps the estimate taken: for a served call whose host reported no
    /// usage.
    pub fn settle_as_estimated(mut self) {
        self.settled = true;
    }

    /// Corrects the host's tokens to what the attempt used.
    pub fn settle(mut self, tokens: u64) {
        let now = self.inner.clock.now_ms();
        if let Some(b) = self.pair.as_ref().and_then(|p| p.tokens.as_ref()) {
            let used = i64::try_from(tokens).unwrap_or(i64::MAX);
            match used - self.tokens {
                0 => {}
                more if more > 0 => b.force_take(more, now),
                less => b.give(-less, now),
            }
        }
        self.settled = true;
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        if !self.settled
            && let Some(b) = self.pair.as_ref().and_then(|p| p.tokens.as_ref())
        {
            b.give(self.tokens, self.inner.clock.now_ms());
        }
    }
}
