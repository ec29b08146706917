//! A gateway in-process, in front of the emulator, with keys minted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use treaty_config::{Config, MapEnv};
use treaty_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use treaty_gateway::Gateway;
use treaty_keys::KeyRequest;

pub const UPSTREAM_KEY: &str = "sk-upstream-SECRET-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "admin-SECRET-token-42";
/// The web UI's read-only role; every harness enables it.
pub const AUDITOR_TOKEN: &str = "auditor-SECRET-token-7";

pub struct Harness {
    pub app: axum::Router,
    pub gateway: Gateway,
    pub emulator: EmulatorHandle,
    /// tenant acme, channel direct, product api.
    pub key: String,
    /// tenant acme, channel direct, product chat (no embeddings).
    pub chat_key: String,
    pub _dir: tempfile::TempDir,
}

pub fn config_text(extra_server: &str) -> String {
    format!(
        r#"
[server]
max_body_bytes = 8388608
key_cache_ttl = "60s"
{extra_server}

[upstream]
first_byte_timeout = "2s"
total_timeout = "10s"
max_attempts = 3

[[hosts]]
id = "azure-a"
cloud = "azure"
region = "us-east"
provider = "azure_openai"
base_url = "${{EMU}}/azure-a"
api_version = "2024-10-21"
api_key = {{ env = "UPSTREAM_KEY" }}
models = [
  {{ name = "gpt-4o", target = "gpt4o-a", input_cost_per_mtok = 2.5, output_cost_per_mtok = 10.0 }},
  {{ name = "text-embedding-3-small", target = "emb-a" }},
]

[[hosts]]
id = "vllm-b"
cloud = "onprem"
region = "us-east"
provider = "openai_compatible"
base_url = "${{EMU}}/vllm-b"
api_key = {{ env = "UPSTREAM_KEY" }}
models = [{{ name = "gpt-4o", target = "gpt-oss" }}]

[[tenants]]
id = "acme"
segment = "enterprise"
data_region = "us"

[[channels]]
id = "direct"
kind = "first_party"

[[products]]
id = "api"
kind = "api"

[[products]]
id = "chat"
kind = "non_api"
models = ["gpt-4o"]
"#
    )
}

pub async fn harness() -> Harness {
    harness_with("").await
}

pub async fn harness_with(extra_server: &str) -> Harness {
    harness_with_config(&config_text(extra_server)).await
}

/// The harness with `sections` (whole TOML tables) after the base config.
pub async fn harness_with_sections(sections: &str) -> Harness {
    harness_with_config(&format!("{}\n{sections}", config_text(""))).await
}

async fn harness_with_config(text: &str) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::start(
        EmulatorConfig {
            api_key: Some(UPSTREAM_KEY.into()),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let env = MapEnv::new()
        .with("EMU", &emulator.url())
        .with("UPSTREAM_KEY", UPSTREAM_KEY)
        .with("TREATY_ADMIN_TOKEN", ADMIN_TOKEN)
        .with("TREATY_AUDITOR_TOKEN", AUDITOR_TOKEN);
    let config = Config::from_toml(text, Path::new("."), &env).unwrap();
    Harness::open(config, &env, emulator).await
}

impl Harness {
    /// A gateway over `config` with a fresh SQLite store in a temporary
    /// directory, and keys for acme/direct: product `api`, and `chat` when
    /// the config has that product (otherwise `chat_key` is the api key).
    pub async fn open(config: Config, env: &MapEnv, emulator: EmulatorHandle) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store =
            treaty_store::Store::open(&format!("sqlite://{}", dir.path().join("gw.db").display()))
                .await
                .unwrap();
        let key = mint(&store, "api").await;
        let chat_key = if config.products.iter().any(|p| p.id.as_str() == "chat") {
            mint(&store, "chat").await
        } else {
            key.clone()
        };
        let gateway = Gateway::open(config, store, env).await.unwrap();
        Harness {
            app: treaty_gateway::app(gateway.clone()),
            gateway,
            emulator,
            key,
            chat_key,
            _dir: dir,
        }
    }
}

pub async fn mint(store: &treaty_store::Store, product: &str) -> String {
    let (minted, _) = treaty_keys::issue(
        store,
        KeyRequest {
            tenant: "acme".into(),
            channel: "direct".into(),
            product: product.into(),
            name: None,
            models: None,
            declare_classes: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    minted.secret
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn host(&self) -> Option<&str> {
        self.headers
            .get("x-treaty-host")
            .and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.post_with(path, &[], body).await
    }

    /// A POST with the harness key and extra request headers.
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: serde_json::Value,
    ) -> Reply {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.key));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(
            req.body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        )
        .await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

pub fn chat(prompt: &str) -> serde_json::Value {
    serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})
}
