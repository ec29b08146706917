//! What one request came to ([`Sample`]) and the totals of a run
//! ([`Recorder`]): HDR histograms of latency, time to first byte and the
//! generator's own dispatch lag, and errors counted by kind.
//!
//! Latencies are recorded in microseconds with three significant digits
//! (0.1 % resolution), up to ten minutes. Only successful requests enter
//! the latency histograms; failures are counted by kind, so a gateway
//! that answers fast with errors does not look fast.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::{CreationError, Histogram};
use serde_json::{Value, json};

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The TCP connection could not be made.
    Connect,
    /// The request or response failed on the wire after connecting.
    Io,
    /// No complete answer within the request timeout.
    Timeout,
    /// A non-2xx status.
    Status(u16),
    /// A 2xx whose body is not a completion, or a stream that did not end
    /// with `data: [DONE]`.
    BadReply,
    /// Not sent: the generator already had its maximum in flight.
    InFlightLimit,
}

impl ErrorKind {
    /// The kind's name in the JSON report.
    pub fn name(self) -> String {
        match self {
            Self::Connect => "connect".into(),
            Self::Io => "io".into(),
            Self::Timeout => "timeout".into(),
            Self::Status(code) => format!("status_{code}"),
            Self::BadReply => "bad_reply".into(),
            Self::InFlightLimit => "in_flight_limit".into(),
        }
    }
}

/// One request's timings, all measured from its due time.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the request was due (open loop: its scheduled time; closed
    /// loop: when it was sent).
    pub due: Instant,
    /// When the generator actually started sending it.
    pub sent: Instant,
    /// When the first byte of the response body arrived.
    pub first_byte: Option<Instant>,
    /// When the response was complete (or the request failed).
    pub done: Instant,
    pub outcome: Result<(), ErrorKind>,
}

/// The totals of one run.
#[derive(Debug)]
pub struct Recorder {
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    lag: Histogram<u64>,
    errors: BTreeMap<ErrorKind, u64>,
    ok: u64,
    first_due: Option<Instant>,
    last_done: Option<Instant>,
}

/// Ten minutes in microseconds: nothing a run records is longer.
const MAX_MICROS: u64 = 600_000_000;

fn histogram() -> Result<Histogram<u64>, CreationError> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

impl Recorder {
    /// Fails only if the histogram bounds were invalid, which they are
    /// not (constants within hdrhistogram's limits).
    pub fn new() -> Result<Self, CreationError> {
        Ok(Self {
            latency: histogram()?,
            ttfb: histogram()?,
            lag: histogram()?,
            errors: BTreeMap::new(),
            ok: 0,
            first_due: None,
            last_done: None,
        })
    }

    pub fn record(&mut self, s: &Sample) {
        self.first_due = Some(self.first_due.map_or(s.due, |t| t.min(s.due)));
        self.last_done = Some(self.last_done.map_or(s.done, |t| t.max(s.done)));
        // saturating_record clamps to the histogram's range; values are
        // already clamped, so nothing is lost.
        self.lag
            .saturating_record(micros(s.sent.saturating_duration_since(s.due)));
        match s.outcome {
            Ok(()) => {
                self.ok += 1;
                self.latency
                    .saturating_record(micros(s.done.saturating_duration_since(s.due)));
                if let Some(fb) = s.first_byte {
                    self.ttfb
                        .saturating_record(micros(fb.saturating_duration_since(s.due)));
                }
            }
            Err(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.ok
    }

    /// Failed requests, all kinds.
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The run's figures as JSON. `window` is the measured span the
    /// requests were scheduled over; the achieved rate divides the
    /// successes by it or by the time until the last answer, whichever is
    /// longer, so a gateway that falls behind shows a lower rate.
    pub fn report(&self, window: Duration, streamed: bool) -> Value {
        let total = self.ok + self.errors();
        let span = match (self.first_due, self.last_done) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).max(window),
            _ => window,
        };
        let achieved = if span.is_zero() {
            0.0
        } else {
            self.ok as f64 / span.as_secs_f64()
        };
        let errors: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(k, n)| (k.name(), json!(n)))
            .collect();
        json!({
            "requests": total,
            "ok": self.ok,
            "errors": self.errors(),
            "error_rate": if total == 0 { 0.0 } else { self.errors() as f64 / total as f64 },
            "errors_by_kind": errors,
            "achieved_rps": round(achieved, 1),
            "span_s": round(span.as_secs_f64(), 3),
            "latency_us": percentiles(&self.latency),
            "ttfb_us": if streamed { percentiles(&self.ttfb) } else { Value::Null },
            "dispatch_lag_us": percentiles(&self.lag),
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "mean": round(h.mean(), 1),
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t0: Instant, due_ms: u64, took_ms: u64, outcome: Result<(), ErrorKind>) -> Sample {
        let due = t0 + Duration::from_millis(due_ms);
        Sample {
            due,
            sent: due,
            first_byte: Some(due + Duration::from_millis(took_ms / 2)),
            done: due + Duration::from_millis(took_ms),
            outcome,
        }
    }

    #[test]
    fn latency_is_measured_from_the_due_time() {
        // A stall: the request due at 0 answers after 100 ms; one due at
        // 50 ms but only sent once the stall cleared is charged from 50.
        let t0 = Instant::now();
        let mut r = Recorder::new().unwrap();
        r.record(&sample(t0, 0, 100, Ok(())));
        let late = Sample {
            sent: t0 + Duration::from_millis(100),
            ..sample(t0, 50, 60, Ok(()))
        };
        r.record(&late);
        let v = r.report(Duration::from_millis(100), true);
        assert_eq!(v["ok"], 2);
        let max = v["latency_us"]["max"].as_u64().unwrap_or(0);
        assert!((99_000..=101_000).contains(&max), "{max}");
        let lag = v["dispatch_lag_us"]["max"].as_u64().unwrap_or(0);
        assert!((49_000..=51_000).contains(&lag), "{lag}");
        assert!(v["ttfb_us"]["p50"].as_u64().is_some());
    }

    #[test]
    fn errors_are_counted_by_kind_and_kept_out_of_latency() {
        let t0 = Instant::now();
        let mut r = Recorder::new().unwrap();
        r.record(&sample(t0, 0, 5, Ok(())));
        r.record(&sample(t0, 1, 1, Err(ErrorKind::Status(502))));
        r.record(&sample(t0, 2, 1, Err(ErrorKind::Status(502))));
        r.record(&sample(t0, 3, 30_000, Err(ErrorKind::Timeout)));
        let v = r.report(Duration::from_secs(1), false);
        assert_eq!(v["requests"], 4);
        assert_eq!(v["errors"], 3);
        assert_eq!(v["errors_by_kind"]["status_502"], 2);
        assert_eq!(v["errors_by_kind"]["timeout"], 1);
        assert_eq!(v["latency_us"]["count"], 1);
        assert_eq!(v["error_rate"], 0.75);
        assert!(v["ttfb_us"].is_null());
    }

    #[test]
    fn achieved_rate_falls_when_answers_arrive_late() {
        // 10 requests scheduled over 1 s, the last answered at 2 s.
        let t0 = Instant::now();
        let mut r = Recorder::new().unwrap();
        for i in 0..10 {
            r.record(&sample(t0, i * 100, if i == 9 { 1100 } else { 1 }, Ok(())));
        }
        let v = r.report(Duration::from_secs(1), false);
        assert_eq!(v["achieved_rps"], 5.0);
    }
}
