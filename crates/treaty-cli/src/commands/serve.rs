//! `treaty serve`: run the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use treaty_config::{Config, ProcessEnv};

use crate::output;
use crate::state::{normalise_db, redact_url};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Treaty config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Store URL; overrides the config's `store.url`.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Address to listen on; overrides `server.listen`. Port 0 picks a free
    /// port, printed on stdout.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The contract reading to enforce instead of the config's.
    #[arg(long, value_name = "NAME")]
    pub reading: Option<String>,
    /// Validate the config and the contracts, then exit.
    #[arg(long)]
    pub check: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Idle clients must not exhaust descriptors at a default soft limit
    // of 1,024: take what the hard limit allows.
    match treaty_gateway::raise_open_files_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let mut config = Config::load(&args.config, &ProcessEnv)?;
    if let Some(reading) = &args.reading {
        super::contracts::apply_reading(&mut config, reading)?;
    }
    if args.check {
        // Loading the policy validates every clause against the schema.
        let policy = treaty_policy::Policy::load(std::sync::Arc::new(config.clone()))?;
        output::line(format!(
            "config OK: {} hosts, {} tenants, {} channels, {} products ({})",
            config.hosts.len(),
            config.tenants.len(),
            config.channels.len(),
            config.products.len(),
            args.config.display()
        ));
        match policy.contracts() {
            Some(c) => output::line(format!(
                "contracts OK: reading {}, {} clauses; classification: {}",
                c.reading(),
                c.clauses().len(),
                policy.classifier_source()
            )),
            None => output::line("no [contracts]: every host serving a model is allowed"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let url = match &args.db {
        Some(db) => normalise_db(db),
        None => config.store_url(),
    };
    let listen = args.listen.unwrap_or(config.server.listen);
    let store = treaty_store::Store::open(&url)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&url)))?;
    let traces = crate::start_traces(&config.telemetry, &config.instance.id)?;
    let gateway = treaty_gateway::Gateway::open(config, store, &ProcessEnv).await?;
    tracing::info!(key = %gateway.engine.ledger.signer().verifier(), "ledger signing key");
    if let Some(reading) = gateway.engine.policy.reading() {
        tracing::info!(reading, "contracts in force");
    }
    // The TLS certificate loads before anything starts: a bad pair stops
    // the server here, with the file named.
    let edge = treaty_gateway::Edge::from_config(&gateway.engine.config.server)
        .context("loading [server.tls]")?;
    let _health = gateway.engine.spawn_health_checks();
    let workers = treaty_runtime::worker::spawn_workers(&gateway.runtime);
    let runtime = gateway.runtime.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = %redact_url(&url), "treaty gateway listening");
    let scheme = if edge.tls.is_some() { "https" } else { "http" };
    output::line(format!("listening on {scheme}://{addr}"));
    let ledger = gateway.engine.ledger.clone();
    treaty_gateway::serve_with(
        listener,
        treaty_gateway::app(gateway),
        edge,
        super::shutdown_signal(),
    )
    .await?;
    // In-flight requests are done: stop the run workers (an unfinished run
    // is resumed by the next start), close MCP sessions, and commit what
    // the ledger still holds.
    for w in workers {
        w.abort();
    }
    runtime.shutdown().await;
    drop(runtime);
    ledger.shutdown().await?;
    if let Some(traces) = traces {
        traces.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}
