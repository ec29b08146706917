//! Signing in to the UI: the login form, sessions, roles and CSRF.
//!
//! The login form takes the admin token or the auditor token (each read
//! from the environment variable the config names; compared in constant
//! time by the engine). A success creates a session: a random 256-bit id
//! in an `HttpOnly; SameSite=Strict` cookie scoped to `/ui` (`Secure`
//! when the request came over TLS, as a TLS-terminating proxy says with
//! `X-Forwarded-Proto: https`), of which the store keeps only the SHA-256,
//! and a random CSRF token every changing form must carry. A session
//! unused for [`crate::Settings::session_idle`] is over. Failed logins
//! count in the engine's failed-authentication limiter, like a wrong key.
//!
//! [`Session`] is the extractor every page takes: no valid session
//! redirects to the login form. [`Session::may_change`] is the gate every
//! change passes: the auditor gets 403, a missing or wrong CSRF token
//! gets 403. This module never logs a token, a session id or a CSRF value.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, http};
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use treaty_store::SessionRow;

use crate::Ui;
use crate::page;

/// The session cookie's name.
pub const COOKIE: &str = "treaty_ui";

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including keys.
    Admin,
    /// Browse and verify; never change.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// The token every changing form carries (in a hidden field).
    pub csrf: String,
    /// Who signed in, for the ledger's admin records.
    pub actor: String,
    id_hash: String,
}

impl Session {
    /// The gate of every change: 403 for the auditor, 403 without the
    /// session's CSRF token.
    pub fn may_change(&self, csrf: &str) -> Result<(), Refused> {
        if self.role != Role::Admin {
            return Err(Refused(
                "The auditor role is read-only: sign in with the admin token to change anything.",
            ));
        }
        self.csrf_matches(csrf)
    }

    /// The gate of an action any role may take (verify, logout): 403
    /// without the session's CSRF token.
    pub fn csrf_matches(&self, csrf: &str) -> Result<(), Refused> {
        let a = Sha256::digest(csrf.as_bytes());
        let b = Sha256::digest(self.csrf.as_bytes());
        // Digests compared whole, so timing says nothing about a prefix.
        if a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
            && !csrf.is_empty()
        {
            Ok(())
        } else {
            Err(Refused(
                "This form's CSRF token is missing or wrong: reload the page and try again.",
            ))
        }
    }
}

/// A change refused (403), with why.
#[derive(Debug, Clone, Copy)]
pub struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            page::bare("Forbidden", html! { p role="alert" { (self.0) } }),
        )
            .into_response()
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The session id the browser presented, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn client_addr(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Where a browser without a valid session is sent.
fn to_login(expired: bool) -> Response {
    Redirect::to(if expired {
        "/ui/login?expired=1"
    } else {
        "/ui/login"
    })
    .into_response()
}

impl FromRequestParts<Arc<Ui>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Arc<Ui>) -> Result<Self, Response> {
        let Some(id) = cookie_value(&parts.headers) else {
            return Err(to_login(false));
        };
        let id_hash = hash_id(id);
        let store = &ui.engine.store;
        let row = store
            .session(&id_hash)
            .await
            .map_err(|e| page::store_error(&e))?;
        let Some(row) = row else {
            return Err(to_login(false));
        };
        let now = treaty_domain::now_ms();
        let idle_ms = ui.settings.session_idle.as_millis() as i64;
        if now - row.last_seen_ms > idle_ms {
            store
                .delete_session(&id_hash)
                .await
                .map_err(|e| page::store_error(&e))?;
            return Err(to_login(true));
        }
        // One write per quarter of the idle limit (at most a minute),
        // not one per page: the store is the ledger's too.
        if now - row.last_seen_ms > (idle_ms / 4).min(60_000) {
            store
                .touch_session(&id_hash, now)
                .await
                .map_err(|e| page::store_error(&e))?;
        }
        let Some(role) = Role::parse(&row.role) else {
            return Err(to_login(false));
        };
        Ok(Session {
            role,
            csrf: row.csrf,
            actor: row.actor,
            id_hash,
        })
    }
}

