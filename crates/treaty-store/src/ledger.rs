//! Rows of the ledger's tables: records, the head, the Merkle tree's
//! nodes, checkpoints, public keys, cosignatures and publication status.
//!
//! This module only moves bytes in and out of `ledger_records`,
//! `ledger_head`, `ledger_tree`, `ledger_checkpoints`, `ledger_keys`,
//! `ledger_cosignatures`, `ledger_publish_status` and the
//! `ledger_signing_key` of earlier versions (read once, to migrate it
//! out, then emptied); what the
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
//! the rows, the tree nodes they complete, an optional checkpoint and the
//! new head, and commits.

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
/// when empty), and the Merkle tree over the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: i64,
    pub hash: Vec<u8>,
    /// Records hashed into the tree (below `seq` only for records written
    /// before the tree existed, until they are hashed in).
    pub tree_size: i64,
    /// The roots of the complete subtrees of the tree, concatenated.
    pub frontier: Vec<u8>,
}

/// How one publication attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Published,
    /// The target answered and would not take it (a witness refused).
    Refused,
    /// The target could not be reached or written.
    Failed,
}

/// A stored complete-subtree hash of the Merkle tree.
pub type TreeNode = (i64, [u8; 32]);

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
    /// The C2SP checkpoint note (origin, size = seq, Merkle root, and the
    /// log's signature lines); `None` before the tree existed.
    pub note: Option<String>,
}

/// A public key that signs (or signed) the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerKeyRow {
    /// The note verifier key text, `name+id+base64`.
    pub vkey: String,
    pub public_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// How publishing checkpoints to one target went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishStatusRow {
    pub target: String,
    /// `dir`, `http` or `witness`.
    pub kind: String,
    /// The largest tree size the target accepted.
    pub last_size: i64,
    pub published: i64,
    /// Refusals (a witness that would not cosign).
    pub refused: i64,
    /// Failures to reach or write the target.
    pub failed: i64,
    pub last_error: Option<String>,
    pub updated_ms: i64,
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
        "seq, hash, public_key, signature, at_ms, note"
    };
}

/// Multi-row inserts of up to 64 rows: one statement per chunk instead of
/// one per record keeps a 512-record batch at 8 round trips to the SQLite
/// worker thread. The text holds only generated `$n` placeholders, never
/// data, which is why asserting it SQL-safe is sound.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];
static INSERT_SQL: LazyLock<[Arc<str>; 7]> =
    LazyLock::new(|| CHUNKS.map(|n| Arc::from(insert_sql(n).as_str())));
static NODE_SQL: LazyLock<[Arc<str>; 7]> =
    LazyLock::new(|| CHUNKS.map(|n| Arc::from(node_sql(n, 1).as_str())));

fn node_sql(nodes: usize, first: usize) -> String {
    let mut sql = String::from("INSERT INTO ledger_tree (id, hash) VALUES ");
    for r in 0..nodes {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${})", first + 2 * r, first + 2 * r + 1));
    }
    sql
}

/// The chunk of `n` items (rows or nodes) to send next: the largest
/// chunk size not above `n`, as an index into `CHUNKS`.
fn chunk_of(n: usize) -> (usize, usize) {
    CHUNKS
        .iter()
        .enumerate()
        .find(|&(_, &c)| c <= n)
        .map_or((CHUNKS.len() - 1, 1), |(i, &c)| (i, c))
}

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
        note: row.try_get("note")?,
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
        tree_size: row.try_get("tree_size")?,
        frontier: row.try_get("frontier")?,
    })
}

/// SQLite's last command of a batch, for a last chunk of `CHUNKS[i]` rows
/// and `CHUNKS[j]` tree nodes (`CHUNKS.len()`: none), with or without a
/// checkpoint: the inserts, the new head and the commit. Placeholders
/// number on across the statements (rows, nodes, the checkpoint, the
/// head), which is how sqlx binds one argument list to several statements.
static SQLITE_COMMIT_SQL: LazyLock<Vec<Vec<[Arc<str>; 2]>>> = LazyLock::new(|| {
    let sizes: Vec<usize> = CHUNKS.iter().copied().chain([0]).collect();
    sizes
        .iter()
        .map(|&rows| {
            sizes
                .iter()
                .map(|&nodes| {
                    [false, true].map(|cp| Arc::from(sqlite_commit_sql(rows, nodes, cp).as_str()))
                })
                .collect()
        })
        .collect()
});

