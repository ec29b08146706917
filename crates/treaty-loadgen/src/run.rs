//! The two ways to drive a target: open loop at a fixed rate, and closed
//! loop with N workers.
//!
//! In the open loop the schedule runs on its own OS thread, sleeping with
//! the kernel's timer (tens of microseconds late at worst on an idle
//! core) rather than tokio's, whose 1 ms ticks would send requests in
//! bursts and charge each up to a millisecond of the generator's own
//! delay. Each request runs as a task on the runtime; its sample goes to
//! one recorder over a channel, so no lock is shared between requests.
//! How late the generator itself sent each request is reported as
//! `dispatch_lag_us`, so a reader can tell its error from the target's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::CreationError;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::probe::Target;
use crate::record::{ErrorKind, Recorder, Sample};
use crate::schedule::Schedule;

/// An open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: f64,
    /// Sent at the same rate before measuring, not recorded.
    pub warmup: Duration,
    /// The measured span.
    pub duration: Duration,
    /// Requests in flight beyond this are not sent and count as
    /// `in_flight_limit` errors (bounds the generator's sockets and memory
    /// when a target stalls).
    pub max_in_flight: usize,
}

/// A closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Lead time between computing the schedule and its first request, so the
/// first requests are not late because the thread was still starting.
const LEAD: Duration = Duration::from_millis(20);

pub async fn open_loop(target: Arc<Target>, cfg: OpenLoop) -> Result<Value, CreationError> {
    let mut recorder = Recorder::new()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let handle = tokio::runtime::Handle::current();
    let start = Instant::now() + LEAD;
    let schedule = Schedule::new(start, cfg.rate, cfg.warmup + cfg.duration);
    let first_measured = schedule.first_at_or_after(cfg.warmup);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let scheduler = {
        let target = target.clone();
        std::thread::Builder::new()
            .name("loadgen-schedule".into())
            .spawn(move || {
                for i in 0..schedule.count() {
                    let due = schedule.due(i);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let measured = i >= first_measured;
                    if in_flight.load(Ordering::Relaxed) >= cfg.max_in_flight {
                        if measured {
                            let now = Instant::now();
                            let _ = tx.send(Sample {
                                due,
                                sent: now,
                                first_byte: None,
                                done: now,
                                outcome: Err(ErrorKind::InFlightLimit),
                            });
                        }
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (target, tx, in_flight) = (target.clone(), tx.clone(), in_flight.clone());
                    handle.spawn(async move {
                        let sample = target.send(due).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        if measured {
                            let _ = tx.send(sample);
                        }
                    });
                }
                // Dropping the last sender here and in each task closes the
                // channel once every request has answered or timed out.
            })
    };
    let scheduler = match scheduler {
        Ok(t) => t,
        Err(_) => {
            return Ok(json!({"error": "could not start the schedule thread"}));
        }
    };
    while let Some(sample) = rx.recv().await {
        recorder.record(&sample);
    }
    let _ = scheduler.join();
    let mut report = recorder.report(cfg.duration, target.streamed());
    report["mode"] = json!("open");
    report["rate_rps"] = json!(cfg.rate);
    report["scheduled"] = json!(schedule.count() - first_measured);
    report["scheduled_with_warmup"] = json!(schedule.count());
    Ok(report)
}

pub async fn closed_loop(target: Arc<Target>, cfg: ClosedLoop) -> Result<Value, CreationError> {
    let mut recorder = Recorder::new()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    for _ in 0..cfg.concurrency.max(1) {
        let (target, tx) = (target.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let sample = target.send(now).await;
                if now >= measure_from {
                    let _ = tx.send(sample);
                }
            }
        });
    }
    drop(tx);
    while let Some(sample) = rx.recv().await {
        recorder.record(&sample);
    }
    let mut report = recorder.report(cfg.duration, target.streamed());
    report["mode"] = json!("closed");
    report["concurrency"] = json!(cfg.concurrency.max(1));
    Ok(report)
}
