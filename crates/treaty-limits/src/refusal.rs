//! What a caller is told: OpenAI's rate-limit headers, and the typed
//! refusals the HTTP edge turns into 429s (or a 503).
//!
//! The official SDKs read `x-ratelimit-*` and retry 429s after
//! `retry-after-ms` / `Retry-After`, and they treat the code
//! `insufficient_quota` as final (no retry): so an exhausted budget is
//! `insufficient_quota`, a rate limit is `rate_limit_exceeded` with the
//! wait, exactly as OpenAI answers. Reset times use OpenAI's duration
//! format (`6m0s`, `1s`, `20ms`). Nothing here allocates until a message
//! is written.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bucket::Snapshot;

/// The numbers behind OpenAI's `x-ratelimit-*` headers: for requests and
/// for tokens, the most constraining of the caller's limits (key or
/// tenant); `None` where no such limit applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Snapshot>,
    pub tokens: Option<Snapshot>,
}

/// A header value built on the stack (the longest is a 20-digit number).
#[derive(Clone, Copy)]
pub struct HeaderText {
    buf: [u8; 24],
    len: u8,
}

impl HeaderText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Write for HeaderText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[start..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

fn text(f: impl FnOnce(&mut HeaderText) -> std::fmt::Result) -> HeaderText {
    let mut t = HeaderText {
        buf: [0; 24],
        len: 0,
    };
    let _ = f(&mut t);
    t
}

impl RateHeaders {
    /// Calls `f` with each header name and value, without allocating.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &str)) {
        if let Some(r) = self.requests {
            f(
                "x-ratelimit-limit-requests",
                text(|t| write!(t, "{}", r.limit)).as_str(),
            );
            f(
                "x-ratelimit-remaining-requests",
                text(|t| write!(t, "{}", r.remaining)).as_str(),
            );
            f(
                "x-ratelimit-reset-requests",
                text(|t| write_duration(t, r.reset_ms)).as_str(),
            );
        }
        if let Some(k) = self.tokens {
            f(
                "x-ratelimit-limit-tokens",
                text(|t| write!(t, "{}", k.limit)).as_str(),
            );
            f(
                "x-ratelimit-remaining-tokens",
                text(|t| write!(t, "{}", k.remaining)).as_str(),
            );
            f(
                "x-ratelimit-reset-tokens",
                text(|t| write_duration(t, k.reset_ms)).as_str(),
            );
        }
    }

    /// Keeps the more constraining (fewer remaining) of two snapshots.
    pub(crate) fn tighten(slot: &mut Option<Snapshot>, s: Snapshot) {
        match slot {
            Some(old) if old.remaining <= s.remaining => {}
            _ => *slot = Some(s),
        }
    }
}

/// OpenAI's duration format (Go's): `20ms`, `1s`, `1.5s`, `6m0s`,
/// `1h0m0s`; zero is `0s`.
pub fn format_duration(ms: u64) -> String {
    text(|t| write_duration(t, ms)).as_str().to_owned()
}

fn write_duration(t: &mut impl std::fmt::Write, ms: u64) -> std::fmt::Result {
    if ms == 0 {
        return t.write_str("0s");
    }
    if ms < 1000 {
        return write!(t, "{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    if h > 0 {
        write!(t, "{h}h{m}m")?;
    } else if m > 0 {
        write!(t, "{m}m")?;
    }
    write!(t, "{s}")?;
    if frac > 0 {
        let digits = [frac / 100, frac / 10 % 10, frac % 10];
        let n = if digits[2] != 0 {
            3
        } else if digits[1] != 0 {
            2
        } else {
            1
        };
        t.write_str(".")?;
        for d in &digits[..n] {
            write!(t, "{d}")?;
        }
    }
    t.write_str("s")
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
        }
    }
}

/// Whose limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Key,
    Tenant,
    Host,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Key => "key",
            LimitScope::Tenant => "tenant",
            LimitScope::Host => "host",
        }
    }
}

