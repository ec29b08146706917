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
