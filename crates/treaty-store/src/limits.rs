//! Rows of the budget and rate-limit tables: definitions, settled spend,
//! replicas' leases and shared token buckets.
//!
//! This module only moves numbers in and out of `budgets`, `budget_spend`,
//! `budget_leases` and `rate_buckets`; what they mean (periods, leases,
//! refusals) belongs to the `treaty-limits` crate. Each operation that
//! several replicas race on is one transaction ([`Store::sync_budget`]) or
//! one statement ([`Store::take_tokens`]), so the database serialises them:
//! the row lock on PostgreSQL, the write lock on SQLite. Nothing here is on
//! a request's path except when a replica's lease runs out.

use sqlx::Row;

use crate::{Store, StoreError};

/// A budget as stored. Amounts are micro-units of USD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    /// The canonical `scope/period` name (see `treaty-limits`).
    pub id: String,
    pub key_id: Option<String>,
    pub tenant: Option<String>,
    pub channel: Option<String>,
    pub product: Option<String>,
    /// `day`, `month` or `total`.
    pub period: String,
    pub limit_micros: i64,
    /// Soft thresholds in percent of the limit, e.g. `[50, 80]`.
    pub soft_percents: Vec<u8>,
    /// Who set it: `config`, `cli` or `admin`.
    pub source: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// One replica's exchange with a budget's shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSync<'a> {
    pub budget_id: &'a str,
    pub period_start: i64,
    pub replica: &'a str,
    /// Spend settled here since the last sync, added to the period's spend.
    pub spent_delta: i64,
    /// Reservations this replica has in flight.
    pub reserved: i64,
    /// The free share it would like to hold.
    pub want_free: i64,
    pub now_ms: i64,
    /// How long the lease counts if the replica never comes back.
    pub lease_ms: i64,
    /// Set when this replica was short while others held free shares:
    /// until then, every replica syncing sees [`BudgetState::contended`]
    /// (and gives its free share back).
    pub contend_until: i64,
}

/// What the shared state said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetState {
    pub limit_micros: i64,
    /// Settled spend of the period, every replica's (this sync included).
    pub spent_micros: i64,
    /// Other replicas' live reservations.
    pub others_reserved: i64,
    /// Other replicas' live free shares.
    pub others_free: i64,
    /// How many other replicas hold a live lease.
    pub others: i64,
    /// The free share granted to this replica.
    pub granted: i64,
    /// Some replica was short while others held free shares, recently.
    pub contended: bool,
}

/// A shared token bucket's answer to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Scaled tokens handed out (at most what was asked).
    pub granted: i64,
    /// Scaled tokens left in the bucket after the take.
    pub level: i64,
}

macro_rules! budget_columns {
    () => {
        "id, key_id, tenant, channel, product, period, limit_micros, soft_percents, source, updated_at"
    };
}

