//! `treaty ledger keygen|status|proof`, the auditor's inputs
//! (`--pubkey`, `--checkpoint`, `--witness-state`), and how a config's
//! `[ledger]` table becomes the ledger's settings.
//!
//! Thin edges over `treaty-ledger`. `keygen` is the only command here that
//! writes, and only a new key file (mode 0600, never over another file);
//! it prints the public key, never the secret.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use treaty_config::Config;
use treaty_ledger::note::VerifierKey;
use treaty_ledger::{LedgerSettings, ProofError};

use super::ledger::TextOrJson;
use crate::output;
use crate::state::StateArgs;

/// The ledger's settings from a validated config.
pub fn ledger_settings(config: &Config) -> anyhow::Result<LedgerSettings> {
    Ok(treaty_engine::ledger_settings(config)?)
}

/// Reads verifier keys (one a line; `#` comments), or the 64 hex
/// characters earlier versions printed, named after the log's origin.
pub fn read_keys(file: &Path, origin: Option<&str>) -> anyhow::Result<Vec<VerifierKey>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the public key from {}", file.display()))?;
    let mut keys = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let key = match VerifierKey::parse(line) {
            Ok(k) => k,
            Err(e) => {
                let hex = treaty_ledger::PublicKey::from_hex(line)
                    .map_err(|_| anyhow::anyhow!("{}: {e}", file.display()))?;
                VerifierKey::new(
                    origin.unwrap_or("legacy"),
                    treaty_ledger::note::SIG_ED25519,
                    hex.0,
                )?
            }
        };
        keys.push(key);
    }
    if keys.is_empty() {
        bail!("{} holds no public key", file.display());
    }
    Ok(keys)
}

/// `--checkpoint FILE` and `--witness-state DIR`, as (source, note).
pub fn held_checkpoints(
    files: &[PathBuf],
    witness_state: Option<&Path>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the checkpoint {}", f.display()))?;
        out.push((f.display().to_string(), text));
    }
    if let Some(dir) = witness_state {
        let held = treaty_ledger::witness::state_checkpoints(dir)
            .with_context(|| format!("reading the witness state in {}", dir.display()))?;
        if held.is_empty() {
            bail!("{} holds no cosigned checkpoint", dir.display());
        }
        out.extend(held);
    }
    Ok(out)
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The new key file (created with mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The key's name, which is the log's origin: the first line of every
    /// checkpoint (a schema-less URL such as `treaty.example.com/ledger`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.unwrap_or_else(treaty_ledger::default_origin);
    let vkey = treaty_ledger::keygen(&args.out, &name)?;
    let secret = std::fs::read_to_string(&args.out)?;
    let cosigner = treaty_ledger::note::SecretKey::parse(&secret)?.cosigner();
    output::line(format!("wrote {} (mode 0600)", args.out.display()));
    output::line(format!("public key: {vkey}"));
    output::line(format!("as a witness's cosigning key: {cosigner}"));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let head = store.ledger_head().await?;
    let keys = treaty_ledger::log_keys(&store).await?;
    let latest = store.ledger_latest_note_checkpoint().await?;
    let cosigs = match &latest {
        Some(cp) => store.ledger_cosignatures(cp.seq).await?,
        None => Vec::new(),
    };
    let targets = store.ledger_publish_status().await?;
    let refused: i64 = targets.iter().map(|t| t.refused).sum();
    if let TextOrJson::Json = args.format {
        let json = serde_json::json!({
            "head": {"seq": head.seq, "tree_size": head.tree_size},
            "keys": keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "latest_checkpoint": latest.as_ref().map(|cp| serde_json::json!({
                "size": cp.seq, "at_ms": cp.at_ms, "note": cp.note, "cosignatures": cosigs,
            })),
            "publish": targets.iter().map(|t| serde_json::json!({
                "target": t.target, "kind": t.kind, "last_size": t.last_size,
                "published": t.published, "refused": t.refused, "failed": t.failed,
                "last_error": t.last_error, "updated_ms": t.updated_ms,
            })).collect::<Vec<_>>(),
            "refusals": refused,
        });
        output::line(serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    output::line(format!(
        "head: seq {} (Merkle tree of {} records)",
        head.seq, head.tree_size
    ));
    match keys.last() {
        Some(k) => output::line(format!("signing key: {k}")),
        None => output::line("signing key: none yet"),
    }
    for k in keys.iter().rev().skip(1) {
        output::line(format!("  retired: {k}"));
    }
    match &latest {
        Some(cp) => output::line(format!(
            "latest checkpoint: {} records, signed {}, {} witness cosignature(s)",
            cp.seq,
            crate::commands::ledger::rfc3339(cp.at_ms),
            cosigs.len()
        )),
        None => output::line("latest checkpoint: none yet"),
    }
    if targets.is_empty() {
        output::line("published to: nowhere (set ledger.publish_dir, publish_urls or witnesses)");
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            vec![
                t.kind.clone(),
                t.target.clone(),
                t.last_size.to_string(),
                t.published.to_string(),
                t.refused.to_string(),
                t.failed.to_string(),
                t.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::line(
            output::table(
                &[
                    "KIND",
                    "TARGET",
                    "SIZE",
                    "PUBLISHED",
                    "REFUSED",
                    "FAILED",
                    "LAST ERROR",
                ],
                &rows,
            )
            .trim_end_matches('\n'),
        );
    }
    if refused > 0 {
        output::warn(format!(
            "{refused} refusal(s): a witness refused a checkpoint; see LAST ERROR"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ProofArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The request whose decision record to prove.
    #[arg(value_name = "REQUEST_ID", required_unless_present = "seq")]
    pub request_id: Option<String>,
    /// Only if the request is this tenant's (as the API does).
    #[arg(long, value_name = "TENANT", requires = "request_id")]
    pub tenant: Option<String>,
    /// Prove the record with this sequence number instead.
    #[arg(long, value_name = "SEQ", conflicts_with = "request_id")]
    pub seq: Option<u64>,
}

pub async fn proof(args: ProofArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let result = match (&args.request_id, args.seq) {
        (_, Some(seq)) => treaty_ledger::prove_seq(&store, seq).await,
        (Some(id), None) => {
            let tenant = match &args.tenant {
                Some(t) => t.clone(),
                None => {
                    // Whoever the request belongs to (an operator's view).
                    let rows = store.ledger_records_of_request(id).await?;
                    let d = rows.iter().find(|r| r.kind == "decision");
                    match d.map(|r| {
                        treaty_ledger::Entry::decode(treaty_ledger::Kind::Decision, &r.payload)
                    }) {
                        Some(Ok(treaty_ledger::Entry::Decision(d))) => d.tenant,
                        _ => String::new(),
                    }
                }
            };
            treaty_ledger::prove_request(&store, &tenant, id).await
        }
        (None, None) => bail!("give REQUEST_ID or --seq"),
    };
    match result {
        Ok(p) => {
            output::line(serde_json::to_string_pretty(&p)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ProofError::NotFound) => {
            output::warn("no such record");
            Ok(ExitCode::from(1))
        }
        Err(ProofError::NotYetCheckpointed) => {
            output::warn(
                "the record is newer than the latest signed checkpoint; try again after the next one",
            );
            Ok(ExitCode::from(3))
        }
        Err(ProofError::Ledger(e)) => Err(e.into()),
    }
}
