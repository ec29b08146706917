//! Sending a request to its hosts: the attempt loop.
//!
//! The router gives the plan; this loop walks it, up to
//! `upstream.max_attempts` attempts under one total deadline. A retryable
//! failure moves on to the next host in the plan; coming back to a host
//! already tried waits a jittered backoff that honours `Retry-After`. A
//! failure the client caused (a 400 from the host) ends the loop at once.
//! For streams, "success" means the first event arrived: failover is only
//! possible before the client has seen a byte.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use tokio::time::Instant;
use treaty_domain::{Host, HostId, RequestContext};
use treaty_providers::{CallOptions, Provider, UpstreamError};
use treaty_router::Plan;

use crate::engine::Engine;
use crate::error::{Code, Error};

/// One try on one host, for the outcome record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub host: HostId,
    /// Why it failed; `None` for the attempt that served.
    pub error: Option<String>,
    pub latency: Duration,
}

/// A successful exchange and how it was reached.
pub(crate) struct Served<T> {
    pub value: T,
    pub host: Arc<Host>,
    pub host_index: usize,
    pub attempts: Vec<Attempt>,
    /// The serving host's share of its own quota, settled with the usage.
    pub quota: treaty_limits::HostPermit,
}

pub(crate) struct Failed {
    pub error: Error,
    pub attempts: Vec<Attempt>,
}

pub(crate) async fn dispatch<T, F, Fut>(
    gw: &Engine,
    ctx: &RequestContext,
    plan: &Plan,
    tokens: u32,
    mut call: F,
) -> Result<Served<T>, Failed>
where
    F: FnMut(Arc<dyn Provider>, Arc<Host>, CallOptions) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let mut attempts = Vec::with_capacity(plan.hosts.len().min(4));
    if plan.hosts.is_empty() {
        return Err(Failed {
            error: all_down(gw, plan, &ctx.model),
            attempts,
        });
    }
    let hosts = &plan.hosts;
    let upstream = &gw.config.upstream;
    let deadline = Instant::now() + upstream.total_timeout;
    let mut last: Option<UpstreamError> = None;
    for n in 0..upstream.max_attempts as usize {
        let index = hosts[n % hosts.len()];
        if n >= hosts.len() {
            // Every planned host has failed once: wait before going round
            // again, and give up if the wait would pass the deadline.
            let wait = treaty_router::backoff(
                (n - hosts.len() + 1) as u32,
                last.as_ref().and_then(UpstreamError::retry_after),
                rand::random::<f64>(),
            );
            if Instant::now() + wait >= deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let host = gw.router.host(index).clone();
        // The host's own quota (`hosts.rate_limit`): a host at it is
        // skipped like one that answered 429.
        let quota = match gw.limits.acquire_host(index, tokens).await {
            Ok(permit) => permit,
            Err(refusal) => {
                gw.metrics.rate_limited("host", limit_kind(&refusal));
                attempts.push(Attempt {
                    host: host.id.clone(),
                    error: Some("host_quota".into()),
                    latency: Duration::ZERO,
                });
                last = Some(UpstreamError::Status {
                    status: 429,
                    retry_after: refusal.retry_after(),
                    message: format!("Treaty's quota for host {} is used up.", host.id),
                    code: Some("host_quota".into()),
                });
                continue;
            }
        };
        let options = CallOptions {
            first_byte_timeout: upstream.first_byte_timeout,
            deadline,
            request_id: ctx.request_id.clone(),
            traceparent: None,
        };
        let span = attempt_span(ctx, &host);
        let mut options = options;
        if !span.is_none() {
            let mut headers = http::HeaderMap::new();
            treaty_telemetry::span::inject(&span, &mut headers);
            options.traceparent = headers.remove("traceparent");
        }
        let started = Instant::now();
        let result = call(gw.providers[index].clone(), host.clone(), options)
            .instrument(span.clone())
            .await;
        let latency = started.elapsed();
        if let Err(err) = &result {
            treaty_telemetry::span::record_response(
                &span,
                &treaty_telemetry::span::GenAiResponse {
                    error_type: Some(error_type(err)),
                    ..Default::default()
                },
            );
        }
        match result {
            Ok(value) => {
                gw.router.observe(index, true, latency);
                gw.metrics
                    .attempt(host.id.as_str(), "ok", latency.as_secs_f64(), false);
                attempts.push(Attempt {
                    host: host.id.clone(),
                    error: None,
                    latency,
                });
                return Ok(Served {
                    value,
                    host,
                    host_index: index,
                    attempts,
                    quota,
                });
            }
            Err(err) => {
                // A host refusing *Treaty's* credentials is that host's
                // fault, not the client's: try the next host.
                let host_fault = matches!(
                    err,
                    UpstreamError::Status {
                        status: 401 | 403,
                        ..
                    }
                );
                let retry = err.retryable() || host_fault;
                // A client error means the host answered: healthy.
                gw.router.observe(index, !retry, latency);
                gw.metrics.attempt(
                    host.id.as_str(),
                    error_type(&err),
                    latency.as_secs_f64(),
                    retry,
                );
                attempts.push(Attempt {
                    host: host.id.clone(),
                    error: Some(err.to_string()),
                    latency,
                });
                if !retry {
                    return Err(Failed {
                        error: client_facing(&err, &host.id),
                        attempts,
                    });
                }
                last = Some(err);
            }
        }
    }
    let error = exhausted(gw, last.as_ref(), &attempts, &ctx.model);
    Err(Failed { error, attempts })
}

