//! `treaty demo`: the shipped Frontier example, end to end, on loopback.
//!
//! With no setup at all it writes the example config into a fresh
//! directory, starts Treaty's *emulated* upstreams and the gateway on
//! loopback, mints one key per tenant × channel × product, sends a mix of
//! real HTTP requests through the gateway (plain, streamed, embeddings, a
//! tool-call round trip, and refusals), runs a Frontier agent with a
//! webhook and an MCP tool ([`agent`]), prints what happened and exits 0
//! when every request got the answer it should. `--serve` keeps the
//! gateway up for a person or an SDK instead; `--shadow READING` decides
//! every request under other readings too, recorded beside each decision,
//! and shows where they part.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_keys::KeyRequest;

use crate::output;

mod agent;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's config and SQLite file (default: a fresh
    /// temporary directory, printed).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep serving until interrupted instead of sending the demo traffic.
    #[arg(long)]
    pub serve: bool,
    /// Gateway port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Write the demo keys as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub keys_out: Option<PathBuf>,
    /// Also decide every request under this reading (repeatable), beside
    /// the one in force, and record its verdict (`contracts.shadow`); the
    /// demo then says where the readings part on its traffic, as
    /// `treaty ledger report --by divergence` does.
    #[arg(long, value_name = "READING")]
    pub shadow: Vec<String>,
    /// With --serve: serve at once, without sending the demo's traffic
    /// first (the web UI then starts empty).
    #[arg(long)]
    pub no_traffic: bool,
    /// How long a web UI session may stay unused (the browser tests use
    /// seconds to see one expire).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ui_session_idle: Option<Duration>,
}

