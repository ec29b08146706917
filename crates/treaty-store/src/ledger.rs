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
//! [`LedgerConnection::begin`] takes the write lock (SQLite) or the head
//! row's lock (PostgreSQL) and reads the head; [`LedgerTx::commit`] writes
//! the rows, an optional checkpoint and the new head, and commits.

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
    /// SQLite: a batch was dropped before its commit, so the connection is
    /// still inside its transaction (see [`SqliteTx`]).
    abandoned: bool,
}

impl std::fmt::Debug for LedgerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerConnection")
    }
}

/// One batch: [`LedgerConnection::begin`] locks the head and reads it,
/// [`LedgerTx::commit`] writes the rows, an optional checkpoint and the new
/// head, and commits.
///
/// On PostgreSQL that is an sqlx transaction, one statement per call. On
/// SQLite every statement is a round trip to the connection's worker
/// thread, and at low concurrency those hops cost more than the writes:
/// the transaction is begun by hand (`BEGIN IMMEDIATE`, with the head read
/// in the same command) and the last rows, the checkpoint and the head go
/// with the `COMMIT` as one multi-statement command, so a small batch is
/// two hops instead of five.
pub struct LedgerTx<'c> {
    inner: TxInner<'c>,
}

enum TxInner<'c> {
    Postgres(sqlx::Transaction<'c, Any>),
    Sqlite(SqliteTx<'c>),
}

/// The writer's SQLite connection inside a transaction sqlx does not
/// track. Dropped before its commit went through, it leaves the
/// connection marked: the next `begin` rolls back first, and if the
/// connection is dropped instead it is closed (which rolls back), never
/// returned to the pool with the write lock held.
struct SqliteTx<'c> {
    conn: &'c mut PoolConnection<Any>,
    abandoned: &'c mut bool,
    open: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            *self.abandoned = true;
            self.conn.close_on_drop();
        }
    }
}

impl std::fmt::Debug for LedgerTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerTx")
    }
}

