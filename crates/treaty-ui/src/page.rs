//! The page shell every page shares (head, navigation, the signed-in
//! role, logout), error pages, the security headers every answer carries,
//! and the few formatters pages use (times, money, hashes).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::auth::{Role, Session};

/// The sections of the navigation, by path.
const NAV: [(&str, &str); 6] = [
    ("/ui", "Overview"),
    ("/ui/ledger", "Ledger"),
    ("/ui/contracts", "Contracts"),
    ("/ui/whatif", "What-if"),
    ("/ui/runs", "Runs"),
    ("/ui/keys", "Keys"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Treaty" }
            // No favicon request: a 404 would be noise in the console.
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/ui/assets/ui.css";
            script src="/ui/assets/ui.js" defer {}
        }
    }
}

/// A whole page for a signed-in person: `active` is the navigation entry
/// it belongs to.
pub fn layout(title: &str, session: &Session, active: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        nav aria-label="Sections" {
                            span.brand { "Treaty" }
                            ul {
                                @for (href, label) in NAV {
                                    li { a href=(href) aria-current=[(href == active).then_some("page")] { (label) } }
                                }
                            }
                        }
                        div.who {
                            span.role data-role=(session.role.as_str()) {
                                @match session.role { Role::Admin => "admin", Role::Auditor => "auditor (read-only)" }
                            }
                            form method="post" action="/ui/logout" {
                                (csrf_field(session))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A page outside the signed-in shell (login, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// The hidden field carrying the session's CSRF token.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        bare(
            "Error",
            html! { main.login { h1 { "Treaty" } p.error role="alert" { (message) } p { a href="/ui" { "Back to the overview" } } } },
        ),
    )
        .into_response()
}

pub fn store_error(e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "UI page failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("The store could not answer: {e}"),
    )
}

pub async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "No such page.")
}

/// Headers on every UI answer: no caching of evidence pages, no framing,
/// scripts only from the UI itself (styles may be inline: the charts'
/// legend swatches are).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&f).unwrap_or_else(|_| ms.to_string())
}

/// A `datetime-local` input's value (`YYYY-MM-DDTHH:MM`, read as UTC) or
/// an RFC 3339 time, as unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let f2 = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(text, &f)
        .or_else(|_| time::PrimitiveDateTime::parse(text, &f2))
        .ok()?;
    Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Micro-dollars as `$1.234567`.
pub fn usd(micros: i64) -> String {
    treaty_limits::format_usd(micros)
}

/// Inline SVG or HTML produced by the ledger crate, which escapes every
/// data text itself.
pub fn trusted(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}

/// The recent-time ranges the pickers offer, as (value, label, ms).
pub const RANGES: [(&str, &str, i64); 5] = [
    ("15m", "last 15 minutes", 15 * 60_000),
    ("1h", "last hour", 3_600_000),
    ("24h", "last 24 hours", 86_400_000),
    ("7d", "last 7 days", 7 * 86_400_000),
    ("all", "everything", 0),
];

/// A range picker's value as `since` (unix ms; `None` for everything).
pub fn range_since(value: &str, now_ms: i64) -> Option<i64> {
    RANGES
        .iter()
        .find(|(v, _, _)| *v == value)
        .and_then(|(_, _, ms)| (*ms > 0).then_some(now_ms - ms))
}

/// A `<select>` of time ranges named `name`, `current` selected.
pub fn range_select(name: &str, current: &str) -> Markup {
    html! {
        select #(name) name=(name) data-autosubmit {
            @for (v, label, _) in RANGES {
                option value=(v) selected[v == current] { (label) }
            }
        }
    }
}
