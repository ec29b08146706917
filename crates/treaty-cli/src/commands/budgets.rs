//! `treaty budgets set|list|remove`: spending limits in the store.
//!
//! Budgets live in the store, whoever set them (`[[budgets]]` in the
//! config is written there when the gateway starts); running gateways
//! pick up a change within five seconds. This module only edits and reads
//! budget rows; enforcing them is `treaty-limits`' work.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use treaty_limits::{BudgetSpec, Period, Scope, format_usd, parse_budget};

use crate::output;
use crate::state::StateArgs;

#[derive(Debug, Subcommand)]
pub enum BudgetsCommand {
    /// Create or change a budget: `treaty budgets set --tenant acme 500usd/month`.
    Set(SetArgs),
    /// Every budget with its spend this period.
    List(ListArgs),
    /// Remove a budget (and its recorded spend) by id, as `list` shows it.
    Remove(RemoveArgs),
}

/// Which calls a budget covers: one key, one tenant, or one tenant's
/// product through one channel.
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// A key id (`key_...`).
    #[arg(long, conflicts_with_all = ["tenant", "channel", "product"])]
    pub key: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// With --tenant and --product: only what the tenant buys through
    /// this channel.
    #[arg(long, requires_all = ["tenant", "product"])]
    pub channel: Option<String>,
    #[arg(long, requires_all = ["tenant", "channel"])]
    pub product: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> anyhow::Result<Scope> {
        Ok(
            match (&self.key, &self.tenant, &self.channel, &self.product) {
                (Some(k), None, None, None) => Scope::Key(k.clone()),
                (None, Some(t), None, None) => Scope::Tenant(t.clone()),
                (None, Some(t), Some(c), Some(p)) => Scope::Offer {
                    tenant: t.clone(),
                    channel: c.clone(),
                    product: p.clone(),
                },
                _ => {
                    bail!("give --key KEY_ID, or --tenant T, or --tenant T --channel C --product P")
                }
            },
        )
    }
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// AMOUNT/PERIOD in USD: "10usd/month", "2.50usd/day", "100usd/total".
    /// Periods reset at UTC midnight (the first of the month for month).
    pub budget: String,
    /// Percentages of the amount that log a warning and count in metrics
    /// when crossed (comma-separated, e.g. "50,80").
    #[arg(long, value_delimiter = ',')]
    pub soft: Vec<u8>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The budget id, e.g. "tenant/acme/month".
    pub id: String,
}

pub async fn run(cmd: BudgetsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BudgetsCommand::Set(args) => set(args).await,
        BudgetsCommand::List(args) => list(args).await,
        BudgetsCommand::Remove(args) => remove(args).await,
    }
}

/// Reads a budget and its soft thresholds as the CLI writes them.
pub fn spec(scope: Scope, budget: &str, soft: &[u8]) -> anyhow::Result<BudgetSpec> {
    let (limit_micros, period) = parse_budget(budget)?;
    if let Some(p) = soft.iter().find(|p| !(1..=100).contains(*p)) {
        bail!("--soft {p}: thresholds are percentages between 1 and 100");
    }
    let mut soft_percents = soft.to_vec();
    soft_percents.sort_unstable();
    soft_percents.dedup();
    Ok(BudgetSpec {
        scope,
        period,
        limit_micros,
        soft_percents,
    })
}

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let scope = args.scope.scope()?;
    if let (Some(c), Scope::Tenant(t) | Scope::Offer { tenant: t, .. }) = (&config, &scope) {
        let (channel, product) = match &scope {
            Scope::Offer {
                channel, product, ..
            } => (Some(channel.as_str()), Some(product.as_str())),
            _ => (None, None),
        };
        if c.tenant(t).is_none() {
            bail!("unknown tenant {t:?}");
        }
        if let Some(ch) = channel
            && c.channel(ch).is_none()
        {
            bail!("unknown channel {ch:?}");
        }
        if let Some(p) = product
            && c.product(p).is_none()
        {
            bail!("unknown product {p:?}");
        }
    }
    let spec = spec(scope, &args.budget, &args.soft)?;
    let store = args.state.open(config.as_ref()).await?;
    if let Scope::Key(k) = &spec.scope
        && store.key_by_id(k).await?.is_none()
    {
        bail!("no key with id {k:?} (see `treaty keys list`)");
    }
    store
        .put_budget(&spec.to_row("cli", treaty_keys::now_ms()))
        .await?;
    crate::state::record_admin(
        config.as_ref(),
        &store,
        "budgets.set",
        &spec.id(),
        format!(
            "{} per {}",
            format_usd(spec.limit_micros),
            spec.period.as_str()
        ),
    )
    .await;
    output::line(format!(
        "budget {}: {} per {}",
        spec.id(),
        format_usd(spec.limit_micros),
        period_word(spec.period)
    ));
    Ok(ExitCode::SUCCESS)
}

fn period_word(p: Period) -> &'static str {
    match p {
        Period::Day => "day (UTC)",
        Period::Month => "month (UTC)",
        Period::Total => "lifetime (never resets)",
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let views = treaty_limits::list_budgets(&store, treaty_keys::now_ms())
        .await
        .context("reading budgets and their spend")?;
    match args.format {
        Format::Json => output::line(serde_json::to_string_pretty(&views)?),
        Format::Text => {
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.id.clone(),
                        v.limit_usd.clone(),
                        v.spent_usd.clone(),
                        format_usd(v.remaining_micros),
                        v.resets_at.clone().unwrap_or_else(|| "never".into()),
                        v.source.clone(),
                    ]
                })
                .collect();
            output::line(output::table(
                &["BUDGET", "LIMIT", "SPENT", "REMAINING", "RESETS", "SET BY"],
                &rows,
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(args: RemoveArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    if !store.delete_budget(&args.id).await? {
        bail!("no budget {:?} (see `treaty budgets list`)", args.id);
    }
    crate::state::record_admin(
        config.as_ref(),
        &store,
        "budgets.remove",
        &args.id,
        String::new(),
    )
    .await;
    output::line(format!("removed budget {}", args.id));
    Ok(ExitCode::SUCCESS)
}
