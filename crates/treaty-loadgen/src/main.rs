//! `treaty-loadgen`: parse the arguments, run, print the JSON report on
//! stdout. See the library's docs for what is measured and why.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use treaty_loadgen::probe::{Target, TargetSpec};
use treaty_loadgen::run::{self, ClosedLoop, OpenLoop};

/// Open-loop (fixed arrival rate) or closed-loop load on an OpenAI-style
/// chat completions endpoint; prints latency percentiles, errors by kind
/// and the achieved rate as JSON.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The chat completions URL (plain http).
    #[arg(long)]
    url: String,
    /// Open loop: requests per second, latency measured from each
    /// request's scheduled time. Without it the run is closed loop.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: this many workers, each sending its next request when
    /// the last has answered.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (sent, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Ask for a streamed answer and time its first byte too.
    #[arg(long)]
    stream: bool,
    /// Extra header, `name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long, default_value = "gpt-4o")]
    model: String,
    #[arg(long, default_value = "Say hello.")]
    prompt: String,
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Per-request timeout in seconds; a request past it is an error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Open loop: most requests in flight; beyond it requests are not
    /// sent and count as errors.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Runtime worker threads (the schedule has its own thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A label copied into the report.
    #[arg(long)]
    label: Option<String>,
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--{what} {s}: {e}"))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "treaty-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let duration = secs(args.duration, "duration")?;
    let warmup = secs(args.warmup, "warmup")?;
    let spec = TargetSpec {
        url: args.url.clone(),
        headers: args.headers.clone(),
        model: args.model.clone(),
        prompt: args.prompt.clone(),
        max_tokens: args.max_tokens,
        stream: args.stream,
        timeout: secs(args.timeout, "timeout")?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let target = Arc::new(Target::new(&spec)?);
    let mut report = rt.block_on(async {
        match args.rate {
            Some(rate) => {
                run::open_loop(
                    target,
                    OpenLoop {
                        rate,
                        warmup,
                        duration,
                        max_in_flight: args.max_in_flight,
                    },
                )
                .await
            }
            None => {
                run::closed_loop(
                    target,
                    ClosedLoop {
                        concurrency: args.concurrency,
                        warmup,
                        duration,
                    },
                )
                .await
            }
        }
    })?;
    report["url"] = args.url.into();
    report["stream"] = args.stream.into();
    report["duration_s"] = args.duration.into();
    report["warmup_s"] = args.warmup.into();
    if let Some(label) = args.label {
        report["label"] = label.into();
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report)?;
    writeln!(out)?;
    // Pending requests past the report (none: the run waits for all) must
    // not hold the process open.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
