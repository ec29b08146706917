//! A transparency-log witness (C2SP `tlog-witness`), run by `treaty
//! witness`: someone other than the operator keeps, per log, the last
//! checkpoint it cosigned, and cosigns a new one only if a consistency
//! proof shows it extends that one.
//!
//! `POST /add-checkpoint` takes `old <size>`, the consistency proof lines,
//! a blank line and the checkpoint note, and answers as the spec says:
//! 404 for an unknown origin, 403 when no trusted log key signed it, 400
//! for a malformed request or an old size above the new one, 409 (body:
//! the size held, `text/x.tlog.size`) when `old` is not the size held or
//! the same size comes with another root, 422 when the proof does not
//! verify, and 200 with the cosignature line otherwise. Every refusal's
//! body says why in words; refusals are logged, since a valid log
//! signature on an inconsistent checkpoint is evidence of a rewrite.
//!
//! State: one file per log in the state directory,
//! `<origin, made file-safe>.checkpoint`, holding the last cosigned note
//! (the log's signature and this witness's cosignature). It is replaced by
//! write-to-temporary, sync, rename, under one lock with the check, so two
//! requests can never roll it back (the race the spec warns of). This
//! module never signs anything but cosignatures, and never deletes state.

use std::path::{Path, PathBuf};
#[cfg(feature = "net")]
use std::sync::Arc;
use std::sync::Mutex;

#[cfg(feature = "net")]
use axum::extract::State;
#[cfg(feature = "net")]
use axum::http::{StatusCode, header};
#[cfg(feature = "net")]
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::LedgerError;
use crate::merkle::{self, Hash};
use crate::note::{self, Checkpoint, Note, SecretKey, VerifierKey};

/// The most consistency proof lines a request may carry (the spec's 63).
const MAX_PROOF: usize = 63;

/// A witness: its cosigning key, the logs it follows, where it keeps
/// what it cosigned.
pub struct Witness {
    key: SecretKey,
    logs: Vec<VerifierKey>,
    state: PathBuf,
    lock: Mutex<()>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Witness({}, {} logs)",
            self.key.cosigner(),
            self.logs.len()
        )
    }
}

/// A refusal: the HTTP status and the reason, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    /// For 409 on a size mismatch: the size held.
    pub held: Option<u64>,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
        held: None,
    }
}

