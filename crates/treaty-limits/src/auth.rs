//! Failed authentication attempts, limited per source address.
//!
//! The HTTP edge asks [`AuthGuard::check`] before it verifies a key (an
//! address that failed too often is refused with 429 without touching the
//! key store) and reports each failure with [`AuthGuard::failed`], which
//! answers whether this failure was one too many (the 401 becomes a 429).
//! Successes cost nothing and are not recorded. Each replica counts its
//! own failures: behind a load balancer spreading one address over N
//! replicas, an address gets at most N times the allowance, still a hard
//! cap on guessing.
//!
//! Each address has a token bucket of `per_minute` failures (the same
//! bucket as the rate limits). The map is bounded: past `MAX_ADDRESSES`
//! it forgets the addresses whose buckets have refilled, and if all are
//! busy (a flood from many addresses) it starts over rather than grow.
//! Why not the `governor` crate: its keyed limiter can only consume
//! (there is no "may this address try?" without spending a token).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::Clock;
use crate::bucket::{Bucket, SCALE};

const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug)]
pub struct AuthGuard {
    per_minute: u32,
    clock: Clock,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthGuard {
    pub fn new(per_minute: u32, clock: Clock) -> AuthGuard {
        AuthGuard {
            per_minute: per_minute.max(1),
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Before verifying a key: `Err(wait)` when this address has no
    /// failures left (answer 429 with `Retry-After: wait`).
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let map = self.lock();
        match map.get(&addr) {
            Some(b) if !b.has(1, now) => Err(wait(b, now)),
            _ => Ok(()),
        }
    }

    /// After a key was refused: counts the failure; `Err(wait)` when it
    /// was beyond the allowance (answer 429 instead of 401).
    pub fn failed(&self, addr: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&addr) {
            map.retain(|_, b| !b.has(b.per_minute, now));
            if map.len() >= MAX_ADDRESSES {
                map.clear();
            }
        }
        let bucket = map
            .entry(addr)
            .or_insert_with(|| Bucket::new(String::new(), self.per_minute, false, now));
        bucket
            .try_take(1, now)
            .map_err(|short| Duration::from_millis(bucket.wait_ms(short)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wait(b: &Bucket, now: i64) -> Duration {
    let snap = b.snapshot(now);
    let missing = SCALE - (snap.remaining as i64 * SCALE).min(SCALE);
    Duration::from_millis(b.wait_ms(missing.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let clock = Clock::manual(0);
        let guard = AuthGuard::new(3, clock.clone());
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let good: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(guard.check(bad), Ok(()));
            assert_eq!(guard.failed(bad), Ok(()), "within the allowance: a 401");
        }
        // The fourth attempt is refused before its key is even looked at.
        let wait = guard.check(bad).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20), "3 a minute: one every 20 s");
        assert_eq!(guard.failed(bad), Err(Duration::from_secs(20)));
        assert_eq!(guard.check(good), Ok(()));
        clock.advance(20_000);
        assert_eq!(guard.check(bad), Ok(()));
    }
}
