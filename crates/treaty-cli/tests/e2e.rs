//! The real binary, started on port 0, driven over HTTP and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Server, http, treaty, write_example};
use treaty_emulator::{Emulator, EmulatorConfig};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn serve_check_validates_and_explains_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let ok = treaty(&["serve", "--config", config.to_str().unwrap(), "--check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("config OK: 6 hosts, 3 tenants, 4 channels, 3 products"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        support::example_config().replace("provider = \"azure_openai\"", "provider = \"azure\""),
    )
    .unwrap();
    let out = treaty(&["serve", "--config", bad.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("hosts[0].provider") && err.contains("example: provider = \"azure_openai\""),
        "{err}"
    );

    std::fs::write(
        &bad,
        support::example_config().replace("segment =", "segmant ="),
    )
    .unwrap();
    let out = treaty(&["serve", "--config", bad.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("segmant"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_the_cli_work_against_a_running_gateway() {
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_example(dir.path());
    let cfg = config.to_str().unwrap();

    let created = treaty(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--tenant",
        "acme",
        "--channel",
        "aws-marketplace",
        "--product",
        "frontier",
        "--name",
        "e2e",
        "--format",
        "json",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let refused = treaty(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--tenant",
        "nobody",
        "--channel",
        "direct",
        "--product",
        "api",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("unknown tenant"),
        "{}",
        stderr(&refused)
    );

    let listed = treaty(&["keys", "list", "--config", cfg]);
    let text = stdout(&listed);
    assert!(
        text.contains(&id) && text.contains("active") && !text.contains(&secret),
        "{text}"
    );

    let server = Server::start(&config, &emulator.url());
    let client = http();
    let chat = |key: String| {
        let client = client.clone();
        let url = format!("{}/v1/chat/completions", server.url);
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let res = chat(secret.clone()).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-treaty-host"));

    let revoked = treaty(&["keys", "revoke", "--config", cfg, &id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let res = chat(secret).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");

    assert!(server.terminate().success(), "graceful exit on SIGTERM");
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let out = treaty(&[
        "demo",
        "--dir",
        dir.path().to_str().unwrap(),
        "--keys-out",
        keys.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // The files that hold secrets are the owner's alone: the minted keys,
    // the example's upstream keys, and the store (key hashes, state).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut private = vec![keys, dir.path().join("treaty.db")];
        for entry in std::fs::read_dir(dir.path().join("secrets")).unwrap() {
            private.push(entry.unwrap().path());
        }
        for suffix in ["-wal", "-shm"] {
            let file = dir.path().join(format!("treaty.db{suffix}"));
            if file.exists() {
                private.push(file);
            }
        }
        for file in private {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
        }
    }
    assert!(
        text.contains("EMULATED"),
        "the demo says its upstreams are emulated"
    );
    assert!(text.contains("Demo OK: 15 requests"), "{text}");
    // Every cloud's wire format is spoken: Bedrock (Converse, SigV4) and
    // Gemini served some of the traffic.
    let served = text
        .lines()
        .find(|l| l.starts_with("Upstream requests per emulated host"))
        .unwrap();
    assert!(!served.contains("bedrock-useast1=0"), "{served}");
    assert!(!served.contains("gemini-uscentral1=0"), "{served}");
    // Placements and refusals carry their clause ids.
    assert!(text.contains("H0,C6"), "dod's placement names C6: {text}");
    assert!(
        text.contains("403") && text.contains("C4"),
        "gcp-marketplace may not sell frontier: {text}"
    );
    // The agent story: the run completes with both tools, its state is
    // held on this (Azure) instance, each model step is its own decision,
    // and the readings disagree about an AWS instance holding it.
    assert!(text.contains("completed in"), "{text}");
    assert!(
        text.contains("tool call create_ticket") && text.contains("tool call lookup_order"),
        "{text}"
    );
    assert!(text.contains("1 side effect(s)"), "{text}");
    assert!(
        text.contains("runs.create") && text.contains("held on treaty-azure-eastus"),
        "{text}"
    );
    assert!(text.contains("model step 2"), "{text}");
    let row = |reading: &str| {
        text.lines()
            .find(|l| l.starts_with(reading))
            .unwrap_or_else(|| panic!("no row for {reading}: {text}"))
            .to_owned()
    };
    assert!(row("reading-openai").ends_with("refused (C2)"), "{text}");
    assert!(row("reading-aws").ends_with("held (H0)"), "{text}");
    assert!(row("reading-microsoft").contains("refused (C4m)"), "{text}");
    assert!(dir.path().join("treaty.db").exists());
}
