//! Memory stays flat while a 10 MB stream passes through the gateway.
//!
//! The gateway runs as its own process (the real binary), so its resident
//! memory can be sampled from /proc while the client reads the stream. If
//! the gateway buffered the response, its RSS would grow by at least the
//! stream's size; streaming chunk by chunk keeps growth near zero. This is
//! a memory bound, not a timing: the numbers are printed for BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use support::{Server, http, rss_kib, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)]
async fn a_10_mb_stream_passes_with_flat_memory() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let key = support::create_key(&config, "acme", "direct", "api");
    let server = Server::start(&config, &emulator.url());
    let pid = server.pid();
    let client = http();

    // Warm up connections and allocator pools with a small stream first.
    let send = |prompt: &'static str| {
        client
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt-4o", "stream": true,
                          "messages": [{"role": "user", "content": prompt}]}))
            .send()
    };
    let warm = send("[[fault:stream_bytes=200000]]").await.unwrap();
    let _ = warm.bytes().await.unwrap();
    let baseline = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let res = send("[[fault:stream_bytes=10000000]]").await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut total = 0usize;
    let mut tail = Vec::new();
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        total += piece.len();
        tail = piece.to_vec();
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    println!(
        "10 MB stream through the gateway: {total} bytes on the wire, gateway RSS baseline {} KiB, peak {} KiB, growth {} KiB",
        baseline, peak, growth
    );
    assert!(
        total > 10_000_000,
        "the whole stream arrived ({total} bytes)"
    );
    assert!(String::from_utf8_lossy(&tail).ends_with("data: [DONE]\n\n"));
    // Buffering the response would cost at least its 10 MB.
    assert!(
        growth < 6 * 1024,
        "gateway RSS grew by {growth} KiB during a 10 MB stream"
    );
}
