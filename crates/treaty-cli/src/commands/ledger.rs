//! `treaty ledger verify|pubkey|keygen|status|proof|report|export`.
//!
//! Thin edges over `treaty-ledger`: parse arguments, open the store, call
//! the library, print through `output` (progress bars go to stderr through
//! indicatif, hidden when stderr is not a terminal). This module never
//! writes to the ledger: every command here only reads it (`keygen` writes
//! a new key file, never the store).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use treaty_ledger::{Dimension, VerifyOptions};

use crate::output;
use crate::state::StateArgs;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute the hash chain and the Merkle tree and check every signed
    /// checkpoint, against the keys you pinned and the checkpoints you hold
    /// from outside the store. Exits 1 naming the first bad sequence number
    /// or the checkpoint that no longer matches (edited, deleted, inserted,
    /// reordered, truncated, a forged or foreign checkpoint, ...).
    Verify(VerifyArgs),
    /// Print the log's public key (a C2SP verifier key, name+id+base64),
    /// the one a third party pins and passes to `verify --pubkey`.
    Pubkey(PubkeyArgs),
    /// Write a new signing key file (mode 0600) and print its public key.
    Keygen(super::evidence::KeygenArgs),
    /// The head, the keys, the latest checkpoint and its cosignatures, and
    /// how publishing to each directory, endpoint and witness went.
    Status(super::evidence::StatusArgs),
    /// Print the inclusion proof (JSON) of a request's decision record, or
    /// of the record at --seq, against the latest signed checkpoint.
    Proof(super::evidence::ProofArgs),
    /// Requests, outcomes, tokens and cost grouped by key, host,
    /// channel, product, clause, tenant, workload class, time bucket, or
    /// where the shadow readings part from the reading in force.
    Report(ReportArgs),
    /// Every record, in sequence order, as JSON lines (exactly as hashed)
    /// or CSV.
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// First sequence number to verify (default 1). The check starts from
    /// the latest signed checkpoint before it.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Last sequence number to verify (default: to the end, head included).
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// A file holding the public key(s) checkpoints must be signed with
    /// (as `treaty ledger pubkey` prints them, one a line); default the
    /// keys the store lists, which proves only that it agrees with itself.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// A checkpoint held outside the store (a published file, a witness's
    /// copy). Repeatable. Needs --pubkey.
    #[arg(long, value_name = "FILE", requires = "pubkey")]
    pub checkpoint: Vec<PathBuf>,
    /// A witness's state directory: every checkpoint it cosigned.
    #[arg(long, value_name = "DIR", requires = "pubkey")]
    pub witness_state: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

#[derive(Debug, Args)]
pub struct PubkeyArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Every key that ever signed the log, the active one last.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Key,
    /// The host that served (or was chosen); `(instance ID)` for
    /// operations on held state and tool calls; `(none)` for requests
    /// that ran nowhere.
    Host,
    Channel,
    Product,
    Clause,
    Tenant,
    Class,
    /// Time buckets (--bucket), keyed by their RFC 3339 start.
    Time,
    /// Per shadow reading (`contracts.shadow`): where it agrees with the
    /// reading in force and where it parts (would refuse, would admit,
    /// another host, the host in force not allowed), with the clauses.
    Divergence,
}

