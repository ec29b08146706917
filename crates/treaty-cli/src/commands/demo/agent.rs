//! The demo's agent story: a Frontier agent with a webhook tool and an MCP
//! tool, run by `acme` through `aws-marketplace`, then where the contracts
//! let its state be held and where each of its model steps ran, read back
//! from the ledger, and where the state could be held under each reading.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use treaty_config::Config;
use treaty_emulator::EmulatorHandle;
use treaty_ledger::{DecisionRecord, RuntimeVerdict};

use super::{DemoKey, header};
use crate::commands::contracts::Replay;
use crate::output;

const TENANT: &str = "acme";
const CHANNEL: &str = "aws-marketplace";
const PRODUCT: &str = "frontier";
const WEBHOOK: &str = "create_ticket";
const CONNECTOR: &str = "orders";
/// The emulated model calls every tool it is offered at once when the
/// last user message carries this directive.
const PROMPT: &str = "[[tools:all]] Order 1042 arrived damaged: look it up and open a ticket.";
const READINGS: [&str; 3] = ["reading-openai", "reading-aws", "reading-microsoft"];

/// What the story needs from the demo.
pub(super) struct Story<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a str,
    pub keys: &'a [DemoKey],
    pub emulator: &'a EmulatorHandle,
    pub config: &'a Config,
    pub store: &'a treaty_store::Store,
    pub ledger: &'a treaty_ledger::Ledger,
    pub reading: &'a str,
}

/// Runs the story and prints it; false when something did not happen as
/// the active reading says it should.
pub(super) async fn run(s: &Story<'_>) -> anyhow::Result<bool> {
    let key = s
        .keys
        .iter()
        .find(|k| k.tenant == TENANT && k.channel == CHANNEL && k.product == PRODUCT)
        .map(|k| k.key.as_str())
        .context("demo key for acme/aws-marketplace/frontier missing")?;
    output::line("");
    output::line(format!(
        "Agent: a Frontier agent run by {TENANT} through {CHANNEL}, with webhook tool \
         `{WEBHOOK}` and MCP connector `{CONNECTOR}` (both on the emulator)"
    ));

    let agent = post(
        s,
        key,
        "/v1/agents",
        &json!({
            "name": "order-desk",
            "model": "gpt-4o",
            "instructions": "You help acme's customers with their orders.",
            "tools": [
                {"type": "webhook", "name": WEBHOOK},
                {"type": "mcp", "connector": CONNECTOR, "allowed_tools": ["lookup_order"]}
            ]
        }),
    )
    .await?;
    if agent.status != 200 {
        // Holding Frontier state here is refused under this reading; say
        // so with the clauses, then show where it could be held.
        output::line(format!(
            "  creating the agent: {} {} (clauses {})",
            agent.status, agent.detail, agent.clauses
        ));
        let hold = last_hold(s).await?;
        placements(s, hold.as_ref())?;
        return Ok(agent.status == 403);
    }
    let agent_id = agent.body["id"].as_str().context("agent without id")?;
    let run = post(
        s,
        key,
        &format!("/v1/agents/{agent_id}/runs"),
        &json!({"input": PROMPT}),
    )
    .await?;
    if run.status != 200 {
        bail!("starting the run: {} {}", run.status, run.detail);
    }
    let run_id = run.body["id"]
        .as_str()
        .context("run without id")?
        .to_owned();
    let started = Instant::now();
    let finished = wait(s, key, &run_id).await?;
    let status = finished["status"].as_str().unwrap_or("?").to_owned();
    let conversation = finished["conversation_id"].as_str().unwrap_or_default();
    let items = get(
        s,
        key,
        &format!("/v1/conversations/{conversation}/items?order=asc&limit=100"),
    )
    .await?;
    output::line(format!(
        "  agent {agent_id}; run {run_id}: {status} in {:.0} ms, {} model step(s)",
        started.elapsed().as_secs_f64() * 1000.0,
        finished["steps"]
    ));
    for line in conversation_lines(&items) {
        output::line(format!("    {line}"));
    }

    // The ledger's account of the story: the agent's and the run's state
    // held on this instance, each model step decided and placed on its own.
    s.ledger.flush().await?;
    let records = decisions(s.store, &[agent_id, run_id.as_str()]).await?;
    let rows: Vec<Vec<String>> = records
        .iter()
        .enumerate()
        .map(|(i, d)| ledger_row(s.config, i + 1, d, agent_id))
        .collect();
    output::line(output::table(
        &["#", "DECISION", "CLASS", "WHERE", "CLAUSES"],
        &rows,
    ));
    let effects = s.emulator.webhook_effects(WEBHOOK);
    output::line(format!(
        "  webhook `{WEBHOOK}`: {effects} side effect(s) at the receiver ({} signed call(s), \
         idempotency key run:call)",
        s.emulator.webhook_calls(WEBHOOK)
    ));
    let held: Vec<&DecisionRecord> = records.iter().filter(|d| d.runtime.is_some()).collect();
    let steps = records.iter().filter(|d| d.model_step).count();
    let steps_placed = records
        .iter()
        .filter(|d| d.model_step)
        .all(|d| d.admitted && d.chosen.is_some());
    let all_held = held
        .iter()
        .all(|d| d.runtime.as_ref().is_some_and(|r| r.allowed));
    placements(
        s,
        held.iter()
            .find(|d| d.run_id.as_deref() == Some(&run_id))
            .copied(),
    )?;
    let ok = status == "completed" && effects == 1 && steps >= 2 && steps_placed && all_held;
    if !ok {
        output::line(format!(
            "  Agent story FAILED: status {status}, webhook effects {effects}, {steps} model \
             step(s), all placed {steps_placed}, state held {all_held}"
        ));
    }
    Ok(ok)
}

