//! `treaty receipt verify|issue`: placement receipts, offline.
//!
//! `verify` needs nothing but the receipt and the log's public key; with
//! an inclusion proof (`treaty ledger proof`, or the API's
//! `GET /v1/ledger/proofs/{request_id}`) it also checks that the receipt's
//! decision record is in the log under a signed checkpoint, and with
//! `--checkpoint` that this checkpoint is the one the verifier holds.
//! `issue` re-issues the receipt of a past request from the ledger, signed
//! with the configured key (an operator's tool). Neither writes anything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use treaty_ledger::note::Note;
use treaty_ledger::{Entry, InclusionProof, Kind, Receipt};

use super::evidence::read_keys;
use crate::output;
use crate::state::StateArgs;

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt's signature, and with --proof that its decision is
    /// in the log. Exits 1 when anything does not verify.
    Verify(VerifyArgs),
    /// Print the receipt of a past request, signed with the configured key.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The receipt (the `x-treaty-receipt` header's value), or `@FILE`.
    #[arg(value_name = "RECEIPT")]
    pub receipt: String,
    /// The log's public key(s), as `treaty ledger pubkey` prints them.
    #[arg(long, value_name = "FILE")]
    pub pubkey: PathBuf,
    /// An inclusion proof (JSON) of the receipt's decision record.
    #[arg(long, value_name = "FILE")]
    pub proof: Option<PathBuf>,
    /// A checkpoint the verifier holds; the proof must be against it.
    #[arg(long, value_name = "FILE", requires = "proof")]
    pub checkpoint: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
}

pub async fn run(cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptCommand::Verify(args) => verify(args),
        ReceiptCommand::Issue(args) => issue(args).await,
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let wire = match args.receipt.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => args.receipt.clone(),
    };
    let keys = read_keys(&args.pubkey, None)?;
    let receipt = match Receipt::verify(&wire, &keys) {
        Ok(r) => r,
        Err(e) => {
            output::line(format!("receipt INVALID: {e}"));
            return Ok(ExitCode::from(1));
        }
    };
    output::line(format!(
        "receipt ok: request {} (ledger seq {}), tenant {}, {} on {}, reading {}, clauses {}, signed by {}",
        receipt.request_id,
        receipt.seq,
        receipt.tenant,
        receipt.class,
        receipt.host.as_deref().map_or_else(
            || format!(
                "refused ({})",
                receipt.refused.as_deref().unwrap_or("no host")
            ),
            str::to_owned
        ),
        receipt.reading.as_deref().unwrap_or("none"),
        receipt.clauses.join(","),
        receipt.key
    ));
    let Some(proof_file) = &args.proof else {
        return Ok(ExitCode::SUCCESS);
    };
    let text = std::fs::read_to_string(proof_file)
        .with_context(|| format!("reading {}", proof_file.display()))?;
    let proof: InclusionProof = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an inclusion proof", proof_file.display()))?;
    if proof.seq != receipt.seq || proof.leaf_hash != receipt.leaf_hash {
        output::line("proof INVALID: it proves another record than the receipt's");
        return Ok(ExitCode::from(1));
    }
    if let Some(cp) = &args.checkpoint {
        let held =
            std::fs::read_to_string(cp).with_context(|| format!("reading {}", cp.display()))?;
        let held =
            Note::parse(&held).with_context(|| format!("{} is not a checkpoint", cp.display()))?;
        let used = Note::parse(&proof.checkpoint)?;
        if held.text != used.text {
            bail!(
                "the proof is against another checkpoint than {}: fetch a proof for that size, or check the two checkpoints' consistency",
                cp.display()
            );
        }
    }
    match proof.verify(&keys, &[]) {
        Ok(p) => {
            output::line(format!(
                "in the log: record {} is leaf {} of the signed tree of {} records ({})",
                p.seq,
                p.seq - 1,
                p.checkpoint.size,
                p.checkpoint.origin
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            output::line(format!("proof INVALID: {e}"));
            Ok(ExitCode::from(1))
        }
    }
}

async fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let source = match &config {
        Some(c) => super::evidence::ledger_settings(c)?.key,
        None => treaty_ledger::SignerSource::Auto,
    };
    let signer = treaty_ledger::signer_for(&source, &store)?;
    let rows = store.ledger_records_of_request(&args.request_id).await?;
    let mut decision = None;
    let mut served = None;
    for r in &rows {
        match Kind::parse(&r.kind).map(|k| Entry::decode(k, &r.payload)) {
            Some(Ok(Entry::Decision(d))) => decision = Some((r.seq as u64, d)),
            Some(Ok(Entry::Outcome(o))) => served = o.served_by,
            _ => {}
        }
    }
    let Some((seq, d)) = decision else {
        output::warn("no such request in the ledger");
        return Ok(ExitCode::from(1));
    };
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let receipt = Receipt::for_decision(&d, seq, served.as_deref(), signer.verifier(), now)?;
    output::line(receipt.sign(signer.as_ref())?);
    Ok(ExitCode::SUCCESS)
}
