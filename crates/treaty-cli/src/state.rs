//! `--config FILE` / `--db URL`: how every stateful command finds its store.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use treaty_config::{Config, ProcessEnv};
use treaty_store::Store;

#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Treaty config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://...; overrides the config's.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

impl StateArgs {
    pub fn load_config(&self) -> anyhow::Result<Option<Config>> {
        match &self.config {
            None => Ok(None),
            Some(path) => Ok(Some(Config::load(path, &ProcessEnv)?)),
        }
    }

    /// The store URL: `--db` first, then the config's.
    pub fn store_url(&self, config: Option<&Config>) -> anyhow::Result<String> {
        if let Some(db) = &self.db {
            return Ok(normalise_db(db));
        }
        match config {
            Some(c) => Ok(c.store_url()),
            None => bail!("give --config FILE or --db URL"),
        }
    }

    pub async fn open(&self, config: Option<&Config>) -> anyhow::Result<Store> {
        let url = self.store_url(config)?;
        Store::open(&url)
            .await
            .with_context(|| format!("opening the store at {}", redact_url(&url)))
    }
}

/// Records an administrative change made from the command line in the
/// ledger, with the user who made it (`cli:$USER`), the way the admin API
/// records its own. The change is already made: when the ledger cannot
/// take the record (no signing key at hand for a PostgreSQL store given
/// by `--db` alone, say), this warns and the command still succeeds.
pub async fn record_admin(
    config: Option<&Config>,
    store: &Store,
    action: &str,
    target: &str,
    detail: String,
) {
    let result = async {
        let mut settings = match config {
            Some(c) => treaty_engine::ledger_settings(c)?,
            // A SQLite store's key file sits beside it.
            None => treaty_ledger::LedgerSettings::default(),
        };
        // The gateways publish checkpoints; a CLI run does not.
        settings.publish = treaty_ledger::PublishSettings::default();
        let ledger = treaty_ledger::Ledger::open(store.clone(), settings).await?;
        let actor = format!(
            "cli:{}",
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into())
        );
        let appended = ledger
            .append(treaty_ledger::Entry::Admin(treaty_ledger::AdminRecord {
                at_ms: treaty_keys::now_ms(),
                actor,
                action: action.to_owned(),
                target: target.to_owned(),
                detail,
            }))
            .await;
        ledger.shutdown().await?;
        appended.map(|_| ()).map_err(anyhow::Error::from)
    }
    .await;
    if let Err(e) = result {
        crate::output::warn(format!(
            "{action} {target} is done, but it could not be recorded in the ledger: {e:#}"
        ));
    }
}

/// A bare path given to `--db` means a SQLite file.
pub fn normalise_db(db: &str) -> String {
    if db.contains("://") || db.starts_with("sqlite:") {
        db.to_owned()
    } else {
        format!("sqlite://{db}")
    }
}

/// Hides a password in a database URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(normalise_db("x.db"), "sqlite://x.db");
    }
}
