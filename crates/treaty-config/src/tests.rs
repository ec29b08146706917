use super::*;

const MINIMAL: &str = r#"
[[hosts]]
id = "azure-eastus"
cloud = "azure"
region = "us-east"
provider = "azure_openai"
base_url = "${EMU:-http://127.0.0.1:4010}/azure-eastus/"
api_version = "2024-10-21"
api_key = { env = "AZ_KEY" }
models = [{ name = "gpt-4o", target = "gpt4o-east", input_cost_per_mtok = 2.5, output_cost_per_mtok = 10.0 }]

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
models = ["gpt-4o"]
"#;

fn env() -> MapEnv {
    MapEnv::new().with("AZ_KEY", "sk-test-secret")
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/treaty"), &env())
}

#[test]
fn minimal_config_validates_with_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.server.max_body_bytes, 8 * 1024 * 1024);
    assert_eq!(c.upstream.max_attempts, 3);
    let h = &c.hosts[0];
    assert_eq!(h.endpoint.base_url, "http://127.0.0.1:4010/azure-eastus");
    assert_eq!(
        h.endpoint.api_key.as_ref().unwrap().expose(),
        "sk-test-secret"
    );
    assert_eq!(h.host.models[0].target, "gpt4o-east");
    assert_eq!(c.store_url(), "sqlite:///etc/treaty/treaty.db");
}

#[test]
fn interpolation_uses_the_environment_first() {
    let env = env().with("EMU", "http://10.0.0.1:9");
    let c = Config::from_toml(MINIMAL, Path::new("."), &env).unwrap();
    assert_eq!(
        c.hosts[0].endpoint.base_url,
        "http://10.0.0.1:9/azure-eastus"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let err = load(&MINIMAL.replace("segment =", "segmnt =")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("segmnt"), "{text}");
    assert!(text.contains("line"), "{text}");
}

#[test]
fn errors_name_the_key_and_show_an_example() {
    let err = load(&MINIMAL.replace("azure_openai", "azure")).unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].provider"));
    assert!(
        err.to_string()
            .contains("example: provider = \"azure_openai\""),
        "{err}"
    );

    let err = load(&MINIMAL.replace("api_version = \"2024-10-21\"\n", "")).unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].api_version"));

    let err = load(&MINIMAL.replace("models = [\"gpt-4o\"]", "models = [\"gpt-5\"]")).unwrap_err();
    assert_eq!(err.key(), Some("products[0].models[0]"));

    let err = load(&MINIMAL.replace("id = \"acme\"", "id = \"ACME\"")).unwrap_err();
    assert_eq!(err.key(), Some("tenants[0].id"));
}

#[test]
fn secrets_are_never_inline_and_never_printed() {
    let err = load(&MINIMAL.replace("{ env = \"AZ_KEY\" }", "\"sk-inline\"")).unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].api_key"));
    assert!(!err.to_string().contains("sk-inline"));

    let err = Config::from_toml(MINIMAL, Path::new("."), &MapEnv::new()).unwrap_err();
    assert!(err.to_string().contains("AZ_KEY is not set"), "{err}");

    let c = load(MINIMAL).unwrap();
    assert!(!format!("{c:?}").contains("sk-test-secret"));
}

#[test]
fn secret_files_are_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "file-secret\n").unwrap();
    let text = MINIMAL.replace("{ env = \"AZ_KEY\" }", "{ file = \"key.txt\" }");
    let c = Config::from_toml(&text, dir.path(), &MapEnv::new()).unwrap();
    assert_eq!(
        c.hosts[0].endpoint.api_key.as_ref().unwrap().expose(),
        "file-secret"
    );
}

#[test]
fn durations_and_limits_are_checked() {
    let text = format!("[upstream]\nfirst_byte_timeout = \"soon\"\n{MINIMAL}");
    assert_eq!(
        load(&text).unwrap_err().key(),
        Some("upstream.first_byte_timeout")
    );
    let text = format!("[server]\nmax_body_bytes = 0\n{MINIMAL}");
    assert_eq!(
        load(&text).unwrap_err().key(),
        Some("server.max_body_bytes")
    );
}