fn sqlite_commit_sql(rows: usize, nodes: usize, checkpoint: bool) -> String {
    let mut sql = String::new();
    let mut next = 1;
    if rows > 0 {
        sql.push_str(&insert_sql(rows));
        sql.push_str("; ");
        next += rows * 6;
    }
    if nodes > 0 {
        sql.push_str(&node_sql(nodes, next));
        sql.push_str("; ");
        next += nodes * 2;
    }
    if checkpoint {
        sql.push_str(concat!(
            "INSERT INTO ledger_checkpoints (",
            checkpoint_columns!(),
            ") VALUES ("
        ));
        let params: Vec<String> = (next..next + 6).map(|i| format!("${i}")).collect();
        sql.push_str(&params.join(", "));
        sql.push_str(") ON CONFLICT (seq) DO NOTHING; ");
        next += 6;
    }
    sql.push_str(&format!(
        "UPDATE ledger_head SET seq = ${}, hash = ${}, tree_size = ${}, frontier = ${} \
         WHERE id = 1; COMMIT",
        next,
        next + 1,
        next + 2,
        next + 3
    ));
    sql
}

const HEAD_UPDATE: &str =
    "UPDATE ledger_head SET seq = $1, hash = $2, tree_size = $3, frontier = $4 WHERE id = 1";

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
        .bind(cp.note.as_deref())
}

fn bind_nodes<'q>(mut query: AnyQuery<'q>, nodes: &'q [TreeNode]) -> AnyQuery<'q> {
    for (id, hash) in nodes {
        query = query.bind(*id).bind(hash.as_slice());
    }
    query
}

