//! Soak: mixed traffic at a steady rate through the real binary, and the
//! gateway's resident memory and open file descriptors stay flat.
//!
//! The gateway runs as its own process (`treaty serve` on the shipped
//! example, SQLite ledger) in front of the emulator. For a warm-up and
//! then a measured window, a fixed number of requests per second is sent
//! (open loop: one every tick, whether or not earlier ones answered), in a
//! fixed rotation of what real traffic holds: plain and streamed chat,
//! embeddings, a stored Responses API call, a request the contracts refuse
//! (403), bad input (400), an upstream that fails on every allowed host
//! (503 `allowed_hosts_unavailable` after failover), and a client that
//! hangs up in the middle of a stream.
//!
//! What a user would notice, and the test asserts:
//! - every request got the answer its kind should get;
//! - RSS after warm-up grows by at most [`RSS_BOUND_KIB`] (a leak of one
//!   kilobyte per request would pass it within the default window);
//! - open file descriptors grow by at most [`FD_BOUND`] while the traffic
//!   runs, and fall back to the warm-up level once it stops (no leaked
//!   upstream or client connection, no leaked database handle);
//! - the ledger verifies afterwards.
//!
//! `TREATY_SOAK_SECS` sets the measured window (default 60 s; warm-up 20 s)
//! and `TREATY_SOAK_RATE` the rate (default 60 requests/s). The samples
//! are printed so a longer run can be read as a curve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, create_key, rss_kib, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

/// RSS growth allowed after warm-up.
const RSS_BOUND_KIB: u64 = 12 * 1024;
/// Open file descriptor growth allowed after warm-up.
const FD_BOUND: usize = 16;
const WARMUP: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chat,
    Stream,
    Embeddings,
    Responses,
    Refused,
    BadInput,
    UpstreamDown,
    HangUp,
}

/// The rotation: one kind per tick, plain chat the most common.
const ROTATION: [Kind; 10] = [
    Kind::Chat,
    Kind::Stream,
    Kind::Chat,
    Kind::Embeddings,
    Kind::Refused,
    Kind::Chat,
    Kind::Responses,
    Kind::BadInput,
    Kind::UpstreamDown,
    Kind::HangUp,
];

struct Keys {
    api: String,
    refused: String,
}

