//! Fault specs and the per-host fault queue. A spec is a comma-separated
//! list of `key=value` items or bare words (`status=429,retry_after=1`,
//! `reset`, `stall=500`, `truncate=3`, `malformed`, `slow=20`, `delay=100`,
//! `stream_bytes=10000000`). This module only parses and stores specs; the
//! request pipeline decides what each one does to a response. Queued faults
//! are consumed under a short std mutex that is never held across an await,
//! and an atomic flag lets requests skip the lock while nothing is queued.

use axum::http::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The grammar, quoted in every parse error so the fix is one read away.
const GRAMMAR: &str = "expected comma-separated items from: status=CODE (400-599), \
retry_after=SECS (with status), reset, stall or stall=MS, stall_after=N (streams), \
truncate or truncate=N, malformed, slow=MS, delay=MS, stream_bytes=N; \
for example \"status=429,retry_after=1\"";

/// A stall with no duration lasts this long: longer than any client timeout.
const DEFAULT_STALL: Duration = Duration::from_secs(3600);

/// How many content chunks a stream sends before a bare `truncate` cuts it.
const DEFAULT_TRUNCATE_CHUNKS: u32 = 2;

/// A fault spec that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid emulator fault spec {spec:?}: {reason}; {GRAMMAR}")]
pub struct FaultParseError {
    spec: String,
    reason: String,
}

impl FaultParseError {
    fn new(spec: &str, reason: impl Into<String>) -> Self {
        Self {
            spec: spec.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What to do to one request. Empty (`Default`) means answer normally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) status: Option<StatusCode>,
    pub(crate) retry_after: Option<u32>,
    pub(crate) reset: bool,
    pub(crate) stall: Option<Duration>,
    pub(crate) stall_after: Option<u32>,
    pub(crate) truncate: Option<u32>,
    pub(crate) malformed: bool,
    pub(crate) slow: Option<Duration>,
    pub(crate) delay: Option<Duration>,
    pub(crate) stream_bytes: Option<u64>,
}

impl Fault {
    pub(crate) fn parse(spec: &str) -> Result<Self, FaultParseError> {
        let mut fault = Self::default();
        let mut any = false;
        for item in spec
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            any = true;
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            let number = |value: Option<&str>| -> Result<u64, FaultParseError> {
                let value =
                    value.ok_or_else(|| FaultParseError::new(spec, format!("{key} needs =N")))?;
                value.parse().map_err(|_| {
                    FaultParseError::new(spec, format!("{key}={value} is not a whole number"))
                })
            };
            let millis = |value| number(value).map(Duration::from_millis);
            let small = |value| {
                number(value).and_then(|n| {
                    u32::try_from(n)
                        .map_err(|_| FaultParseError::new(spec, format!("{key} is too large")))
                })
            };
            match (key, value) {
                ("status", value) => {
                    let code = number(value)?;
                    let status = u16::try_from(code)
                        .ok()
                        .filter(|code| (400..=599).contains(code))
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .ok_or_else(|| {
                            FaultParseError::new(spec, format!("status={code} is not 400-599"))
                        })?;
                    fault.status = Some(status);
                }
                ("retry_after", value) => fault.retry_after = Some(small(value)?),
                ("reset", None) => fault.reset = true,
                ("stall", None) => fault.stall = Some(DEFAULT_STALL),
                ("stall", value) => fault.stall = Some(millis(value)?),
                ("stall_after", value) => fault.stall_after = Some(small(value)?),
                ("truncate", None) => fault.truncate = Some(DEFAULT_TRUNCATE_CHUNKS),
                ("truncate", value) => fault.truncate = Some(small(value)?),
                ("malformed", None) => fault.malformed = true,
                ("slow", value) => fault.slow = Some(millis(value)?),
                ("delay", value) => fault.delay = Some(millis(value)?),
                ("stream_bytes", value) => fault.stream_bytes = Some(number(value)?),
                ("reset" | "malformed", Some(_)) => {
                    return Err(FaultParseError::new(spec, format!("{key} takes no value")));
                }
                _ => {
                    return Err(FaultParseError::new(spec, format!("unknown item {item:?}")));
                }
            }
        }
        if !any {
            return Err(FaultParseError::new(spec, "the spec is empty"));
        }
        if fault.retry_after.is_some() && fault.status.is_none() {
            return Err(FaultParseError::new(spec, "retry_after needs a status"));
        }
        if fault.stall_after.is_some() && fault.stall.is_none() {
            fault.stall = Some(DEFAULT_STALL);
        }
        Ok(fault)
    }

    /// Finds `[[fault:SPEC]]` in message text.
    pub(crate) fn from_directive(text: &str) -> Option<Result<Self, FaultParseError>> {
        let start = text.find("[[fault:")? + "[[fault:".len();
        let rest = &text[start..];
        let end = rest.find("]]")?;
        Some(Self::parse(&rest[..end]))
    }
}

