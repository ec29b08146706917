//! Tests on both backends: every test body takes a [`Db`] and runs once on
//! a SQLite file and once on a fresh PostgreSQL database (skipped with a
//! SKIPPED line when no server answers, unless TREATY_REQUIRE_SERVICES=1).

mod chain;
mod publish;
mod reports;
mod simulate;
mod tamper;
mod writer;

use std::time::Duration;

use treaty_store::Store;

use crate::record::fixtures::{decision, outcome};
use crate::{Entry, Ledger, LedgerSettings};

pub(crate) struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: bool,
}

impl Db {
    pub async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        Db {
            url,
            _dir: Some(dir),
            pg: false,
        }
    }

    pub async fn postgres() -> Option<Db> {
        let url = treaty_store::test_pg::fresh_database("ledger").await?;
        Some(Db {
            url,
            _dir: None,
            pg: true,
        })
    }

    /// A new connection pool to the same database.
    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    pub async fn finish(self) {
        if self.pg {
            treaty_store::test_pg::drop_database(&self.url).await;
        }
    }
}

/// Runs an `async fn(Db)` on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::tests::Db::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = crate::tests::Db::postgres().await else {
                    return;
                };
                super::$name(db).await;
            }
        }
    };
}
pub(crate) use on_both;

/// The key every test ledger signs with (kept outside the store, as in
/// production: the store never sees it).
pub(crate) fn test_key() -> crate::note::SecretKey {
    crate::note::SecretKey::from_seed("test.example/ledger", [42; 32]).unwrap()
}

pub(crate) fn settings(checkpoint_every: u64) -> LedgerSettings {
    LedgerSettings {
        checkpoint_every,
        checkpoint_interval: Duration::from_secs(3600),
        key: crate::SignerSource::Signer(crate::KeySigner::new(test_key(), "test").shared()),
        ..LedgerSettings::default()
    }
}

/// Record `i` of a test chain: decisions at odd seqs, their outcomes at
/// even ones.
pub(crate) fn entry(i: u64) -> Entry {
    if i % 2 == 1 {
        Entry::Decision(decision(i.div_ceil(2)))
    } else {
        Entry::Outcome(outcome(i / 2))
    }
}

/// Appends records 1..=n one at a time (one batch each, so checkpoints
/// land exactly every `checkpoint_every` records) and stops the ledger.
pub(crate) async fn build_chain(store: &Store, n: u64, checkpoint_every: u64) {
    let ledger = Ledger::open(store.clone(), settings(checkpoint_every))
        .await
        .unwrap();
    for i in 1..=n {
        assert_eq!(ledger.append(entry(i)).await.unwrap(), i);
    }
    ledger.shutdown().await.unwrap();
}
