//! Token buckets for requests and tokens per minute.
//!
//! A bucket holds up to one minute's allowance and refills continuously:
//! `per_minute` units a minute, so a client below its limit always finds
//! tokens and a burst may use up to a minute's worth at once (the
//! behaviour OpenAI's own limits document). Amounts are scaled by
//! [`SCALE`] (milliseconds per minute) so the refill is an integer per
//! millisecond and nothing is lost to rounding.
//!
//! A bucket works in one of two ways, fixed when it is created:
//!
//! * **local** (one replica): the bucket is here and refills itself;
//! * **leased** (several replicas): the bucket lives in the shared store
//!   (`shared`); this replica holds a small *lease* of tokens taken from
//!   it, spends them locally without a round trip, and asks for more when
//!   they run out. Tokens held here do not refill (the shared bucket
//!   does); unused ones go back when the bucket is idle.
//!
//! Everything here is arithmetic under a short mutex; no I/O, no await.

use std::sync::Mutex;

/// Units are scaled by the milliseconds of a minute.
pub const SCALE: i64 = 60_000;

/// The most a lease takes at once: a sixteenth of a minute's allowance.
/// Tokens leased but unused are what another replica could miss, so this
/// bounds that (see the crate docs).
pub const LEASE_FRACTION: i64 = 16;

#[derive(Debug)]
pub(crate) struct Bucket {
    /// The bucket's name in the shared store, e.g. `key/key_ab/rpm`.
    pub id: Box<str>,
    pub per_minute: i64,
    pub leased: bool,
    pub state: Mutex<Level>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    /// Local: the bucket's level. Leased: the tokens held here.
    pub level: i64,
    pub updated_ms: i64,
    /// Leased: the shared bucket's level after the last exchange, and when.
    pub shared_level: i64,
    pub shared_at: i64,
    pub last_used_ms: i64,
}

/// What a bucket tells the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset_ms: u64,
}

impl Bucket {
    pub fn new(id: String, per_minute: u32, leased: bool, now_ms: i64) -> Bucket {
        let cap = i64::from(per_minute) * SCALE;
        Bucket {
            id: id.into_boxed_str(),
            per_minute: i64::from(per_minute),
            leased,
            state: Mutex::new(Level {
                level: if leased { 0 } else { cap },
                updated_ms: now_ms,
                shared_level: cap,
                shared_at: now_ms,
                last_used_ms: 0,
            }),
        }
    }

