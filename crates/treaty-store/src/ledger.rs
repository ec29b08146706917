//! Rows of the ledger's tables: records, the head, checkpoints, the key.
//!
//! This module only moves bytes in and out of `ledger_records`,
//! `ledger_head`, `ledger_checkpoints` and `ledger_signing_key`; what the
//! bytes mean (canonical records, the hash chain, signatures) belongs to
//! the `treaty-ledger` crate, which is the only writer. It must never
//! compute or check a hash, and never write a record outside a
//! [`LedgerTx`] that locked the head first.
//!
//! Writing goes through one dedicated [`LedgerConnection`] per ledger
//! writer: on SQLite it runs with `synchronous = FULL`, so every commit
//! syncs the WAL before it returns (the ledger's durability promise; one
//! sync per batch thanks to group commit). A batch is one [`LedgerTx`]:
//! [`LedgerTx::lock_head`] first (an `UPDATE` of the single head row,
//! which takes the write lock on SQLite and the row lock on PostgreSQL
//! with the same SQL), then the rows, the new head, an optional
//! checkpoint, and the commit.

use std::sync::{Arc, LazyLock};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AssertSqlSafe, Connection, Executor, Row};

use crate::{Backend, Store, StoreError};

/// One stored ledger record, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub seq: i64,
    /// `decision` or `outcome`.
    pub kind: String,
    pub request_id: String,
    /// Unix milliseconds, copied from the record for range queries.
    pub at_ms: i64,
    /// The canonical JSON that was hashed.
    pub payload: String,
    /// 32 bytes.
    pub hash: Vec<u8>,
}

/// The last sequence number and hash of the chain (0 and 32 zero bytes
/// when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// A signed `(seq, hash)` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    /// The ed25519 public key that signed (32 bytes).
    pub public_key: Vec<u8>,
    /// 64 bytes.
    pub signature: Vec<u8>,
    pub at_ms: i64,
}

/// The deployment's checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub public_key: Vec<u8>,
    /// The 32-byte ed25519 seed. The store is the trust boundary for it;
    /// third parties pin the public key instead of trusting the store.
    pub secret_key: Vec<u8>,
    pub created_at: i64,
}

macro_rules! record_columns {
    () => {
        "seq, kind, request_id, at_ms, payload, hash"
    };
}

macro_rules! checkpoint_columns {
    () => {
        "seq, hash, public_key, signature, at_ms"
    };
}

/// Multi-row inserts of up to 64 rows: one statement per chunk instead of
/// one per record keeps a 512-record batch at 8 round trips to the SQLite
/// worker thread. The text holds only generated `$n` placeholders, never
/// data, which is why asserting it SQL-safe is sound.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];
static INSERT_SQL: LazyLock<[Arc<str>; 7]> =
    LazyLock::new(|| CHUNKS.map(|n| Arc::from(insert_sql(n).as_str())));

/// On PostgreSQL a statement's bound data is kept under this many bytes.
/// sqlx 0.9.0 no longer sets TCP_NODELAY (sqlx issue #4335, fixed after
/// 0.9.0): a message it writes in more than one piece then waits for the
/// server's delayed ACK, 40 ms, which measured here from about 16 KiB on.
/// Smaller statements cost a round trip each (~0.3 ms on loopback) and
/// never stall. Remove the cap once sqlx sets TCP_NODELAY again.
const PG_STATEMENT_BYTES: usize = 12 * 1024;

/// Bytes a row adds to an insert message, roughly: the values plus the
/// per-parameter framing.
fn wire_size(r: &LedgerRow) -> usize {
    r.payload.len() + r.request_id.len() + r.kind.len() + r.hash.len() + 64
}