#[test]
fn the_request_head_limits_default_and_are_bounded() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.server.max_uri_bytes, 8 * 1024);
    assert_eq!(c.server.max_header_bytes, 32 * 1024);
    let text = format!("[server]\nmax_uri_bytes = 2048\nmax_header_bytes = 65536\n{MINIMAL}");
    let c = load(&text).unwrap();
    assert_eq!(
        (c.server.max_uri_bytes, c.server.max_header_bytes),
        (2048, 65536)
    );
    for (setting, key) in [
        ("max_uri_bytes = 100", "server.max_uri_bytes"),
        ("max_uri_bytes = 65535", "server.max_uri_bytes"),
        ("max_header_bytes = 1000000", "server.max_header_bytes"),
    ] {
        let text = format!("[server]\n{setting}\n{MINIMAL}");
        let err = load(&text).unwrap_err();
        assert_eq!(err.key(), Some(key), "{setting}");
        assert!(err.to_string().contains(&key[7..]), "{err}");
    }
}

#[test]
fn tls_files_are_relative_to_the_config_and_both_required() {
    assert!(
        load(MINIMAL).unwrap().server.tls.is_none(),
        "plain HTTP by default"
    );
    let text = format!(
        "[server.tls]\ncert_file = \"tls/fullchain.pem\"\nkey_file = \"/keys/privkey.pem\"\n{MINIMAL}"
    );
    let tls = load(&text).unwrap().server.tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/etc/treaty/tls/fullchain.pem"));
    assert_eq!(tls.key_file, Path::new("/keys/privkey.pem"));
    assert_eq!(tls.reload_interval, std::time::Duration::from_secs(10));
    for (setting, key) in [
        ("cert_file = \"c.pem\"", "server.tls.key_file"),
        ("key_file = \"k.pem\"", "server.tls.cert_file"),
        (
            "cert_file = \"c.pem\"\nkey_file = \"k.pem\"\nreload_interval = \"0s\"",
            "server.tls.reload_interval",
        ),
    ] {
        let err = load(&format!("[server.tls]\n{setting}\n{MINIMAL}")).unwrap_err();
        assert_eq!(err.key(), Some(key), "{setting}");
    }
}

#[test]
fn the_shipped_example_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier/treaty.toml");
    let c = Config::load(&path, &MapEnv::new()).unwrap();
    for id in [
        "azure-eastus",
        "azure-westus",
        "azure-westeurope",
        "bedrock-useast1",
        "gemini-uscentral1",
        "onprem-vllm",
    ] {
        assert!(c.host(id).is_some(), "{id}");
    }
    for id in ["acme", "dod", "eurobank"] {
        assert!(c.tenant(id).is_some(), "{id}");
    }
    for id in [
        "direct",
        "aws-marketplace",
        "azure-marketplace",
        "gcp-marketplace",
    ] {
        assert!(c.channel(id).is_some(), "{id}");
    }
    for id in ["api", "frontier", "chat"] {
        assert!(c.product(id).is_some(), "{id}");
    }
}

/// `MINIMAL` with its one host turned into a `gemini` host; `extra` lines
/// are added to the host table.
fn gemini_host(extra: &str) -> String {
    MINIMAL
        .replace("provider = \"azure_openai\"", "provider = \"gemini\"")
        .replace("api_version = \"2024-10-21\"\n", extra)
}

#[test]
fn gemini_hosts_default_to_the_gemini_api() {
    let c = load(&gemini_host("")).unwrap();
    let h = &c.hosts[0];
    assert_eq!(h.host.provider, treaty_domain::ProviderKind::Gemini);
    assert_eq!(h.endpoint.gemini, Some(GeminiApi::Gemini));
    assert_eq!(h.endpoint.azure, None);
    let c = load(&gemini_host("gemini_api = \"gemini\"\n")).unwrap();
    assert_eq!(c.hosts[0].endpoint.gemini, Some(GeminiApi::Gemini));
    // Other providers carry no Gemini settings.
    assert_eq!(load(MINIMAL).unwrap().hosts[0].endpoint.gemini, None);
}

