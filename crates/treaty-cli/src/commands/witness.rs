//! `treaty witness`: run a transparency-log witness (C2SP tlog-witness)
//! for one or more Treaty logs, so that someone other than the operator
//! holds each log's last checkpoint and refuses a rewritten one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use treaty_ledger::note::SecretKey;
use treaty_ledger::witness::Witness;

use super::evidence::read_keys;
use crate::output;

#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// Address to listen on (port 0 picks one, printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The witness's own key file (`treaty ledger keygen --out FILE`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where the last cosigned checkpoint of each log is kept.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// A log to follow: a file with its public key (`treaty ledger
    /// pubkey`). Repeatable.
    #[arg(long = "log-key", value_name = "FILE", required = true)]
    pub log_keys: Vec<PathBuf>,
}

pub async fn run(args: WitnessArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading the witness key {}", args.key.display()))?;
    let key = SecretKey::parse(&text).with_context(|| args.key.display().to_string())?;
    let mut logs = Vec::new();
    for f in &args.log_keys {
        logs.extend(read_keys(f, None)?);
    }
    let witness = Arc::new(Witness::open(key, logs, &args.state)?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    output::line(format!("witness key: {}", witness.cosigner()));
    output::line(format!("listening on http://{addr}"));
    treaty_ledger::witness::serve(listener, witness, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
