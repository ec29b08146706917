//! The web UI at `/ui`, in-process: who may look (sessions, expiry, the
//! auditor's read-only role), CSRF on every change, and every page
//! rendered from real traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::{ADMIN_TOKEN, AUDITOR_TOKEN, Harness, Reply};

fn addr() -> ConnectInfo<SocketAddr> {
    ConnectInfo("10.1.2.3:5555".parse().unwrap())
}

/// A request as a browser sends it: the session cookie, a form body.
fn browser(method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("other=1; treaty_ui={c}"));
    }
    let mut req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    req.extensions_mut().insert(addr());
    req
}

fn location(r: &Reply) -> &str {
    r.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Signs in with `token`; the session cookie's value and the raw header.
async fn sign_in(h: &Harness, token: &str, extra: &[(&str, &str)]) -> (String, String) {
    let mut req = browser("POST", "/ui/login", None, Some(&format!("token={token}")));
    for (k, v) in extra {
        let name: axum::http::HeaderName = k.parse().unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/ui");
    let raw = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let value = raw
        .strip_prefix("treaty_ui=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    (value, raw)
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn get(h: &Harness, path: &str, cookie: &str) -> Reply {
    h.send(browser("GET", path, Some(cookie), None)).await
}

#[tokio::test]
async fn ui_without_a_session_redirects_to_the_login_form() {
    let h = common::harness_with("").await;
    for path in ["/ui", "/ui/ledger", "/ui/keys", "/ui/whatif", "/ui/runs"] {
        let r = h.send(browser("GET", path, None, None)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/ui/login", "{path}");
    }
    // A made-up session id is no session.
    let r = get(&h, "/ui", "0123abcd").await;
    assert_eq!(location(&r), "/ui/login");
    // A change without a session changes nothing.
    let r = h
        .send(browser(
            "POST",
            "/ui/keys",
            None,
            Some("tenant=acme&channel=direct&product=api"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        h.gateway.engine.store.list_keys(None).await.unwrap().len(),
        2
    );
    let r = h.send(browser("GET", "/ui/login", None, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains(r#"<label for="token""#));
}

#[tokio::test]
async fn ui_login_sets_a_hardened_cookie_and_stores_only_its_hash() {
    let h = common::harness_with("").await;
    let (id, raw) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(raw.contains(attr), "{raw}");
    }
    assert!(!raw.contains("Secure"), "plain HTTP: {raw}");
    assert_eq!(id.len(), 64);
    let store = &h.gateway.engine.store;
    assert!(store.session(&id).await.unwrap().is_none());
    use sha2::Digest;
    let hashed = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    assert_eq!(store.session(&hashed).await.unwrap().unwrap().role, "admin");
    // Behind a TLS-terminating proxy the cookie is Secure.
    let (_, raw) = sign_in(&h, ADMIN_TOKEN, &[("x-forwarded-proto", "https")]).await;
    assert!(raw.contains("; Secure"), "{raw}");
}

#[tokio::test]
async fn ui_wrong_tokens_are_refused_and_count_as_failed_authentication() {
    let h = common::harness_with("[rate_limits]\nauth_failures_per_minute = 2\n").await;
    for _ in 0..2 {
        let r = h
            .send(browser("POST", "/ui/login", None, Some("token=guess")))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers.get(header::SET_COOKIE).is_none());
    }
    let r = h
        .send(browser("POST", "/ui/login", None, Some("token=guess")))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Even the right token waits until the limiter lets this address in.
    let r = h
        .send(browser(
            "POST",
            "/ui/login",
            None,
            Some(&format!("token={ADMIN_TOKEN}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn ui_changes_need_the_sessions_csrf_token_and_are_audited() {
    let h = common::harness_with("").await;
    let (cookie, _) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    let page = get(&h, "/ui/keys", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.text());
    let form = "tenant=acme&channel=direct&product=api&name=from-ui";
    for bad in ["", "&csrf=", "&csrf=0000"] {
        let r = h
            .send(browser(
                "POST",
                "/ui/keys",
                Some(&cookie),
                Some(&format!("{form}{bad}")),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
    }
    let store = &h.gateway.engine.store;
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    let r = h
        .send(browser(
            "POST",
            "/ui/keys",
            Some(&cookie),
            Some(&format!("{form}&csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().contains(r#"id="secret""#));
    let keys = store.list_keys(None).await.unwrap();
    let new = keys
        .iter()
        .find(|k| k.name.as_deref() == Some("from-ui"))
        .unwrap();
    // The secret is shown once: the list page never shows it again.
    let again = get(&h, "/ui/keys", &cookie).await.text();
    assert!(!again.contains(r#"id="secret""#));
    let revoke = format!("/ui/keys/{}/revoke", new.id);
    let r = h
        .send(browser("POST", &revoke, Some(&cookie), Some("csrf=nope")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(browser(
            "POST",
            &revoke,
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        store
            .key_by_id(&new.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // Both changes are in the ledger with the UI's actor.
    h.gateway.engine.ledger.flush().await.unwrap();
    let mut out = Vec::new();
    treaty_ledger::export(store, treaty_ledger::Format::Jsonl, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    for action in ["keys.create", "keys.revoke"] {
        assert!(
            text.lines()
                .any(|l| l.contains(action) && l.contains("ui-admin@10.1.2.3")),
            "{action} not audited: {text}"
        );
    }
}

#[tokio::test]
async fn ui_auditor_browses_and_verifies_but_never_changes() {
    let h = common::harness_with("").await;
    let r = h.post("/v1/chat/completions", common::chat("hello")).await;
    assert_eq!(r.status, StatusCode::OK);
    let (cookie, _) = sign_in(&h, AUDITOR_TOKEN, &[]).await;
    let page = get(&h, "/ui/keys", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(text.contains("auditor (read-only)"));
    assert!(!text.contains(r#"id="create-key""#), "no create form");
    let csrf = csrf_of(&text);
    let r = h
        .send(browser(
            "POST",
            "/ui/keys",
            Some(&cookie),
            Some(&format!(
                "tenant=acme&channel=direct&product=api&csrf={csrf}"
            )),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let id = h.gateway.engine.store.list_keys(None).await.unwrap()[0]
        .id
        .clone();
    let r = h
        .send(browser(
            "POST",
            &format!("/ui/keys/{id}/revoke"),
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        h.gateway
            .engine
            .store
            .key_by_id(&id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    // Verifying only reads: the auditor may.
    let r = h
        .send(browser("POST", "/ui/verify", Some(&cookie), Some("csrf=x")))
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "verify needs the CSRF token too"
    );
    let r = h
        .send(browser(
            "POST",
            "/ui/verify",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job = location(&r).to_owned();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = get(&h, &format!("{job}/status"), &cookie).await.json();
        if status["finished"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["ok"], true, "{status}");
    assert!(status["done"].as_u64().unwrap() >= 2, "{status}");
}

#[tokio::test]
async fn ui_sessions_end_when_idle_and_at_logout() {
    let h = common::harness_with("ui_session_idle = \"1s\"").await;
    let (cookie, _) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    assert_eq!(get(&h, "/ui", &cookie).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let r = get(&h, "/ui", &cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/login?expired=1");
    // Expired is gone: the next try is plainly unauthenticated.
    assert_eq!(location(&get(&h, "/ui", &cookie).await), "/ui/login");

    let (cookie, _) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    let csrf = csrf_of(&get(&h, "/ui", &cookie).await.text());
    let r = h
        .send(browser("POST", "/ui/logout", Some(&cookie), Some("csrf=")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(browser(
            "POST",
            "/ui/logout",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(location(&get(&h, "/ui", &cookie).await), "/ui/login");
}

#[tokio::test]
async fn ui_pages_show_the_recorded_traffic() {
    let h = common::harness_with("").await;
    let r = h.post("/v1/chat/completions", common::chat("hello")).await;
    assert_eq!(r.status, StatusCode::OK);
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    h.gateway.engine.ledger.flush().await.unwrap();
    let (cookie, _) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    let pages = [
        ("/ui".to_owned(), "Requests over time by host"),
        (
            "/ui/overview/fragment?range=all".to_owned(),
            "data-breaker=\"azure-a\"",
        ),
        ("/ui/ledger".to_owned(), request_id.as_str()),
        (
            "/ui/ledger?tenant=acme&status=served".to_owned(),
            request_id.as_str(),
        ),
        (format!("/ui/ledger/{request_id}"), r#"id="hosts""#),
        (format!("/ui/explain/{request_id}"), "set by rule"),
        ("/ui/contracts".to_owned(), "No contracts are configured"),
        ("/ui/whatif".to_owned(), "Pick the reading"),
        ("/ui/runs".to_owned(), "Agents and runs"),
        ("/ui/keys".to_owned(), "Create a key"),
    ];
    for (path, needle) in &pages {
        let r = get(&h, path, &cookie).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let text = r.text();
        assert!(text.contains(needle), "{path} lacks {needle:?}: {text}");
        assert!(
            r.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"),
            "{path}"
        );
    }
    // A filter that matches nothing says so.
    let r = get(&h, "/ui/ledger?status=failed", &cookie).await;
    assert!(r.text().contains(r#"id="empty""#));
    let r = get(&h, "/ui/ledger/req_unknown", &cookie).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// How long each page takes on a large ledger. Ignored (it writes the
/// ledger first, about a minute per million records in a dev build):
/// `TREATY_UI_BENCH_RECORDS=1000000 cargo nextest run --workspace
/// -E 'test(ui_page_times_on_a_large_ledger)' --run-ignored all
/// --no-capture`. The numbers are in BENCHMARKS.md.
#[tokio::test]
#[ignore]
async fn ui_page_times_on_a_large_ledger() {
    use treaty_ledger::{DecisionRecord, Entry, HostVerdict, OutcomeRecord};
    let records: u64 = std::env::var("TREATY_UI_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let h = common::harness_with("").await;
    let ledger = h.gateway.engine.ledger.clone();
    let started = std::time::Instant::now();
    let now = treaty_domain::now_ms();
    let requests = records / 2;
    let mut pending = Vec::with_capacity(4096);
    let mut last = String::new();
    for i in 0..requests {
        let id = format!("req_bench{i:012}");
        let refused = i % 10 == 0;
        let host = if i % 3 == 0 { "vllm-b" } else { "azure-a" };
        let d = DecisionRecord {
            request_id: id.clone(),
            // Spread over the last day, oldest first.
            at_ms: now - 86_400_000 + (i as i64 * 86_400_000 / requests as i64),
            key_id: "key_bench".into(),
            tenant: "acme".into(),
            channel: "direct".into(),
            product: "api".into(),
            route: "/v1/chat/completions".into(),
            model: "gpt-4o".into(),
            workload_class: "stateless_api".into(),
            classified_by: "default".into(),
            data_classification: "internal".into(),
            admitted: !refused,
            hosts: vec![
                HostVerdict {
                    host: "azure-a".into(),
                    allowed: true,
                    clauses: vec!["C1".into()],
                },
                HostVerdict {
                    host: "vllm-b".into(),
                    allowed: !refused,
                    clauses: vec!["C2".into()],
                },
            ],
            chosen: (!refused).then(|| host.to_owned()),
            ..DecisionRecord::default()
        };
        let o = OutcomeRecord {
            request_id: id.clone(),
            at_ms: d.at_ms + 40,
            served_by: (!refused).then(|| host.to_owned()),
            attempts: Vec::new(),
            status: if refused { 403 } else { 200 },
            prompt_tokens: 10,
            completion_tokens: 20,
            cost_micros: 250,
            latency_us: 40_000 + (i % 1000) * 50,
            client_cancelled: false,
            error: None,
        };
        pending.push(ledger.append(Entry::Decision(d)));
        pending.push(ledger.append(Entry::Outcome(o)));
        if pending.len() >= 4096 {
            for p in pending.drain(..) {
                p.await.unwrap();
            }
        }
        last = id;
    }
    for p in pending.drain(..) {
        p.await.unwrap();
    }
    ledger.flush().await.unwrap();
    eprintln!(
        "wrote {} records in {:.1}s",
        requests * 2,
        started.elapsed().as_secs_f64()
    );
    let (cookie, _) = sign_in(&h, ADMIN_TOKEN, &[]).await;
    let pages = [
        "/ui?range=15m".to_owned(),
        "/ui/overview/fragment?range=15m".to_owned(),
        "/ui/ledger".to_owned(),
        "/ui/ledger?before=600000".to_owned(),
        "/ui/ledger?status=refused&host=vllm-b".to_owned(),
        "/ui/ledger?tenant=eurobank".to_owned(),
        format!("/ui/ledger?request_id={last}"),
        format!("/ui/ledger/{last}"),
        format!("/ui/explain/{last}"),
        "/ui/contracts".to_owned(),
        "/ui/runs".to_owned(),
        "/ui/keys".to_owned(),
    ];
    for path in &pages {
        let t = std::time::Instant::now();
        let r = get(&h, path, &cookie).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        eprintln!("{ms:8.1} ms  {path}");
    }
}