/// Why a request may not go ahead. Nothing was reserved or counted when
/// one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A budget has no room for the request's estimated cost this period:
    /// 429 `insufficient_quota` (the SDKs do not retry it).
    #[error("{}", budget_message(.0))]
    Budget(BudgetRefusal),
    /// A requests or tokens per minute limit: 429 `rate_limit_exceeded`,
    /// with `Retry-After` and the `x-ratelimit-*` headers.
    #[error("{}", rate_message(.0))]
    RateLimited(RateRefusal),
    /// The shared state could not be reached for a budget that needed it:
    /// 503. Budgets fail closed; rate limits fail open (see the crate docs).
    #[error("Budgets cannot be checked right now; the request was not sent. Retry shortly.")]
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// The budget's id, e.g. `tenant/acme/month`.
    pub budget: String,
    pub limit_micros: i64,
    /// Spent, reserved in flight, or held by other replicas, as last
    /// known.
    pub used_micros: i64,
    /// The request's estimated cost.
    pub needed_micros: i64,
    /// When the budget resets (unix ms); `None` for a total budget.
    pub resets_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRefusal {
    pub scope: LimitScope,
    pub kind: LimitKind,
    pub per_minute: u64,
    /// Units the request needed (1 request, or its estimated tokens).
    pub requested: u64,
    /// How long until it would pass; `None` when it never can (more
    /// tokens than a minute's allowance).
    pub retry_after: Option<Duration>,
    pub headers: RateHeaders,
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Budget(_) | Refusal::RateLimited(_) => 429,
            Refusal::Unavailable => 503,
        }
    }

    /// OpenAI's error `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Budget(_) => "insufficient_quota",
            Refusal::RateLimited(_) => "rate_limit_exceeded",
            Refusal::Unavailable => "budgets_unavailable",
        }
    }

    /// OpenAI's error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Refusal::Budget(_) => "insufficient_quota",
            Refusal::RateLimited(r) => r.kind.as_str(),
            Refusal::Unavailable => "server_error",
        }
    }

    /// `Retry-After`, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::RateLimited(r) => r.retry_after,
            Refusal::Unavailable => Some(Duration::from_secs(1)),
            Refusal::Budget(_) => None,
        }
    }

    /// The `x-ratelimit-*` headers to send with the refusal.
    pub fn headers(&self) -> Option<RateHeaders> {
        match self {
            Refusal::RateLimited(r) => Some(r.headers),
            _ => None,
        }
    }
}

fn budget_message(b: &BudgetRefusal) -> String {
    let resets = match b.resets_at {
        Some(at) => format!("it resets at {}", crate::period::rfc3339(at)),
        None => "it does not reset".to_owned(),
    };
    format!(
        "You exceeded your budget {}: {} of {} spent or reserved, and this request may cost up to {}; {}.",
        b.budget,
        crate::budget::format_usd(b.used_micros),
        crate::budget::format_usd(b.limit_micros),
        crate::budget::format_usd(b.needed_micros),
        resets
    )
}

fn rate_message(r: &RateRefusal) -> String {
    let wait = match r.retry_after {
        Some(d) => format!(
            "Please try again in {}.",
            format_duration(d.as_millis() as u64)
        ),
        None => "This request can never fit in that limit; make it smaller.".to_owned(),
    };
    format!(
        "Rate limit reached for {} per minute on this {}: limit {}, requested {}. {}",
        r.kind.as_str(),
        r.scope.as_str(),
        r.per_minute,
        r.requested,
        wait
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openais() {
        for (ms, text) in [
            (0, "0s"),
            (20, "20ms"),
            (1_000, "1s"),
            (1_500, "1.5s"),
            (6 * 60_000, "6m0s"),
            (90_250, "1m30.25s"),
            (3_600_000, "1h0m0s"),
        ] {
            assert_eq!(format_duration(ms), text);
        }
    }

    #[test]
    fn headers_name_both_limits() {
        let h = RateHeaders {
            requests: Some(Snapshot {
                limit: 600,
                remaining: 599,
                reset_ms: 100,
            }),
            tokens: Some(Snapshot {
                limit: 40_000,
                remaining: 39_000,
                reset_ms: 1_500,
            }),
        };
        let mut seen = Vec::new();
        h.for_each(|n, v| seen.push(format!("{n}: {v}")));
        assert_eq!(
            seen,
            [
                "x-ratelimit-limit-requests: 600",
                "x-ratelimit-remaining-requests: 599",
                "x-ratelimit-reset-requests: 100ms",
                "x-ratelimit-limit-tokens: 40000",
                "x-ratelimit-remaining-tokens: 39000",
                "x-ratelimit-reset-tokens: 1.5s",
            ]
        );
    }

    #[test]
    fn refusals_carry_openais_codes() {
        let b = Refusal::Budget(BudgetRefusal {
            budget: "key/key_ab/month".into(),
            limit_micros: 10_000_000,
            used_micros: 9_990_000,
            needed_micros: 20_000,
            resets_at: Some(1_798_761_600_000),
        });
        assert_eq!((b.status(), b.code()), (429, "insufficient_quota"));
        assert_eq!(b.retry_after(), None);
        assert_eq!(
            b.to_string(),
            "You exceeded your budget key/key_ab/month: $9.99 of $10.00 spent or reserved, and this request may cost up to $0.02; it resets at 2027-01-01T00:00:00Z."
        );
        let r = Refusal::RateLimited(RateRefusal {
            scope: LimitScope::Key,
            kind: LimitKind::Requests,
            per_minute: 60,
            requested: 1,
            retry_after: Some(Duration::from_millis(1_000)),
            headers: RateHeaders::default(),
        });
        assert_eq!((r.status(), r.code()), (429, "rate_limit_exceeded"));
        assert!(r.to_string().ends_with("Please try again in 1s."), "{r}");
    }
}