fn head_from_row(row: Option<sqlx::any::AnyRow>) -> Result<LedgerHead, StoreError> {
    let row = row.ok_or(StoreError::Corrupt {
        table: "ledger_head",
        detail: "the head row (id 1) is missing".into(),
    })?;
    Ok(LedgerHead {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

/// SQLite's last command of a batch, for a last chunk of `CHUNKS[i]` rows
/// (`i == CHUNKS.len()`: no rows), with or without a checkpoint: the
/// inserts, the new head and the commit. Placeholders number on across
/// the statements (rows, then the checkpoint, then the head), which is how
/// sqlx binds one argument list to several statements.
static SQLITE_COMMIT_SQL: LazyLock<Vec<[Arc<str>; 2]>> = LazyLock::new(|| {
    let sizes = CHUNKS.iter().copied().chain([0]);
    sizes
        .map(|n| [false, true].map(|cp| Arc::from(sqlite_commit_sql(n, cp).as_str())))
        .collect()
});

fn sqlite_commit_sql(rows: usize, checkpoint: bool) -> String {
    let mut sql = String::new();
    let mut next = 1;
    if rows > 0 {
        sql.push_str(&insert_sql(rows));
        sql.push_str("; ");
        next += rows * 6;
    }
    if checkpoint {
        sql.push_str(concat!(
            "INSERT INTO ledger_checkpoints (",
            checkpoint_columns!(),
            ") VALUES ("
        ));
        let params: Vec<String> = (next..next + 5).map(|i| format!("${i}")).collect();
        sql.push_str(&params.join(", "));
        sql.push_str(") ON CONFLICT (seq) DO NOTHING; ");
        next += 5;
    }
    sql.push_str(&format!(
        "UPDATE ledger_head SET seq = ${}, hash = ${} WHERE id = 1; COMMIT",
        next,
        next + 1
    ));
    sql
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

fn bind_rows<'q>(mut query: AnyQuery<'q>, rows: &'q [LedgerRow]) -> AnyQuery<'q> {
    for r in rows {
        query = query
            .bind(r.seq)
            .bind(r.kind.as_str())
            .bind(r.request_id.as_str())
            .bind(r.at_ms)
            .bind(r.payload.as_str())
            .bind(r.hash.as_slice());
    }
    query
}

fn bind_checkpoint<'q>(query: AnyQuery<'q>, cp: &'q CheckpointRow) -> AnyQuery<'q> {
    query
        .bind(cp.seq)
        .bind(cp.hash.as_slice())
        .bind(cp.public_key.as_slice())
        .bind(cp.signature.as_slice())
        .bind(cp.at_ms)
}

impl LedgerConnection {
    /// Begins a batch: takes the ledger's write lock and reads the head
    /// under it.
    ///
    /// On SQLite `BEGIN IMMEDIATE` takes the write lock before anything is
    /// read (a read first could leave a deferred transaction on a stale
    /// snapshot, SQLITE_BUSY_SNAPSHOT). On PostgreSQL the head is read by
    /// an `UPDATE` of its row, whose row lock makes a concurrent replica
    /// wait here and then see this batch's head.
    pub async fn begin(&mut self) -> Result<(LedgerTx<'_>, LedgerHead), StoreError> {
        match self.backend {
            Backend::Postgres => {
                let mut tx = self.conn.begin().await?;
                let row = sqlx::query(
                    "UPDATE ledger_head SET seq = seq WHERE id = 1 RETURNING seq, hash",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let head = head_from_row(row)?;
                Ok((
                    LedgerTx {
                        inner: TxInner::Postgres(tx),
                    },
                    head,
                ))
            }
            Backend::Sqlite => {
                if self.abandoned {
                    sqlx::query("ROLLBACK").execute(&mut *self.conn).await?;
                    self.abandoned = false;
                }
                // Two statements: sqlx answers `fetch_optional` with the
                // first one's (empty) result, so the rows are collected.
                // The bound id keeps the command in the statement cache.
                let rows =
                    sqlx::query("BEGIN IMMEDIATE; SELECT seq, hash FROM ledger_head WHERE id = $1")
                        .bind(1_i64)
                        .fetch_all(&mut *self.conn)
                        .await;
                // The transaction may be open whatever happened: from here
                // the guard owns the connection's fate.
                let tx = SqliteTx {
                    conn: &mut self.conn,
                    abandoned: &mut self.abandoned,
                    open: true,
                };
                let head = head_from_row(rows?.into_iter().next())?;
                Ok((
                    LedgerTx {
                        inner: TxInner::Sqlite(tx),
                    },
                    head,
                ))
            }
        }
    }
}

impl LedgerTx<'_> {
    /// Writes the batch's rows (chained onto the head `begin` returned), a
    /// checkpoint if one is due, the new head `(seq, hash)`, and commits.
    /// A second checkpoint at the same seq (another replica signed the
    /// same head) is ignored.
    pub async fn commit(
        self,
        rows: &[LedgerRow],
        checkpoint: Option<&CheckpointRow>,
        head: (i64, &[u8]),
    ) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Postgres(mut tx) => {
                let mut rest = rows;
                while !rest.is_empty() {
                    let (i, n) = next_chunk(rest, Backend::Postgres);
                    let (chunk, tail) = rest.split_at(n);
                    bind_rows(sqlx::query(AssertSqlSafe(INSERT_SQL[i].clone())), chunk)
                        .execute(&mut *tx)
                        .await?;
                    rest = tail;
                }
                if let Some(cp) = checkpoint {
                    bind_checkpoint(
                        sqlx::query(concat!(
                            "INSERT INTO ledger_checkpoints (",
                            checkpoint_columns!(),
                            ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING"
                        )),
                        cp,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(head.0)
                    .bind(head.1)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
            TxInner::Sqlite(mut tx) => {
                // Every chunk but the last on its own, then the last with
                // the checkpoint, the head and the commit.
                let mut rest = rows;
                let last = loop {
                    if rest.is_empty() {
                        break CHUNKS.len();
                    }
                    let (i, n) = next_chunk(rest, Backend::Sqlite);
                    if n == rest.len() {
                        break i;
                    }
                    let (chunk, tail) = rest.split_at(n);
                    bind_rows(sqlx::query(AssertSqlSafe(INSERT_SQL[i].clone())), chunk)
                        .execute(&mut **tx.conn)
                        .await?;
                    rest = tail;
                };
                let sql = SQLITE_COMMIT_SQL[last][usize::from(checkpoint.is_some())].clone();
                let mut query = bind_rows(sqlx::query(AssertSqlSafe(sql)), rest);
                if let Some(cp) = checkpoint {
                    query = bind_checkpoint(query, cp);
                }
                query
                    .bind(head.0)
                    .bind(head.1)
                    .execute(&mut **tx.conn)
                    .await?;
                tx.open = false;
                Ok(())
            }
        }
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
            abandoned: false,
        })
    }

    pub async fn ledger_head(&self) -> Result<LedgerHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM ledger_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        head_from_row(row)
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
        let (tx, head) = conn.begin().await.unwrap();
        assert_eq!(head.seq, 0);
        let cp = CheckpointRow {
            seq: 75,
            hash: vec![75u8; 32],
            public_key: vec![1; 32],
            signature: vec![2; 64],
            at_ms: 5,
        };
        tx.commit(&rows, Some(&cp), (75, &[75u8; 32]))
            .await
            .unwrap();
        // A batch of no rows: the same checkpoint again is ignored.
        let (tx, head) = conn.begin().await.unwrap();
        assert_eq!(head.seq, 75);
        tx.commit(&[], Some(&cp), (75, &[75u8; 32])).await.unwrap();

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

        // An aborted batch leaves nothing behind, and its connection can
        // begin the next one (a failed insert aborts the whole batch).
        let (tx, _) = conn.begin().await.unwrap();
        let clash = row(75);
        assert!(
            tx.commit(&[row(76), clash], None, (76, &[76u8; 32]))
                .await
                .is_err()
        );
        assert_eq!(store.ledger_head().await.unwrap().seq, 75);
        assert!(store.ledger_records(75, 100, 10).await.unwrap().is_empty());
        let (tx, head) = conn.begin().await.unwrap();
        assert_eq!(head.seq, 75);
        drop(tx);
        let (tx, head) = conn.begin().await.unwrap();
        assert_eq!(head.seq, 75);
        tx.commit(&[row(76)], None, (76, &[76u8; 32]))
            .await
            .unwrap();
        assert_eq!(
            store.ledger_records(75, 100, 10).await.unwrap(),
            vec![row(76)]
        );
        drop(conn);

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