/// How many of `rows` the next statement takes, and which statement.
fn next_chunk(rows: &[LedgerRow], backend: Backend) -> (usize, usize) {
    let budget = match backend {
        Backend::Sqlite => usize::MAX,
        Backend::Postgres => PG_STATEMENT_BYTES,
    };
    for (i, &n) in CHUNKS.iter().enumerate() {
        if n <= rows.len() && rows[..n].iter().map(wire_size).sum::<usize>() <= budget {
            return (i, n);
        }
    }
    // A single row is always sent, whatever its size.
    (CHUNKS.len() - 1, 1)
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(concat!(
        "INSERT INTO ledger_records (",
        record_columns!(),
        ") VALUES "
    ));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..6 {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * 6 + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<LedgerRow, StoreError> {
    Ok(LedgerRow {
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        request_id: row.try_get("request_id")?,
        at_ms: row.try_get("at_ms")?,
        payload: row.try_get("payload")?,
        hash: row.try_get("hash")?,
    })
}

fn checkpoint_from_row(row: &sqlx::any::AnyRow) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
        public_key: row.try_get("public_key")?,
        signature: row.try_get("signature")?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// A pooled connection kept by one ledger writer for its whole life.
pub struct LedgerConnection {
    conn: PoolConnection<Any>,
    backend: Backend,
}

impl std::fmt::Debug for LedgerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerConnection")
    }
}

/// One batch: lock the head, insert, move the head, commit.
pub struct LedgerTx<'c> {
    tx: sqlx::Transaction<'c, Any>,
    backend: Backend,
}

impl std::fmt::Debug for LedgerTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerTx")
    }
}

impl LedgerConnection {
    pub async fn begin(&mut self) -> Result<LedgerTx<'_>, StoreError> {
        let tx = self.conn.begin().await?;
        Ok(LedgerTx {
            tx,
            backend: self.backend,
        })
    }
}

