-- Budgets and rate limits (crate treaty-limits).
--
-- `budgets`: one row per budget, whoever set it (the config at start, the
-- CLI, the admin API). `id` is the canonical "scope/period" name, e.g.
-- "key/key_01J.../month" or "tenant/acme/channel/direct/product/api/day",
-- so the same budget set twice is one row.
CREATE TABLE budgets (
    id            TEXT PRIMARY KEY,
    key_id        TEXT,
    tenant        TEXT,
    channel       TEXT,
    product       TEXT,
    period        TEXT NOT NULL,
    limit_micros  BIGINT NOT NULL,
    soft_percents TEXT NOT NULL,
    source        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Settled spend per budget and period (period_start: unix ms of the UTC
-- day or month start; 0 for a total budget). A new period is a new row.
-- `contended_until`: a replica was short while others held free shares;
-- until then every replica gives its free share back at its next sync.
CREATE TABLE budget_spend (
    budget_id       TEXT NOT NULL,
    period_start    BIGINT NOT NULL,
    spent_micros    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    contended_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (budget_id, period_start)
);
-- Every replica asks each sync interval which budgets are contended.
CREATE INDEX budget_spend_contended ON budget_spend (contended_until);

-- What each replica holds of a budget: reservations in flight and a free
-- share it may reserve from without asking again. A lease past
-- `expires_at` (a replica that died) no longer counts.
CREATE TABLE budget_leases (
    budget_id       TEXT NOT NULL,
    period_start    BIGINT NOT NULL,
    replica         TEXT NOT NULL,
    reserved_micros BIGINT NOT NULL,
    free_micros     BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (budget_id, period_start, replica)
);

-- Shared token buckets for rate limits when several replicas share this
-- store. UNLOGGED: rate-limit state needs no WAL or sync, and after a
-- crash an empty table only means full buckets. `level` is in tokens x
-- 60000, so a per-minute refill adds an integer per millisecond;
-- `last_grant` carries the tokens handed out by the last take back to
-- the caller (RETURNING sees the new row only).
CREATE UNLOGGED TABLE rate_buckets (
    id         TEXT PRIMARY KEY,
    level      BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    last_grant BIGINT NOT NULL
);
