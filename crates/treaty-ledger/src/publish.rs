//! Checkpoints leave the store: an append-only directory, HTTP endpoints,
//! and witnesses (C2SP `tlog-witness`), from one background task.
//!
//! The writer hands each committed checkpoint over a bounded channel with
//! `try_send` and never waits; this task publishes them in order:
//!
//! - **directory**: one file per checkpoint, `checkpoint-<size>`, created
//!   new and never rewritten (a file already there with other contents is
//!   an error, logged and counted: someone rewrote history);
//! - **HTTP**: `POST` of the signed note (`text/plain`) to each URL;
//! - **witnesses**: `POST <url>/add-checkpoint` with `old <size>`, the
//!   RFC 9162 consistency proof from the size the witness last cosigned,
//!   a blank line and the note. A `409` with `text/x.tlog.size` tells the
//!   size the witness holds; the request is retried once from there. A
//!   `200`'s cosignature lines are verified against the witness's key and
//!   stored beside the checkpoint. Any other answer is a refusal: logged
//!   with the witness's reason, counted, and shown by `treaty ledger
//!   status`.
//!
//! Every attempt's result is kept per target in `ledger_publish_status`.
//! This task never writes records or checkpoints, and nothing on the
//! request path waits for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::mpsc;
use treaty_store::{CheckpointRow, PublishOutcome, Store};

use crate::LedgerError;
use crate::note::{self, Note, SignatureLine, VerifierKey};
use crate::proof;

/// Where checkpoints are published.
#[derive(Debug, Clone, Default)]
pub struct PublishSettings {
    /// An append-only directory of checkpoint files.
    pub dir: Option<PathBuf>,
    /// Endpoints that receive each checkpoint note by `POST`.
    pub urls: Vec<String>,
    /// Witnesses asked to cosign each checkpoint.
    pub witnesses: Vec<WitnessTarget>,
}

impl PublishSettings {
    pub fn is_empty(&self) -> bool {
        self.dir.is_none() && self.urls.is_empty() && self.witnesses.is_empty()
    }
}

/// A tlog-witness: its submission prefix and its cosigning key (a verifier
/// key of type 0x04).
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    pub url: String,
    pub key: VerifierKey,
}

const QUEUE: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the publisher when there is anywhere to publish.
pub(crate) fn start(
    store: Store,
    settings: PublishSettings,
    log_key: VerifierKey,
) -> (
    Option<mpsc::Sender<CheckpointRow>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if settings.is_empty() {
        return (None, None);
    }
    let (tx, mut rx) = mpsc::channel::<CheckpointRow>(QUEUE);
    let task = tokio::spawn(async move {
        let publisher = match Publisher::new(store, settings, log_key) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the checkpoint publisher cannot start");
                return;
            }
        };
        while let Some(cp) = rx.recv().await {
            publisher.publish(&cp).await;
        }
    });
    (Some(tx), Some(task))
}

struct Publisher {
    store: Store,
    settings: PublishSettings,
    http: reqwest::Client,
    log_key: VerifierKey,
}

impl Publisher {
    fn new(
        store: Store,
        settings: PublishSettings,
        log_key: VerifierKey,
    ) -> Result<Publisher, LedgerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("treaty-ledger/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LedgerError::Publish(e.to_string()))?;
        Ok(Publisher {
            store,
            settings,
            http,
            log_key,
        })
    }

    async fn publish(&self, cp: &CheckpointRow) {
        let Some(note) = cp.note.as_deref() else {
            return;
        };
        if let Some(dir) = &self.settings.dir {
            let target = dir.display().to_string();
            let r = write_checkpoint_file(dir, cp.seq, note);
            self.result(&target, "dir", cp.seq, r).await;
        }
        for url in &self.settings.urls {
            let r = self.post_note(url, note).await;
            self.result(url, "http", cp.seq, r).await;
        }
        for w in &self.settings.witnesses {
            let r = self.ask_witness(w, cp.seq as u64, note).await;
            self.result(&w.url, "witness", cp.seq, r).await;
        }
    }

    async fn result(&self, target: &str, kind: &str, size: i64, r: Result<(), Refusal>) {
        let (outcome, error) = match &r {
            Ok(()) => (PublishOutcome::Published, None),
            Err(Refusal::Refused(why)) => {
                tracing::warn!(target, size, reason = %why, "a {kind} refused the ledger checkpoint");
                (PublishOutcome::Refused, Some(why.as_str()))
            }
            Err(Refusal::Failed(why)) => {
                tracing::warn!(target, size, error = %why, "publishing the ledger checkpoint to a {kind} failed");
                (PublishOutcome::Failed, Some(why.as_str()))
            }
        };
        if let Err(e) = self
            .store
            .ledger_publish_result(target, kind, size, outcome, error, crate::now_ms())
            .await
        {
            tracing::warn!(error = %e, "cannot record a publication result");
        }
    }

