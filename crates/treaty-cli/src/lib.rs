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
mod secret_file;
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

/// The slot for the OTLP layer: empty until `serve` has read its config
/// and the `OTEL_*` variables, filled once then.
type Traces = tracing_subscriber::reload::Handle<
    Option<treaty_telemetry::trace::Layer<tracing_subscriber::Registry>>,
    tracing_subscriber::Registry,
>;

static TRACES: std::sync::OnceLock<Traces> = std::sync::OnceLock::new();

/// Starts exporting spans over OTLP, when the environment or the config
/// names an endpoint. The returned guard flushes and stops the exporter
/// when dropped. Must run inside the Tokio runtime.
pub(crate) fn start_traces(
    telemetry: &treaty_config::TelemetryConfig,
    instance: &str,
) -> anyhow::Result<Option<treaty_telemetry::trace::TraceGuard>> {
    use treaty_telemetry::trace::{FileSettings, TraceSettings};
    let file = FileSettings {
        otlp_endpoint: telemetry.otlp_endpoint.clone(),
        service_name: telemetry.service_name.clone(),
        sample_ratio: telemetry.sample_ratio,
    };
    let Some(settings) = TraceSettings::resolve(|n| std::env::var(n).ok(), &file, instance) else {
        return Ok(None);
    };
    let Some(handle) = TRACES.get() else {
        return Ok(None);
    };
    let (layer, guard) = treaty_telemetry::trace::layer(&settings)?;
    handle
        .reload(Some(layer))
        .map_err(|e| anyhow::anyhow!("cannot start exporting traces: {e}"))?;
    tracing::info!(endpoint = %settings.endpoint, "exporting traces over OTLP");
    Ok(Some(guard))
}

fn init_logging(filter: &str, json: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (traces, handle) = tracing_subscriber::reload::Layer::new(None);
    let registry = tracing_subscriber::registry().with(traces).with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt.compact()).try_init()
    };
    if installed.is_ok() {
        let _ = TRACES.set(handle);
    }
}
