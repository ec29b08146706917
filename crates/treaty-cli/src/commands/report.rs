//! `treaty report --html FILE`: the ledger as one self-contained HTML page.
//!
//! Parses arguments, opens the store, writes what
//! `treaty_ledger::html_report` renders (charts of traffic per host and
//! per channel over time, refusals per clause, class shares per host, a
//! table per host, where the shadow readings part) to the file. It only reads the ledger and never fetches anything: the page
//! carries its own CSS and SVG.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::ledger::TimeArgs;
use crate::output;
use crate::state::StateArgs;

#[derive(Debug, Args)]
pub struct HtmlReportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The HTML file to write (one file: inline CSS and SVG, no scripts).
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    #[command(flatten)]
    pub time: TimeArgs,
}

pub async fn run(args: HtmlReportArgs) -> anyhow::Result<ExitCode> {
    let (since, until) = args.time.range()?;
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let html = treaty_ledger::html_report(&store, since, until).await?;
    std::fs::write(&args.html, html.as_bytes())
        .with_context(|| format!("writing {}", args.html.display()))?;
    output::line(format!("wrote {}", args.html.display()));
    Ok(ExitCode::SUCCESS)
}
