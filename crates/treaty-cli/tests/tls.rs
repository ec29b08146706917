//! `serve` terminates TLS itself (issue 17, item 5), on the real binary:
//! the certificate and key come from PEM files named in `[server.tls]`; a
//! client that trusts that certificate gets the API over HTTPS, plain HTTP
//! gets nothing; a renewed pair written over the files is served without a
//! restart, and a broken one keeps the last good pair in service; a key
//! that does not match its certificate stops the server from starting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::Server;
use treaty_emulator::{Emulator, EmulatorConfig};

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM.
struct Pair {
    cert: String,
    key: String,
}

fn self_signed() -> Pair {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    Pair {
        cert: generated.cert.pem(),
        key: generated.signing_key.serialize_pem(),
    }
}

fn install(dir: &Path, pair: &Pair) {
    std::fs::write(dir.join("tls/cert.pem"), &pair.cert).unwrap();
    std::fs::write(dir.join("tls/key.pem"), &pair.key).unwrap();
}

/// The example with `[server.tls]` pointing at `tls/` beside it.
fn tls_config(dir: &Path, pair: &Pair) -> PathBuf {
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    install(dir, pair);
    let path = support::write_example(dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[server.tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"tls/key.pem\"\nreload_interval = \"200ms\"\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A client that trusts `pair`'s certificate and nothing else.
fn trusting(pair: &Pair) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pair.cert.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn healthy(client: &reqwest::Client, url: &str) -> Result<(), reqwest::Error> {
    client
        .get(format!("{url}/health"))
        .send()
        .await?
        .error_for_status()
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_follows_a_renewed_certificate() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = self_signed();
    let config = tls_config(dir.path(), &first);
    let key = support::create_key(&config, "acme", "direct", "api");
    let server = Server::start(&config, &emulator.url());
    assert!(
        server.url.starts_with("https://"),
        "announced as {}",
        server.url
    );

    // The API over TLS, with the client's ordinary certificate checks.
    let client = trusting(&first);
    let response = client
        .post(format!("{}/v1/chat/completions", server.url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello over TLS."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.ends_with("Hello over TLS."), "{text}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let addr = server.url.trim_start_matches("https://").to_owned();
    let mut plain = std::net::TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served: {}",
        String::from_utf8_lossy(&got)
    );

    // A half-written renewal does not load: the last good pair stays.
    std::fs::write(
        dir.path().join("tls/cert.pem"),
        "-----BEGIN CERTIFICATE-----\ntrunc",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    healthy(&trusting(&first), &server.url)
        .await
        .expect("the previous certificate is still served");

    // A renewed pair is served within a few reload intervals, no restart.
    let second = self_signed();
    install(dir.path(), &second);
    let started = Instant::now();
    while healthy(&trusting(&second), &server.url).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healthy(&trusting(&first), &server.url).await.is_err(),
        "the old certificate is no longer served"
    );
    server.terminate();
}

#[test]
fn a_key_that_does_not_match_its_certificate_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, other) = (self_signed(), self_signed());
    let config = tls_config(
        dir.path(),
        &Pair {
            cert: ours.cert,
            key: other.key,
        },
    );
    let mut child = Command::new(support::BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("TREATY_EMULATOR_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("treaty serve started with a mismatched key");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("does not match") && stderr.contains("key.pem"),
        "the error names the problem and the file: {stderr}"
    );
}
