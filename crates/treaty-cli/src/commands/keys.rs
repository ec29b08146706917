//! `treaty keys create|list|revoke`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use treaty_keys::{KeyRequest, KeyView};

use crate::output;
use crate::state::StateArgs;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create(CreateArgs),
    /// List keys (never their secrets).
    List(ListArgs),
    /// Revoke a key by id.
    Revoke(RevokeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub channel: String,
    #[arg(long)]
    pub product: String,
    /// A label for people.
    #[arg(long)]
    pub name: Option<String>,
    /// Limit the key to these public model names (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// When the key stops working: an RFC 3339 time or a duration from now
    /// ("30d", "12h").
    #[arg(long)]
    pub expires: Option<String>,
    /// Workload classes this key may declare with the
    /// `x-treaty-workload-class` header (comma-separated, e.g. "training").
    #[arg(long, value_delimiter = ',')]
    pub declare_classes: Option<Vec<String>>,
    /// A spending budget for this key, AMOUNT/PERIOD in USD: "10usd/month",
    /// "2usd/day" or "50usd/total" (see `treaty budgets`).
    #[arg(long, value_name = "AMOUNT/PERIOD")]
    pub budget: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Only this tenant's keys.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The key id (`key_...`), as `keys list` shows it.
    pub id: String,
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Revoke(args) => revoke(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    match &config {
        Some(c) => {
            c.check_binding(&args.tenant, &args.channel, &args.product)
                .map_err(anyhow::Error::msg)?;
            if let Some(models) = &args.models {
                let served = c.model_names();
                if let Some(m) = models.iter().find(|m| !served.contains(&m.as_str())) {
                    bail!("no host serves model {m:?}");
                }
            }
        }
        None => output::warn(
            "no --config given: the tenant, channel and product are not checked against a configuration",
        ),
    }
    let expires_at = args.expires.as_deref().map(parse_expiry).transpose()?;
    let declare_classes = args
        .declare_classes
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    n.parse::<treaty_domain::WorkloadClass>()
                        .map_err(|()| anyhow::anyhow!("unknown workload class {n:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .transpose()?;
    // Read before the key exists, so a typo mints nothing.
    let budget = args
        .budget
        .as_deref()
        .map(|b| {
            crate::commands::budgets::spec(treaty_limits::Scope::Key(String::new()), b, &[])
                .with_context(|| format!("--budget {b:?}"))
        })
        .transpose()?;
    let store = args.state.open(config.as_ref()).await?;
    let (minted, view) = treaty_keys::issue(
        &store,
        KeyRequest {
            tenant: args.tenant,
            channel: args.channel,
            product: args.product,
            name: args.name,
            models: args.models,
            declare_classes,
            expires_at,
        },
    )
    .await?;
    crate::state::record_admin(
        config.as_ref(),
        &store,
        "keys.create",
        &view.id,
        format!("{}/{}/{}", view.tenant, view.channel, view.product),
    )
    .await;
    let budget = match budget {
        Some(spec) => {
            let spec = treaty_limits::BudgetSpec {
                scope: treaty_limits::Scope::Key(view.id.clone()),
                ..spec
            };
            store
                .put_budget(&spec.to_row("cli", treaty_keys::now_ms()))
                .await?;
            Some(spec)
        }
        None => None,
    };
    match args.format {
        Format::Json => {
            let mut v = serde_json::to_value(&view)?;
            v["secret"] = serde_json::Value::String(minted.secret);
            if let Some(b) = &budget {
                v["budget"] = serde_json::json!({
                    "id": b.id(),
                    "limit_micros": b.limit_micros,
                    "period": b.period.as_str(),
                });
            }
            output::line(serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            output::line(format!(
                "created {} for tenant {} via {} ({})",
                view.id, view.tenant, view.channel, view.product
            ));
            output::line(format!("secret: {}", minted.secret));
            if let Some(b) = &budget {
                output::line(format!(
                    "budget {}: {} per {}",
                    b.id(),
                    treaty_limits::format_usd(b.limit_micros),
                    b.period
                ));
            }
            output::line(
                "Store the secret now: it is not shown again and Treaty keeps only its hash.",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let rows = store.list_keys(args.tenant.as_deref()).await?;
    let views: Vec<KeyView> = rows.iter().map(KeyView::from).collect();
    match args.format {
        Format::Json => output::line(serde_json::to_string_pretty(&views)?),
        Format::Text => {
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.id.clone(),
                        format!("{}…", v.prefix),
                        v.tenant.clone(),
                        v.channel.clone(),
                        v.product.clone(),
                        v.status.to_owned(),
                        v.expires_at.clone().unwrap_or_else(|| "never".into()),
                        v.name.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::line(output::table(
                &[
                    "ID", "PREFIX", "TENANT", "CHANNEL", "PRODUCT", "STATUS", "EXPIRES", "NAME",
                ],
                &rows,
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let config = args.state.load_config()?;
    let store = args.state.open(config.as_ref()).await?;
    let Some(row) = store.key_by_id(&args.id).await? else {
        bail!("no key with id {:?}", args.id);
    };
    if store.revoke_key(&args.id, treaty_keys::now_ms()).await? {
        crate::state::record_admin(
            config.as_ref(),
            &store,
            "keys.revoke",
            &args.id,
            format!("{}/{}/{}", row.tenant, row.channel, row.product),
        )
        .await;
        output::line(format!("revoked {}", args.id));
        output::line("Running gateways stop accepting it within server.key_cache_ttl.");
    } else {
        output::line(format!("{} was already revoked", args.id));
    }
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time, or a duration from now.
fn parse_expiry(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let d = humantime::parse_duration(text).with_context(|| {
        format!("--expires {text:?} is neither an RFC 3339 time nor a duration like 30d")
    })?;
    Ok(treaty_keys::now_ms() + d.as_millis() as i64)
}
