//! [`Ledger`]: appending records with group commit, and signing checkpoints.
//!
//! Callers enqueue records on a bounded channel and get an [`Appended`]
//! future that resolves once the record's batch is *committed*: on SQLite
//! the ledger's connection runs `synchronous = FULL` in WAL mode, so the
//! commit has synced the WAL; on PostgreSQL the commit is the server's
//! durable commit. One writer task drains whatever is queued (up to
//! `max_batch`) into one transaction, so a burst of N requests costs one
//! sync, not N: that is what keeps strict mode cheap under load.
//!
//! Sequence numbers are allocated inside that transaction, under the lock
//! of the single `ledger_head` row, never from a database sequence: a
//! sequence (or serial column) hands out numbers at insert time, before
//! commit, so concurrent replicas would commit out of order and leave gaps
//! on rollback, and the hash chain, which needs each record's predecessor
//! to be committed first, could not follow. Locking the head serialises
//! *batches* across replicas, not requests, so the cost stays one lock per
//! batch; every replica's writer reads the head under the lock, chains its
//! batch onto it and moves it, and all replicas build ONE chain.
//!
//! The same transaction keeps the Merkle tree: each record's leaf hash is
//! folded into the frontier the head row carries, the complete subtrees
//! that finishes are inserted beside the records, and the new frontier is
//! written with the new head. No stored node is read on the way, so the
//! tree costs hashing and a few more rows in the commit the batch makes
//! anyway, never another round trip or a rescan. A due checkpoint is a
//! C2SP signed note over `(origin, size, root)` signed by the
//! [`Signer`](crate::Signer), stored in the same commit and handed to the
//! publisher task afterwards (a `try_send`: publishing never waits on the
//! writer, nor the writer on publishing). A signer that fails costs the
//! checkpoint, never the records.
//!
//! A failed commit fails every waiter of that batch with the cause (and
//! logs it); it is never swallowed, and the next batch starts over from
//! the head in the store, so a failure leaves no hole. The writer never
//! holds a lock across anything but its own transaction, and it never
//! decides what the gateway does with a failure: the gateway refuses the
//! request (strict) or the response (batched).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use treaty_store::{
    CheckpointRow, LedgerConnection, LedgerHead, LedgerRow, Store, StoreError, TreeNode,
};

use crate::chain::{self, hash32};
use crate::key::{self, PublicKey};
use crate::merkle::{self, Frontier};
use crate::note::{self, Note, SecretKey, SignatureLine};
use crate::publish::{self, PublishSettings};
use crate::record::{Entry, Kind};
use crate::signer::{self, Signer, SignerSource};
use crate::{LedgerError, now_ms};

/// When the gateway waits for a record to be durable. The ledger itself
/// commits the same way in both modes; this is carried for the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The decision record is durable before the upstream call.
    #[default]
    Strict,
    /// The decision record is durable before the response completes.
    Batched,
}

#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub durability: Durability,
    /// The most records committed in one transaction.
    pub max_batch: usize,
    /// Sign a checkpoint after this many records (rounded up to the end
    /// of the batch that crosses it).
    pub checkpoint_every: u64,
    /// ... or after this long, if any record was written since the last.
    pub checkpoint_interval: Duration,
    /// How long a record nobody waits for ([`Ledger::record`], an outcome)
    /// may wait for a batch someone does wait for, so that it rides along
    /// instead of costing a sync of its own.
    pub linger: Duration,
    /// Where the log's signing key comes from (never the store).
    pub key: SignerSource,
    /// Where checkpoints go once signed.
    pub publish: PublishSettings,
    /// Told of every committed batch (metrics).
    pub on_batch: Option<BatchObserver>,
}

/// Called by the writer after each committed batch with its record count
/// and how long the commit took. Must be quick: it runs on the writer.
#[derive(Clone)]
pub struct BatchObserver(pub Arc<dyn Fn(usize, Duration) + Send + Sync>);

impl std::fmt::Debug for BatchObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchObserver")
    }
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            durability: Durability::Strict,
            max_batch: 512,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            key: SignerSource::Auto,
            publish: PublishSettings::default(),
            on_batch: None,
        }
    }
}

/// Counters of what the writer has done, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LedgerStats {
    /// Committed transactions holding records.
    pub batches: u64,
    pub records: u64,
    pub checkpoints: u64,
    pub failed_batches: u64,
    /// Records queued for the writer now.
    pub queue_depth: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    checkpoints: AtomicU64,
    failed_batches: AtomicU64,
}

