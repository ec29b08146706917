//! The headers Treaty reads and writes beside OpenAI's.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use treaty_engine::Placed;

/// `x-treaty-workload-class`: a class the client declares (only with a
/// key allowed to declare it).
pub const DECLARED_CLASS: &str = "x-treaty-workload-class";
/// `x-treaty-data-classification`: the request's data classification.
pub const DATA_CLASSIFICATION: &str = "x-treaty-data-classification";
/// `x-treaty-prefer-host`: one host asked for, honoured only where allowed.
pub const PREFER_HOST: &str = "x-treaty-prefer-host";

static X_TREATY_HOST: HeaderName = HeaderName::from_static("x-treaty-host");

/// The id of one request, made by the middleware and returned to the
/// client as `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The placement headers: which host served, the workload class, and the
/// clauses behind that host's verdict.
pub(crate) fn placed(res: &mut Response, placed: &Placed) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(placed.host.id.as_str()) {
        h.insert(X_TREATY_HOST.clone(), v);
    }
    h.insert(
        "x-treaty-class",
        HeaderValue::from_static(placed.class.as_str()),
    );
    if !placed.clauses.is_empty()
        && let Ok(v) = HeaderValue::from_str(&placed.clauses)
    {
        h.insert("x-treaty-clauses", v);
    }
    rate_limits(h, &placed.rate);
}

/// `x-treaty-receipt`: the signed placement receipt (see
/// `treaty_ledger::Receipt`), on every answer whose decision is durable.
pub(crate) fn receipt(res: &mut Response, receipt: Option<&str>) {
    if let Some(r) = receipt
        && let Ok(v) = HeaderValue::from_str(r)
    {
        res.headers_mut().insert(RECEIPT, v);
    }
}

pub(crate) const RECEIPT: &str = "x-treaty-receipt";

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, for
/// the caller's most constraining limits (none when it has none).
pub(crate) fn rate_limits(h: &mut axum::http::HeaderMap, rate: &treaty_limits::RateHeaders) {
    rate.for_each(|name, value| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    });
}

/// Marks a response as an event stream that proxies must not buffer.
pub(crate) fn event_stream(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// Marks a response as JSON.
pub(crate) fn json(res: &mut Response) {
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
}
