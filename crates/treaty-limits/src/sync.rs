//! The syncer: the one task per replica that talks to the shared state
//! for budgets, and returns idle leased tokens.
//!
//! Requests never write to the store themselves. When a budget's free
//! share is short, `admit` sends a [`Job::Demand`] here and waits; the
//! syncer asks the store for a bigger share and, if granted, makes the
//! reservation on the request's behalf before answering (so a racing
//! request cannot take it first). Every sync interval it writes settled
//! spend, renews leases close to expiry, gives idle or contended free
//! shares back, and hands idle leased tokens back to their shared
//! buckets; every refresh interval it reloads budget definitions so
//! `treaty budgets set` takes effect on running replicas.
//!
//! One task means one budget sync at a time per replica: the store sees a
//! replica's lease change in the order the replica made it. It must never
//! hold a [`Cell`]'s mutex across an await: it copies what it sends, and
//! applies the answer relative to what changed meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use treaty_store::{BudgetRow, BudgetState, BudgetSync};

use crate::budget::{BudgetSpec, Cell};
use crate::refusal::{BudgetRefusal, Refusal};
use crate::{Inner, LimitsError, Sharing};

/// The budgets that apply to a key, a tenant, or a tenant's offer.
#[derive(Debug, Default)]
pub(crate) struct BudgetIndex {
    pub all: Vec<Arc<Cell>>,
    pub by_key: HashMap<Box<str>, Arc<[Arc<Cell>]>>,
    pub by_tenant: HashMap<Box<str>, Arc<[Arc<Cell>]>>,
    pub by_offer: HashMap<Box<str>, Vec<Offer>>,
}

/// (tenant, channel, product).
type OfferKey = (Box<str>, Box<str>, Box<str>);

#[derive(Debug)]
pub(crate) struct Offer {
    pub channel: Box<str>,
    pub product: Box<str>,
    pub cells: Arc<[Arc<Cell>]>,
}

impl BudgetIndex {
    /// Indexes the stored budgets, keeping the cells (and so the leases,
    /// reservations and unwritten spend) of budgets `old` already had.
    pub fn build(rows: &[BudgetRow], old: Option<&BudgetIndex>) -> BudgetIndex {
        let kept: HashMap<&str, &Arc<Cell>> = old
            .map(|o| o.all.iter().map(|c| (&*c.id, c)).collect())
            .unwrap_or_default();
        let mut by_key: HashMap<Box<str>, Vec<Arc<Cell>>> = HashMap::new();
        let mut by_tenant: HashMap<Box<str>, Vec<Arc<Cell>>> = HashMap::new();
        let mut by_offer: HashMap<OfferKey, Vec<Arc<Cell>>> = HashMap::new();
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(spec) = BudgetSpec::from_row(row) else {
                tracing::warn!(budget = %row.id, "a stored budget this version cannot read is not enforced");
                continue;
            };
            let cell = match kept.get(spec.id().as_str()) {
                Some(c) => {
                    let mut s = c.share();
                    s.limit = spec.limit_micros;
                    s.soft_percents = spec.soft_percents.clone();
                    Arc::clone(c)
                }
                None => Arc::new(Cell::new(&spec)),
            };
            all.push(Arc::clone(&cell));
            match spec.scope {
                crate::Scope::Key(k) => by_key.entry(k.into()).or_default().push(cell),
                crate::Scope::Tenant(t) => by_tenant.entry(t.into()).or_default().push(cell),
                crate::Scope::Offer {
                    tenant,
                    channel,
                    product,
                } => by_offer
                    .entry((tenant.into(), channel.into(), product.into()))
                    .or_default()
                    .push(cell),
            }
        }
        let mut offers: HashMap<Box<str>, Vec<Offer>> = HashMap::new();
        for ((tenant, channel, product), cells) in by_offer {
            offers.entry(tenant).or_default().push(Offer {
                channel,
                product,
                cells: cells.into(),
            });
        }
        BudgetIndex {
            all,
            by_key: by_key.into_iter().map(|(k, v)| (k, v.into())).collect(),
            by_tenant: by_tenant.into_iter().map(|(k, v)| (k, v.into())).collect(),
            by_offer: offers,
        }
    }
}