    async fn post_note(&self, url: &str, note: &str) -> Result<(), Refusal> {
        let resp = self
            .http
            .post(url)
            .header("content-type", "text/plain; charset=utf-8")
            .body(note.to_owned())
            .send()
            .await
            .map_err(|e| Refusal::Failed(e.without_url().to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Refusal::Failed(format!("HTTP {}", resp.status().as_u16())))
        }
    }

    /// One add-checkpoint exchange (twice if the witness holds another
    /// size than the one last recorded).
    async fn ask_witness(&self, w: &WitnessTarget, size: u64, note: &str) -> Result<(), Refusal> {
        let mut old = self.witness_size(&w.url).await;
        for _ in 0..2 {
            if old > size {
                return Err(Refusal::Refused(format!(
                    "the witness holds a checkpoint of size {old}, beyond this one ({size})"
                )));
            }
            let proof = proof::consistency(&self.store, old, size)
                .await
                .map_err(|e| {
                    Refusal::Failed(format!("no consistency proof {old} -> {size}: {e}"))
                })?;
            let mut body = format!("old {old}\n");
            for h in &proof {
                body.push_str(&B64.encode(h));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(note);
            let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
            let resp = self
                .http
                .post(&url)
                .body(body)
                .send()
                .await
                .map_err(|e| Refusal::Failed(e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            let is_size = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/x.tlog.size"));
            let text = resp
                .text()
                .await
                .map_err(|e| Refusal::Failed(e.without_url().to_string()))?;
            match status {
                200 => return self.keep_cosignatures(w, size, note, &text).await,
                409 if is_size => {
                    let held: u64 = text.trim().parse().map_err(|_| {
                        Refusal::Refused(format!("409 with an unreadable size {text:?}"))
                    })?;
                    if held == old {
                        return Err(Refusal::Refused(format!(
                            "409: the witness holds size {held} with another root"
                        )));
                    }
                    old = held;
                }
                _ => {
                    return Err(Refusal::Refused(format!(
                        "HTTP {status}: {}",
                        text.trim().chars().take(300).collect::<String>()
                    )));
                }
            }
        }
        Err(Refusal::Refused(format!(
            "the witness's size kept changing (last {old})"
        )))
    }

    async fn witness_size(&self, url: &str) -> u64 {
        match self.store.ledger_publish_status().await {
            Ok(rows) => rows
                .iter()
                .find(|r| r.target == url)
                .map_or(0, |r| r.last_size.max(0) as u64),
            Err(_) => 0,
        }
    }

    async fn keep_cosignatures(
        &self,
        w: &WitnessTarget,
        size: u64,
        note_text: &str,
        body: &str,
    ) -> Result<(), Refusal> {
        let text = Note::parse(note_text)
            .map_err(|e| Refusal::Failed(e.to_string()))?
            .text;
        let mut kept = 0;
        for line in body.lines().filter(|l| !l.is_empty()) {
            let Ok(sig) = SignatureLine::parse(line) else {
                continue;
            };
            if note::verify_cosignature(&w.key, &text, &sig).is_some() {
                self.store
                    .ledger_add_cosignature(
                        size as i64,
                        &w.key.to_string(),
                        &sig.to_string(),
                        crate::now_ms(),
                    )
                    .await
                    .map_err(|e| Refusal::Failed(e.to_string()))?;
                kept += 1;
            }
        }
        if kept == 0 {
            return Err(Refusal::Refused(format!(
                "the witness answered 200 without a valid cosignature by {}",
                w.key
            )));
        }
        let _ = &self.log_key;
        Ok(())
    }
}

enum Refusal {
    /// The target answered no.
    Refused(String),
    /// The target could not be reached or written.
    Failed(String),
}

/// Writes `checkpoint-<size>` in `dir`, never over another file.
fn write_checkpoint_file(dir: &Path, size: i64, note: &str) -> Result<(), Refusal> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| Refusal::Failed(e.to_string()))?;
    let path = dir.join(format!("checkpoint-{size:012}"));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => f
            .write_all(note.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Refusal::Failed(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let held =
                std::fs::read_to_string(&path).map_err(|e| Refusal::Failed(e.to_string()))?;
            let same_text = |a: &str, b: &str| {
                Note::parse(a).ok().map(|n| n.text) == Note::parse(b).ok().map(|n| n.text)
            };
            if same_text(&held, note) {
                Ok(())
            } else {
                Err(Refusal::Refused(format!(
                    "{} already holds another checkpoint of size {size}: the log was rewritten",
                    path.display()
                )))
            }
        }
        Err(e) => Err(Refusal::Failed(e.to_string())),
    }
}