/// One demo key, as written by `--keys-out`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoKey {
    pub tenant: String,
    pub channel: String,
    pub product: String,
    pub key: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("treaty-demo-")
            .tempdir()?
            .keep(),
    };
    let config_path = crate::example::write(&dir).context("writing the example")?;

    let emulator = Emulator::start(
        EmulatorConfig {
            api_key: Some(crate::example::emulator_key().to_owned()),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await
    .context("starting the emulated upstreams")?;
    // The web UI's tokens: the ones in the environment, else fresh ones,
    // printed below so a person can sign in.
    let admin_token = token_from_env("TREATY_ADMIN_TOKEN");
    let auditor_token = token_from_env("TREATY_AUDITOR_TOKEN");
    let env = MapEnv::over_process()
        .with("TREATY_EMULATOR_URL", &emulator.url())
        .with("TREATY_ADMIN_TOKEN", &admin_token)
        .with("TREATY_AUDITOR_TOKEN", &auditor_token);
    let mut config = Config::load(&config_path, &env)?;
    shadow_readings(&mut config, &args.shadow)?;
    if let Some(idle) = args.ui_session_idle {
        config.server.ui_session_idle = idle;
    }
    let db = format!("sqlite://{}", dir.join("treaty.db").display());
    let store = treaty_store::Store::open(&db).await?;
    let gateway = treaty_gateway::Gateway::open(config.clone(), store.clone(), &env).await?;
    let reading = gateway.engine.policy.reading().unwrap_or("none").to_owned();
    let ledger = gateway.engine.ledger.clone();
    let _health = gateway.engine.spawn_health_checks();
    let workers = treaty_runtime::worker::spawn_workers(&gateway.runtime);
    let runtime = gateway.runtime.clone();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(treaty_gateway::serve(
        listener,
        treaty_gateway::app(gateway),
        async {
            let _ = stop_rx.await;
        },
    ));

    let keys = mint_keys(&config, &store).await?;
    if let Some(path) = &args.keys_out {
        crate::secret_file::write(path, &serde_json::to_vec_pretty(&keys)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    output::line("Treaty demo: the Frontier example on EMULATED upstreams");
    output::line(format!(
        "  upstreams: `treaty emulate` at {} (a local emulation; no real cloud is called)",
        emulator.url()
    ));
    output::line(format!("  gateway:   {base}"));
    output::line(format!("  metrics:   {base}/metrics (Prometheus)"));
    output::line(format!(
        "  contracts: reading {reading} (examples/frontier/contracts)"
    ));
    output::line(format!(
        "  directory: {} (config, SQLite store)",
        dir.display()
    ));
    output::line(format!(
        "  keys:      {} demo keys, one per tenant x channel x product",
        keys.len()
    ));

    let send_traffic = || async {
        let ok = traffic(&base, &keys, &emulator, &reading).await?;
        let story = agent::run(&agent::Story {
            http: &reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: &base,
            keys: &keys,
            emulator: &emulator,
            config: &config,
            store: &store,
            ledger: &ledger,
            reading: &reading,
        })
        .await?;
        ledger.flush().await?;
        anyhow::Ok(ok && story)
    };
    let code = if args.serve {
        if !args.no_traffic {
            // Something for the web UI to show from the first page.
            send_traffic().await?;
        }
        output::line("");
        if let Some(path) = &args.keys_out {
            output::line(format!("  keys file: {}", path.display()));
        }
        output::line(format!(
            "  web UI:    {base}/ui  (sign in with the admin token below)"
        ));
        output::line(format!("  admin token:   {admin_token}"));
        output::line(format!("  auditor token: {auditor_token} (read-only)"));
        output::line("Serving until interrupted (Ctrl-C).");
        // Machine-readable lines for scripts that start the demo.
        output::line(format!("TREATY_UI_URL={base}/ui"));
        output::line(format!("TREATY_ADMIN_TOKEN={admin_token}"));
        output::line(format!("TREATY_AUDITOR_TOKEN={auditor_token}"));
        output::line(format!("TREATY_GATEWAY_URL={base}"));
        super::shutdown_signal().await;
        ExitCode::SUCCESS
    } else {
        let ok = send_traffic().await?;
        let evidence = evidence(&config, &store, &reading).await?;
        output::line("");
        output::line(
            "To see this traffic in the web UI (overview, ledger, contract explorer, what-if): `treaty demo --serve`, then open the URL it prints and sign in with its admin token.",
        );
        if ok && evidence {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    for w in workers {
        w.abort();
    }
    runtime.shutdown().await;
    drop(runtime);
    ledger.shutdown().await?;
    emulator.shutdown().await;
    store.close().await;
    Ok(code)
}

/// Sets `contracts.shadow`, checking each reading exists and is not the
/// one in force.
fn shadow_readings(config: &mut Config, readings: &[String]) -> anyhow::Result<()> {
    if readings.is_empty() {
        return Ok(());
    }
    let Some(contracts) = config.contracts.as_mut() else {
        bail!("--shadow needs contracts, and the example has none");
    };
    for reading in readings {
        if *reading == contracts.reading {
            bail!("--shadow {reading}: that is the reading in force");
        }
        if !contracts.dir.join(reading).is_dir() {
            bail!(
                "--shadow {reading}: no such reading in {}",
                contracts.dir.display()
            );
        }
    }
    contracts.shadow = readings.to_vec();
    Ok(())
}

/// `name` from the environment, else a fresh random token.
fn token_from_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(t) if !t.is_empty() => t,
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            format!("demo-{}", hex::encode(bytes))
        }
    }
}

async fn mint_keys(config: &Config, store: &treaty_store::Store) -> anyhow::Result<Vec<DemoKey>> {
    let mut keys = Vec::new();
    for t in &config.tenants {
        for c in &config.channels {
            for p in &config.products {
                let (minted, _) = treaty_keys::issue(
                    store,
                    KeyRequest {
                        tenant: t.id.to_string(),
                        channel: c.id.to_string(),
                        product: p.id.to_string(),
                        name: Some("demo".into()),
                        models: None,
                        declare_classes: None,
                        expires_at: None,
                    },
                )
                .await?;
                keys.push(DemoKey {
                    tenant: t.id.to_string(),
                    channel: c.id.to_string(),
                    product: p.id.to_string(),
                    key: minted.secret,
                });
            }
        }
    }
    Ok(keys)
}

/// What one demo request is and what it should get.
struct Scenario {
    tenant: &'static str,
    channel: &'static str,
    product: &'static str,
    what: &'static str,
    kind: Kind,
    /// `x-treaty-prefer-host`, when the client asks for one host.
    prefer: Option<&'static str>,
    expect: u16,
}

enum Kind {
    Chat {
        model: &'static str,
        prompt: &'static str,
    },
    Stream {
        model: &'static str,
        prompt: &'static str,
    },
    Embeddings {
        input: &'static str,
    },
    ToolRoundTrip,
    BadKey,
}

const fn s(
    tenant: &'static str,
    channel: &'static str,
    product: &'static str,
    what: &'static str,
    kind: Kind,
    expect: u16,
) -> Scenario {
    Scenario {
        tenant,
        channel,
        product,
        what,
        kind,
        prefer: None,
        expect,
    }
}

const SCENARIOS: &[Scenario] = &[
    s(
        "acme",
        "direct",
        "api",
        "chat",
        Kind::Chat {
            model: "gpt-4o",
            prompt: "Summarise the Q3 supplier contracts.",
        },
        200,
    ),
    s(
        "acme",
        "aws-marketplace",
        "frontier",
        "chat, streamed",
        Kind::Stream {
            model: "gpt-4o",
            prompt: "Draft a plan for the onboarding agent.",
        },
        200,
    ),
    s(
        "dod",
        "direct",
        "api",
        "chat",
        Kind::Chat {
            model: "gpt-4o-mini",
            prompt: "Classify this logistics report.",
        },
        200,
    ),
    s(
        "dod",
        "aws-marketplace",
        "api",
        "embeddings",
        Kind::Embeddings {
            input: "mission briefing",
        },
        200,
    ),
    s(
        "eurobank",
        "azure-marketplace",
        "api",
        "embeddings",
        Kind::Embeddings {
            input: "KYC policy, section 4",
        },
        200,
    ),
    s(
        "eurobank",
        "direct",
        "frontier",
        "tool call round trip",
        Kind::ToolRoundTrip,
        200,
    ),
    s(
        "eurobank",
        "gcp-marketplace",
        "api",
        "chat, streamed",
        Kind::Stream {
            model: "gpt-4o",
            prompt: "Explain IFRS 9 in two lines.",
        },
        200,
    ),
    s(
        "acme",
        "gcp-marketplace",
        "chat",
        "chat, streamed",
        Kind::Stream {
            model: "gpt-4o-mini",
            prompt: "Write a haiku about contracts.",
        },
        200,
    ),
    Scenario {
        prefer: Some("gemini-uscentral1"),
        ..s(
            "acme",
            "gcp-marketplace",
            "chat",
            "chat on gemini, streamed",
            Kind::Stream {
                model: "gpt-4o",
                prompt: "Answer from Google Cloud, please.",
            },
            200,
        )
    },
    s(
        "acme",
        "gcp-marketplace",
        "frontier",
        "chat",
        Kind::Chat {
            model: "gpt-4o",
            prompt: "Sold through the wrong marketplace.",
        },
        403,
    ),
    Scenario {
        prefer: Some("bedrock-useast1"),
        ..s(
            "acme",
            "direct",
            "api",
            "chat on bedrock",
            Kind::Chat {
                model: "gpt-4o",
                prompt: "Run this on AWS, please.",
            },
            403,
        )
    },
    Scenario {
        prefer: Some("azure-westeurope"),
        ..s(
            "eurobank",
            "direct",
            "api",
            "chat on westeurope",
            Kind::Chat {
                model: "gpt-4o",
                prompt: "Keep it in the EU.",
            },
            200,
        )
    },
    s(
        "acme",
        "direct",
        "api",
        "unknown model",
        Kind::Chat {
            model: "gpt-9-ultra",
            prompt: "hello",
        },
        404,
    ),
    s(
        "acme",
        "direct",
        "chat",
        "model outside the product",
        Kind::Embeddings {
            input: "not for chat keys",
        },
        404,
    ),
    s("acme", "direct", "api", "bad key", Kind::BadKey, 401),
];

struct Result_ {
    status: u16,
    host: String,
    class: String,
    clauses: String,
    detail: String,
    ms: f64,
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

async fn traffic(
    base: &str,
    keys: &[DemoKey],
    emulator: &EmulatorHandle,
    reading: &str,
) -> anyhow::Result<bool> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (i, s) in SCENARIOS.iter().enumerate() {
        let key = keys
            .iter()
            .find(|k| k.tenant == s.tenant && k.channel == s.channel && k.product == s.product)
            .map(|k| k.key.clone())
            .context("demo key missing")?;
        let r = send(&http, base, &key, s).await?;
        let ok = r.status == s.expect;
        all_ok &= ok;
        rows.push(vec![
            (i + 1).to_string(),
            s.tenant.to_owned(),
            s.channel.to_owned(),
            s.product.to_owned(),
            s.what.to_owned(),
            format!("{}{}", r.status, if ok { "" } else { " (UNEXPECTED)" }),
            r.host,
            r.class,
            r.clauses,
            format!("{:.1}", r.ms),
            r.detail,
        ]);
    }
    output::line("");
    output::line(output::table(
        &[
            "#", "TENANT", "CHANNEL", "PRODUCT", "REQUEST", "STATUS", "HOST", "CLASS", "CLAUSES",
            "MS", "DETAIL",
        ],
        &rows,
    ));
    let hosts = [
        "azure-eastus",
        "azure-westus",
        "azure-westeurope",
        "bedrock-useast1",
        "gemini-uscentral1",
        "onprem-vllm",
    ];
    let seen: Vec<String> = hosts
        .iter()
        .map(|h| format!("{h}={}", emulator.requests_for(h)))
        .collect();
    output::line(format!(
        "Upstream requests per emulated host: {}",
        seen.join(", ")
    ));
    output::line(format!(
        "Placement: contract reading {reading}; CLAUSES are the clauses that allowed the host \
         (or refused the request). `treaty contracts explain` shows every host's verdict."
    ));
    if all_ok {
        output::line(format!(
            "Demo OK: {} requests, every one answered as expected.",
            SCENARIOS.len()
        ));
    } else {
        output::line(
            "Demo FAILED: some requests did not get the expected status (marked UNEXPECTED).",
        );
    }
    Ok(all_ok)
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    s: &Scenario,
) -> anyhow::Result<Result_> {
    let started = Instant::now();
    let (path, body, stream) = match &s.kind {
        Kind::Chat { model, prompt } => (
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": prompt}]}),
            false,
        ),
        Kind::Stream { model, prompt } => (
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": prompt}]}),
            true,
        ),
        Kind::Embeddings { input } => (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": input}),
            false,
        ),
        Kind::BadKey => (
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
            false,
        ),
        Kind::ToolRoundTrip => return tool_round_trip(http, base, key).await,
    };
    let key = if matches!(s.kind, Kind::BadKey) {
        "tk-not-a-real-key"
    } else {
        key
    };
    let mut req = http
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json");
    if let Some(host) = s.prefer {
        req = req.header("x-treaty-prefer-host", host);
    }
    let res = req.body(serde_json::to_vec(&body)?).send().await?;
    let status = res.status().as_u16();
    let host = header(&res, "x-treaty-host");
    let class = header(&res, "x-treaty-class");
    let clauses = header(&res, "x-treaty-clauses");
    let detail = if stream && status == 200 {
        let mut chunks = 0;
        let mut first = None;
        let mut bytes = res.bytes_stream();
        let mut text = String::new();
        while let Some(piece) = bytes.next().await {
            let piece = piece?;
            first.get_or_insert_with(|| started.elapsed());
            text.push_str(&String::from_utf8_lossy(&piece));
        }
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if line != "[DONE]" {
                chunks += 1;
            }
        }
        if !text.contains("data: [DONE]") {
            bail!("stream for '{}' ended without [DONE]", s.what);
        }
        format!(
            "{chunks} chunks, first after {:.1} ms",
            first.unwrap_or_default().as_secs_f64() * 1000.0
        )
    } else {
        let v: Value = serde_json::from_slice(&res.bytes().await?).unwrap_or(Value::Null);
        if status == 200 {
            summarise(&v)
        } else {
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(90)
                .collect()
        }
    };
    let detail = match s.prefer {
        Some(h) => format!("asked for {h}: {detail}"),
        None => detail,
    };
    Ok(Result_ {
        status,
        host,
        class,
        clauses,
        detail,
        ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Verifies the ledger the traffic just wrote and shows what separates the
/// three readings on it. False when the chain does not verify.
async fn evidence(
    config: &Config,
    store: &treaty_store::Store,
    reading: &str,
) -> anyhow::Result<bool> {
    let report =
        treaty_ledger::verify(store, treaty_ledger::VerifyOptions::default(), |_, _| {}).await?;
    output::line("");
    if report.ok {
        output::line(format!(
            "Ledger: {} records, hash chain verified (head seq {}, hash {}…){}; `treaty ledger verify --config {}` checks it again.",
            report.records,
            report.head_seq,
            report.head_hash.chars().take(16).collect::<String>(),
            match report.checkpoints {
                0 => String::new(),
                n => format!(", {n} signed checkpoint(s)"),
            },
            config.base_dir.join("treaty.toml").display()
        ));
    } else {
        output::line(format!("Ledger FAILED to verify: {:?}", report.problem));
        return Ok(false);
    }
    output::line("What separates the readings on this traffic (treaty contracts simulate):");
    for other in ["reading-aws", "reading-microsoft"] {
        if other == reading {
            continue;
        }
        let r = super::contracts::what_if(config, store, reading, other, None, |_, _| {}).await?;
        let t = &r.total;
        let moves: Vec<String> = r
            .moves
            .iter()
            .map(|m| format!("{} -> {} x{}", m.from, m.to, m.requests))
            .collect();
        let mut refused: Vec<String> = r
            .by_group
            .iter()
            .filter(|g| g.impact.became_refused > 0)
            .map(|g| format!("{}/{}/{}", g.tenant, g.channel, g.product))
            .collect();
        // Groups are per class too: name each tenant/channel/product once.
        refused.dedup();
        let clauses = |n: fn(&treaty_ledger::ClauseImpact) -> u64| -> String {
            let ids: Vec<&str> = r
                .by_clause
                .iter()
                .filter(|c| n(c) > 0)
                .map(|c| c.clause.as_str())
                .collect();
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        };
        output::line(format!(
            "  {reading} -> {other}: {} requests, {} keep their host, {} move{}, {} become refused{}, {} reclassified; clauses that stop applying: {}, that start: {}",
            t.requests,
            t.keep,
            t.moved,
            if moves.is_empty() {
                String::new()
            } else {
                format!(" ({})", moves.join(", "))
            },
            t.became_refused,
            if refused.is_empty() {
                String::new()
            } else {
                format!(" ({})", refused.join(", "))
            },
            t.reclassified,
            clauses(|c| c.stopped),
            clauses(|c| c.started)
        ));
    }
    if config
        .contracts
        .as_ref()
        .is_some_and(|c| !c.shadow.is_empty())
    {
        let rows =
            treaty_ledger::report(store, treaty_ledger::Dimension::Divergence, None, None).await?;
        output::line(
            "Where the shadow readings part, live (treaty ledger report --by divergence):",
        );
        for sentence in treaty_ledger::divergence_summary(&rows) {
            output::line(format!("  {sentence}"));
        }
    }
    Ok(true)
}

fn summarise(v: &Value) -> String {
    if let Some(text) = v["choices"][0]["message"]["content"].as_str() {
        let short: String = text.chars().take(60).collect();
        return format!("\"{short}…\"");
    }
    if let Some(data) = v["data"].as_array() {
        let dims = data
            .first()
            .and_then(|d| d["embedding"].as_array())
            .map(Vec::len)
            .unwrap_or(0);
        return format!("{} vector(s) of {dims} dimensions", data.len());
    }
    String::new()
}

async fn tool_round_trip(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Result_> {
    let started = Instant::now();
    let tools = json!([{"type": "function", "function": {"name": "get_fx_rate",
        "description": "Current exchange rate",
        "parameters": {"type": "object", "properties": {"pair": {"type": "string"}}, "required": ["pair"]}}}]);
    let mut messages = vec![json!({"role": "user", "content": "What is EUR/USD right now?"})];
    let first: Value = post_json(
        http,
        base,
        key,
        &json!({"model": "gpt-4o", "messages": messages, "tools": tools}),
    )
    .await?;
    let call = first["choices"][0]["message"]["tool_calls"][0].clone();
    let Some(call_id) = call["id"].as_str() else {
        bail!("the model did not call the tool: {first}");
    };
    messages.push(first["choices"][0]["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": "{\"rate\": 1.08}"}));
    let res = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(
            &json!({"model": "gpt-4o", "messages": messages, "tools": tools}),
        )?)
        .send()
        .await?;
    let status = res.status().as_u16();
    let host = header(&res, "x-treaty-host");
    let class = header(&res, "x-treaty-class");
    let clauses = header(&res, "x-treaty-clauses");
    let second: Value = serde_json::from_slice(&res.bytes().await?)?;
    Ok(Result_ {
        status,
        host,
        detail: format!(
            "called {} then {}",
            call["function"]["name"].as_str().unwrap_or("?"),
            summarise(&second)
        ),
        class,
        clauses,
        ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

async fn post_json(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let res = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await?;
    Ok(serde_json::from_slice(&res.bytes().await?)?)
}