fn budget_from_row(row: &sqlx::any::AnyRow) -> Result<BudgetRow, StoreError> {
    let soft: String = row.try_get("soft_percents")?;
    let soft_percents = soft
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u8>().map_err(|_| StoreError::Corrupt {
                table: "budgets",
                detail: format!("soft_percents {soft:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(BudgetRow {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        tenant: row.try_get("tenant")?,
        channel: row.try_get("channel")?,
        product: row.try_get("product")?,
        period: row.try_get("period")?,
        limit_micros: row.try_get("limit_micros")?,
        soft_percents,
        source: row.try_get("source")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Refilled level of a bucket row at `$2` (now, ms), capped at `$3`
/// (capacity), refilling `$4` per ms; a clock behind the row's refills
/// nothing. Written out as SQL text so one statement can use it twice.
macro_rules! refilled {
    () => {
        "(CASE WHEN rate_buckets.level + (CASE WHEN $2 > rate_buckets.updated_ms THEN $2 - rate_buckets.updated_ms ELSE 0 END) * $4 > $3 \
          THEN $3 ELSE rate_buckets.level + (CASE WHEN $2 > rate_buckets.updated_ms THEN $2 - rate_buckets.updated_ms ELSE 0 END) * $4 END)"
    };
}

impl Store {
    /// Creates or replaces a budget (same id: same scope and period).
    pub async fn put_budget(&self, b: &BudgetRow) -> Result<(), StoreError> {
        let soft: Vec<String> = b.soft_percents.iter().map(u8::to_string).collect();
        sqlx::query(concat!(
            "INSERT INTO budgets (",
            budget_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET limit_micros = excluded.limit_micros, \
             soft_percents = excluded.soft_percents, source = excluded.source, \
             updated_at = excluded.updated_at"
        ))
        .bind(&b.id)
        .bind(b.key_id.as_deref())
        .bind(b.tenant.as_deref())
        .bind(b.channel.as_deref())
        .bind(b.product.as_deref())
        .bind(&b.period)
        .bind(b.limit_micros)
        .bind(soft.join(","))
        .bind(&b.source)
        .bind(b.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every budget, by id.
    pub async fn list_budgets(&self) -> Result<Vec<BudgetRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(budget_from_row).collect()
    }

    /// Removes a budget and its spend. Returns false when there was none.
    pub async fn delete_budget(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM budgets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for sql in [
            "DELETE FROM budget_spend WHERE budget_id = $1",
            "DELETE FROM budget_leases WHERE budget_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The settled spend of one budget period (0 when nothing was spent).
    pub async fn budget_spent(&self, id: &str, period_start: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT spent_micros FROM budget_spend WHERE budget_id = $1 AND period_start = $2",
        )
        .bind(id)
        .bind(period_start)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("spent_micros")?,
            None => 0,
        })
    }

    /// One replica's sync with a budget, in one transaction: adds its
    /// settled spend, then grants it a free share of what neither the
    /// spend nor any live lease holds. Returns `None` when the budget no
    /// longer exists (its lease is dropped).
    ///
    /// The spend row's upsert comes first so that it takes the row lock
    /// (PostgreSQL) or the write lock (SQLite) before anything is read:
    /// replicas syncing the same budget queue there, and the sums below
    /// cannot change under the grant.
    pub async fn sync_budget(&self, s: &BudgetSync<'_>) -> Result<Option<BudgetState>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO budget_spend (budget_id, period_start, spent_micros, updated_at, \
             contended_until) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (budget_id, period_start) DO UPDATE SET \
             spent_micros = budget_spend.spent_micros + excluded.spent_micros, \
             updated_at = excluded.updated_at, contended_until = (CASE WHEN \
             excluded.contended_until > budget_spend.contended_until \
             THEN excluded.contended_until ELSE budget_spend.contended_until END) \
             RETURNING spent_micros, contended_until",
        )
        .bind(s.budget_id)
        .bind(s.period_start)
        .bind(s.spent_delta)
        .bind(s.now_ms)
        .bind(s.contend_until)
        .fetch_one(&mut *tx)
        .await?;
        let spent: i64 = row.try_get("spent_micros")?;
        let contended_until: i64 = row.try_get("contended_until")?;
        let limit: Option<i64> = sqlx::query("SELECT limit_micros FROM budgets WHERE id = $1")
            .bind(s.budget_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("limit_micros"))
            .transpose()?;
        let Some(limit) = limit else {
            sqlx::query("DELETE FROM budget_leases WHERE budget_id = $1 AND replica = $2")
                .bind(s.budget_id)
                .bind(s.replica)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(None);
        };
        let others = sqlx::query(
            "SELECT CAST(COALESCE(SUM(reserved_micros), 0) AS BIGINT) AS reserved, \
             CAST(COALESCE(SUM(free_micros), 0) AS BIGINT) AS free, \
             CAST(COUNT(*) AS BIGINT) AS n FROM budget_leases \
             WHERE budget_id = $1 AND period_start = $2 AND replica <> $3 AND expires_at > $4",
        )
        .bind(s.budget_id)
        .bind(s.period_start)
        .bind(s.replica)
        .bind(s.now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let others_reserved: i64 = others.try_get("reserved")?;
        let others_free: i64 = others.try_get("free")?;
        let others_count: i64 = others.try_get("n")?;
        let grantable = limit - spent - others_reserved - others_free - s.reserved;
        let granted = s.want_free.min(grantable).max(0);
        if s.reserved == 0 && granted == 0 {
            sqlx::query(
                "DELETE FROM budget_leases WHERE budget_id = $1 AND period_start = $2 AND replica = $3",
            )
            .bind(s.budget_id)
            .bind(s.period_start)
            .bind(s.replica)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO budget_leases (budget_id, period_start, replica, reserved_micros, \
                 free_micros, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (budget_id, period_start, replica) DO UPDATE SET \
                 reserved_micros = excluded.reserved_micros, free_micros = excluded.free_micros, \
                 expires_at = excluded.expires_at",
            )
            .bind(s.budget_id)
            .bind(s.period_start)
            .bind(s.replica)
            .bind(s.reserved)
            .bind(granted)
            .bind(s.now_ms + s.lease_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(BudgetState {
            limit_micros: limit,
            spent_micros: spent,
            others_reserved,
            others_free,
            others: others_count,
            granted,
            contended: contended_until > s.now_ms,
        }))
    }

    /// The budgets some replica flagged contended until after `now_ms`:
    /// whoever holds a free share of one should give it back.
    pub async fn contended_budgets(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT DISTINCT budget_id FROM budget_spend WHERE contended_until > $1")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get("budget_id").map_err(StoreError::from))
            .collect()
    }

    /// Forgets leases that expired before `before_ms` (replicas that went
    /// away); they stopped counting when they expired.
    pub async fn purge_budget_leases(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM budget_leases WHERE expires_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Takes up to `want` scaled tokens from a shared bucket of `capacity`
    /// scaled tokens refilling `per_ms` scaled tokens a millisecond; a new
    /// bucket starts full. One statement: replicas racing on a bucket are
    /// serialised by the database.
    pub async fn take_tokens(
        &self,
        id: &str,
        want: i64,
        capacity: i64,
        per_ms: i64,
        now_ms: i64,
    ) -> Result<Taken, StoreError> {
        // One upsert: a new bucket starts full and gives at once; an
        // existing one (unqualified columns: the stored row) refills, then
        // gives. One round trip, atomic on both databases.
        let row = sqlx::query(concat!(
            "INSERT INTO rate_buckets (id, level, updated_ms, last_grant) VALUES ($1, \
             (CASE WHEN $5 < $3 THEN $3 - $5 ELSE 0 END), $2, (CASE WHEN $5 < $3 THEN $5 ELSE $3 END)) \
             ON CONFLICT (id) DO UPDATE SET last_grant = (CASE WHEN ",
            refilled!(),
            " < $5 THEN (CASE WHEN ",
            refilled!(),
            " > 0 THEN ",
            refilled!(),
            " ELSE 0 END) ELSE $5 END), level = ",
            refilled!(),
            " - (CASE WHEN ",
            refilled!(),
            " < $5 THEN (CASE WHEN ",
            refilled!(),
            " > 0 THEN ",
            refilled!(),
            " ELSE 0 END) ELSE $5 END), \
             updated_ms = (CASE WHEN $2 > rate_buckets.updated_ms THEN $2 ELSE rate_buckets.updated_ms END) \
             RETURNING level, last_grant"
        ))
        .bind(id)
        .bind(now_ms)
        .bind(capacity)
        .bind(per_ms)
        .bind(want)
        .fetch_one(&self.pool)
        .await?;
        Ok(Taken {
            granted: row.try_get("last_grant")?,
            level: row.try_get("level")?,
        })
    }

    /// Puts `n` scaled tokens back into a shared bucket (never above its
    /// capacity). Returns the level after.
    pub async fn give_tokens(
        &self,
        id: &str,
        n: i64,
        capacity: i64,
        per_ms: i64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE rate_buckets SET level = (CASE WHEN ",
            refilled!(),
            " + $5 > $3 THEN $3 ELSE ",
            refilled!(),
            " + $5 END), updated_ms = (CASE WHEN $2 > rate_buckets.updated_ms THEN $2 ELSE rate_buckets.updated_ms END) \
             WHERE id = $1 RETURNING level"
        ))
        .bind(id)
        .bind(now_ms)
        .bind(capacity)
        .bind(per_ms)
        .bind(n)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("level")?,
            None => capacity,
        })
    }
}