pub(crate) enum Job {
    /// A request needs `need` more than this replica's free share: sync,
    /// and reserve it on the request's behalf if granted.
    Demand {
        cell: Arc<Cell>,
        need: i64,
        /// 0 the first time; 1 when re-sent after flagging contention.
        attempt: u8,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    SyncNow(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    /// Stop at once, writing nothing (a simulated crash).
    Abandon,
}

/// What a sync asks for.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Keep a share sized by the sharing mode (and `need` more).
    Share { need: i64 },
    /// Give the free share back (idle, contended, shutdown).
    Nothing,
}

pub(crate) async fn run(inner: Weak<Inner>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let (interval, refresh) = match inner.upgrade() {
        Some(i) => (i.settings.sync_interval, i.settings.refresh_interval),
        None => return,
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh = tokio::time::Instant::now();
    let mut last_purge = tokio::time::Instant::now();
    let resend = jobs_sender(&inner);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                let Some(inner) = inner.upgrade() else { return };
                match job {
                    Job::Demand { cell, need, attempt, reply } => {
                        demand(&inner, cell, need, attempt, reply, resend.as_ref()).await;
                    }
                    Job::SyncNow(reply) => {
                        refresh_budgets(&inner).await;
                        periodic(&inner, true).await;
                        let _ = reply.send(());
                    }
                    Job::Abandon => {
                        // Demands waiting now would never be answered:
                        // refuse them as a crashed process would drop them.
                        jobs.close();
                        return;
                    }
                    Job::Shutdown(reply) => {
                        shutdown(&inner).await;
                        let _ = reply.send(());
                        return;
                    }
                }
            }
            _ = tick.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                if last_refresh.elapsed() >= refresh {
                    last_refresh = tokio::time::Instant::now();
                    refresh_budgets(&inner).await;
                    // Re-sync every held share too, so a limit changed
                    // elsewhere applies to shares already granted.
                    periodic(&inner, true).await;
                } else {
                    periodic(&inner, false).await;
                }
                if last_purge.elapsed() >= Duration::from_secs(60) {
                    last_purge = tokio::time::Instant::now();
                    purge(&inner).await;
                }
            }
        }
    }
}

fn jobs_sender(inner: &Weak<Inner>) -> Option<mpsc::WeakUnboundedSender<Job>> {
    inner.upgrade().map(|i| i.jobs.downgrade())
}

/// Answers a request short of budget share.
async fn demand(
    inner: &Arc<Inner>,
    cell: Arc<Cell>,
    need: i64,
    attempt: u8,
    reply: oneshot::Sender<Result<(), Refusal>>,
    resend: Option<&mpsc::WeakUnboundedSender<Job>>,
) {
    let now = inner.clock.now_ms();
    // Another demand may already have brought enough share.
    let reserved = {
        let mut s = cell.share();
        s.roll(cell.period, now);
        s.reserve(need, now).is_ok()
    };
    if reserved {
        return granted(&cell, need, reply);
    }
    let state = match sync_cell(inner, &cell, Want::Share { need }, 0).await {
        Ok(Some(state)) => state,
        Ok(None) => {
            // The budget was removed: nothing to hold the request to. The
            // reservation is still booked, so that settling it balances.
            cell.share().reserved += need;
            return granted(&cell, need, reply);
        }
        Err(e) => {
            tracing::error!(error = %e, budget = %cell.id, "cannot reach the store for a budget; refusing (fail closed)");
            let _ = reply.send(Err(Refusal::Unavailable));
            return;
        }
    };
    let now = inner.clock.now_ms();
    let (mine, refusal) = {
        let mut s = cell.share();
        if s.reserve(need, now).is_ok() {
            drop(s);
            return granted(&cell, need, reply);
        }
        let mine = s.reserved + s.unflushed;
        // What the others still hold after a contended retry may be in
        // flight there too (a share is reported, not its use).
        let used = state.spent_micros + state.others_reserved + state.others_free + mine;
        (
            mine,
            BudgetRefusal {
                budget: cell.id.to_string(),
                limit_micros: state.limit_micros,
                used_micros: used,
                needed_micros: need,
                resets_at: cell.period.end(now),
            },
        )
    };
    // Room exists once the others give their free shares back: flag the
    // budget contended, and ask again after they have synced.
    let room = state.limit_micros - state.spent_micros - state.others_reserved - mine;
    let resend = resend.and_then(mpsc::WeakUnboundedSender::upgrade);
    if attempt == 0
        && room >= need
        && state.others_free > 0
        && inner.settings.sharing != Sharing::Embedded
        && let Some(resend) = resend
    {
        let interval = inner.settings.sync_interval;
        let until = now + 3 * interval.as_millis() as i64;
        if let Err(e) = sync_cell(inner, &cell, Want::Share { need: 0 }, until).await {
            tracing::warn!(error = %e, budget = %cell.id, "cannot flag a contended budget");
        }
        tokio::spawn(async move {
            tokio::time::sleep(interval * 2 + interval / 2).await;
            let _ = resend.send(Job::Demand {
                cell,
                need,
                attempt: 1,
                reply,
            });
        });
        return;
    }
    let _ = reply.send(Err(Refusal::Budget(refusal)));
}