/// Sends one request of `kind` and says whether it got what it should.
async fn one(client: &reqwest::Client, url: &str, keys: &Keys, kind: Kind) -> Result<(), String> {
    let chat = |key: &str, body: Value| {
        client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let message = |text: &str| json!([{"role": "user", "content": text}]);
    let (want, res) = match kind {
        Kind::Chat => (
            200,
            chat(
                &keys.api,
                json!({"model": "gpt-4o", "messages": message("Say hello.")}),
            )
            .await,
        ),
        Kind::Stream => (
            200,
            chat(
                &keys.api,
                json!({"model": "gpt-4o", "stream": true, "messages": message("Say hello.")}),
            )
            .await,
        ),
        Kind::Embeddings => (
            200,
            client
                .post(format!("{url}/v1/embeddings"))
                .bearer_auth(&keys.api)
                .json(&json!({"model": "text-embedding-3-small", "input": ["a", "b"]}))
                .send()
                .await,
        ),
        Kind::Responses => (
            200,
            client
                .post(format!("{url}/v1/responses"))
                .bearer_auth(&keys.api)
                .json(&json!({"model": "gpt-4o", "input": "Say hello.", "store": true}))
                .send()
                .await,
        ),
        Kind::Refused => (
            403,
            chat(
                &keys.refused,
                json!({"model": "gpt-4o", "messages": message("Hi.")}),
            )
            .await,
        ),
        Kind::BadInput => (
            400,
            client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&keys.api)
                .header("content-type", "application/json")
                .body(r#"{"model": "gpt-4o", "messages": ["#)
                .send()
                .await,
        ),
        Kind::UpstreamDown => (
            503,
            chat(
                &keys.api,
                json!({"model": "gpt-4o", "messages": message("[[fault:status=500]]")}),
            )
            .await,
        ),
        Kind::HangUp => {
            // A slow stream the client leaves after its first piece.
            let res = chat(
                &keys.api,
                json!({"model": "gpt-4o", "stream": true,
                       "messages": message("[[fault:slow=50]] Tell me a long story.")}),
            )
            .await
            .map_err(|e| format!("{kind:?}: {e}"))?;
            if res.status() != 200 {
                return Err(format!("{kind:?}: status {}", res.status()));
            }
            let mut res = res;
            res.chunk().await.map_err(|e| format!("{kind:?}: {e}"))?;
            return Ok(());
        }
    };
    let res = res.map_err(|e| format!("{kind:?}: {e}"))?;
    let status = res.status().as_u16();
    let body = res.bytes().await.map_err(|e| format!("{kind:?}: {e}"))?;
    if status != want {
        return Err(format!(
            "{kind:?}: status {status}, wanted {want}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    if kind == Kind::UpstreamDown
        && !String::from_utf8_lossy(&body).contains("allowed_hosts_unavailable")
    {
        return Err(format!("{kind:?}: {}", String::from_utf8_lossy(&body)));
    }
    if kind == Kind::Stream && !body.ends_with(b"data: [DONE]\n\n") {
        return Err(format!("{kind:?}: the stream did not end with [DONE]"));
    }
    Ok(())
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    ok: BTreeMap<Kind, u64>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)]
async fn mixed_traffic_leaves_memory_and_descriptors_flat() {
    let measured = Duration::from_secs(env_number("TREATY_SOAK_SECS", 60));
    let rate = env_number("TREATY_SOAK_RATE", 60).max(1);
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let keys = Arc::new(Keys {
        api: create_key(&config, "acme", "direct", "api"),
        // Reading-openai's C4: Frontier is sold on no third-party cloud
        // but aws-marketplace.
        refused: create_key(&config, "acme", "gcp-marketplace", "frontier"),
    });
    let server = Server::start(&config, &emulator.url());
    let pid = server.pid();
    let url: Arc<str> = server.url.clone().into();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(32)
        .build()
        .unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));

    let idle_fds = open_fds(pid);
    let started = Instant::now();
    let end = started + WARMUP + measured;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut next_sample = started;
    let mut warm: Option<(u64, usize)> = None;
    let mut i = 0usize;
    while Instant::now() < end {
        ticker.tick().await;
        let kind = ROTATION[i % ROTATION.len()];
        i += 1;
        let (client, url, keys, tally) = (client.clone(), url.clone(), keys.clone(), tally.clone());
        tasks.spawn(async move {
            let result = one(&client, &url, &keys, kind).await;
            let mut t = tally.lock().unwrap();
            match result {
                Ok(()) => *t.ok.entry(kind).or_default() += 1,
                Err(e) => t.failures.push(e),
            }
        });
        while tasks.try_join_next().is_some() {}
        if Instant::now() >= next_sample {
            let (rss, fds) = (rss_kib(pid), open_fds(pid));
            let at = started.elapsed().as_secs_f64();
            samples.push((at, rss, fds));
            if warm.is_none() && started.elapsed() >= WARMUP {
                warm = Some((rss, fds));
            }
            next_sample += Duration::from_secs(1);
        }
    }
    while tasks.join_next().await.is_some() {}
    // The traffic has stopped: connections the gateway held for it close
    // (the client's idle ones too, so count after dropping the client).
    drop(client);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (rss_kib(pid), open_fds(pid));

    let (warm_rss, warm_fds) = warm.expect("the warm-up ended before the run did");
    let measured_samples: Vec<_> = samples
        .iter()
        .filter(|s| s.0 >= WARMUP.as_secs_f64())
        .collect();
    let peak_rss = measured_samples
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap_or(warm_rss);
    let peak_fds = measured_samples
        .iter()
        .map(|s| s.2)
        .max()
        .unwrap_or(warm_fds);
    println!("soak: {rate} req/s, warm-up {WARMUP:?}, measured {measured:?}, {i} requests");
    for (at, rss, fds) in &samples {
        println!("soak sample t={at:6.1}s rss={rss} KiB fds={fds}");
    }
    println!(
        "soak: RSS after warm-up {warm_rss} KiB, peak {peak_rss} KiB (+{} KiB); fds after warm-up {warm_fds}, peak {peak_fds}, idle before {}, after {}",
        peak_rss.saturating_sub(warm_rss),
        idle_fds,
        after.1
    );

    let tally = tally.lock().unwrap();
    println!("soak: answered as expected {:?}", tally.ok);
    assert!(
        tally.failures.is_empty(),
        "{} of {i} requests did not get the answer their kind should get, first ones: {:#?}",
        tally.failures.len(),
        &tally.failures[..tally.failures.len().min(10)]
    );
    for kind in ROTATION {
        assert!(
            tally.ok.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind:?} request was answered"
        );
    }
    assert!(
        peak_rss <= warm_rss + RSS_BOUND_KIB,
        "the gateway's RSS grew from {warm_rss} KiB after warm-up to {peak_rss} KiB (bound +{RSS_BOUND_KIB} KiB)"
    );
    assert!(
        peak_fds <= warm_fds + FD_BOUND,
        "the gateway's open files grew from {warm_fds} after warm-up to {peak_fds} (bound +{FD_BOUND})"
    );
    assert!(
        after.1 <= idle_fds + FD_BOUND,
        "once the traffic stopped the gateway still held {} files (before it: {idle_fds})",
        after.1
    );

    // Every decision and outcome of the run is in a chain that verifies.
    let status = server.terminate();
    assert!(status.success(), "treaty serve exited with {status}");
    let out = support::treaty(&["ledger", "verify", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "ledger verify failed after the soak: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