/// A queued fault and how many more requests it applies to (`None` = until cleared).
#[derive(Debug)]
struct Queued {
    fault: Fault,
    remaining: Option<u32>,
}

/// Faults queued per host label through the control API or the handle.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    armed: AtomicBool,
    hosts: Mutex<HashMap<Box<str>, VecDeque<Queued>>>,
}

impl FaultQueue {
    /// Queues `fault` behind any faults already queued for `host`.
    pub(crate) fn push(&self, host: &str, fault: Fault, count: Option<u32>) {
        if count == Some(0) {
            return;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.entry(host.into()).or_default().push_back(Queued {
            fault,
            remaining: count,
        });
        self.armed.store(true, Ordering::Release);
    }

    pub(crate) fn clear(&self) {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts.clear();
        self.armed.store(false, Ordering::Release);
    }

    /// Takes one use of the next fault queued for `host`, if any.
    pub(crate) fn take(&self, host: &str) -> Option<Fault> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = hosts.get_mut(host)?;
        let front = queue.front_mut()?;
        let fault = match &mut front.remaining {
            None => front.fault.clone(),
            Some(remaining) => {
                *remaining -= 1;
                if *remaining == 0 {
                    queue.pop_front().map(|queued| queued.fault)?
                } else {
                    front.fault.clone()
                }
            }
        };
        if queue.is_empty() {
            hosts.remove(host);
            if hosts.is_empty() {
                self.armed.store(false, Ordering::Release);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_item() {
        let fault = Fault::parse(
            "status=429, retry_after=2,stall=5,stall_after=1,truncate,malformed,slow=3,delay=4,stream_bytes=10",
        )
        .unwrap();
        assert_eq!(fault.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(fault.retry_after, Some(2));
        assert_eq!(fault.stall, Some(Duration::from_millis(5)));
        assert_eq!(fault.stall_after, Some(1));
        assert_eq!(fault.truncate, Some(2));
        assert!(fault.malformed);
        assert_eq!(fault.slow, Some(Duration::from_millis(3)));
        assert_eq!(fault.delay, Some(Duration::from_millis(4)));
        assert_eq!(fault.stream_bytes, Some(10));
        assert!(Fault::parse("reset").unwrap().reset);
        assert_eq!(Fault::parse("stall").unwrap().stall, Some(DEFAULT_STALL));
    }

    #[test]
    fn rejects_what_it_does_not_know_and_explains_the_grammar() {
        for bad in [
            "",
            "explode",
            "status=200",
            "status=abc",
            "retry_after=1",
            "reset=1",
            "slow",
        ] {
            let error = Fault::parse(bad).unwrap_err().to_string();
            assert!(error.contains("status=CODE"), "{bad}: {error}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(spec in "\\PC*") {
            let _ = Fault::parse(&spec);
        }

        #[test]
        fn generated_specs_parse_to_what_they_say(
            status in 400u16..=599,
            retry in proptest::option::of(0u32..100),
            stall in proptest::option::of(0u64..10_000),
            slow in proptest::option::of(0u64..1_000),
        ) {
            let mut spec = format!("status={status}");
            if let Some(retry) = retry { spec.push_str(&format!(",retry_after={retry}")); }
            if let Some(stall) = stall { spec.push_str(&format!(", stall={stall}")); }
            if let Some(slow) = slow { spec.push_str(&format!(",slow={slow}")); }
            let fault = Fault::parse(&spec).unwrap();
            proptest::prop_assert_eq!(fault.status.map(|s| s.as_u16()), Some(status));
            proptest::prop_assert_eq!(fault.retry_after, retry);
            proptest::prop_assert_eq!(fault.stall, stall.map(Duration::from_millis));
            proptest::prop_assert_eq!(fault.slow, slow.map(Duration::from_millis));
        }
    }

    #[test]
    fn directive_is_found_inside_text() {
        let fault = Fault::from_directive("hello [[fault:status=503]] there")
            .unwrap()
            .unwrap();
        assert_eq!(fault.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(Fault::from_directive("no directive").is_none());
    }

    #[test]
    fn queue_counts_down_then_moves_on() {
        let queue = FaultQueue::default();
        queue.push("a", Fault::parse("status=500").unwrap(), Some(2));
        queue.push("a", Fault::parse("status=502").unwrap(), Some(1));
        let statuses: Vec<_> = (0..4)
            .map(|_| queue.take("a").and_then(|fault| fault.status))
            .collect();
        assert_eq!(
            statuses,
            [
                Some(StatusCode::INTERNAL_SERVER_ERROR),
                Some(StatusCode::INTERNAL_SERVER_ERROR),
                Some(StatusCode::BAD_GATEWAY),
                None
            ]
        );
        assert!(queue.take("b").is_none());
    }
}