/// The span of one attempt at a host, a GenAI client span named
/// `{operation} {model}`; `Span::none()` when spans are not exported, so
/// tracing off costs no allocation here.
fn attempt_span(ctx: &RequestContext, host: &treaty_domain::Host) -> tracing::Span {
    use treaty_telemetry::span;
    if !span::enabled() {
        return tracing::Span::none();
    }
    let operation = match ctx.route {
        treaty_domain::Route::Embeddings => "embeddings",
        _ => "chat",
    };
    let s = tracing::info_span!(
        "gen_ai.attempt",
        otel.name = %format_args!("{operation} {}", ctx.model),
        otel.kind = "client",
    );
    span::record_request(
        &s,
        &span::GenAiRequest {
            operation,
            provider: span::provider_name(host.provider.as_str()),
            request_model: &ctx.model,
        },
    );
    span::record_treaty(
        &s,
        &span::TreatyAttrs {
            host: Some(host.id.as_str()),
            ..Default::default()
        },
    );
    s
}

fn limit_kind(refusal: &treaty_limits::Refusal) -> &'static str {
    match refusal {
        treaty_limits::Refusal::RateLimited(r) => r.kind.as_str(),
        _ => "requests",
    }
}

/// A failed attempt's `outcome` label in metrics: a closed set, so the
/// series stay few whatever the hosts answer.
fn error_type(err: &UpstreamError) -> &'static str {
    match err {
        UpstreamError::Connect(_) => "connect",
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Status { status: 429, .. } => "rate_limited",
        UpstreamError::Status { status, .. } if *status >= 500 => "server_error",
        UpstreamError::Status { .. } => "rejected",
        UpstreamError::InStream { .. } => "in_stream",
        UpstreamError::Protocol(_) => "protocol",
        UpstreamError::Truncated => "truncated",
        UpstreamError::Io(_) => "io",
    }
}

/// Maps one upstream failure to what the client sees.
pub fn client_facing(err: &UpstreamError, host: &HostId) -> Error {
    let (status, message, _code) = err.client_facing(host);
    let rejected = matches!(
        err,
        UpstreamError::Status {
            status: 401 | 403,
            ..
        }
    );
    let code = match status {
        _ if rejected => Code::UpstreamRejected,
        429 => Code::UpstreamRateLimited,
        504 => Code::UpstreamTimeout,
        400..=499 => Code::InvalidRequest,
        _ => Code::UpstreamError,
    };
    let mut e = Error::new(code, message);
    if (400..500).contains(&status) && status != 429 && !rejected {
        e.status_override = Some(status);
    }
    e.retry_after = err.retry_after().map(|d| d.as_secs().max(1));
    e
}

fn names(gw: &Engine, mask: treaty_router::HostMask) -> String {
    mask.iter()
        .map(|i| gw.router.host(i).id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// No allowed host could even be tried: every one has an open circuit.
fn all_down(gw: &Engine, plan: &Plan, model: &str) -> Error {
    if plan.candidates.is_empty() {
        return Error::model_not_found(model);
    }
    let mut e = match gw.policy.reading() {
        Some(reading) => Error::new(
            Code::AllowedHostsUnavailable,
            format!(
                "Every host the contract (reading {reading}) allows for this request is down ({}). No other host was tried.",
                names(gw, plan.candidates)
            ),
        ),
        None => Error::new(
            Code::NoHostAvailable,
            format!(
                "Every host serving '{model}' is down ({}).",
                names(gw, plan.candidates)
            ),
        ),
    };
    e.retry_after = Some(1);
    e
}

/// Every attempt failed with a retryable error.
fn exhausted(
    gw: &Engine,
    last: Option<&UpstreamError>,
    attempts: &[Attempt],
    model: &str,
) -> Error {
    let mut tried: Vec<&str> = attempts.iter().map(|a| a.host.as_str()).collect();
    tried.sort_unstable();
    tried.dedup();
    // A host that refused Treaty's credentials is a configuration fault
    // the operator must see as such, not a generic outage.
    if let (
        Some(
            err @ UpstreamError::Status {
                status: 401 | 403, ..
            },
        ),
        Some(attempt),
    ) = (last, attempts.last())
    {
        return client_facing(err, &attempt.host);
    }
    if let Some(err @ UpstreamError::Status { status: 429, .. }) = last {
        let mut e = Error::new(
            Code::UpstreamRateLimited,
            format!(
                "Every host tried for '{model}' is rate limiting (tried: {}). Retry later.",
                tried.join(", ")
            ),
        );
        e.retry_after = err
            .retry_after()
            .map(|d: Duration| d.as_secs().max(1))
            .or(Some(1));
        return e;
    }
    let mut e = match gw.policy.reading() {
        Some(reading) => Error::new(
            Code::AllowedHostsUnavailable,
            format!(
                "Every host the contract (reading {reading}) allows for this request failed (tried: {}). No other host was tried.",
                tried.join(", ")
            ),
        ),
        None => Error::new(
            Code::NoHostAvailable,
            format!(
                "No host could serve '{model}': every attempt failed (tried: {}).",
                tried.join(", ")
            ),
        ),
    };
    e.retry_after = Some(1);
    e
}