#[test]
fn vertex_hosts_need_a_project_and_a_location() {
    let vertex = "gemini_api = \"vertex\"\nproject = \"my-proj\"\nlocation = \"us-central1\"\n";
    let c = load(&gemini_host(vertex)).unwrap();
    assert_eq!(
        c.hosts[0].endpoint.gemini,
        Some(GeminiApi::Vertex {
            project: "my-proj".into(),
            location: "us-central1".into()
        })
    );
    for (text, key) in [
        (
            "gemini_api = \"vertex\"\nlocation = \"us-central1\"\n",
            "hosts[0].project",
        ),
        (
            "gemini_api = \"vertex\"\nproject = \"my-proj\"\n",
            "hosts[0].location",
        ),
        (
            "gemini_api = \"vertex\"\nproject = \" \"\nlocation = \"us-central1\"\n",
            "hosts[0].project",
        ),
        (
            "gemini_api = \"vertex\"\nproject = \"my/proj\"\nlocation = \"us-central1\"\n",
            "hosts[0].project",
        ),
        ("gemini_api = \"aistudio\"\n", "hosts[0].gemini_api"),
        // Project and location mean nothing to the Gemini API.
        ("project = \"my-proj\"\n", "hosts[0].project"),
        ("location = \"us-central1\"\n", "hosts[0].location"),
    ] {
        let err = load(&gemini_host(text)).unwrap_err();
        assert_eq!(err.key(), Some(key), "{text}");
        let shown = err.to_string();
        assert!(shown.contains("azure-eastus"), "names the host: {shown}");
        assert!(shown.contains("example:"), "{shown}");
    }
}

#[test]
fn gemini_settings_belong_to_gemini_hosts_with_a_credential() {
    let err = load(&MINIMAL.replace(
        "api_version = \"2024-10-21\"\n",
        "api_version = \"2024-10-21\"\ngemini_api = \"vertex\"\n",
    ))
    .unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].gemini_api"));
    assert!(err.to_string().contains("azure-eastus"), "{err}");

    let err = load(&gemini_host("").replace("api_key = { env = \"AZ_KEY\" }\n", "")).unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].api_key"));

    let err = load(&gemini_host("api_style = \"v1\"\n")).unwrap_err();
    assert_eq!(err.key(), Some("hosts[0].api_style"));
}

