//! Rows of the `ui_sessions` table: the web UI's signed-in browsers.
//!
//! Only the hash of a session id is stored; what a role may do, and when
//! a session has been idle too long, is the UI's to decide.

use sqlx::Row;

use crate::{Store, StoreError};

/// A signed-in browser, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the session id in the browser's cookie.
    pub id_hash: String,
    /// `admin` or `auditor`.
    pub role: String,
    /// The token every changing form must carry.
    pub csrf: String,
    /// Who signed in, for the ledger's admin records.
    pub actor: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

impl Store {
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, role, csrf, actor, created_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id_hash)
        .bind(&s.role)
        .bind(&s.csrf)
        .bind(&s.actor)
        .bind(s.created_ms)
        .bind(s.last_seen_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, role, csrf, actor, created_ms, last_seen_ms \
             FROM ui_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id_hash: r.try_get("id_hash")?,
                role: r.try_get("role")?,
                csrf: r.try_get("csrf")?,
                actor: r.try_get("actor")?,
                created_ms: r.try_get("created_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
            })
        })
        .transpose()
    }

    /// Marks a session as used at `now_ms` (sliding the idle limit).
    pub async fn touch_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ui_sessions SET last_seen_ms = $1 WHERE id_hash = $2")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every session last seen before `before_ms`; returns how many.
    pub async fn delete_idle_sessions(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM ui_sessions WHERE last_seen_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