/// Hands a reservation made for a request to it; if the request is gone
/// (its client hung up while it waited), gives the reservation back.
fn granted(cell: &Cell, need: i64, reply: oneshot::Sender<Result<(), Refusal>>) {
    if reply.send(Ok(())).is_err() {
        cell.share().release(need);
    }
}

/// One exchange with the store for one budget. Returns `None` when the
/// budget no longer exists.
async fn sync_cell(
    inner: &Inner,
    cell: &Cell,
    want: Want,
    contend_until: i64,
) -> Result<Option<BudgetState>, LimitsError> {
    let store = inner.store.as_ref().ok_or(LimitsError::NoStore)?;
    let now = inner.clock.now_ms();
    let embedded = inner.settings.sharing == Sharing::Embedded;
    let lease_ms = inner.settings.lease_ms();
    // What is sent: the spend to add (taken out of the share), and the
    // share this replica would hold.
    let (carry, period_start, delta, reserved, free_before, want_free) = {
        let mut s = cell.share();
        s.roll(cell.period, now);
        let carry = s.carry.take();
        let delta = std::mem::take(&mut s.unflushed);
        let want_free = match want {
            Want::Nothing => 0,
            // Alone: all that is left (nobody else can want it).
            Want::Share { need } if embedded => i64::MAX / 4 + need,
            Want::Share { need } => {
                let contended = s.seen.is_some_and(|x| x.contended);
                let fair = match s.seen {
                    Some(x) if !contended => {
                        (x.limit_micros
                            - x.spent_micros
                            - x.others_reserved
                            - x.others_free
                            - s.reserved)
                            .max(0)
                            / (2 * (x.others + 1))
                    }
                    _ => 0,
                };
                need + fair.max(if contended { 0 } else { s.free })
            }
        };
        (carry, s.period_start, delta, s.reserved, s.free, want_free)
    };
    let put_back = |carry: Option<(i64, i64)>| {
        let mut s = cell.share();
        if s.period_start == period_start {
            s.unflushed += delta;
        }
        if let Some((start, amount)) = carry {
            let merged = s.carry.map(|(_, a)| a).unwrap_or(0) + amount;
            s.carry = Some((start, merged));
        }
    };
    if let Some((start, amount)) = carry {
        let old = BudgetSync {
            budget_id: &cell.id,
            period_start: start,
            replica: &inner.settings.replica,
            spent_delta: amount,
            reserved: 0,
            want_free: 0,
            now_ms: now,
            lease_ms,
            contend_until: 0,
        };
        if let Err(e) = store.sync_budget(&old).await {
            put_back(Some((start, amount)));
            return Err(e.into());
        }
    }
    let sent = BudgetSync {
        budget_id: &cell.id,
        period_start,
        replica: &inner.settings.replica,
        spent_delta: delta,
        reserved,
        want_free,
        now_ms: now,
        lease_ms,
        contend_until,
    };
    inner
        .stats
        .budget_syncs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = match store.sync_budget(&sent).await {
        Ok(state) => state,
        Err(e) => {
            put_back(None);
            return Err(e.into());
        }
    };
    let mut s = cell.share();
    if s.period_start != period_start {
        // The period ended while syncing: the new one starts from nothing.
        return Ok(state);
    }
    match state {
        Some(state) => {
            // Reservations made and settled while the store answered moved
            // between `free` and the rest; carry that over the new grant.
            s.free = state.granted + (s.free - free_before);
            s.seen = Some(state);
            s.valid_until = if embedded {
                i64::MAX
            } else {
                now + lease_ms / 2
            };
            s.active = false;
        }
        None => {
            s.free = 0;
            s.seen = None;
        }
    }
    Ok(state)
}

