//! When to try a webhook again: jittered exponential backoff, stretched to
//! honour a `Retry-After` up to a cap. Pure functions, so the policy is
//! tested without sleeping. (Like the router's upstream backoff; the two
//! policies differ in base and cap, so they are not shared.)

use std::time::Duration;

/// The pause after the first failure, before jitter.
const BASE: Duration = Duration::from_millis(100);
/// The longest computed pause.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured; a longer one is cut to this rather
/// than holding an agent run for minutes.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The pause after `failures` failed attempts (1-based): `BASE * 2^(n-1)`
/// capped at `MAX_BACKOFF`, of which a random half (`jitter` in 0..=1) is
/// kept, so concurrent runs retrying the same receiver spread out yet never
/// retry at once; never shorter than the receiver's `Retry-After` (capped).
pub(crate) fn backoff(failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = BASE.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let pause = full / 2 + (full / 2).mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(asked) => asked.min(MAX_RETRY_AFTER).max(pause),
        None => pause,
    }
}

/// `Retry-After` in seconds or as an HTTP date; `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_keeps_half_and_honours_retry_after() {
        assert_eq!(backoff(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(1, None, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(3, None, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(40, None, 1.0), MAX_BACKOFF);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2)), 1.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3600)), 1.0),
            MAX_RETRY_AFTER
        );
        // A zero Retry-After does not remove the backoff.
        assert_eq!(
            backoff(2, Some(Duration::ZERO), 1.0),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", http::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", http::HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