type Done = oneshot::Sender<Result<u64, LedgerError>>;

struct Pending {
    kind: Kind,
    /// seq and hash are filled in by the writer.
    row: LedgerRow,
    /// `None` for a record nobody waits for ([`Ledger::record`]).
    done: Option<Done>,
}

enum Msg {
    Append(Pending),
    Flush(oneshot::Sender<Result<(), LedgerError>>),
    Shutdown(oneshot::Sender<()>),
}

/// The ledger: clone it freely (one writer task behind all clones).
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    settings: LedgerSettings,
    public_key: PublicKey,
    signer: Arc<dyn Signer>,
    store: Store,
    counters: Arc<Counters>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    publisher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("settings", &self.inner.settings)
            .field("public_key", &self.inner.public_key)
            .finish()
    }
}

impl Ledger {
    /// Loads the signing key ([`LedgerSettings::key`]; with none
    /// configured, a key file beside the SQLite store, created on first
    /// start), hashes into the Merkle tree any records an earlier version
    /// wrote, registers the key's public half (recording a rotation, and
    /// moving off a secret an earlier version kept in the store), starts
    /// the publisher and the writer. Must run inside a Tokio runtime.
    pub async fn open(store: Store, settings: LedgerSettings) -> Result<Ledger, LedgerError> {
        let settings = LedgerSettings {
            max_batch: settings.max_batch.max(1),
            checkpoint_every: settings.checkpoint_every.max(1),
            checkpoint_interval: settings.checkpoint_interval.max(Duration::from_millis(10)),
            ..settings
        };
        let auto_key = store.sqlite_file().map(auto_key_path);
        let signer = signer::load(&settings.key, auto_key.as_deref())?;
        let public_key = PublicKey(signer.verifier().key);
        let conn = store.ledger_connection().await?;
        // Room for a few batches: enough that appends never wait while a
        // batch syncs, small enough that a stalled store pushes back.
        let (tx, rx) = mpsc::channel(settings.max_batch.saturating_mul(8).max(64));
        let counters = Arc::new(Counters::default());
        let (publish, publisher) = publish::start(
            store.clone(),
            settings.publish.clone(),
            signer.verifier().clone(),
        );
        let mut writer = Writer {
            store: store.clone(),
            conn: Some(conn),
            signer: signer.clone(),
            settings: settings.clone(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            counters: counters.clone(),
            publish,
            carried: Vec::new(),
        };
        writer.backfill_tree().await?;
        key::activate(&mut writer).await?;
        let task = tokio::spawn(writer.run(rx));
        Ok(Ledger {
            inner: Arc::new(Inner {
                tx,
                settings,
                public_key,
                signer,
                store,
                counters,
                task: Mutex::new(Some(task)),
                publisher: Mutex::new(publisher),
            }),
        })
    }

    /// Enqueues a record without blocking. The returned future resolves to
    /// the record's sequence number once its batch is committed, or to the
    /// error that failed the batch. Dropping the future does not withdraw
    /// the record. The writer commits as soon as it holds a record someone
    /// may await, so use [`Ledger::record`] for one nobody will.
    pub fn append(&self, entry: Entry) -> Appended {
        let (done, rx) = oneshot::channel();
        match self.enqueue(entry, Some(done)) {
            Ok(()) => Appended {
                state: State::Waiting(rx),
            },
            Err(e) => Appended::failed(e),
        }
    }

    /// Enqueues a record nobody waits for (an outcome: the durability
    /// promise covers the decision; the outcome follows). It is committed
    /// with the next batch someone waits for, or after
    /// [`LedgerSettings::linger`] if none comes first, so at low
    /// concurrency it does not cost a sync of its own ahead of the next
    /// request's decision. A failed commit is logged by the writer.
    pub fn record(&self, entry: Entry) {
        if let Err(e) = self.enqueue(entry, None) {
            tracing::error!(error = %e, "a ledger record could not be queued");
        }
    }

    fn enqueue(&self, entry: Entry, done: Option<Done>) -> Result<(), LedgerError> {
        let payload = entry.canonical()?;
        let kind = entry.kind();
        let row = LedgerRow {
            seq: 0,
            kind: kind.as_str().to_owned(),
            at_ms: entry.at_ms(),
            request_id: match entry {
                Entry::Decision(d) => d.request_id,
                Entry::Outcome(o) => o.request_id,
                Entry::Key(_) | Entry::Admin(_) => entry.request_id(),
            },
            payload,
            hash: Vec::new(),
        };
        match self
            .inner
            .tx
            .try_send(Msg::Append(Pending { kind, row, done }))
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(msg)) => {
                // Back-pressure: the record waits for room in a task of its
                // own, so it is kept even if the caller drops the future;
                // the caller's future resolves only after it is committed.
                let handle =
                    tokio::runtime::Handle::try_current().map_err(|_| LedgerError::Closed)?;
                let tx = self.inner.tx.clone();
                handle.spawn(async move {
                    let _ = tx.send(msg).await;
                });
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LedgerError::Closed),
        }
    }

    /// Resolves once everything appended before it is committed.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| LedgerError::Closed)?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// Commits everything queued, signs a last checkpoint and stops the
    /// writer. Appends after this fail with [`LedgerError::Closed`].
    pub async fn shutdown(&self) -> Result<(), LedgerError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self
            .inner
            .task
            .lock()
            .map_err(|_| LedgerError::Closed)?
            .take();
        if let Some(task) = task {
            task.await.map_err(|e| LedgerError::Writer(e.to_string()))?;
        }
        // The writer dropped its sender: the publisher ends once it has
        // published what is queued (bounded by its own timeouts).
        let publisher = self
            .inner
            .publisher
            .lock()
            .map_err(|_| LedgerError::Closed)?
            .take();
        if let Some(publisher) = publisher {
            let _ = publisher.await;
        }
        Ok(())
    }

    /// The public half of the signing key.
    pub fn public_key(&self) -> PublicKey {
        self.inner.public_key
    }

    /// The log's signer (checkpoints and receipts).
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.inner.signer
    }

    /// The store the ledger writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn durability(&self) -> Durability {
        self.inner.settings.durability
    }

    pub fn settings(&self) -> &LedgerSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> LedgerStats {
        let c = &self.inner.counters;
        LedgerStats {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            queue_depth: (self.inner.tx.max_capacity() - self.inner.tx.capacity()) as u64,
        }
    }
}

