//! Budgets: what they cover, how much, and one replica's share of each.
//!
//! A [`BudgetSpec`] names a scope (one key, one tenant, or one tenant
//! buying one product through one channel), a [`Period`] and an amount in
//! micro-USD. Its canonical id (`key/key_01…/month`,
//! `tenant/acme/day`, `tenant/acme/channel/direct/product/api/total`) is
//! the row's id in the store, so the same budget set twice is one budget.
//!
//! [`Cell`] is one replica's view of one budget: a *free* share leased
//! from the shared state, the reservations in flight, and spend settled
//! here but not yet written. Admission takes from the free share under a
//! mutex held for a few arithmetic operations, never across an await;
//! only the syncer (see `sync`) talks to the store. The invariant that
//! makes budgets hold across replicas: what a replica can still reserve
//! (`free`) plus what it has reserved or spent unwritten never exceeds
//! what the store has leased to it.

use std::sync::Mutex;

use treaty_store::{BudgetRow, BudgetState};

use crate::period::Period;

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One virtual key, by id.
    Key(String),
    /// Every key of one tenant.
    Tenant(String),
    /// One tenant buying one product through one channel.
    Offer {
        tenant: String,
        channel: String,
        product: String,
    },
}

impl Scope {
    /// `key/ID`, `tenant/T` or `tenant/T/channel/C/product/P`.
    pub fn name(&self) -> String {
        match self {
            Scope::Key(k) => format!("key/{k}"),
            Scope::Tenant(t) => format!("tenant/{t}"),
            Scope::Offer {
                tenant,
                channel,
                product,
            } => format!("tenant/{tenant}/channel/{channel}/product/{product}"),
        }
    }
}

/// A budget's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    pub scope: Scope,
    pub period: Period,
    /// Micro-USD.
    pub limit_micros: i64,
    /// Percentages of the limit that log and count once per period when
    /// spend crosses them (e.g. `[50, 80]`), ascending.
    pub soft_percents: Vec<u8>,
}

impl BudgetSpec {
    /// The canonical id: scope name and period.
    pub fn id(&self) -> String {
        format!("{}/{}", self.scope.name(), self.period)
    }

    pub fn to_row(&self, source: &str, now_ms: i64) -> BudgetRow {
        let (key_id, tenant, channel, product) = match &self.scope {
            Scope::Key(k) => (Some(k.clone()), None, None, None),
            Scope::Tenant(t) => (None, Some(t.clone()), None, None),
            Scope::Offer {
                tenant,
                channel,
                product,
            } => (
                None,
                Some(tenant.clone()),
                Some(channel.clone()),
                Some(product.clone()),
            ),
        };
        BudgetRow {
            id: self.id(),
            key_id,
            tenant,
            channel,
            product,
            period: self.period.as_str().to_owned(),
            limit_micros: self.limit_micros,
            soft_percents: self.soft_percents.clone(),
            source: source.to_owned(),
            updated_at: now_ms,
        }
    }

    /// Reads a stored budget; `None` for a row this version cannot read
    /// (an unknown period, or no scope), which is then not enforced.
    pub fn from_row(row: &BudgetRow) -> Option<BudgetSpec> {
        let scope = match (&row.key_id, &row.tenant, &row.channel, &row.product) {
            (Some(k), None, None, None) => Scope::Key(k.clone()),
            (None, Some(t), None, None) => Scope::Tenant(t.clone()),
            (None, Some(t), Some(c), Some(p)) => Scope::Offer {
                tenant: t.clone(),
                channel: c.clone(),
                product: p.clone(),
            },
            _ => return None,
        };
        Some(BudgetSpec {
            scope,
            period: Period::parse(&row.period)?,
            limit_micros: row.limit_micros,
            soft_percents: row.soft_percents.clone(),
        })
    }
}

/// Why an amount or a budget could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not an amount in USD (write e.g. \"10usd\", \"$2.50\" or \"0.75\")")]
    NotAnAmount(String),
    #[error("{0:?} is not AMOUNT/PERIOD (write e.g. \"10usd/month\"; periods: day, month, total)")]
    NotABudget(String),
}

/// Reads `10usd`, `10 USD`, `$10`, `2.5` (USD, at most 6 decimals) as
/// micro-USD. Negative amounts are refused.
pub fn parse_usd(text: &str) -> Result<i64, AmountError> {
    let bad = || AmountError::NotAnAmount(text.to_owned());
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    let number = lower.strip_suffix("usd").unwrap_or(&lower).trim();
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut frac_micros: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(bad)
}

