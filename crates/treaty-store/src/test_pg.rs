//! Throwaway PostgreSQL databases for tests.
//!
//! Tests that need PostgreSQL call [`fresh_database`]: it creates a
//! database with a unique name on `TREATY_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and returns its URL. Where no
//! server answers, the test is skipped with a visible message, unless
//! `TREATY_REQUIRE_SERVICES=1` (set by CI), which turns the skip into a
//! failure.

use sqlx::{Connection, Executor, PgConnection};

/// The admin URL tests connect to in order to create databases.
pub fn admin_url() -> String {
    std::env::var("TREATY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh database and returns its URL, or `None` (after printing
/// why) when PostgreSQL is unavailable and skips are allowed.
#[allow(clippy::print_stderr, clippy::panic)]
pub async fn fresh_database(label: &str) -> Option<String> {
    let admin = admin_url();
    let mut conn = match PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("TREATY_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (TREATY_REQUIRE_SERVICES=1) but {admin} failed: {e}"
                );
            }
            eprintln!("SKIPPED: PostgreSQL test '{label}': cannot connect to {admin}: {e}");
            return None;
        }
    };
    let name = format!(
        "treaty_{label}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    if let Err(e) = conn
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
    {
        panic!("cannot create test database {name}: {e}");
    }
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

/// Drops a database made by [`fresh_database`].
pub async fn drop_database(url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}