#[test]
fn the_ledger_key_lives_outside_the_config_and_the_store() {
    let with = |ledger: &str| load(&format!("{MINIMAL}\n[ledger]\n{ledger}\n"));
    assert_eq!(load(MINIMAL).unwrap().ledger.signing_key, None);
    let c = with(r#"signing_key = { file = "keys/ledger.key" }"#).unwrap();
    assert_eq!(
        c.ledger.signing_key,
        Some(LedgerKeyConfig::File("/etc/treaty/keys/ledger.key".into()))
    );
    let c = with(r#"signing_key = { env = "AZ_KEY" }"#).unwrap();
    assert!(matches!(
        c.ledger.signing_key,
        Some(LedgerKeyConfig::Env { .. })
    ));
    assert!(
        !format!("{c:?}").contains("sk-test-secret"),
        "never printed"
    );
    let err = with(r#"signing_key = "PRIVATE+KEY+x+1+AAAA""#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ledger.signing_key") && err.contains("keygen"),
        "{err}"
    );
    let err = with(r#"signing_key = { env = "NOPE" }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NOPE is not set"), "{err}");
    let c = with(
        "publish_dir = \"cps\"\npublish_urls = [\"https://a.example/cp\"]\n\
         [[ledger.witnesses]]\nurl = \"https://w.example\"\nkey = \"w.example/w1+01020304+BAAA\"",
    )
    .unwrap();
    assert_eq!(c.ledger.publish_dir, Some("/etc/treaty/cps".into()));
    assert_eq!(c.ledger.witnesses.len(), 1);
    assert!(with("publish_urls = [\"ftp://x\"]").is_err());
}

#[test]
fn rate_limits_budgets_and_host_quotas_are_read() {
    let text = format!(
        r#"
[rate_limits]
key = {{ requests_per_minute = 600, tokens_per_minute = 200000 }}
tenant = {{ requests_per_minute = 6000 }}
auth_failures_per_minute = 20
sync_interval = "100ms"

[[rate_limits.overrides]]
tenant = "acme"
requests_per_minute = 10000

[[rate_limits.overrides]]
key = "key_0123456789abcdef"
tokens_per_minute = 5000

[[budgets]]
tenant = "acme"
amount_usd = 500.0
period = "month"
soft_thresholds = [80, 50]

[[budgets]]
tenant = "acme"
channel = "direct"
product = "api"
amount_usd = 20.5
period = "day"

[[budgets]]
key = "key_0123456789abcdef"
amount_usd = 10

[telemetry]
otlp_endpoint = "http://127.0.0.1:4318"
tenant_labels = true
{MINIMAL}"#
    )
    .replace(
        "models = [{ name = \"gpt-4o\", target",
        "rate_limit = { requests_per_minute = 1000 }\nmodels = [{ name = \"gpt-4o\", target",
    );
    let c = load(&text).unwrap();
    assert_eq!(c.limits.key.requests_per_minute, Some(600));
    assert_eq!(c.limits.tenant.tokens_per_minute, None);
    assert_eq!(
        c.limits.tenant_overrides["acme"].requests_per_minute,
        Some(10_000)
    );
    assert_eq!(
        c.limits.key_overrides["key_0123456789abcdef"].tokens_per_minute,
        Some(5_000)
    );
    assert_eq!(c.limits.auth_failures_per_minute, Some(20));
    assert_eq!(
        c.limits.sync_interval,
        std::time::Duration::from_millis(100)
    );
    assert_eq!(c.budgets.len(), 3);
    assert_eq!(c.budgets[0].amount_micros, 500_000_000);
    assert_eq!(c.budgets[0].soft_percents, [50, 80]);
    assert_eq!(
        c.budgets[1].scope,
        BudgetScope::Offer {
            tenant: "acme".into(),
            channel: "direct".into(),
            product: "api".into()
        }
    );
    assert_eq!(
        (c.budgets[1].period, c.budgets[1].amount_micros),
        (BudgetPeriod::Day, 20_500_000)
    );
    assert_eq!(c.budgets[2].period, BudgetPeriod::Month, "month by default");
    assert_eq!(c.hosts[0].rate_limit.requests_per_minute, Some(1000));
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    assert!(c.telemetry.tenant_labels);
    // Nothing set: no limits, no budgets, telemetry off.
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.limits, LimitsConfig::default());
    assert!(c.budgets.is_empty() && c.telemetry == TelemetryConfig::default());
}

#[test]
fn limit_and_budget_errors_name_the_key_with_an_example() {
    let cases = [
        (
            "[[budgets]]\ntenant = \"nobody\"\namount_usd = 1.0\n",
            "budgets[0].tenant",
            "configured: acme",
        ),
        (
            "[[budgets]]\ntenant = \"acme\"\namount_usd = 1.0\nperiod = \"week\"\n",
            "budgets[0].period",
            "period = \"month\"",
        ),
        (
            "[[budgets]]\nchannel = \"direct\"\namount_usd = 1.0\n",
            "budgets[0]",
            "amount_usd = 500.0",
        ),
        (
            "[[budgets]]\nkey = \"acme\"\namount_usd = 1.0\n",
            "budgets[0].key",
            "key_",
        ),
        (
            "[[budgets]]\ntenant = \"acme\"\namount_usd = -1.0\n",
            "budgets[0].amount_usd",
            "amount_usd = 500.0",
        ),
        (
            "[[budgets]]\ntenant = \"acme\"\namount_usd = 1.0\nsoft_thresholds = [120]\n",
            "budgets[0].soft_thresholds",
            "[50, 80]",
        ),
        (
            "[[budgets]]\ntenant = \"acme\"\namount_usd = 1.0\n[[budgets]]\ntenant = \"acme\"\namount_usd = 2.0\n",
            "budgets[1]",
            "amount_usd",
        ),
        (
            "[rate_limits]\nkey = { requests_per_minute = 0 }\n",
            "rate_limits.key.requests_per_minute",
            "requests_per_minute = 600",
        ),
        (
            "[rate_limits]\nsync_interval = \"1m\"\n",
            "rate_limits.sync_interval",
            "200ms",
        ),
        (
            "[[rate_limits.overrides]]\nrequests_per_minute = 5\n",
            "rate_limits.overrides[0]",
            "tenant = \"acme\"",
        ),
        (
            "[store]\nredis_url = \"redis://127.0.0.1:6379\"\n",
            "store.redis_url",
            "postgres://",
        ),
        (
            "[store]\nurl = \"postgres://db/treaty\"\nredis_url = \"http://x\"\n",
            "store.redis_url",
            "redis://",
        ),
        (
            "[telemetry]\notlp_endpoint = \"grpc://x\"\n",
            "telemetry.otlp_endpoint",
            "http://127.0.0.1:4318",
        ),
        (
            "[telemetry]\nsample_ratio = 2.0\n",
            "telemetry.sample_ratio",
            "sample_ratio = 0.1",
        ),
    ];
    for (extra, key, example) in cases {
        let err = load(&format!("{extra}{MINIMAL}")).unwrap_err();
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
        assert!(err.to_string().contains(example), "{extra}: {err}");
    }
}