/// Reads `10usd/month` (period `day`, `month` or `total`).
pub fn parse_budget(text: &str) -> Result<(i64, Period), AmountError> {
    let (amount, period) = text
        .split_once('/')
        .ok_or_else(|| AmountError::NotABudget(text.to_owned()))?;
    let period =
        Period::parse(period.trim()).ok_or_else(|| AmountError::NotABudget(text.to_owned()))?;
    Ok((parse_usd(amount)?, period))
}

/// Micro-USD for people: `$10.00`, `$0.0042`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (whole, frac) = (m / 1_000_000, m % 1_000_000);
    let mut frac = format!("{frac:06}");
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}${whole}.{frac}")
}

/// One replica's share of one budget.
#[derive(Debug)]
pub(crate) struct Cell {
    pub id: Box<str>,
    pub period: Period,
    pub state: Mutex<Share>,
}

impl Cell {
    pub fn new(spec: &BudgetSpec) -> Cell {
        Cell {
            id: spec.id().into_boxed_str(),
            period: spec.period,
            state: Mutex::new(Share {
                limit: spec.limit_micros,
                soft_percents: spec.soft_percents.clone(),
                ..Share::default()
            }),
        }
    }

    pub fn share(&self) -> std::sync::MutexGuard<'_, Share> {
        // Poisoned only if a thread panicked between integer updates.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The numbers behind [`Cell`]; all micro-USD.
#[derive(Debug, Clone, Default)]
pub(crate) struct Share {
    /// The budget's limit as defined (the store's, once synced, wins).
    pub limit: i64,
    pub soft_percents: Vec<u8>,
    pub period_start: i64,
    /// Leased to this replica and not reserved; may be spent without asking.
    pub free: i64,
    /// Reservations in flight here.
    pub reserved: i64,
    /// Spend settled here and not yet written to the store.
    pub unflushed: i64,
    /// Spend of a period that ended before it was written: (start, amount).
    pub carry: Option<(i64, i64)>,
    /// The shared state at the last sync (every replica's written spend,
    /// the others' leases).
    pub seen: Option<BudgetState>,
    /// `free` may be used until then (unix ms); after, the store may have
    /// expired this replica's lease.
    pub valid_until: i64,
    /// A reservation was made since the last sync.
    pub active: bool,
    /// When the last reservation was made (unix ms).
    pub last_active_ms: i64,
    /// Soft thresholds already crossed this period (bit i: the i-th).
    pub soft_crossed: u32,
}

/// Not enough free share here: the syncer must be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short;

impl Share {
    /// Starts a new period if `now_ms` is past the current one. Spend of
    /// the old period still to be written is carried; reservations in
    /// flight stay (they are charged to the new period when they settle).
    pub fn roll(&mut self, period: Period, now_ms: i64) {
        let start = period.start(now_ms);
        if start == self.period_start {
            return;
        }
        if self.unflushed != 0 {
            let carried = self.carry.map(|(_, a)| a).unwrap_or(0);
            self.carry = Some((self.period_start, carried + self.unflushed));
        }
        self.period_start = start;
        self.free = 0;
        self.unflushed = 0;
        self.seen = None;
        self.valid_until = 0;
        self.soft_crossed = 0;
    }

    /// Reserves `amount` from the free share.
    pub fn reserve(&mut self, amount: i64, now_ms: i64) -> Result<(), Short> {
        if now_ms >= self.valid_until || self.free < amount {
            return Err(Short);
        }
        self.free -= amount;
        self.reserved += amount;
        self.active = true;
        self.last_active_ms = now_ms;
        Ok(())
    }

    /// Turns a reservation into spend. What was reserved and not spent
    /// goes back to the free share; spend beyond the reservation is taken
    /// from it (and may overdraw it: the overshoot the estimate allowed).
    pub fn settle(&mut self, reserved: i64, cost: i64) {
        self.reserved -= reserved;
        self.unflushed += cost;
        self.free += reserved - cost;
    }

    /// Gives a reservation back unspent.
    pub fn release(&mut self, reserved: i64) {
        self.reserved -= reserved;
        self.free += reserved;
    }

    /// Spend of the period as this replica knows it: written by everyone
    /// at the last sync, plus its own unwritten.
    pub fn spent(&self) -> i64 {
        self.seen.map(|s| s.spent_micros).unwrap_or(0) + self.unflushed
    }

    /// The limit: the store's as of the last sync, else the definition's.
    pub fn limit(&self) -> i64 {
        self.seen.map(|s| s.limit_micros).unwrap_or(self.limit)
    }