impl By {
    /// The dimension; `bucket_ms` is the time bucket's width.
    fn dimension(self, bucket_ms: i64) -> Dimension {
        match self {
            By::Key => Dimension::Key,
            By::Host => Dimension::Host,
            By::Channel => Dimension::Channel,
            By::Product => Dimension::Product,
            By::Clause => Dimension::Clause,
            By::Tenant => Dimension::Tenant,
            By::Class => Dimension::Class,
            By::Time => Dimension::Time { bucket_ms },
            By::Divergence => Dimension::Divergence,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

/// `--since` / `--until`, shared with `treaty report --html`.
#[derive(Debug, Clone, Args)]
pub struct TimeArgs {
    /// Only requests decided at or after this time: RFC 3339
    /// ("2026-01-01T00:00:00Z"), a date ("2026-01-01", UTC), or a duration
    /// ago ("24h", "7d").
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only requests decided before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl TimeArgs {
    /// The range in unix milliseconds.
    pub fn range(&self) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        let since = self
            .since
            .as_deref()
            .map(|t| parse_time(t).with_context(|| format!("--since {t:?}")))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| parse_time(t).with_context(|| format!("--until {t:?}")))
            .transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            bail!("--until must be after --since");
        }
        Ok((since, until))
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum)]
    pub by: By,
    /// With --by time: the width of a bucket ("1h", "15m", "1d"), buckets
    /// aligned to the Unix epoch in UTC. Default: chosen so the range has
    /// at most about 60 buckets, as in the HTML report (the table says
    /// which; pass it to scripts).
    #[arg(long, value_name = "DURATION")]
    pub bucket: Option<String>,
    #[command(flatten)]
    pub time: TimeArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Verify(args) => verify(args).await,
        LedgerCommand::Pubkey(args) => pubkey(args).await,
        LedgerCommand::Keygen(args) => super::evidence::keygen(args),
        LedgerCommand::Status(args) => super::evidence::status(args).await,
        LedgerCommand::Proof(args) => super::evidence::proof(args).await,
        LedgerCommand::Report(args) => report(args).await,
        LedgerCommand::Export(args) => export(args).await,
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let origin = treaty_ledger::active_key(&store).await?.map(|k| k.name);
    let keys = match &args.pubkey {
        None => Vec::new(),
        Some(file) => super::evidence::read_keys(file, origin.as_deref())?,
    };
    let checkpoints =
        super::evidence::held_checkpoints(&args.checkpoint, args.witness_state.as_deref())?;
    let mut progress = Progress::new("verifying");
    let report = treaty_ledger::verify(
        &store,
        VerifyOptions {
            from: args.from,
            to: args.to,
            keys,
            checkpoints,
        },
        |done, total| progress.update(done, total),
    )
    .await?;
    progress.finish();
    match args.format {
        TextOrJson::Json => output::line(serde_json::to_string_pretty(&report)?),
        TextOrJson::Text => {
            if report.stored_key_differs {
                output::warn("the store holds another checkpoint key than the one given");
            }
            match &report.problem {
                None => {
                    let range = if report.records == 0 {
                        "no records".to_owned()
                    } else {
                        format!(
                            "records {} to {} ({} records)",
                            report.first, report.last, report.records
                        )
                    };
                    output::line(format!(
                        "ledger ok: {range}, {} signed checkpoint(s) checked{}",
                        report.checkpoints,
                        report
                            .last_checkpoint
                            .map(|s| format!(", the last at seq {s}"))
                            .unwrap_or_default()
                    ));
                    output::line(format!(
                        "head: seq {} hash {}",
                        report.head_seq, report.head_hash
                    ));
                    if let Some(root) = &report.tree_root {
                        output::line(format!(
                            "Merkle root of {} records: {root}",
                            report.head_seq
                        ));
                    }
                    if report.keys.is_empty() {
                        output::warn("the store has no key yet: no checkpoint could be checked");
                    }
                    for key in &report.keys {
                        output::line(format!(
                            "key ({}): {key}",
                            match report.key_source {
                                treaty_ledger::KeySource::Given => "pinned",
                                _ => "from the store: pin it with --pubkey to bind the operator",
                            }
                        ));
                    }
                    if report.external_checkpoints > 0 {
                        output::line(format!(
                            "{} checkpoint(s) held outside the store match the log",
                            report.external_checkpoints
                        ));
                    }
                    if report.anchor.seq > 0 {
                        output::line(format!(
                            "started from seq {} ({})",
                            report.anchor.seq,
                            match report.anchor.kind {
                                treaty_ledger::AnchorKind::Checkpoint => "a signed checkpoint",
                                _ => "its stored hash, unsigned",
                            }
                        ));
                    }
                }
                Some(p) => {
                    output::line(format!(
                        "ledger BROKEN at seq {}: {}: {}",
                        p.seq, p.kind, p.detail
                    ));
                }
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn pubkey(args: PubkeyArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let keys = treaty_ledger::log_keys(&store).await?;
    let Some(active) = keys.last() else {
        output::warn("the log has no signing key yet: start it once (or `treaty ledger keygen`)");
        return Ok(ExitCode::from(1));
    };
    if args.all {
        for k in &keys {
            output::line(k.to_string());
        }
    } else {
        output::line(active.to_string());
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix milliseconds as RFC 3339.
pub fn rfc3339(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at_ms.to_string())
}

/// A `--bucket` width in milliseconds.
fn bucket_ms(text: &str) -> anyhow::Result<i64> {
    let width = humantime::parse_duration(text)
        .with_context(|| format!("--bucket {text:?} is not a duration (1h, 15m, 1d)"))?;
    let ms = i64::try_from(width.as_millis()).unwrap_or(i64::MAX);
    if ms < 1 {
        bail!("--bucket {text:?}: a bucket must be at least 1ms wide");
    }
    Ok(ms)
}

async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let (since, until) = args.time.range()?;
    if args.bucket.is_some() && args.by != By::Time {
        bail!("--bucket applies to --by time only");
    }
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let bucket = match (&args.bucket, args.by) {
        (Some(text), _) => bucket_ms(text)?,
        (None, By::Time) => treaty_ledger::auto_bucket(&store, since, until).await?,
        (None, _) => 0,
    };
    let by = args.by.dimension(bucket);
    let rows = treaty_ledger::report(&store, by, since, until).await?;
    if let ReportFormat::Table = args.format {
        match by {
            Dimension::Time { bucket_ms } => output::line(format!(
                "time buckets of {} (UTC)",
                humantime::format_duration(std::time::Duration::from_millis(
                    bucket_ms.unsigned_abs()
                ))
            )),
            Dimension::Divergence if rows.is_empty() => {
                output::line(
                    "No decision in this range carries a shadow reading: set \
                     contracts.shadow = [\"reading-aws\"] (for example) to decide each request \
                     under other readings too, beside the one in force.",
                );
                return Ok(ExitCode::SUCCESS);
            }
            Dimension::Divergence => {
                for sentence in treaty_ledger::divergence_summary(&rows) {
                    output::line(sentence);
                }
                output::line("");
            }
            _ => {}
        }
    }
    match args.format {
        ReportFormat::Json => output::line(serde_json::to_string_pretty(&rows)?),
        ReportFormat::Csv => {
            let mut buf = Vec::new();
            treaty_ledger::write_report_csv(by, &rows, &mut buf)?;
            output::line(String::from_utf8(buf)?.trim_end_matches('\n'));
        }
        ReportFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut cells = treaty_ledger::report_cells(by, r);
                    for cell in cells.iter_mut().filter(|c| c.is_empty()) {
                        "-".clone_into(cell);
                    }
                    cells
                })
                .collect();
            let headers: Vec<String> = treaty_ledger::report_columns(by)
                .into_iter()
                .map(|c| c.to_uppercase().replace('_', " "))
                .collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            output::line(output::table(&headers, &cells).trim_end_matches('\n'));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let format = match args.format {
        ExportFormat::Jsonl => treaty_ledger::Format::Jsonl,
        ExportFormat::Csv => treaty_ledger::Format::Csv,
    };
    let mut progress = Progress::new("exporting");
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let n = treaty_ledger::export_with_progress(
                &store,
                format,
                std::io::BufWriter::new(file),
                |done, total| progress.update(done, total),
            )
            .await?;
            progress.finish();
            output::line(format!("exported {n} records to {}", path.display()));
        }
        None => {
            let mut sink = LineSink::default();
            treaty_ledger::export_with_progress(&store, format, &mut sink, |done, total| {
                progress.update(done, total)
            })
            .await?;
            progress.finish();
            sink.finish();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses RFC 3339, a `YYYY-MM-DD` date (UTC midnight) or a duration ago.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date_format) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("{text:?} is not an RFC 3339 time, a date (2026-01-01) or a duration ago (24h)")
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    Ok(now as i64 - ago.as_millis() as i64)
}

/// A progress bar on stderr for long runs (shown from `MIN_TOTAL` items
/// on; indicatif hides it when stderr is not a terminal).
pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
}

impl Progress {
    const MIN_TOTAL: u64 = 50_000;