fn bind_head<'q>(query: AnyQuery<'q>, head: &'q LedgerHead) -> AnyQuery<'q> {
    query
        .bind(head.seq)
        .bind(head.hash.as_slice())
        .bind(head.tree_size)
        .bind(head.frontier.as_slice())
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
                    "UPDATE ledger_head SET seq = seq WHERE id = 1 \
                     RETURNING seq, hash, tree_size, frontier",
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
                    sqlx::query(
                    "BEGIN IMMEDIATE; SELECT seq, hash, tree_size, frontier FROM ledger_head WHERE id = $1",
                )
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
    /// Writes the batch's rows (chained onto the head `begin` returned), the
    /// tree nodes they complete, a checkpoint if one is due, the new head,
    /// and commits. A second checkpoint at the same seq (another replica
    /// signed the same head) is ignored.
    pub async fn commit(
        self,
        rows: &[LedgerRow],
        nodes: &[TreeNode],
        checkpoint: Option<&CheckpointRow>,
        head: &LedgerHead,
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
                let mut rest = nodes;
                while !rest.is_empty() {
                    let (i, n) = chunk_of(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    bind_nodes(sqlx::query(AssertSqlSafe(NODE_SQL[i].clone())), chunk)
                        .execute(&mut *tx)
                        .await?;
                    rest = tail;
                }
                if let Some(cp) = checkpoint {
                    bind_checkpoint(
                        sqlx::query(concat!(
                            "INSERT INTO ledger_checkpoints (",
                            checkpoint_columns!(),
                            ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING"
                        )),
                        cp,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                bind_head(sqlx::query(HEAD_UPDATE), head)
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
                let mut nodes_rest = nodes;
                let last_nodes = loop {
                    if nodes_rest.is_empty() {
                        break CHUNKS.len();
                    }
                    let (i, n) = chunk_of(nodes_rest.len());
                    if n == nodes_rest.len() {
                        break i;
                    }
                    let (chunk, tail) = nodes_rest.split_at(n);
                    bind_nodes(sqlx::query(AssertSqlSafe(NODE_SQL[i].clone())), chunk)
                        .execute(&mut **tx.conn)
                        .await?;
                    nodes_rest = tail;
                };
                let sql =
                    SQLITE_COMMIT_SQL[last][last_nodes][usize::from(checkpoint.is_some())].clone();
                let mut query = bind_rows(sqlx::query(AssertSqlSafe(sql)), rest);
                query = bind_nodes(query, nodes_rest);
                if let Some(cp) = checkpoint {
                    query = bind_checkpoint(query, cp);
                }
                bind_head(query, head).execute(&mut **tx.conn).await?;
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
        let row =
            sqlx::query("SELECT seq, hash, tree_size, frontier FROM ledger_head WHERE id = 1")
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

    /// Up to `limit` records of `kind` with `seq < before`, newest first:
    /// a page of the UI's ledger browser, read backwards from a cursor
    /// along the primary key, so a page costs the same on any ledger size.
    pub async fn ledger_records_before(
        &self,
        kind: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM ledger_records WHERE seq < $1 AND kind = $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(before)
        .bind(kind)
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

    /// The stored tree nodes among `ids` (at most a few hundred: one
    /// proof's worth), as `(id, hash)`.
    pub async fn ledger_tree_nodes(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(256) {
            // Only generated `$n` placeholders go into the text.
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, hash FROM ledger_tree WHERE id IN ({})",
                params.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                out.push((row.try_get("id")?, row.try_get("hash")?));
            }
        }
        Ok(out)
    }

    /// Tree nodes with `after < id <= to`, in id order, at most `limit`.
    pub async fn ledger_tree_range(
        &self,
        after: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hash FROM ledger_tree WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("hash")?)))
            .collect()
    }

    /// Every record of one request (its decision, then its outcome), in
    /// seq order.
    pub async fn ledger_records_of_request(
        &self,
        request_id: &str,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM ledger_records WHERE request_id = $1 ORDER BY seq LIMIT 16"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The latest checkpoint that carries a signed note.
    pub async fn ledger_latest_note_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM ledger_checkpoints WHERE note IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    /// The checkpoint at exactly `seq`.
    pub async fn ledger_checkpoint(&self, seq: i64) -> Result<Option<CheckpointRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM ledger_checkpoints WHERE seq = $1"
        ))
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    /// Every key that signs or signed the log, oldest first.
    pub async fn ledger_keys(&self) -> Result<Vec<LedgerKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT vkey, public_key, created_at, retired_at FROM ledger_keys \
             ORDER BY created_at, vkey",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LedgerKeyRow {
                    vkey: r.try_get("vkey")?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Registers `key` (kept if already there) and retires every other
    /// key still active, in one transaction.
    pub async fn ledger_activate_key(&self, key: &LedgerKeyRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ledger_keys (vkey, public_key, created_at, retired_at) \
             VALUES ($1, $2, $3, NULL) ON CONFLICT (vkey) DO NOTHING",
        )
        .bind(key.vkey.as_str())
        .bind(key.public_key.as_slice())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE ledger_keys SET retired_at = $1 WHERE vkey <> $2 AND retired_at IS NULL",
        )
        .bind(key.created_at)
        .bind(key.vkey.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE ledger_keys SET retired_at = NULL WHERE vkey = $1")
            .bind(key.vkey.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the secret an earlier version kept in the store (after it
    /// was migrated out).
    pub async fn ledger_forget_signing_secret(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ledger_signing_key")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps a witness's cosignature line for the checkpoint at `seq`.
    pub async fn ledger_add_cosignature(
        &self,
        seq: i64,
        witness: &str,
        line: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ledger_cosignatures (seq, witness, signature, at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (seq, witness) DO NOTHING",
        )
        .bind(seq)
        .bind(witness)
        .bind(line)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The cosignature lines kept for the checkpoint at `seq`.
    pub async fn ledger_cosignatures(&self, seq: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT signature FROM ledger_cosignatures WHERE seq = $1 ORDER BY witness",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("signature")?)).collect()
    }

    /// Records one publication attempt to `target`.
    pub async fn ledger_publish_result(
        &self,
        target: &str,
        kind: &str,
        size: i64,
        outcome: PublishOutcome,
        error: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let (ok, refused, failed) = match outcome {
            PublishOutcome::Published => (1_i64, 0_i64, 0_i64),
            PublishOutcome::Refused => (0, 1, 0),
            PublishOutcome::Failed => (0, 0, 1),
        };
        let accepted = if ok == 1 { size } else { 0 };
        sqlx::query(
            "INSERT INTO ledger_publish_status \
             (target, kind, last_size, published, refused, failed, last_error, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (target) DO UPDATE SET \
             last_size = CASE WHEN excluded.last_size > ledger_publish_status.last_size \
                 THEN excluded.last_size ELSE ledger_publish_status.last_size END, \
             published = ledger_publish_status.published + excluded.published, \
             refused = ledger_publish_status.refused + excluded.refused, \
             failed = ledger_publish_status.failed + excluded.failed, \
             last_error = excluded.last_error, updated_ms = excluded.updated_ms",
        )
        .bind(target)
        .bind(kind)
        .bind(accepted)
        .bind(ok)
        .bind(refused)
        .bind(failed)
        .bind(error)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every publication target's status.
    pub async fn ledger_publish_status(&self) -> Result<Vec<PublishStatusRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, kind, last_size, published, refused, failed, last_error, updated_ms \
             FROM ledger_publish_status ORDER BY kind, target",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PublishStatusRow {
                    target: r.try_get("target")?,
                    kind: r.try_get("kind")?,
                    last_size: r.try_get("last_size")?,
                    published: r.try_get("published")?,
                    refused: r.try_get("refused")?,
                    failed: r.try_get("failed")?,
                    last_error: r.try_get("last_error")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
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
            note: Some("origin\n75\nroot\n\n— sig\n".into()),
        };
        let mk_head = |seq: i64, h: u8| LedgerHead {
            seq,
            hash: vec![h; 32],
            tree_size: seq,
            frontier: vec![h; 32 * (seq.count_ones() as usize)],
        };
        let nodes: Vec<TreeNode> = (0..140).map(|i| (i, [i as u8; 32])).collect();
        tx.commit(&rows, &nodes, Some(&cp), &mk_head(75, 75))
            .await
            .unwrap();
        // A batch of no rows: the same checkpoint again is ignored.
        let (tx, head) = conn.begin().await.unwrap();
        assert_eq!(head.seq, 75);
        tx.commit(&[], &[], Some(&cp), &mk_head(75, 75))
            .await
            .unwrap();

        assert_eq!(store.ledger_head().await.unwrap(), mk_head(75, 75));
        let ids: Vec<i64> = vec![0, 64, 139, 500];
        let got = store.ledger_tree_nodes(&ids).await.unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.contains(&(139, vec![139u8; 32])));
        assert_eq!(store.ledger_tree_range(10, 20, 5).await.unwrap().len(), 5);
        assert_eq!(
            store.ledger_latest_note_checkpoint().await.unwrap(),
            Some(cp.clone())
        );
        assert_eq!(
            store
                .ledger_records_of_request("req_3")
                .await
                .unwrap()
                .len(),
            1
        );
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
            tx.commit(&[row(76), clash], &[], None, &mk_head(76, 76))
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
        tx.commit(&[row(76)], &[], None, &mk_head(76, 76))
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
        store.ledger_forget_signing_secret().await.unwrap();
        assert_eq!(store.ledger_signing_key().await.unwrap(), None);

        // Keys: activating one retires the others.
        let key = |v: &str, at| LedgerKeyRow {
            vkey: v.into(),
            public_key: vec![1; 32],
            created_at: at,
            retired_at: None,
        };
        store.ledger_activate_key(&key("a+1+x", 1)).await.unwrap();
        store.ledger_activate_key(&key("b+2+y", 2)).await.unwrap();
        let keys = store.ledger_keys().await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].retired_at, Some(2));
        assert_eq!(keys[1].retired_at, None);

        // Cosignatures and publication status.
        store
            .ledger_add_cosignature(75, "w1", "— w1 AAAA", 9)
            .await
            .unwrap();
        store
            .ledger_add_cosignature(75, "w1", "— w1 BBBB", 9)
            .await
            .unwrap();
        assert_eq!(store.ledger_cosignatures(75).await.unwrap(), ["— w1 AAAA"]);
        for (size, outcome) in [
            (10, PublishOutcome::Published),
            (20, PublishOutcome::Refused),
            (30, PublishOutcome::Failed),
        ] {
            store
                .ledger_publish_result("http://w", "witness", size, outcome, Some("why"), 5)
                .await
                .unwrap();
        }
        let status = store.ledger_publish_status().await.unwrap();
        assert_eq!(
            (
                status[0].last_size,
                status[0].published,
                status[0].refused,
                status[0].failed
            ),
            (10, 1, 1, 1)
        );
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
