//! `treaty contracts check|explain|simulate`.
//!
//! Thin edges over the decision core: load the config with the reading
//! asked for, call `treaty_policy` (check, explain, or redecide every
//! recorded request under two readings and count with
//! `treaty_ledger::Simulation`), print the answer. Never writes the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use treaty_config::{Config, ProcessEnv};
use treaty_contracts::CheckOptions;
use treaty_domain::Instance;
use treaty_policy::{ExplainRequest, Policy, explain, redecide};

use crate::output;

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Validate the contracts against the schema and analyse them: dead
    /// zones (admitted but no host allowed), clauses that never apply,
    /// shadowed permits and conflicting clauses (symbolic checks with cvc5).
    /// Exits 1 on errors (schema violations, dead zones).
    Check(CheckArgs),
    /// Explain the decision for one request: admission, workload class,
    /// every host's verdict and the runtime verdict, with clause ids.
    Explain(ExplainArgs),
    /// Replay the recorded requests (the ledger) under another reading or
    /// other classification rules: what keeps its host, moves, becomes
    /// refused or admitted, per clause and per tenant x channel x product x
    /// class, and what separates the readings: the clauses that stop and
    /// start applying, and the classification rules that changed.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Treaty config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Store URL holding the ledger; default: the config's.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// The reading the traffic is replayed under first.
    #[arg(long, value_name = "READING")]
    pub from: String,
    /// The reading it is compared with.
    #[arg(long, value_name = "READING")]
    pub to: String,
    /// Classification rules for the `--to` side instead of the reading's.
    #[arg(long, value_name = "FILE")]
    pub classification: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReadingArgs {
    /// Treaty config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The contract reading to use instead of the config's.
    #[arg(long, value_name = "NAME")]
    pub reading: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub reading: ReadingArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Skip the symbolic (cvc5) checks.
    #[arg(long)]
    pub no_solver: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub reading: ReadingArgs,
    /// A JSON file: {"tenant", "channel", "product", "route", "body", "at"}.
    #[arg(long, value_name = "FILE")]
    pub request: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Loads the config with `--reading` applied.
pub fn load(args: &ReadingArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(&args.config, &ProcessEnv)?;
    if let Some(reading) = &args.reading {
        apply_reading(&mut config, reading)?;
    }
    Ok(config)
}

/// Switches the reading in force, checking it exists.
pub fn apply_reading(config: &mut Config, reading: &str) -> anyhow::Result<()> {
    let Some(contracts) = config.contracts.as_mut() else {
        bail!("--reading {reading:?} given, but the config has no [contracts] section");
    };
    let dir = contracts.dir.join(reading);
    if !dir.is_dir() {
        bail!(
            "no reading {reading:?}: {} is not a directory",
            dir.display()
        );
    }
    contracts.reading = reading.to_owned();
    Ok(())
}

pub async fn run(cmd: ContractsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContractsCommand::Check(args) => check(args),
        ContractsCommand::Explain(args) => explain_cmd(args),
        ContractsCommand::Simulate(args) => simulate(args).await,
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.reading)?;
    if config.contracts.is_none() {
        bail!("the config has no [contracts] section: nothing to check");
    }
    let policy = Policy::load(Arc::new(config))?;
    let Some(contracts) = policy.contracts() else {
        bail!("no contracts loaded");
    };
    let report = contracts.check(&CheckOptions {
        use_solver: !args.no_solver,
        ..CheckOptions::default()
    });
    match args.format {
        Format::Json => output::line(serde_json::to_string_pretty(&report)?),
        Format::Text => output::line(&report),
    }
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn explain_cmd(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.reading)?;
    let policy = Policy::load(Arc::new(config))?;
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    let req: ExplainRequest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an explain request", args.request.display()))?;
    let v = explain(&policy, &req).map_err(anyhow::Error::msg)?;
    match args.format {
        Format::Json => output::line(serde_json::to_string_pretty(&v)?),
        Format::Text => output::line(render(&req, policy.reading(), &v)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let base = Config::load(&args.config, &ProcessEnv)?;
    let state = crate::state::StateArgs {
        config: Some(args.config.clone()),
        db: args.db.clone(),
    };
    let store = state.open(Some(&base)).await?;
    let bar = crate::progress::bar("replaying decisions");
    let report = what_if(
        &base,
        &store,
        &args.from,
        &args.to,
        args.classification.as_deref(),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    match args.format {
        Format::Json => output::line(serde_json::to_string_pretty(&report)?),
        Format::Text => output::line(render_simulation(&args, &report)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Replays the ledger in `store` under reading `from`, then `to` (with
/// `classification` rules on the `to` side when given).
pub async fn what_if(
    base: &Config,
    store: &treaty_store::Store,
    from: &str,
    to: &str,
    classification: Option<&std::path::Path>,
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<treaty_ledger::SimulationReport> {
    let from = Replay::load(base, from, None)?;
    let to = Replay::load(base, to, classification)?;
    let simulation = treaty_ledger::Simulation::between(
        treaty_policy::reading_clauses(&from.policy),
        treaty_policy::reading_clauses(&to.policy),
    );
    Ok(simulation
        .replay(
            store,
            treaty_ledger::TimeRange::default(),
            &|d| from.redecide(d),
            &|d| to.redecide(d),
            progress,
        )
        .await?)
}

/// One reading, ready to decide recorded requests again. A decision to
/// hold state is replayed for the instance that made it, so a ledger
/// written by several instances (on several clouds) replays each hold
/// where it was asked for; the policy for another instance is loaded the
/// first time one of its holds comes up.
pub struct Replay {
    policy: Policy,
    classification: Option<PathBuf>,
    elsewhere: std::sync::Mutex<HashMap<InstanceKey, Option<Arc<Policy>>>>,
}

/// An instance's id, cloud and region.
type InstanceKey = (String, String, String);

impl Replay {
    /// `reading` over `base`, with `classification` rules when given.
    pub fn load(
        base: &Config,
        reading: &str,
        classification: Option<&std::path::Path>,
    ) -> anyhow::Result<Replay> {
        let mut config = base.clone();
        apply_reading(&mut config, reading)?;
        // A replay decides under one reading: shadow readings would only
        // cost time (and one may be this very reading).
        if let Some(contracts) = config.contracts.as_mut() {
            contracts.shadow.clear();
        }
        let policy = Self::policy(config, classification)?;
        Ok(Replay {
            policy,
            classification: classification.map(std::path::Path::to_path_buf),
            elsewhere: std::sync::Mutex::default(),
        })
    }

    fn policy(config: Config, classification: Option<&std::path::Path>) -> anyhow::Result<Policy> {
        let mut policy = Policy::load(Arc::new(config))?;
        if let Some(file) = classification {
            policy.set_classifier(treaty_policy::load_rules(file)?, file.display().to_string());
        }
        Ok(policy)
    }

    /// The recorded request decided under this reading.
    pub fn redecide(&self, d: &treaty_ledger::DecisionRecord) -> treaty_ledger::Redecision {
        let here = &self.policy.config().instance;
        if let Some(hold) = &d.runtime
            && (hold.instance != here.id || hold.cloud != here.cloud || hold.region != here.region)
            && let Some(there) = self.at(Instance {
                id: hold.instance.clone(),
                cloud: hold.cloud.clone(),
                region: hold.region.clone(),
            })
        {
            return redecide(&there, d);
        }
        redecide(&self.policy, d)
    }

    /// The reading for another instance; `None` (replayed on this one)
    /// if it cannot be loaded, which it can whenever this one could.
    fn at(&self, instance: Instance) -> Option<Arc<Policy>> {
        let Ok(mut elsewhere) = self.elsewhere.lock() else {
            return None;
        };
        let key = (
            instance.id.clone(),
            instance.cloud.clone(),
            instance.region.clone(),
        );
        elsewhere
            .entry(key)
            .or_insert_with(|| {
                let mut config = (**self.policy.config()).clone();
                config.instance = instance;
                Self::policy(config, self.classification.as_deref())
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }
}

/// The what-if report as text: totals, host moves, then the clauses and
/// groups whose requests change.
pub fn render_simulation(args: &SimulateArgs, r: &treaty_ledger::SimulationReport) -> String {
    let t = &r.total;
    let mut out = format!(
        "{} -> {}{}: {} recorded requests; {} keep their host, {} move, {} become refused, {} become admitted, {} stay refused ({} reclassified)\n",
        args.from,
        args.to,
        args.classification
            .as_ref()
            .map(|f| format!(" (classification {})", f.display()))
            .unwrap_or_default(),
        t.requests,
        t.keep,
        t.moved,
        t.became_refused,
        t.became_admitted,
        t.stayed_refused,
        t.reclassified
    );
    if !r.moves.is_empty() {
        let rows: Vec<Vec<String>> = r
            .moves
            .iter()
            .map(|m| vec![m.from.clone(), m.to.clone(), m.requests.to_string()])
            .collect();
        out.push_str("\nmoves\n");
        out.push_str(&output::table(&["FROM", "TO", "REQUESTS"], &rows));
    }
    if !r.rules.is_empty() {
        let rows: Vec<Vec<String>> = r
            .rules
            .iter()
            .map(|c| {
                vec![
                    format!("{} ({})", c.from_rule, c.from_class),
                    format!("{} ({})", c.to_rule, c.to_class),
                    c.requests.to_string(),
                ]
            })
            .collect();
        out.push_str("\nclassification rules that changed\n");
        out.push_str(&output::table(
            &[
                &format!("RULE UNDER {}", args.from.to_uppercase()),
                &format!("RULE UNDER {}", args.to.to_uppercase()),
                "REQUESTS",
            ],
            &rows,
        ));
    }
    let clause_rows: Vec<Vec<String>> = r
        .by_clause
        .iter()
        .filter(|c| c.impact.changed() > 0 || c.stopped > 0 || c.started > 0)
        .map(|c| {
            vec![
                c.clause.clone(),
                c.stopped.to_string(),
                c.started.to_string(),
                c.impact.moved.to_string(),
                c.impact.became_refused.to_string(),
                c.impact.became_admitted.to_string(),
                c.impact.keep.to_string(),
            ]
        })
        .collect();
    if !clause_rows.is_empty() {
        out.push_str(
            "\nby clause (clauses behind a changed verdict, or that stop or start applying)\n",
        );
        out.push_str(&output::table(
            &[
                "CLAUSE",
                "STOPS APPLYING",
                "STARTS APPLYING",
                "MOVED",
                "BECAME REFUSED",
                "BECAME ADMITTED",
                "KEEP",
            ],
            &clause_rows,
        ));
    }
    let group_rows: Vec<Vec<String>> = r
        .by_group
        .iter()
        .filter(|g| g.impact.changed() > 0)
        .map(|g| {
            let moves: Vec<String> = g
                .moves
                .iter()
                .map(|m| format!("{}->{} x{}", m.from, m.to, m.requests))
                .collect();
            vec![
                g.tenant.clone(),
                g.channel.clone(),
                g.product.clone(),
                g.class.clone(),
                g.impact.requests.to_string(),
                g.impact.moved.to_string(),
                g.impact.became_refused.to_string(),
                g.impact.became_admitted.to_string(),
                moves.join(", "),
            ]
        })
        .collect();
    if !group_rows.is_empty() {
        out.push_str("\nby tenant x channel x product x class (changed only)\n");
        out.push_str(&output::table(
            &[
                "TENANT", "CHANNEL", "PRODUCT", "CLASS", "REQUESTS", "MOVED", "REFUSED",
                "ADMITTED", "MOVES",
            ],
            &group_rows,
        ));
    }
    let separated: Vec<&treaty_ledger::GroupImpact> =
        r.by_group.iter().filter(|g| g.separated()).collect();
    if !separated.is_empty() {
        out.push_str(&format!(
            "\nwhat separates {} from {} (per tenant x channel x product x class)\n",
            args.to, args.from
        ));
        for g in separated {
            out.push_str(&separation(g));
        }
    }
    out
}

/// One group's block: what happens to it, the clauses that stop and start
/// applying, and the rules that changed.
fn separation(g: &treaty_ledger::GroupImpact) -> String {
    let counted = |c: &[treaty_ledger::ClauseCount]| -> String {
        if c.is_empty() {
            return "-".to_owned();
        }
        c.iter()
            .map(|c| format!("{} ({})", c.clause, c.requests))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let i = &g.impact;
    let mut fate = vec![match i.requests {
        1 => "1 request".to_owned(),
        n => format!("{n} requests"),
    }];
    for (n, what) in [
        (i.moved, "move"),
        (i.became_refused, "become refused"),
        (i.became_admitted, "become admitted"),
        (i.keep, "keep their host or verdict"),
        (i.stayed_refused, "stay refused"),
    ] {
        if n > 0 {
            fate.push(format!("{n} {what}"));
        }
    }
    let mut out = format!(
        "  {}/{}/{} {}: {}\n    stop applying:  {}\n    start applying: {}\n",
        g.tenant,
        g.channel,
        g.product,
        g.class,
        fate.join(", "),
        counted(&g.stop_applying),
        counted(&g.start_applying)
    );
    for rule in &g.rules {
        out.push_str(&format!(
            "    classification: {} ({}) -> {} ({}) x{}\n",
            rule.from_rule, rule.from_class, rule.to_rule, rule.to_class, rule.requests
        ));
    }
    out
}

fn ids(v: &serde_json::Value) -> String {
    let list: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

fn yes(v: &serde_json::Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
}

fn render(req: &ExplainRequest, reading: Option<&str>, v: &serde_json::Value) -> String {
    let mut out = format!(
        "request:  tenant {} via {}, product {}, {}{}\nreading:  {}\nadmitted: {} [{}]\nclass:    {} (rule {})\nruntime:  {} [{}]\n\n",
        req.tenant,
        req.channel,
        req.product,
        req.route,
        req.at
            .as_deref()
            .map(|a| format!(" at {a}"))
            .unwrap_or_default(),
        reading.unwrap_or("(no contracts)"),
        yes(&v["admitted"]),
        ids(&v["admit_clauses"]),
        v["workload_class"].as_str().unwrap_or("?"),
        v["classified_by"].as_str().unwrap_or("?"),
        yes(&v["runtime"]["allowed"]),
        ids(&v["runtime"]["clauses"]),
    );
    let rows: Vec<Vec<String>> = v["hosts"]
        .as_array()
        .map(|hosts| {
            hosts
                .iter()
                .map(|h| {
                    vec![
                        h["id"].as_str().unwrap_or("?").to_owned(),
                        yes(&h["allowed"]).to_owned(),
                        ids(&h["clauses"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&output::table(&["HOST", "ALLOWED", "CLAUSES"], &rows));
    out
}
