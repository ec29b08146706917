//! Scale-out, shown (issue 15, item 7): three `treaty serve` replicas on
//! one PostgreSQL, traffic through all three at once.
//!
//! - A key's requests-per-minute limit holds globally: 75% of it spread
//!   over the replicas is never refused; past it, the admitted count stays
//!   within the limit plus what refilled meanwhile.
//! - A tenant's small budget holds across replicas while one replica is
//!   killed with SIGKILL mid-load: settled spend passes the budget by at
//!   most the reservations that can be in flight (concurrency × one call's
//!   bound).
//! - Nothing acknowledged is lost: every answered request has its
//!   decision in the ledger, which verifies as one chain, and every
//!   decision names the replica that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, http, treaty, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
const RPM: u64 = 120;
/// The budget of tenant acme, in micro-USD ($0.08): several hundred
/// calls, so the kill lands while the budget is being spent.
const BUDGET_MICROS: i64 = 80_000;
const WORKERS: usize = 12;
/// One call's bound: 50 output tokens (and a short prompt) at the
/// example's dearest allowed price, rounded up generously.
const CALL_BOUND_MICROS: i64 = 1_000;

/// One replica's config: the shared example on `db`, its own instance id,
/// the shared signing key, a budget for acme, a rate limit for `rl_key`.
fn replica_config(dir: &Path, base: &str, instance: &str, rl_key: &str) -> PathBuf {
    let text = base.replace(
        "id = \"treaty-azure-eastus\"",
        &format!("id = \"{instance}\""),
    ) + &format!(
        "\n[rate_limits]\nsync_interval = \"100ms\"\n\n[[rate_limits.overrides]]\nkey = \"{rl_key}\"\nrequests_per_minute = {RPM}\n\n[[budgets]]\ntenant = \"acme\"\namount_usd = {}\nperiod = \"day\"\n",
        BUDGET_MICROS as f64 / 1e6
    );
    let path = dir.join(format!("{instance}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn chat() -> Value {
    json!({"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

#[derive(Default)]
struct Tally {
    /// Status (0: no answer, the replica was gone) → count.
    statuses: HashMap<u16, u64>,
    /// `code` of each 429.
    codes: HashMap<String, u64>,
    /// Request ids of the answered (200) requests.
    answered: Vec<String>,
}

async fn send(client: &reqwest::Client, url: &str, key: &str, tally: &Mutex<Tally>) {
    let res = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat())
        .send()
        .await;
    let mut t = tally.lock().unwrap();
    let Ok(res) = res else {
        *t.statuses.entry(0).or_default() += 1;
        return;
    };
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    drop(t);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let mut t = tally.lock().unwrap();
    *t.statuses.entry(status).or_default() += 1;
    if status == 200 {
        t.answered.push(id.unwrap());
    } else if status == 429 {
        let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
        *t.codes.entry(code).or_default() += 1;
    }
}

/// `count` requests with `key` from nine workers at once, round robin over
/// the replicas.
async fn spread(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    tally: &Arc<Mutex<Tally>>,
    count: u64,
) {
    let tasks: Vec<_> = (0..9)
        .map(|w| {
            let (client, urls, key, tally) =
                (client.clone(), urls.to_vec(), key.to_owned(), tally.clone());
            tokio::spawn(async move {
                for n in (w..count as usize).step_by(9) {
                    send(&client, &urls[n % 3], &key, &tally).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_hold_limits_and_budgets_and_survive_sigkill() {
    let Some(db) = treaty_store::test_pg::fresh_database("scale_out").await else {
        return;
    };
    let emulator = Emulator::start(
        EmulatorConfig {
            latency: Duration::from_millis(5),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let example = write_example(dir.path());
    let key_file = dir.path().join("ledger.key");
    let out = treaty(&["ledger", "keygen", "--out", key_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = std::fs::read_to_string(&example)
        .unwrap()
        .replace("url = \"sqlite://treaty.db\"", &format!("url = \"{db}\""))
        .replace(
            "[ledger]\n",
            &format!(
                "[ledger]\nsigning_key = {{ file = \"{}\" }}\n",
                key_file.display()
            ),
        );
    std::fs::write(&example, &base).unwrap();
    let budget_key = support::create_key_json(&example, "acme", "direct", "api");
    let rl_key = support::create_key_json(&example, "dod", "aws-marketplace", "api");
    let configs: Vec<PathBuf> = REPLICAS
        .iter()
        .map(|r| replica_config(dir.path(), &base, r, rl_key["id"].as_str().unwrap()))
        .collect();
    let mut servers: Vec<Option<Server>> = configs
        .iter()
        .map(|c| Some(Server::start(c, &emulator.url())))
        .collect();
    let urls: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().unwrap().url.clone())
        .collect();
    let client = http();

    // Rate limit: 75% of the minute's allowance through all three at once.
    let rl_secret = rl_key["secret"].as_str().unwrap().to_owned();
    let rate = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let below = RPM * 3 / 4;
    spread(&client, &urls, &rl_secret, &rate, below).await;
    {
        let t = rate.lock().unwrap();
        assert_eq!(
            t.statuses.get(&200).copied().unwrap_or(0),
            below,
            "below the limit nothing is refused: {:?} {:?}",
            t.statuses,
            t.codes
        );
    }
    // Past it: as many again; the limit holds across the replicas.
    spread(&client, &urls, &rl_secret, &rate, below).await;
    let refilled = (started.elapsed().as_secs_f64() * RPM as f64 / 60.0).ceil() as u64;
    {
        let t = rate.lock().unwrap();
        let admitted = t.statuses.get(&200).copied().unwrap_or(0);
        assert!(
            admitted <= RPM + refilled,
            "the global limit of {RPM}/min held (admitted {admitted}, refilled {refilled})"
        );
        assert!(
            t.codes.get("rate_limit_exceeded").copied().unwrap_or(0) > 0,
            "past the limit requests are refused: {:?}",
            t.codes
        );
    }

    // Budget, with replica-c killed mid-load.
    let budget_secret = budget_key["secret"].as_str().unwrap().to_owned();
    let spend = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (client, urls, key, spend) = (
            client.clone(),
            urls.clone(),
            budget_secret.clone(),
            spend.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < deadline {
                send(&client, &urls[n % 3], &key, &spend).await;
                n += 1;
                let refused = spend
                    .lock()
                    .unwrap()
                    .codes
                    .get("insufficient_quota")
                    .copied()
                    .unwrap_or(0);
                if refused >= 30 {
                    break;
                }
            }
        }));
    }
    // Mid-load: once a hundred calls were answered, well before the budget
    // can run out.
    while spend.lock().unwrap().answered.len() < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_mid_load = spend.lock().unwrap().codes.is_empty();
    let killed = servers[2].take().unwrap();
    let mut child = killed.kill_hard();
    let _ = child.wait();
    for t in tasks.drain(..) {
        t.await.unwrap();
    }
    {
        let t = spend.lock().unwrap();
        assert!(
            t.codes.get("insufficient_quota").copied().unwrap_or(0) > 0,
            "the budget ran out: {:?} {:?}",
            t.statuses,
            t.codes
        );
        assert!(
            killed_mid_load,
            "replica-c was killed before the budget ran out"
        );
        assert!(
            t.statuses.get(&0).copied().unwrap_or(0) > 0,
            "requests were in flight to replica-c when it was killed: {:?}",
            t.statuses
        );
        assert_eq!(
            t.codes.get("rate_limit_exceeded"),
            None,
            "no rate limit applies to this key"
        );
    }
    for s in servers.iter_mut().filter_map(Option::take) {
        assert!(s.terminate().success());
    }

    // Settled spend against the budget, as every replica wrote it.
    let out = treaty(&[
        "budgets",
        "list",
        "--config",
        configs[0].to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let budgets: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acme = budgets
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "tenant/acme/day")
        .unwrap();
    let spent = acme["spent_micros"].as_i64().unwrap();
    assert!(spent > 0);
    assert!(
        spent <= BUDGET_MICROS + WORKERS as i64 * CALL_BOUND_MICROS,
        "spend {spent} passed the budget {BUDGET_MICROS} by more than the reservations in flight"
    );

    // One chain that verifies, every answer's decision in it, every
    // decision naming its replica.
    let out = treaty(&["ledger", "verify", "--config", configs[0].to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let store = treaty_store::Store::open(&db).await.unwrap();
    let mut export = Vec::new();
    treaty_ledger::export(&store, treaty_ledger::Format::Jsonl, &mut export)
        .await
        .unwrap();
    store.close().await;
    let mut decided = BTreeSet::new();
    let mut instances = BTreeSet::new();
    for line in String::from_utf8(export).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "decision" {
            decided.insert(v["record"]["request_id"].as_str().unwrap().to_owned());
            instances.insert(
                v["record"]["instance"]
                    .as_str()
                    .expect("every decision names its replica")
                    .to_owned(),
            );
        }
    }
    let answered: Vec<String> = rate
        .lock()
        .unwrap()
        .answered
        .iter()
        .chain(spend.lock().unwrap().answered.iter())
        .cloned()
        .collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !decided.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "answered requests with no decision: {lost:?}"
    );
    let expected: BTreeSet<String> = REPLICAS.iter().map(|r| r.to_string()).collect();
    assert_eq!(instances, expected);
    treaty_store::test_pg::drop_database(&db).await;
}