struct Answer {
    status: u16,
    body: Value,
    clauses: String,
    detail: String,
}

async fn post(s: &Story<'_>, key: &str, path: &str, body: &Value) -> anyhow::Result<Answer> {
    let res = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let clauses = header(&res, "x-treaty-clauses");
    let body: Value = serde_json::from_slice(&res.bytes().await?).unwrap_or(Value::Null);
    let detail = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok(Answer {
        status,
        body,
        clauses,
        detail,
    })
}

async fn get(s: &Story<'_>, key: &str, path: &str) -> anyhow::Result<Value> {
    let res = s
        .http
        .get(format!("{}{path}", s.base))
        .bearer_auth(key)
        .send()
        .await?;
    let status = res.status();
    let body: Value = serde_json::from_slice(&res.bytes().await?)?;
    if !status.is_success() {
        bail!("GET {path}: {status} {}", body["error"]["message"]);
    }
    Ok(body)
}

/// Polls the run until it stops moving: finished, or waiting on a person.
async fn wait(s: &Story<'_>, key: &str, run_id: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = get(s, key, &format!("/v1/runs/{run_id}")).await?;
        let status = run["status"].as_str().unwrap_or_default();
        if !matches!(status, "queued" | "in_progress") {
            return Ok(run);
        }
        if Instant::now() > deadline {
            bail!("run {run_id} still {status} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The conversation, one short line an item.
fn conversation_lines(items: &Value) -> Vec<String> {
    let short = |s: &str, n: usize| {
        let cut: String = s.chars().take(n).collect();
        if cut.len() < s.len() {
            format!("{cut}…")
        } else {
            cut
        }
    };
    items["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| match item["type"].as_str().unwrap_or_default() {
            "message" => format!(
                "{}: \"{}\"",
                item["role"].as_str().unwrap_or("?"),
                short(item["content"][0]["text"].as_str().unwrap_or_default(), 70)
            ),
            "function_call" => format!(
                "tool call {}({})",
                item["name"].as_str().unwrap_or("?"),
                short(item["arguments"].as_str().unwrap_or_default(), 50)
            ),
            "function_call_output" => format!(
                "tool result: {}",
                short(item["output"].as_str().unwrap_or_default(), 70)
            ),
            other => other.to_owned(),
        })
        .collect()
}

/// The decision records about the given agent and run, in ledger order.
async fn decisions(
    store: &treaty_store::Store,
    state_ids: &[&str],
) -> anyhow::Result<Vec<DecisionRecord>> {
    let mut out = Vec::new();
    treaty_ledger::export(store, treaty_ledger::Format::Jsonl, &mut out).await?;
    let mut records = Vec::new();
    for line in String::from_utf8(out)?.lines() {
        if let Some(d) = decision_of(line)?
            && d.run_id
                .as_deref()
                .is_some_and(|id| state_ids.contains(&id))
        {
            records.push(d);
        }
    }
    Ok(records)
}

/// The last hold decision of the story's tenant, channel and product (a
/// refused agent's: its id was never returned).
async fn last_hold(s: &Story<'_>) -> anyhow::Result<Option<DecisionRecord>> {
    s.ledger.flush().await?;
    let mut out = Vec::new();
    treaty_ledger::export(s.store, treaty_ledger::Format::Jsonl, &mut out).await?;
    for line in String::from_utf8(out)?.lines().rev() {
        if let Some(d) = decision_of(line)?
            && d.runtime.is_some()
            && d.tenant == TENANT
            && d.channel == CHANNEL
            && d.product == PRODUCT
        {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// The decision in one line of the ledger's JSONL export, if it is one.
fn decision_of(line: &str) -> anyhow::Result<Option<DecisionRecord>> {
    let mut entry: Value = serde_json::from_str(line)?;
    if entry["kind"] != "decision" {
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(entry["record"].take())?))
}

fn ledger_row(config: &Config, n: usize, d: &DecisionRecord, agent_id: &str) -> Vec<String> {
    let what = if let Some(tool) = &d.tool {
        (
            format!("use {} ({})", tool.name, tool.kind),
            if tool.allowed {
                "allowed, then called".to_owned()
            } else {
                "REFUSED".to_owned()
            },
            tool.clauses.join(","),
        )
    } else if let Some(hold) = &d.runtime {
        // The operation on the state (`agents.create`, `runs.retrieve`,
        // ...), as the ledger names it.
        let op = match d.operation.as_deref() {
            Some(op) => op.to_owned(),
            None if d.run_id.as_deref() == Some(agent_id) => "agent state".to_owned(),
            None => "run state".to_owned(),
        };
        (
            op,
            format!(
                "{} on {} ({}/{})",
                if hold.allowed { "held" } else { "REFUSED" },
                hold.instance,
                hold.cloud,
                hold.region
            ),
            hold.clauses.join(","),
        )
    } else {
        let host = d.chosen.as_deref().unwrap_or("(none)");
        let place = config
            .hosts
            .iter()
            .find(|h| h.id().as_str() == host)
            .map(|h| format!(" ({}/{})", h.host.cloud, h.host.region))
            .unwrap_or_default();
        let clauses: Vec<&str> = d
            .admit_clauses
            .iter()
            .chain(
                d.hosts
                    .iter()
                    .filter(|h| Some(h.host.as_str()) == d.chosen.as_deref())
                    .flat_map(|h| h.clauses.iter()),
            )
            .map(String::as_str)
            .collect();
        (
            format!(
                "model step {}",
                d.request_id.rsplit('.').next().unwrap_or("?")
            ),
            format!("ran on {host}{place}"),
            clauses.join(","),
        )
    };
    vec![
        n.to_string(),
        what.0,
        d.workload_class.clone(),
        what.1,
        what.2,
    ]
}

/// Where this story's state could be held: every reading, on this
/// instance and on an instance in AWS us-east, decided again from the
/// recorded hold (as `treaty contracts simulate` does).
fn placements(s: &Story<'_>, hold: Option<&DecisionRecord>) -> anyhow::Result<()> {
    let Some(hold) = hold else {
        return Ok(());
    };
    let here = &s.config.instance;
    let aws = RuntimeVerdict {
        instance: "treaty-aws-useast1".into(),
        cloud: "aws".into(),
        region: "us-east".into(),
        allowed: false,
        clauses: Vec::new(),
    };
    let mut rows = Vec::new();
    for reading in READINGS {
        let replay = Replay::load(s.config, reading, None)?;
        let mut row = vec![format!(
            "{reading}{}",
            if reading == s.reading {
                " (active)"
            } else {
                ""
            }
        )];
        for instance in [None, Some(&aws)] {
            let mut d = hold.clone();
            if let (Some(i), Some(r)) = (instance, d.runtime.as_mut()) {
                r.instance.clone_from(&i.instance);
                r.cloud.clone_from(&i.cloud);
                r.region.clone_from(&i.region);
            }
            let again = replay.redecide(&d);
            let verdict = again
                .runtime
                .map_or((false, Vec::new()), |r| (r.allowed, r.clauses));
            let clauses = if again.admitted {
                verdict.1
            } else {
                again.admit_clauses
            };
            row.push(format!(
                "{} ({})",
                if verdict.0 { "held" } else { "refused" },
                clauses.join(",")
            ));
        }
        rows.push(row);
    }
    output::line(format!(
        "  Where {TENANT}'s Frontier state ({CHANNEL}) may be held, by reading:"
    ));
    output::line(output::table(
        &[
            "READING",
            &format!("{} ({}/{}, THIS)", here.id, here.cloud, here.region),
            "AN AWS INSTANCE (aws/us-east)",
        ],
        &rows,
    ));
    Ok(())
}
