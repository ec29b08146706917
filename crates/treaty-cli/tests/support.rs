//! Running the real `treaty` binary: spawn, read its address, stop it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_treaty");

pub fn example_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    std::fs::read_to_string(path).unwrap()
}

/// Copies the example (config, secrets, contracts) into `dir` with a zero
/// key-cache TTL, so a CLI revocation is seen by the next request.
pub fn write_example(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier");
    copy_dir(&src, dir);
    let text = example_config().replace("key_cache_ttl = \"5s\"", "key_cache_ttl = \"0s\"");
    let path = dir.join("treaty.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Copies a directory tree, leaving out SQLite files a local run left.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else if !p.to_string_lossy().contains(".db") {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Mints a key through the CLI and returns its secret.
pub fn create_key(config: &Path, tenant: &str, channel: &str, product: &str) -> String {
    create_key_json(config, tenant, channel, product)["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `treaty keys create --format json`'s answer: the key's id, binding and
/// secret.
pub fn create_key_json(
    config: &Path,
    tenant: &str,
    channel: &str,
    product: &str,
) -> serde_json::Value {
    let out = treaty(&[
        "keys",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        tenant,
        "--channel",
        channel,
        "--product",
        product,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn treaty(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("TREATY_LOG", "warn")
        .output()
        .unwrap()
}

/// A `treaty serve` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(config: &Path, emulator_url: &str) -> Server {
        Server::start_under(&[], config, emulator_url)
    }

    /// `treaty serve` run by `wrapper` (e.g. `prlimit --nofile=1024: --`).
    pub fn start_under(wrapper: &[&str], config: &Path, emulator_url: &str) -> Server {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("TREATY_EMULATOR_URL", emulator_url)
            .env("TREATY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("treaty serve printed no address");
        Server { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill_hard(mut self) -> Child {
        let _ = self.child.kill();
        std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "treaty serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