    pub fn new(label: &'static str) -> Progress {
        Progress { label, bar: None }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        if self.bar.is_none() && total >= Self::MIN_TOTAL {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {human_pos}/{human_len} ({eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(self.label);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Collects written bytes and hands whole lines to `output::line` in
/// chunks, so large exports reach stdout through the one place allowed to
/// write there, without a call per line.
#[derive(Default)]
struct LineSink {
    buf: Vec<u8>,
}

impl LineSink {
    const CHUNK: usize = 64 * 1024;

    /// Emits every complete line held.
    fn emit_lines(&mut self) {
        let Some(end) = self.buf.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.buf.split_off(end + 1);
        self.buf.truncate(end);
        output::line(String::from_utf8_lossy(&self.buf));
        self.buf = rest;
    }

    fn finish(mut self) {
        self.emit_lines();
        if !self.buf.is_empty() {
            output::line(String::from_utf8_lossy(&self.buf));
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.emit_lines();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z").unwrap(),
            1_767_225_600_000
        );
        assert_eq!(parse_time("2026-01-01").unwrap(), 1_767_225_600_000);
        let ago = parse_time("1h").unwrap();
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        assert!((now - ago - 3_600_000).abs() < 5_000);
        assert!(parse_time("yesterday-ish").is_err());
    }

    #[test]
    fn buckets_are_durations_of_at_least_a_millisecond() {
        assert_eq!(bucket_ms("1h").unwrap(), 3_600_000);
        assert_eq!(bucket_ms("15m").unwrap(), 900_000);
        assert_eq!(bucket_ms("1d").unwrap(), 86_400_000);
        assert!(bucket_ms("0s").is_err());
        assert!(bucket_ms("hourly").is_err());
    }

    #[test]
    fn ranges_must_be_ordered() {
        let t = TimeArgs {
            since: Some("2026-01-02".into()),
            until: Some("2026-01-01".into()),
        };
        assert!(t.range().is_err());
    }
}
