//! `treaty emulate`: Treaty's local emulation of upstream providers.
//!
//! It answers in the providers' wire protocols with deterministic,
//! clearly labelled replies, so tests, the demo and benchmarks run with no
//! cloud account. It is not a model.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use treaty_emulator::{Emulator, EmulatorConfig};

use crate::output;

#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Delay before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Accept only this upstream key (default: any non-empty key).
    #[arg(long, env = "TREATY_EMULATOR_KEY")]
    pub api_key: Option<String>,
    /// Serve only the emulated MCP tools, on stdin/stdout, for an MCP
    /// client to start as a child process (the other options are ignored).
    #[arg(long)]
    pub mcp_stdio: bool,
}

pub async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    if args.mcp_stdio {
        // stdout carries the protocol, so no banner; logs go to stderr.
        treaty_emulator::serve_mcp_stdio()
            .await
            .context("serving MCP on stdio")?;
        return Ok(ExitCode::SUCCESS);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    output::line(format!(
        "treaty emulator (EMULATED upstreams, not a real provider) listening on http://{addr}"
    ));
    let config = EmulatorConfig {
        api_key: args.api_key,
        latency: Duration::from_millis(args.latency_ms),
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        ..EmulatorConfig::default()
    };
    Emulator::serve(config, listener, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