impl Witness {
    /// A witness cosigning with `key` for the logs whose keys are `logs`,
    /// keeping its state in `state` (created if missing).
    pub fn open(
        key: SecretKey,
        logs: Vec<VerifierKey>,
        state: &Path,
    ) -> Result<Witness, LedgerError> {
        std::fs::create_dir_all(state)?;
        Ok(Witness {
            key,
            logs,
            state: state.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    /// The witness's cosigner verifier key (type 0x04), what a log lists
    /// it by.
    pub fn cosigner(&self) -> VerifierKey {
        self.key.cosigner()
    }

    /// Handles one add-checkpoint body; the cosignature line on success.
    pub fn add_checkpoint(&self, body: &str) -> Result<String, Refusal> {
        let (old, proof, note_text) = parse_request(body)?;
        let note =
            Note::parse(note_text).map_err(|e| refuse(400, format!("the checkpoint: {e}")))?;
        let origin = note.text.split('\n').next().unwrap_or_default().to_owned();
        let keys: Vec<VerifierKey> = self
            .logs
            .iter()
            .filter(|k| k.name == origin)
            .cloned()
            .collect();
        if keys.is_empty() {
            return Err(refuse(
                404,
                format!("this witness does not follow the log {origin:?}"),
            ));
        }
        note.verify(&keys).map_err(|e| {
            refuse(
                403,
                format!("the checkpoint is not signed by the log's key: {e}"),
            )
        })?;
        let cp = Checkpoint::parse(&note.text).map_err(|e| refuse(400, e.to_string()))?;
        if old > cp.size {
            return Err(refuse(
                400,
                format!("old size {old} is above the checkpoint's size {}", cp.size),
            ));
        }
        let _guard = self
            .lock
            .lock()
            .map_err(|_| refuse(500, "the witness's state lock is poisoned"))?;
        let path = self.state_file(&origin);
        let held = self.held(&path, &keys)?;
        let (held_size, held_root) = held
            .as_ref()
            .map_or((0, merkle::empty_root()), |h| (h.size, h.root));
        if old != held_size {
            return Err(Refusal {
                status: 409,
                reason: format!("this witness last cosigned size {held_size}, not {old}"),
                held: Some(held_size),
            });
        }
        if old == cp.size {
            if held.is_some() && cp.root != held_root {
                tracing::warn!(
                    origin,
                    size = cp.size,
                    "a log signed two different roots for one size"
                );
                return Err(refuse(
                    409,
                    format!(
                        "this witness cosigned size {} with root {}; this checkpoint has root {}: the log was rewritten",
                        cp.size,
                        B64.encode(held_root),
                        B64.encode(cp.root)
                    ),
                ));
            }
        } else if !merkle::verify_consistency(old, cp.size, &held_root, &cp.root, &proof) {
            tracing::warn!(
                origin,
                old,
                size = cp.size,
                "a log checkpoint does not extend the one cosigned"
            );
            return Err(refuse(
                422,
                format!(
                    "the consistency proof from size {old} (root {}) to size {} does not verify: the new checkpoint does not extend the one this witness cosigned; the log was rewritten or truncated",
                    B64.encode(held_root),
                    cp.size
                ),
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = note::cosign(&self.key, now, &note.text);
        let mut kept = Note {
            text: note.text.clone(),
            sigs: note
                .sigs
                .iter()
                .filter(|s| keys.iter().any(|k| k.names(s)))
                .cloned()
                .collect(),
        };
        kept.sigs.push(line.clone());
        persist(&path, &kept.to_string())
            .map_err(|e| refuse(500, format!("cannot keep the state: {e}")))?;
        Ok(format!("{line}\n"))
    }

    fn state_file(&self, origin: &str) -> PathBuf {
        let safe: String = origin
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tag = hex::encode(&Sha256::digest(origin.as_bytes())[..4]);
        self.state.join(format!("{safe}-{tag}.checkpoint"))
    }

    fn held(&self, path: &Path, keys: &[VerifierKey]) -> Result<Option<Checkpoint>, Refusal> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(refuse(500, format!("cannot read the state: {e}"))),
        };
        let note =
            Note::parse(&text).map_err(|e| refuse(500, format!("the state is unreadable: {e}")))?;
        note.verify(keys)
            .map_err(|e| refuse(500, format!("the state's checkpoint does not verify: {e}")))?;
        Checkpoint::parse(&note.text)
            .map(Some)
            .map_err(|e| refuse(500, format!("the state is unreadable: {e}")))
    }
}

fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), Refusal> {
    let (first, mut rest) = body
        .split_once('\n')
        .ok_or_else(|| refuse(400, "the body starts with an `old <size>` line"))?;
    let old = first
        .strip_prefix("old ")
        .filter(|n| !n.is_empty() && (n.len() == 1 || !n.starts_with('0')))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| refuse(400, format!("not an `old <size>` line: {first:?}")))?;
    let mut proof = Vec::new();
    loop {
        let (line, tail) = rest
            .split_once('\n')
            .ok_or_else(|| refuse(400, "the proof lines end with a blank line"))?;
        rest = tail;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF {
            return Err(refuse(400, "more than 63 consistency proof lines"));
        }
        let h: Hash = B64
            .decode(line)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| refuse(400, format!("a proof line is not a base64 hash: {line:?}")))?;
        proof.push(h);
    }
    if old == 0 && !proof.is_empty() {
        return Err(refuse(400, "the proof is empty when the old size is 0"));
    }
    Ok((old, proof, rest))
}

/// Replaces `path` with `text`: a temporary file, synced, renamed over.
fn persist(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("checkpoint.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads every checkpoint a witness's state directory holds.
pub fn state_checkpoints(dir: &Path) -> Result<Vec<(String, String)>, LedgerError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "checkpoint") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

/// The witness's HTTP interface: `POST /add-checkpoint`.
#[cfg(feature = "net")]
pub fn router(witness: Arc<Witness>) -> axum::Router {
    axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(add_checkpoint))
        .with_state(witness)
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
#[cfg(feature = "net")]
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(feature = "net")]
async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    // File writes and one signature: short, but not for the async threads.
    let result = tokio::task::spawn_blocking(move || w.add_checkpoint(&body)).await;
    match result {
        Ok(Ok(line)) => (StatusCode::OK, line).into_response(),
        Ok(Err(r)) => {
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match r.held {
                Some(size) => (
                    status,
                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                    format!("{size}\n"),
                )
                    .into_response(),
                None => (status, format!("{}\n", r.reason)).into_response(),
            }
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Frontier, ProofPlan, leaf_hash};

    fn log_key() -> SecretKey {
        SecretKey::from_seed("example.com/log", [1; 32]).unwrap()
    }

    fn tree(n: u64) -> (Frontier, std::collections::HashMap<u64, Hash>) {
        let mut f = Frontier::new();
        let mut nodes = std::collections::HashMap::new();
        for i in 0..n {
            f.push(leaf_hash(&i.to_be_bytes()), &mut |id, h| {
                nodes.insert(id, h);
            });
        }
        (f, nodes)
    }

    fn signed(size: u64, root: Hash) -> String {
        let text = Checkpoint {
            origin: "example.com/log".into(),
            size,
            root,
        }
        .text();
        Note::sign(&text, &log_key().verifier(), |m| Ok(log_key().sign(m)))
            .unwrap()
            .to_string()
    }

    fn body(
        old: u64,
        new: u64,
        nodes: &std::collections::HashMap<u64, Hash>,
        note: &str,
    ) -> String {
        let proof = ProofPlan::consistency(old, new)
            .unwrap()
            .hashes(&|n| nodes.get(&n.stored_index()).copied())
            .unwrap();
        let mut b = format!("old {old}\n");
        for h in proof {
            b.push_str(&B64.encode(h));
            b.push('\n');
        }
        b.push('\n');
        b.push_str(note);
        b
    }

    #[test]
    fn cosigns_only_consistent_growth_and_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let wkey = SecretKey::from_seed("witness.example/w1", [2; 32]).unwrap();
        let w = Witness::open(wkey.clone(), vec![log_key().verifier()], dir.path()).unwrap();
        let (f10, nodes) = tree(20);
        let root10 = tree(10).0.root();
        let line = w
            .add_checkpoint(&body(0, 10, &nodes, &signed(10, root10)))
            .unwrap();
        let line = note::SignatureLine::parse(line.trim_end()).unwrap();
        let text = Checkpoint {
            origin: "example.com/log".into(),
            size: 10,
            root: root10,
        }
        .text();
        assert!(note::verify_cosignature(&w.cosigner(), &text, &line).is_some());
        // Growth from 10 to 20 with a proof: cosigned.
        assert!(
            w.add_checkpoint(&body(10, 20, &nodes, &signed(20, f10.root())))
                .is_ok()
        );
        // A stale old size: 409 with the size held.
        let r = w
            .add_checkpoint(&body(10, 20, &nodes, &signed(20, f10.root())))
            .unwrap_err();
        assert_eq!((r.status, r.held), (409, Some(20)));
        // A rewritten log: another tree of 25 whose first 20 leaves differ.
        let mut g = Frontier::new();
        let mut other = std::collections::HashMap::new();
        for i in 0..25u64 {
            g.push(leaf_hash(&(i + 1000).to_be_bytes()), &mut |id, h| {
                other.insert(id, h);
            });
        }
        let r = w
            .add_checkpoint(&body(20, 25, &other, &signed(25, g.root())))
            .unwrap_err();
        assert_eq!(r.status, 422);
        assert!(r.reason.contains("does not extend"), "{}", r.reason);
        // The same size with another root: 409, and why.
        let r = w
            .add_checkpoint(&body(20, 20, &other, &signed(20, [9; 32])))
            .unwrap_err();
        assert_eq!(r.status, 409);
        assert!(r.reason.contains("rewritten"));
        // Unknown log, or not the log's signature.
        let stranger = SecretKey::from_seed("example.com/other", [3; 32]).unwrap();
        let text = Checkpoint {
            origin: "example.com/other".into(),
            size: 1,
            root: [0; 32],
        }
        .text();
        let n = Note::sign(&text, &stranger.verifier(), |m| Ok(stranger.sign(m))).unwrap();
        assert_eq!(
            w.add_checkpoint(&format!("old 0\n\n{n}"))
                .unwrap_err()
                .status,
            404
        );
        let impostor = SecretKey::from_seed("example.com/log", [4; 32]).unwrap();
        let text = Checkpoint {
            origin: "example.com/log".into(),
            size: 30,
            root: [0; 32],
        }
        .text();
        let n = Note::sign(&text, &impostor.verifier(), |m| Ok(impostor.sign(m))).unwrap();
        assert_eq!(
            w.add_checkpoint(&format!("old 20\n\n{n}"))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(w.add_checkpoint("nonsense").unwrap_err().status, 400);
        // The state survives a restart and names what was cosigned last.
        let again = Witness::open(wkey, vec![log_key().verifier()], dir.path()).unwrap();
        let r = again
            .add_checkpoint(&body(10, 20, &nodes, &signed(20, f10.root())))
            .unwrap_err();
        assert_eq!(r.held, Some(20));
        assert_eq!(state_checkpoints(dir.path()).unwrap().len(), 1);
    }
}