/// Every sync interval (or on `sync_now`, `force`).
async fn periodic(inner: &Arc<Inner>, force: bool) {
    let now = inner.clock.now_ms();
    let embedded = inner.settings.sharing == Sharing::Embedded;
    let idle_ms = 2_000.max(inner.settings.sync_interval.as_millis() as i64 * 4);
    let lease_ms = inner.settings.lease_ms();
    let cells = inner.index().all.clone();
    // Budgets another replica is short of: one query, made only when this
    // replica holds some free share to give back.
    let mut contended_ids = Vec::new();
    if !embedded
        && cells.iter().any(|c| c.share().free > 0)
        && let Some(store) = &inner.store
    {
        match store.contended_budgets(now).await {
            Ok(ids) => contended_ids = ids,
            Err(e) => tracing::debug!(error = %e, "cannot read contended budgets"),
        }
    }
    for cell in cells {
        let want = {
            let mut s = cell.share();
            s.roll(cell.period, now);
            let holding = s.free > 0 || s.reserved > 0;
            let contended = s.seen.is_some_and(|x| x.contended)
                || contended_ids.iter().any(|id| **id == *cell.id);
            let idle = !s.active && now - s.last_active_ms >= idle_ms;
            // Spend to write, a lease about to expire, or (forced) a
            // share to re-grant under a limit that may have changed.
            let unwritten = s.unflushed != 0 || s.carry.is_some();
            let expiring = !embedded && holding && s.valid_until - now < lease_ms / 4;
            let refresh = force && (holding || s.seen.is_some());
            if !embedded && s.free > 0 && (contended || idle) {
                Some(Want::Nothing)
            } else if unwritten || expiring || refresh {
                Some(Want::Share { need: 0 })
            } else {
                None
            }
        };
        if let Some(want) = want
            && let Err(e) = sync_cell(inner, &cell, want, 0).await
        {
            inner
                .stats
                .store_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, budget = %cell.id, "budget sync failed; will retry");
        }
    }
    give_back_idle_tokens(inner, now, 5_000).await;
}

/// Hands leased tokens unused for `idle_ms` back to their shared buckets.
async fn give_back_idle_tokens(inner: &Inner, now: i64, idle_ms: i64) {
    let Some(shared) = &inner.shared else { return };
    let pairs: Vec<_> = {
        let keys = inner.keys.read().unwrap_or_else(|p| p.into_inner());
        let tenants = inner.tenants.read().unwrap_or_else(|p| p.into_inner());
        keys.values()
            .chain(tenants.values())
            .flatten()
            .chain(inner.hosts.iter().flatten())
            .cloned()
            .collect()
    };
    for pair in pairs {
        for bucket in pair.buckets() {
            let n = bucket.take_back_idle(idle_ms, now);
            if n > 0
                && let Err(e) = shared
                    .give(&bucket.id, n, bucket.capacity(), bucket.per_minute, now)
                    .await
            {
                tracing::debug!(error = %e, bucket = %bucket.id, "could not give leased tokens back; they refill");
            }
        }
    }
}

/// Reloads budget definitions, keeping each budget's share.
async fn refresh_budgets(inner: &Inner) {
    let Some(store) = &inner.store else { return };
    match store.list_budgets().await {
        Ok(rows) => {
            let old = inner.index();
            let index = BudgetIndex::build(&rows, Some(&old));
            *inner.budgets.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        }
        Err(e) => tracing::warn!(error = %e, "cannot reload budgets; keeping the ones loaded"),
    }
}

async fn purge(inner: &Inner) {
    if let Some(store) = &inner.store {
        let before = inner.clock.now_ms() - 3_600_000;
        if let Err(e) = store.purge_budget_leases(before).await {
            tracing::debug!(error = %e, "cannot purge expired budget leases");
        }
    }
}

async fn shutdown(inner: &Arc<Inner>) {
    let now = inner.clock.now_ms();
    for cell in inner.index().all.clone() {
        if let Err(e) = sync_cell(inner, &cell, Want::Nothing, 0).await {
            tracing::warn!(error = %e, budget = %cell.id, "cannot write budget spend at shutdown");
        }
    }
    give_back_idle_tokens(inner, now, 0).await;
}
