//! The HTTP edge protects itself (issue 13, item 8), on the real binary:
//! started at the common default of 1,024 open files, 1,000 idle
//! connections do not stop `/health` or a chat completion; an idle socket,
//! a slowloris header and a stalled body are closed within the configured
//! timeouts; a URL or header block over the limits is answered in the
//! OpenAI shape, not by hyper's empty 414 or 431 (issue 17).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, http, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

/// The example with `[server]` settings added.
fn config_with(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = write_example(dir);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[server]\n",
        &format!("[server]\n{server}\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Whether the server closes `socket` within `within`: a read returns end
/// of stream (or a reset), after whatever the server sent first.
fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    socket.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_at_1024_open_files_do_not_stop_service() {
    // The test process holds the other end of every connection.
    rlimit::increase_nofile_limit(4096).unwrap();
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), "");
    let key = support::create_key(&config, "acme", "direct", "api");
    let server = Server::start_under(
        &["prlimit", "--nofile=1024:", "--"],
        &config,
        &emulator.url(),
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(soft > 1024, "the soft limit was raised at start: {limits}");

    let target = addr(&server);
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&target).unwrap())
        .collect();
    let client = http();
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(format!("{}/health", server.url)).send(),
    )
    .await
    .expect("/health answers with 1,000 idle connections open")
    .unwrap();
    assert_eq!(health.status(), 200);
    let chat = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
            .send(),
    )
    .await
    .expect("a chat completion answers with 1,000 idle connections open")
    .unwrap();
    assert_eq!(chat.status(), 200, "{}", chat.text().await.unwrap());
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slowloris_and_stalled_body_sockets_are_closed_within_the_timeouts() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"",
    );
    let key = support::create_key(&config, "acme", "direct", "api");
    let server = Server::start(&config, &emulator.url());
    let target = addr(&server);
    let margin = Duration::from_secs(4);

    // Connected, and never a byte.
    let mut silent = TcpStream::connect(&target).unwrap();
    assert!(
        closed_within(&mut silent, margin),
        "a silent connection stays open"
    );

    // Idle on keep-alive after one request.
    let mut kept = TcpStream::connect(&target).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(
        closed_within(&mut kept, margin),
        "an idle keep-alive connection stays open"
    );

    // Slowloris: a header byte every 300 ms, never the end of the block.
    let mut slow = TcpStream::connect(&target).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > margin {
            break;
        }
    }
    assert!(
        closed || closed_within(&mut slow, Duration::from_millis(500)),
        "a slowloris connection stays open"
    );

    // A body announced and never sent: 408 in the OpenAI shape, then closed.
    let mut stalled = TcpStream::connect(&target).unwrap();
    write!(
        stalled,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
    )
    .unwrap();
    stalled.set_read_timeout(Some(margin)).unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
}

/// Sends `head` on a fresh connection and reads the whole answer (the
/// server closes after an error that leaves the request unread).
fn answer_to(target: &str, head: &[u8]) -> String {
    let mut socket = TcpStream::connect(target).unwrap();
    socket.write_all(head).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// hyper answers an oversized head itself, with an empty body the SDKs
/// cannot read; on the real server such a head reaches Treaty's limits
/// and is answered in the OpenAI shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_urls_and_large_header_blocks_are_answered_in_the_openai_shape() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), "");
    let server = Server::start(&config, &emulator.url());
    let target = addr(&server);

    let long_url = format!(
        "GET /v1/models?pad={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = answer_to(&target, long_url.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(answer.contains("\"code\":\"uri_too_long\""), "{answer}");

    // 100 KiB of headers: past hyper's own default buffer share and
    // Treaty's 32 KiB limit.
    let mut big = String::from("GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for i in 0..50 {
        big.push_str(&format!("X-Pad-{i}: {}\r\n", "b".repeat(2048)));
    }
    big.push_str("\r\n");
    let answer = answer_to(&target, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        answer.contains("\"code\":\"headers_too_large\""),
        "{answer}"
    );
    assert!(
        answer.contains("\"type\":\"invalid_request_error\""),
        "{answer}"
    );
}