/// The result of [`Ledger::append`]: the record's sequence number once it
/// is durable.
#[must_use = "an Appended resolves when the record is durable; await it where durability matters"]
pub struct Appended {
    state: State,
}

enum State {
    Waiting(oneshot::Receiver<Result<u64, LedgerError>>),
    Failed(Option<LedgerError>),
}

impl Appended {
    fn failed(e: LedgerError) -> Appended {
        Appended {
            state: State::Failed(Some(e)),
        }
    }
}

impl std::fmt::Debug for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Appended")
    }
}

impl Future for Appended {
    type Output = Result<u64, LedgerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(LedgerError::Closed))),
            State::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(LedgerError::Closed))),
        }
    }
}

pub(crate) struct Writer {
    pub(crate) store: Store,
    conn: Option<LedgerConnection>,
    pub(crate) signer: Arc<dyn Signer>,
    settings: LedgerSettings,
    /// Records this writer committed since it last signed.
    since_checkpoint: u64,
    last_checkpoint: Instant,
    counters: Arc<Counters>,
    /// The publisher's queue of signed checkpoints.
    publish: Option<mpsc::Sender<CheckpointRow>>,
    /// Records nobody waits for (outcomes) whose batch failed to commit:
    /// they are written with the next batch instead of being lost with
    /// it, up to [`MAX_CARRIED`].
    carried: Vec<(Kind, LedgerRow)>,
}

/// The most unawaited records kept across failed commits; beyond it the
/// oldest are dropped, and said so in the log.
const MAX_CARRIED: usize = 4096;

