//! Rows of the `virtual_keys` table.

use sqlx::Row;

use crate::{Store, StoreError};

/// A key as stored: the secret itself is never here, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub secret_hash: String,
    /// The first characters of the secret, for people to recognise it.
    pub prefix: String,
    pub tenant: String,
    pub channel: String,
    pub product: String,
    pub name: Option<String>,
    /// Public model names this key is limited to, if any.
    pub models: Option<Vec<String>>,
    /// Workload classes the key may declare; `None`: none.
    pub declare_classes: Option<Vec<String>>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What `insert_key` needs; the same fields as [`KeyRow`] at creation.
pub type NewKey = KeyRow;

/// The column list, as a macro so queries stay `&'static str` (sqlx
/// refuses dynamic SQL strings).
macro_rules! columns {
    () => {
        "id, secret_hash, prefix, tenant, channel, product, name, models, declare_classes, created_at, expires_at, revoked_at"
    };
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<KeyRow, StoreError> {
    let models: Option<String> = row.try_get("models")?;
    let declare_classes: Option<String> = row.try_get("declare_classes")?;
    Ok(KeyRow {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        prefix: row.try_get("prefix")?,
        tenant: row.try_get("tenant")?,
        channel: row.try_get("channel")?,
        product: row.try_get("product")?,
        name: row.try_get("name")?,
        models: models.as_deref().map(lines),
        declare_classes: declare_classes.as_deref().map(lines),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Lists of names are stored one per line: model and class names never
/// hold newlines, and this keeps the columns readable in SQL.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

impl Store {
    pub async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO virtual_keys (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&key.id)
        .bind(&key.secret_hash)
        .bind(&key.prefix)
        .bind(&key.tenant)
        .bind(&key.channel)
        .bind(&key.product)
        .bind(key.name.as_deref())
        .bind(key.models.as_ref().map(|m| m.join("\n")))
        .bind(key.declare_classes.as_ref().map(|m| m.join("\n")))
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn key_by_hash(&self, secret_hash: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM virtual_keys WHERE secret_hash = $1"
        ))
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn key_by_id(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM virtual_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every key, oldest first; `tenant` narrows to one tenant.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM virtual_keys WHERE tenant = $1 ORDER BY created_at, id"
                ))
                .bind(t)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM virtual_keys ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Marks a key revoked at `at_ms`. Returns false when no unrevoked key
    /// has that id.
    pub async fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE virtual_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