/// A request extension: the connection was TLS that `treaty serve`
/// terminated itself (`[server.tls]`).
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// The client's address and whether it came over TLS, for the login.
#[derive(Debug)]
pub struct Client {
    addr: Option<IpAddr>,
    tls: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        Ok(Client {
            addr: client_addr(parts),
            tls: forwarded_https
                || parts.extensions.get::<ServedOverTls>().is_some()
                || parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    expired: Option<String>,
}

pub async fn login_page(State(ui): State<Arc<Ui>>, Query(q): Query<LoginQuery>) -> Response {
    login_form(&ui, q.expired.is_some(), None, StatusCode::OK)
}

fn login_form(ui: &Ui, expired: bool, error: Option<&str>, status: StatusCode) -> Response {
    let server = &ui.engine.config.server;
    let enabled = ui.engine.admin_enabled();
    let body = html! {
        main.login {
            h1 { "Treaty" }
            @if expired {
                p.notice role="status" { "Your session expired. Sign in again." }
            }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            @if enabled {
                form method="post" action="/ui/login" {
                    label for="token" { "Admin or auditor token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.hint { "The admin token is read from " code { (server.admin_token_env) }
                    "; the read-only auditor token from " code { (server.auditor_token_env) } "." }
            } @else {
                p.error role="alert" { "The UI is disabled: set " code { (server.admin_token_env) } " to enable it." }
            }
        }
    };
    (status, page::bare("Sign in", body)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn login(
    State(ui): State<Arc<Ui>>,
    client: Client,
    Form(form): Form<LoginForm>,
) -> Response {
    let engine = &ui.engine;
    if !engine.admin_enabled() {
        return login_form(&ui, false, None, StatusCode::FORBIDDEN);
    }
    let guard = engine.limits.auth().zip(client.addr);
    if let Some((guard, addr)) = guard
        && let Err(wait) = guard.check(addr)
    {
        return too_many(&ui, wait);
    }
    let role = if engine.admin_token_matches(&form.token) {
        Role::Admin
    } else if engine.auditor_token_matches(&form.token) {
        Role::Auditor
    } else {
        if let Some((guard, addr)) = guard
            && let Err(wait) = guard.failed(addr)
        {
            return too_many(&ui, wait);
        }
        return login_form(
            &ui,
            false,
            Some("That token is neither the admin nor the auditor token."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let id = random_hex();
    let now = treaty_domain::now_ms();
    let actor = match client.addr {
        Some(addr) => format!("ui-{}@{addr}", role.as_str()),
        None => format!("ui-{}", role.as_str()),
    };
    let row = SessionRow {
        id_hash: hash_id(&id),
        role: role.as_str().to_owned(),
        csrf: random_hex(),
        actor,
        created_ms: now,
        last_seen_ms: now,
    };
    if let Err(e) = engine.store.insert_session(&row).await {
        return page::store_error(&e);
    }
    // Sessions idle past the limit are forgotten at each sign-in, so the
    // table never grows with abandoned browsers.
    let idle_ms = ui.settings.session_idle.as_millis() as i64;
    if let Err(e) = engine.store.delete_idle_sessions(now - idle_ms).await {
        tracing::warn!(error = %e, "cannot forget idle UI sessions");
    }
    // No Max-Age: the browser forgets the cookie when it closes, and the
    // server alone decides when a session has been idle too long (so it
    // can say so, instead of the cookie silently vanishing).
    let cookie = format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict{}",
        if client.tls { "; Secure" } else { "" }
    );
    let mut res = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn too_many(ui: &Ui, wait: std::time::Duration) -> Response {
    let secs = wait.as_millis().div_ceil(1000).max(1);
    let mut res = login_form(
        ui,
        false,
        Some(&format!(
            "Too many failed sign-ins from this address. Try again in {secs}s."
        )),
        StatusCode::TOO_MANY_REQUESTS,
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(ui): State<Arc<Ui>>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.csrf_matches(&form.csrf) {
        return refused.into_response();
    }
    if let Err(e) = ui.engine.store.delete_session(&session.id_hash).await {
        return page::store_error(&e);
    }
    let mut res = Redirect::to("/ui/login").into_response();
    let clear = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