/// What one turn of the loop collected.
#[derive(Default)]
struct Turn {
    kinds: Vec<Kind>,
    rows: Vec<LedgerRow>,
    /// One per row; `None` where nobody waits.
    dones: Vec<Option<Done>>,
    flushes: Vec<oneshot::Sender<Result<(), LedgerError>>>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// Whether anything in the turn is awaited: if not, committing it can
    /// wait a little for a batch that is.
    fn awaited(&self) -> bool {
        self.shutdown.is_some()
            || !self.flushes.is_empty()
            || self.dones.iter().any(Option::is_some)
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Append(p) => {
                self.kinds.push(p.kind);
                self.rows.push(p.row);
                self.dones.push(p.done);
            }
            Msg::Flush(f) => self.flushes.push(f),
            Msg::Shutdown(s) => self.shutdown = Some(s),
        }
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut ticker = tokio::time::interval(self.settings.checkpoint_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let max = self.settings.max_batch;
        let mut turn = Turn::default();
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = ticker.tick() => {
                    if !self.carried.is_empty() {
                        // Try again the records a failed batch left.
                        let _ = self.commit(&mut Turn::default()).await;
                    }
                    self.checkpoint_if_due(false).await;
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            turn.take(msg);
            while turn.rows.len() < max {
                match rx.try_recv() {
                    Ok(msg) => turn.take(msg),
                    Err(_) => break,
                }
            }
            if !turn.awaited() {
                linger(&mut rx, &mut turn, self.settings.linger, max).await;
            }
            let result = self.commit(&mut turn).await;
            for f in turn.flushes.drain(..) {
                let _ = f.send(result.clone().map_err(LedgerError::Commit));
            }
            if let Some(done) = turn.shutdown.take() {
                // Refuse new records, then write the ones already queued.
                rx.close();
                while let Some(msg) = rx.recv().await {
                    turn.take(msg);
                    if turn.rows.len() >= max {
                        let _ = self.commit(&mut turn).await;
                    }
                }
                let result = self.commit(&mut turn).await;
                for f in turn.flushes.drain(..) {
                    let _ = f.send(result.clone().map_err(LedgerError::Commit));
                }
                self.checkpoint_if_due(true).await;
                let _ = done.send(());
                return;
            }
        }
        self.checkpoint_if_due(true).await;
    }

