//! Treaty's durable state behind one interface, on SQLite or PostgreSQL.
//!
//! SQLite (one file, WAL) is the embedded default; PostgreSQL is for
//! several replicas sharing state. Both run the *same* queries through
//! sqlx's `Any` driver: SQL here is written in the common subset (`$1`
//! placeholders, `BIGINT` unix milliseconds for times, `TEXT` for ids and
//! JSON), and only the migrations are kept per backend, where DDL differs.
//! The store never caches: callers on the hot path (key checks) keep their
//! own caches and come here on a miss.

mod keys;
mod ledger;
mod limits;
mod runtime;
mod sessions;
#[cfg(any(test, feature = "test-support"))]
pub mod test_pg;

use std::str::FromStr;
use std::time::Duration;

pub use keys::{KeyRow, NewKey};
pub use ledger::{
    CheckpointRow, LedgerConnection, LedgerHead, LedgerKeyRow, LedgerRow, LedgerTx, PublishOutcome,
    PublishStatusRow, SigningKeyRow, TreeNode,
};
pub use limits::{BudgetRow, BudgetState, BudgetSync, Taken};
pub use runtime::{
    AgentRow, ConversationItemRow, ConversationRow, ItemKind, ItemRow, Order, ResponseRow,
    RunChange, RunEvent, RunEventRow, RunRow,
};
pub use sessions::SessionRow;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("cannot open the store: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the store file {}: {source}", path.display())]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the store, migrated to the current schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file, when the store is one.
    file: Option<std::path::PathBuf>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the store.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match backend {
            // Create the file on first use; sqlx's SQLite default is WAL.
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        // Only where SQLite itself would create the file (not `mode=ro`).
        if backend == Backend::Sqlite
            && url.contains("mode=rwc")
            && let Some(file) = sqlite_file(&url)
        {
            create_private(&file).map_err(|source| StoreError::Create {
                path: file.clone(),
                source,
            })?;
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(StoreError::Connect)?
            .disable_statement_logging();
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool = match backend {
            Backend::Sqlite => pool.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed during writes; busy_timeout
                    // makes concurrent writers wait instead of failing.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => pool.max_connections(16),
        };
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        let file = match backend {
            Backend::Sqlite => sqlite_file(&url),
            Backend::Postgres => None,
        };
        let store = Store {
            pool,
            backend,
            file,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file behind the store (`None` on PostgreSQL or in memory).
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the SQLite file readable by its owner only (0600) when it does
/// not exist yet: it holds key hashes, stored conversations and the
/// ledger. SQLite gives its `-wal` and `-shm` files the database file's
/// mode, so they are private too. An existing file is left as the
/// operator set it.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file of a `sqlite:` URL, without its query.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

#[cfg(test)]
mod tests;