impl LedgerTx<'_> {
    /// Takes the ledger's write lock and returns the head under it.
    ///
    /// Must be the transaction's first statement: on SQLite a write
    /// statement first makes the deferred transaction a write transaction
    /// (a read first could leave it on a stale snapshot, SQLITE_BUSY_SNAPSHOT),
    /// and on PostgreSQL the row lock makes a concurrent replica wait here
    /// and then see this batch's head.
    pub async fn lock_head(&mut self) -> Result<LedgerHead, StoreError> {
        let row = sqlx::query("UPDATE ledger_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::Corrupt {
                table: "ledger_head",
                detail: "the head row (id 1) is missing".into(),
            })?;
        Ok(LedgerHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
        })
    }

    /// Inserts rows, in chunks of one statement each.
    pub async fn insert_records(&mut self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        let mut rest = rows;
        while !rest.is_empty() {
            let (i, n) = next_chunk(rest, self.backend);
            let (chunk, tail) = rest.split_at(n);
            let mut query = sqlx::query(AssertSqlSafe(INSERT_SQL[i].clone()));
            for r in chunk {
                query = query
                    .bind(r.seq)
                    .bind(r.kind.as_str())
                    .bind(r.request_id.as_str())
                    .bind(r.at_ms)
                    .bind(r.payload.as_str())
                    .bind(r.hash.as_slice());
            }
            query.execute(&mut *self.tx).await?;
            rest = tail;
        }
        Ok(())
    }

    pub async fn set_head(&mut self, seq: i64, hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a checkpoint; a second one at the same seq (another replica
    /// signed the same head) is ignored.
    pub async fn insert_checkpoint(&mut self, cp: &CheckpointRow) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO ledger_checkpoints (",
            checkpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING"
        ))
        .bind(cp.seq)
        .bind(cp.hash.as_slice())
        .bind(cp.public_key.as_slice())
        .bind(cp.signature.as_slice())
        .bind(cp.at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// A connection for a ledger writer. On SQLite it is switched to
    /// `synchronous = FULL`: a commit returns only once the WAL is synced,
    /// which is what makes an appended record durable.
    pub async fn ledger_connection(&self) -> Result<LedgerConnection, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Sqlite {
            conn.execute("PRAGMA synchronous = FULL").await?;
        }
        Ok(LedgerConnection {
            conn,
            backend: self.backend,
        })
    }

    pub async fn ledger_head(&self) -> Result<LedgerHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM ledger_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::Corrupt {
                table: "ledger_head",
                detail: "the head row (id 1) is missing".into(),
            })?;
        Ok(LedgerHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
        })
    }

    /// Records with `after < seq <= to`, in seq order, at most `limit`.
    pub async fn ledger_records(
        &self,
        after: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM ledger_records WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        ))
        .bind(after)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records after `after` whose time is in `[since_ms, until_ms)`, in
    /// seq order, at most `limit`; `kind` narrows to one kind.
    pub async fn ledger_records_in(
        &self,
        kind: Option<&str>,
        after: i64,
        since_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = match kind {
            Some(kind) => {
                sqlx::query(concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM ledger_records WHERE seq > $1 AND at_ms >= $2 AND at_ms < $3",
                    " AND kind = $4 ORDER BY seq LIMIT $5"
                ))
                .bind(after)
                .bind(since_ms)
                .bind(until_ms)
                .bind(kind)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM ledger_records WHERE seq > $1 AND at_ms >= $2 AND at_ms < $3",
                    " ORDER BY seq LIMIT $4"
                ))
                .bind(after)
                .bind(since_ms)
                .bind(until_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(record_from_row).collect()
    }

    /// How many records of `kind` have a time in `[since_ms, until_ms)`,
    /// and the earliest and latest of those times.
    pub async fn ledger_span(
        &self,
        kind: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at_ms) AS lo, MAX(at_ms) AS hi FROM ledger_records \
             WHERE kind = $1 AND at_ms >= $2 AND at_ms < $3",
        )
        .bind(kind)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("lo")?, row.try_get("hi")?))
    }

    /// The smallest and largest stored seq (both `None` when empty).
    pub async fn ledger_seq_bounds(&self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let row = sqlx::query("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM ledger_records")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("lo")?, row.try_get("hi")?))
    }

    /// Checkpoints with `after < seq <= to`, in seq order, at most `limit`.
    pub async fn ledger_checkpoints(
        &self,
        after: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<CheckpointRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM ledger_checkpoints WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        ))
        .bind(after)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    /// The latest checkpoint with `seq <= at`.
    pub async fn ledger_checkpoint_at_or_before(
        &self,
        at: i64,
    ) -> Result<Option<CheckpointRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM ledger_checkpoints WHERE seq <= $1 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    pub async fn ledger_signing_key(&self) -> Result<Option<SigningKeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT public_key, secret_key, created_at FROM ledger_signing_key WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SigningKeyRow {
                public_key: row.try_get("public_key")?,
                secret_key: row.try_get("secret_key")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Stores `candidate` unless a key is already there, and returns the
    /// key in force: two replicas starting together agree on one key.
    pub async fn ledger_init_signing_key(
        &self,
        candidate: &SigningKeyRow,
    ) -> Result<SigningKeyRow, StoreError> {
        sqlx::query(
            "INSERT INTO ledger_signing_key (id, public_key, secret_key, created_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate.public_key.as_slice())
        .bind(candidate.secret_key.as_slice())
        .bind(candidate.created_at)
        .execute(&self.pool)
        .await?;
        self.ledger_signing_key().await?.ok_or(StoreError::Corrupt {
            table: "ledger_signing_key",
            detail: "the key row vanished after it was inserted".into(),
        })
    }

    /// The raw pool, for tests that tamper with the ledger's tables.
    #[cfg(any(test, feature = "test-support"))]
    pub fn test_pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> LedgerRow {
        LedgerRow {
            seq,
            kind: "decision".into(),
            request_id: format!("req_{seq}"),
            at_ms: 1_700_000_000_000 + seq,
            payload: format!("{{\"n\":{seq}}}"),
            hash: vec![seq as u8; 32],
        }
    }

    async fn exercise(store: &Store) {
        let head = store.ledger_head().await.unwrap();
        assert_eq!((head.seq, head.hash), (0, vec![0u8; 32]));
        let mut conn = store.ledger_connection().await.unwrap();
        // 75 rows: one chunk of 64, one of 8, three of 1.
        let rows: Vec<LedgerRow> = (1..=75).map(row).collect();
        let mut tx = conn.begin().await.unwrap();
        assert_eq!(tx.lock_head().await.unwrap().seq, 0);
        tx.insert_records(&rows).await.unwrap();
        tx.set_head(75, &[75u8; 32]).await.unwrap();
        let cp = CheckpointRow {
            seq: 75,
            hash: vec![75u8; 32],
            public_key: vec![1; 32],
            signature: vec![2; 64],
            at_ms: 5,
        };
        tx.insert_checkpoint(&cp).await.unwrap();
        tx.insert_checkpoint(&cp).await.unwrap();
        tx.commit().await.unwrap();

        let head = store.ledger_head().await.unwrap();
        assert_eq!((head.seq, head.hash), (75, vec![75u8; 32]));
        assert_eq!(store.ledger_records(0, 75, 1000).await.unwrap(), rows);
        assert_eq!(store.ledger_records(10, 12, 1000).await.unwrap().len(), 2);
        let some = store
            .ledger_records_in(Some("decision"), 0, 1_700_000_000_010, 1_700_000_000_020, 5)
            .await
            .unwrap();
        assert_eq!(
            some.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [10, 11, 12, 13, 14]
        );
        assert!(
            store
                .ledger_records_in(Some("outcome"), 0, 0, i64::MAX, 5)
                .await
                .unwrap()
                .is_empty()
        );
        let span = store.ledger_span("decision", 0, i64::MAX).await.unwrap();
        assert_eq!(span, (75, Some(1_700_000_000_001), Some(1_700_000_000_075)));
        assert_eq!(
            store.ledger_seq_bounds().await.unwrap(),
            (Some(1), Some(75))
        );
        assert_eq!(
            store.ledger_checkpoints(0, 100, 10).await.unwrap(),
            vec![cp.clone()]
        );
        assert_eq!(
            store.ledger_checkpoint_at_or_before(80).await.unwrap(),
            Some(cp)
        );
        assert_eq!(
            store.ledger_checkpoint_at_or_before(74).await.unwrap(),
            None
        );

        // An aborted batch leaves nothing behind.
        let mut tx = conn.begin().await.unwrap();
        tx.lock_head().await.unwrap();
        tx.insert_records(&[row(76)]).await.unwrap();
        drop(tx);
        assert_eq!(store.ledger_head().await.unwrap().seq, 75);
        assert!(store.ledger_records(75, 100, 10).await.unwrap().is_empty());

        // The first key wins.
        assert_eq!(store.ledger_signing_key().await.unwrap(), None);
        let k1 = SigningKeyRow {
            public_key: vec![1; 32],
            secret_key: vec![2; 32],
            created_at: 1,
        };
        let k2 = SigningKeyRow {
            public_key: vec![3; 32],
            secret_key: vec![4; 32],
            created_at: 2,
        };
        assert_eq!(store.ledger_init_signing_key(&k1).await.unwrap(), k1);
        assert_eq!(store.ledger_init_signing_key(&k2).await.unwrap(), k1);
    }

    #[test]
    fn postgres_statements_stay_small() {
        let rows: Vec<LedgerRow> = (1..=100)
            .map(|i| LedgerRow {
                payload: "x".repeat(700),
                ..row(i)
            })
            .collect();
        assert_eq!(next_chunk(&rows, Backend::Sqlite), (0, 64));
        let (_, n) = next_chunk(&rows, Backend::Postgres);
        assert_eq!(n, 8);
        assert!(rows[..n].iter().map(wire_size).sum::<usize>() <= PG_STATEMENT_BYTES);
        let huge = [LedgerRow {
            payload: "x".repeat(100_000),
            ..row(1)
        }];
        assert_eq!(next_chunk(&huge, Backend::Postgres), (CHUNKS.len() - 1, 1));
    }

    #[test]
    fn insert_statements_number_every_placeholder() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO ledger_records (seq, kind, request_id, at_ms, payload, hash) VALUES \
             ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"
        );
    }

    #[tokio::test]
    async fn sqlite_ledger_tables() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        let store = Store::open(&url).await.unwrap();
        exercise(&store).await;
        // The ledger's commits sync the WAL.
        let mut conn = store.ledger_connection().await.unwrap();
        let row = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *conn.conn)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>(0).unwrap(), 2, "FULL");
    }

    #[tokio::test]
    async fn postgres_ledger_tables() {
        let Some(url) = crate::test_pg::fresh_database("ledger_rows").await else {
            return;
        };
        let store = Store::open(&url).await.unwrap();
        exercise(&store).await;
        store.close().await;
        crate::test_pg::drop_database(&url).await;
    }
}