    /// Commits the turn's records (if any) and answers their waiters.
    async fn commit(&mut self, turn: &mut Turn) -> Result<(), Arc<StoreError>> {
        if !self.carried.is_empty() {
            // Earlier records first: they happened first.
            let carried = std::mem::take(&mut self.carried);
            let n = carried.len();
            let (kinds, rows): (Vec<Kind>, Vec<LedgerRow>) = carried.into_iter().unzip();
            turn.kinds.splice(0..0, kinds);
            turn.rows.splice(0..0, rows);
            turn.dones
                .splice(0..0, std::iter::repeat_with(|| None).take(n));
        }
        if turn.rows.is_empty() {
            return Ok(());
        }
        let n = turn.rows.len() as u64;
        let started = std::time::Instant::now();
        let result = self.write(&turn.kinds, &mut turn.rows, false, None).await;
        if result.is_ok()
            && let Some(observer) = &self.settings.on_batch
        {
            (observer.0)(n as usize, started.elapsed());
        }
        let kinds = std::mem::take(&mut turn.kinds);
        let rows = std::mem::take(&mut turn.rows);
        match result {
            Ok(first) => {
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.records.fetch_add(n, Ordering::Relaxed);
                for (i, done) in turn.dones.drain(..).enumerate() {
                    if let Some(done) = done {
                        let _ = done.send(Ok(first + i as u64));
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(records = n, error = %e, "ledger batch failed to commit");
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                // The connection may be broken; take a fresh one next time.
                self.conn = None;
                let e = Arc::new(e);
                for ((kind, row), done) in kinds.into_iter().zip(rows).zip(turn.dones.drain(..)) {
                    match done {
                        Some(done) => {
                            let _ = done.send(Err(LedgerError::Commit(e.clone())));
                        }
                        None => self.carried.push((kind, row)),
                    }
                }
                if self.carried.len() > MAX_CARRIED {
                    let lost = self.carried.len() - MAX_CARRIED;
                    tracing::error!(
                        records = lost,
                        "ledger records lost: too many waiting to be written again"
                    );
                    self.carried.drain(..lost);
                }
                Err(e)
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut LedgerConnection, StoreError> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self.store.ledger_connection().await?,
        };
        Ok(self.conn.insert(conn))
    }

    /// One transaction: lock the head, chain the rows onto it and fold them
    /// into the tree, insert them with the subtrees they complete, sign a
    /// checkpoint if one is due (or `force`d), move the head, commit.
    /// `also` signs the checkpoint too (a retiring key's handover).
    /// Returns the first sequence number.
    pub(crate) async fn write(
        &mut self,
        kinds: &[Kind],
        rows: &mut [LedgerRow],
        force: bool,
        also: Option<&SecretKey>,
    ) -> Result<u64, StoreError> {
        let every = self.settings.checkpoint_every;
        let interval = self.settings.checkpoint_interval;
        let due = force
            || self.since_checkpoint + rows.len() as u64 >= every
            || self.last_checkpoint.elapsed() >= interval;
        let signer = self.signer.clone();
        let conn = self.connection().await?;
        let (tx, head) = conn.begin().await?;
        let mut prev = hash32(&head.hash).ok_or_else(|| StoreError::Corrupt {
            table: "ledger_head",
            detail: format!("the head hash is {} bytes, not 32", head.hash.len()),
        })?;
        let mut frontier = frontier_of(&head)?;
        let first = head.seq as u64 + 1;
        let mut nodes: Vec<TreeNode> = Vec::with_capacity(rows.len() * 2 + 8);
        for (i, (row, kind)) in rows.iter_mut().zip(kinds).enumerate() {
            let seq = first + i as u64;
            let payload = row.payload.as_bytes();
            prev = chain::link(&prev, seq, *kind, payload);
            frontier.push(merkle::record_leaf(seq, *kind, payload), &mut |i, h| {
                nodes.push((i as i64, h))
            });
            row.seq = seq as i64;
            row.hash = prev.to_vec();
        }
        let last = first + rows.len() as u64 - 1;
        let cp = if due {
            checkpoint(signer.as_ref(), also, last, &prev, &frontier)
        } else {
            None
        };
        let new_head = LedgerHead {
            seq: last as i64,
            hash: prev.to_vec(),
            tree_size: last as i64,
            frontier: frontier.to_bytes(),
        };
        tx.commit(rows, &nodes, cp.as_ref(), &new_head).await?;
        if let Some(cp) = cp {
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
            self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            self.published(cp);
        } else {
            self.since_checkpoint += rows.len() as u64;
        }
        Ok(first)
    }

    /// Hands a committed checkpoint to the publisher without waiting.
    fn published(&self, cp: CheckpointRow) {
        if let Some(tx) = &self.publish
            && let Err(e) = tx.try_send(cp)
        {
            tracing::warn!(error = %e, "the checkpoint publisher is behind; this checkpoint is skipped (the next one covers it)");
        }
    }

    /// Signs the current head when this writer wrote records since its last
    /// checkpoint and the interval passed (or `now`, at shutdown).
    async fn checkpoint_if_due(&mut self, now: bool) {
        if self.since_checkpoint == 0
            || (!now && self.last_checkpoint.elapsed() < self.settings.checkpoint_interval)
        {
            return;
        }
        match self.sign_head().await {
            Ok(()) => {
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.conn = None;
                tracing::warn!(error = %e, "ledger checkpoint failed; retrying at the next interval");
            }
        }
    }

    async fn sign_head(&mut self) -> Result<(), StoreError> {
        let signer = self.signer.clone();
        let conn = self.connection().await?;
        let (tx, head) = conn.begin().await?;
        let hash = hash32(&head.hash).ok_or_else(|| StoreError::Corrupt {
            table: "ledger_head",
            detail: format!("the head hash is {} bytes, not 32", head.hash.len()),
        })?;
        let frontier = frontier_of(&head)?;
        let cp = checkpoint(signer.as_ref(), None, head.seq as u64, &hash, &frontier);
        tx.commit(&[], &[], cp.as_ref(), &head).await?;
        if let Some(cp) = cp {
            self.published(cp);
        }
        Ok(())
    }

    /// Hashes into the tree the records an earlier version wrote before
    /// the tree existed, a page per transaction, before the writer starts.
    async fn backfill_tree(&mut self) -> Result<(), LedgerError> {
        const PAGE: i64 = 10_000;
        loop {
            let store = self.store.clone();
            // Read without the lock first: a log whose tree is complete
            // (every start but the first after an upgrade) takes no lock.
            let head = store.ledger_head().await?;
            if head.tree_size >= head.seq {
                return Ok(());
            }
            let conn = self.connection().await?;
            let (tx, head) = conn.begin().await?;
            if head.tree_size == 0 {
                tracing::info!(
                    records = head.seq,
                    "hashing the existing ledger into its Merkle tree"
                );
            }
            let mut frontier = frontier_of(&head)?;
            let to = (head.tree_size + PAGE).min(head.seq);
            let page = store.ledger_records(head.tree_size, to, PAGE).await?;
            let mut nodes = Vec::with_capacity(page.len() * 2);
            for row in &page {
                let seq = frontier.size() + 1;
                let kind = Kind::parse(&row.kind);
                let (Some(kind), true) = (kind, row.seq as u64 == seq) else {
                    return Err(LedgerError::Corrupt {
                        seq: seq as i64,
                        detail: "the chain has a gap or an unknown record here; run `treaty ledger verify` before the tree can be built".into(),
                    });
                };
                frontier.push(
                    merkle::record_leaf(seq, kind, row.payload.as_bytes()),
                    &mut |i, h| nodes.push((i as i64, h)),
                );
            }
            if frontier.size() as i64 != to {
                return Err(LedgerError::Corrupt {
                    seq: frontier.size() as i64 + 1,
                    detail: "records are missing below the head; run `treaty ledger verify`".into(),
                });
            }
            let new_head = LedgerHead {
                tree_size: to,
                frontier: frontier.to_bytes(),
                ..head
            };
            tx.commit(&[], &nodes, None, &new_head).await?;
        }
    }
}

/// With no key configured, the key file beside a SQLite store:
/// `treaty.db` -> `treaty.ledger.key`.
fn auto_key_path(db: &std::path::Path) -> std::path::PathBuf {
    db.with_extension("ledger.key")
}

/// The head's tree, which must cover every record.
fn frontier_of(head: &LedgerHead) -> Result<Frontier, StoreError> {
    let frontier =
        Frontier::from_bytes(head.tree_size.max(0) as u64, &head.frontier).ok_or_else(|| {
            StoreError::Corrupt {
                table: "ledger_head",
                detail: format!(
                    "the tree frontier ({} bytes) does not fit tree size {}",
                    head.frontier.len(),
                    head.tree_size
                ),
            }
        })?;
    if head.tree_size != head.seq {
        return Err(StoreError::Corrupt {
            table: "ledger_head",
            detail: format!(
                "the Merkle tree covers {} records and the chain {}",
                head.tree_size, head.seq
            ),
        });
    }
    Ok(frontier)
}

/// Holds a turn nobody waits for until a message someone waits for
/// arrives, the batch is full, the queue closes or `linger` passes.
async fn linger(rx: &mut mpsc::Receiver<Msg>, turn: &mut Turn, linger: Duration, max: usize) {
    let deadline = tokio::time::Instant::now() + linger;
    while !turn.awaited() && turn.rows.len() < max {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(msg)) => turn.take(msg),
            Ok(None) | Err(_) => return,
        }
    }
}

/// A checkpoint of the tree of `size` records (chain head `hash`): the
/// C2SP note over (origin, size, root) and the chain signature of earlier
/// versions, both by `signer` (the note also by `also`). `None`, logged,
/// when the signer fails: records never wait for a signature.
fn checkpoint(
    signer: &dyn Signer,
    also: Option<&SecretKey>,
    size: u64,
    hash: &[u8; 32],
    frontier: &Frontier,
) -> Option<CheckpointRow> {
    let vkey = signer.verifier();
    let text = note::Checkpoint {
        origin: vkey.name.clone(),
        size,
        root: frontier.root(),
    }
    .text();
    let signed = (|| -> Result<CheckpointRow, LedgerError> {
        let mut note = Note::sign(&text, vkey, |m| {
            signer
                .sign(m)
                .map_err(|e| note::NoteError::Key(e.to_string()))
        })
        .map_err(|e| LedgerError::Key(e.to_string()))?;
        if let Some(old) = also {
            note.sigs.push(SignatureLine::new(
                &old.verifier(),
                old.sign(text.as_bytes()).to_vec(),
            ));
        }
        let chain_sig = signer.sign(&chain::checkpoint_message(size, hash))?;
        Ok(CheckpointRow {
            seq: size as i64,
            hash: hash.to_vec(),
            public_key: vkey.key.to_vec(),
            signature: chain_sig.to_vec(),
            at_ms: now_ms(),
            note: Some(note.to_string()),
        })
    })();
    match signed {
        Ok(cp) => Some(cp),
        Err(e) => {
            tracing::error!(error = %e, size, "the ledger's signer failed; no checkpoint at this size");
            None
        }
    }
}