    /// Marks soft thresholds crossed by the current spend; returns the
    /// percentages newly crossed (usually none: no allocation then).
    pub fn cross_soft(&mut self) -> Vec<u8> {
        let spent = self.spent();
        let limit = self.limit();
        let mut crossed = Vec::new();
        for (i, &p) in self.soft_percents.iter().enumerate().take(32) {
            let bit = 1u32 << i;
            if self.soft_crossed & bit == 0 && spent.saturating_mul(100) >= limit * i64::from(p) {
                self.soft_crossed |= bit;
                crossed.push(p);
            }
        }
        crossed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_in_micro_usd() {
        assert_eq!(parse_usd("10usd"), Ok(10_000_000));
        assert_eq!(parse_usd("$2.5"), Ok(2_500_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd(" 7 USD "), Ok(7_000_000));
        assert_eq!(parse_usd(".75"), Ok(750_000));
        for bad in ["", "usd", "-1usd", "1.0000001", "ten", "1e3", "1.2.3"] {
            assert!(parse_usd(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_budget("10usd/month"), Ok((10_000_000, Period::Month)));
        assert!(parse_budget("10usd/week").is_err());
        assert!(parse_budget("10usd").is_err());
        assert_eq!(format_usd(10_000_000), "$10.00");
        assert_eq!(format_usd(4_200), "$0.0042");
        assert_eq!(format_usd(-1_500_000), "-$1.50");
    }

    #[test]
    fn ids_name_scope_and_period() {
        let offer = BudgetSpec {
            scope: Scope::Offer {
                tenant: "acme".into(),
                channel: "direct".into(),
                product: "api".into(),
            },
            period: Period::Day,
            limit_micros: 1,
            soft_percents: vec![80],
        };
        assert_eq!(offer.id(), "tenant/acme/channel/direct/product/api/day");
        let row = offer.to_row("config", 5);
        assert_eq!(BudgetSpec::from_row(&row), Some(offer));
        let key = BudgetSpec {
            scope: Scope::Key("key_ab".into()),
            period: Period::Total,
            limit_micros: 1,
            soft_percents: vec![],
        };
        assert_eq!(key.id(), "key/key_ab/total");
    }

    #[test]
    fn a_share_never_reserves_beyond_its_free_part() {
        let mut s = Share {
            free: 100,
            valid_until: 10,
            ..Share::default()
        };
        assert_eq!(s.reserve(60, 0), Ok(()));
        assert_eq!(s.reserve(60, 0), Err(Short));
        // The real cost was lower: the rest is free again.
        s.settle(60, 20);
        assert_eq!((s.free, s.reserved, s.unflushed), (80, 0, 20));
        // An expired lease reserves nothing.
        assert_eq!(s.reserve(1, 10), Err(Short));
        s.roll(Period::Day, 86_400_000);
        assert_eq!((s.free, s.unflushed, s.carry), (0, 0, Some((0, 20))));
    }
}

/// A budget as listed by `treaty budgets list` and `GET /admin/budgets`:
/// its definition and the spend every replica has written this period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BudgetView {
    pub id: String,
    pub period: &'static str,
    pub limit_usd: String,
    pub limit_micros: i64,
    pub spent_usd: String,
    pub spent_micros: i64,
    pub remaining_micros: i64,
    /// RFC 3339; absent for a total budget.
    pub resets_at: Option<String>,
    pub soft_thresholds: Vec<u8>,
    /// Who set it: `config`, `cli`, `admin-api`.
    pub source: String,
}

/// Every budget in the store with its spend this period, at `now_ms`.
pub async fn list_budgets(
    store: &treaty_store::Store,
    now_ms: i64,
) -> Result<Vec<BudgetView>, treaty_store::StoreError> {
    let mut views = Vec::new();
    for row in store.list_budgets().await? {
        let Some(spec) = BudgetSpec::from_row(&row) else {
            continue;
        };
        let spent = store
            .budget_spent(&row.id, spec.period.start(now_ms))
            .await?;
        views.push(BudgetView {
            id: row.id.clone(),
            period: spec.period.as_str(),
            limit_usd: format_usd(row.limit_micros),
            limit_micros: row.limit_micros,
            spent_usd: format_usd(spent),
            spent_micros: spent,
            remaining_micros: (row.limit_micros - spent).max(0),
            resets_at: spec.period.end(now_ms).map(crate::period::rfc3339),
            soft_thresholds: row.soft_percents.clone(),
            source: row.source.clone(),
        });
    }
    Ok(views)
}