    pub fn capacity(&self) -> i64 {
        self.per_minute * SCALE
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Level> {
        // A poisoned mutex only means another thread panicked mid-update
        // of plain integers; the numbers are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `units` (unscaled) if there are enough; on failure returns
    /// the scaled shortfall.
    pub fn try_take(&self, units: i64, now_ms: i64) -> Result<(), i64> {
        let want = units * SCALE;
        let mut s = self.lock();
        self.refill(&mut s, now_ms);
        if s.level < want {
            return Err(want - s.level);
        }
        s.level -= want;
        s.last_used_ms = now_ms;
        Ok(())
    }

    /// Takes `units` even if that overdraws the bucket (usage reported
    /// after the fact beyond its estimate).
    pub fn force_take(&self, units: i64, now_ms: i64) {
        let mut s = self.lock();
        self.refill(&mut s, now_ms);
        s.level -= units * SCALE;
        s.last_used_ms = now_ms;
    }

    /// Gives `units` back (a refund, or a reservation that was not used).
    pub fn give(&self, units: i64, now_ms: i64) {
        let mut s = self.lock();
        self.refill(&mut s, now_ms);
        s.level += units * SCALE;
        if !self.leased {
            s.level = s.level.min(self.capacity());
        }
    }

    /// Leased: adds tokens taken from the shared bucket.
    pub fn add_lease(&self, granted: i64, shared_level: i64, now_ms: i64) {
        let mut s = self.lock();
        s.level += granted;
        s.shared_level = shared_level;
        s.shared_at = now_ms;
    }

    /// Leased: how many scaled tokens to ask the shared bucket for when
    /// `shortfall` is missing: the shortfall plus a sixteenth of the
    /// capacity. Measured: a lease costs a round trip (about 85 µs on
    /// Redis, 1.7 ms on PostgreSQL here), so a lease sized to the
    /// tolerance, not to recent use, keeps slow keys from paying one per
    /// request; what it holds unused is the stated tolerance either way.
    pub fn lease_size(&self, shortfall: i64) -> i64 {
        shortfall + self.capacity() / LEASE_FRACTION
    }

    /// Leased: the tokens to hand back when idle for `idle_ms`; they are
    /// removed from the lease here.
    pub fn take_back_idle(&self, idle_ms: i64, now_ms: i64) -> i64 {
        let mut s = self.lock();
        if s.level > 0 && now_ms - s.last_used_ms >= idle_ms {
            let n = s.level;
            s.level = 0;
            return n;
        }
        0
    }

    /// Whether a request of `units` would find tokens now, as far as this
    /// replica knows (for skipping a saturated host without asking).
    pub fn has(&self, units: i64, now_ms: i64) -> bool {
        let s = self.lock();
        let mut s = *s;
        self.refill(&mut s, now_ms);
        let seen = if self.leased {
            s.level + self.shared_refilled(&s, now_ms)
        } else {
            s.level
        };
        seen >= units * SCALE
    }

    /// The numbers for the `x-ratelimit-*` headers.
    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let s = self.lock();
        let mut s = *s;
        self.refill(&mut s, now_ms);
        let cap = self.capacity();
        let level = if self.leased {
            (s.level + self.shared_refilled(&s, now_ms)).min(cap)
        } else {
            s.level
        }
        .max(0);
        Snapshot {
            limit: self.per_minute as u64,
            remaining: (level / SCALE) as u64,
            reset_ms: ((cap - level) / self.per_minute.max(1)) as u64,
        }
    }

    /// How long until `shortfall` scaled tokens have refilled.
    pub fn wait_ms(&self, shortfall: i64) -> u64 {
        (shortfall.max(0) + self.per_minute - 1).div_euclid(self.per_minute.max(1)) as u64
    }

    fn refill(&self, s: &mut Level, now_ms: i64) {
        if !self.leased && now_ms > s.updated_ms {
            let add = (now_ms - s.updated_ms).saturating_mul(self.per_minute);
            s.level = s.level.saturating_add(add).min(self.capacity());
        }
        s.updated_ms = s.updated_ms.max(now_ms);
    }

    fn shared_refilled(&self, s: &Level, now_ms: i64) -> i64 {
        let elapsed = (now_ms - s.shared_at).max(0);
        (s.shared_level + elapsed.saturating_mul(self.per_minute)).min(self.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_bucket_allows_a_minute_then_refills() {
        let b = Bucket::new("k".into(), 60, false, 0);
        for _ in 0..60 {
            assert_eq!(b.try_take(1, 0), Ok(()));
        }
        let short = b.try_take(1, 0).unwrap_err();
        assert_eq!(b.wait_ms(short), 1_000, "one request a second refills");
        assert!(b.try_take(1, 999).is_err());
        assert_eq!(b.try_take(1, 1_000), Ok(()));
        let snap = b.snapshot(1_000);
        assert_eq!((snap.limit, snap.remaining, snap.reset_ms), (60, 0, 60_000));
        // Refunds never fill beyond a minute's allowance.
        b.give(500, 1_000);
        assert_eq!(b.snapshot(1_000).remaining, 60);
    }

    #[test]
    fn a_leased_bucket_spends_only_what_it_holds() {
        let b = Bucket::new("k".into(), 600, true, 0);
        assert!(b.try_take(1, 0).is_err(), "nothing leased yet");
        b.add_lease(3 * SCALE, 500 * SCALE, 0);
        for _ in 0..3 {
            assert_eq!(b.try_take(1, 0), Ok(()));
        }
        assert!(b.try_take(1, 60_000).is_err(), "held tokens do not refill");
        // Headers see the shared bucket plus what is held here.
        assert_eq!(b.snapshot(0).remaining, 500);
        // Idle: what is held goes back.
        b.add_lease(2 * SCALE, 0, 1);
        assert_eq!(b.take_back_idle(1_000, 500), 0, "used recently");
        assert_eq!(b.take_back_idle(1_000, 2_000), 2 * SCALE);
    }

    #[test]
    fn leases_take_a_sixteenth_beyond_the_shortfall() {
        let b = Bucket::new("k".into(), 16_000, true, 0);
        assert_eq!(b.lease_size(SCALE), SCALE + 1_000 * SCALE);
    }
}
