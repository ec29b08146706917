//! The `treaty` command line: `serve`, `keys`, `budgets`, `contracts`,
//! `ledger`, `report`, `emulate` and `demo`.
//!
//! Each command is a module under [`commands`] that parses nothing itself
//! (clap does) and prints through [`output`], the one place allowed to
//! write to stdout. `anyhow` is used here and only here, at the edge.

pub mod commands;
mod example;
mod output;
pub mod progress;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Treaty: run AI across clouds without breaking your contracts.
#[derive(Debug, Parser)]
#[command(name = "treaty", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. "info" or "treaty=debug". The MCP
    /// SDK's per-session lines are kept to warnings by default.
    #[arg(
        long,
        global = true,
        env = "TREATY_LOG",
        default_value = "info,rmcp=warn"
    )]
    pub log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(commands::serve::ServeArgs),
    /// Check contracts and explain decisions.
    #[command(subcommand)]
    Contracts(commands::contracts::ContractsCommand),
    /// Verify, report on and export the ledger of decisions.
    #[command(subcommand)]
    Ledger(commands::ledger::LedgerCommand),
    /// Verify a placement receipt offline (and, with a proof, that its
    /// decision is in the log), or re-issue a past request's receipt.
    #[command(subcommand)]
    Receipt(commands::receipt::ReceiptCommand),
    /// Run a transparency-log witness: cosign a log's checkpoints only while
    /// each extends the last one cosigned.
    Witness(commands::witness::WitnessArgs),
    /// Write a self-contained HTML report of the ledger, with charts.
    Report(commands::report::HtmlReportArgs),
    /// Create, list and revoke virtual API keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Set, list and remove spending budgets per key, tenant, or tenant's
    /// product through a channel.
    #[command(subcommand)]
    Budgets(commands::budgets::BudgetsCommand),
    /// Run Treaty's local emulation of upstream providers (not a real cloud).
    Emulate(commands::emulate::EmulateArgs),
    /// Run the shipped Frontier example end to end against emulated upstreams.
    Demo(commands::demo::DemoArgs),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log, cli.log_json);
    // reqwest is built without a TLS provider of its own; ring is Treaty's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&anyhow::anyhow!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Keys(cmd) => commands::keys::run(cmd).await,
            Command::Budgets(cmd) => commands::budgets::run(cmd).await,
            Command::Contracts(cmd) => commands::contracts::run(cmd).await,
            Command::Ledger(cmd) => commands::ledger::run(cmd).await,
            Command::Receipt(cmd) => commands::receipt::run(cmd).await,
            Command::Witness(args) => commands::witness::run(args).await,
            Command::Report(args) => commands::report::run(args).await,
            Command::Emulate(args) => commands::emulate::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            output::error(&e);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
