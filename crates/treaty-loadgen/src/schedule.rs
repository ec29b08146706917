//! The open-loop schedule: when request *i* is due.
//!
//! Send times are computed from the index, never by adding a period to the
//! previous time, so rounding does not drift over a long run and a late
//! request does not push back the ones after it.

use std::time::{Duration, Instant};

/// A fixed-rate schedule over a span of time.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
    count: u64,
}

impl Schedule {
    /// `rate` requests per second from `start` for `span`. A rate that is
    /// not a positive finite number gives an empty schedule.
    pub fn new(start: Instant, rate: f64, span: Duration) -> Self {
        let count = if rate.is_finite() && rate > 0.0 {
            // Requests due strictly before start + span; the float product
            // is exact enough for any rate and span a benchmark uses.
            (rate * span.as_secs_f64()).ceil() as u64
        } else {
            0
        };
        Self { start, rate, count }
    }

    /// How many requests the schedule holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + self.offset(i)
    }

    /// Request `i`'s due time after the start.
    pub fn offset(&self, i: u64) -> Duration {
        // Nanosecond arithmetic in u128: i * 1e9 / rate, exact for integer
        // rates and monotonic for all.
        if self.rate.fract() == 0.0 && self.rate <= u64::MAX as f64 {
            let nanos = u128::from(i) * 1_000_000_000 / (self.rate as u128).max(1);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        } else {
            Duration::from_secs_f64(i as f64 / self.rate)
        }
    }

    /// The first request due at or after `offset` from the start: requests
    /// before it are warm-up and are sent but not recorded.
    pub fn first_at_or_after(&self, offset: Duration) -> u64 {
        let guess = (offset.as_secs_f64() * self.rate).floor() as u64;
        // Settle rounding at the boundary by checking the neighbours.
        let mut i = guess.saturating_sub(1);
        while i < self.count && self.offset(i) < offset {
            i += 1;
        }
        i.min(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_rate_spaces_requests_exactly() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 2000.0, Duration::from_secs(3));
        assert_eq!(s.count(), 6000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_micros(500));
        assert_eq!(s.offset(5999), Duration::from_micros(2_999_500));
        assert_eq!(s.due(2000), t0 + Duration::from_secs(1));
    }

    #[test]
    fn no_drift_over_a_long_run() {
        // 3 requests/s: a summed period (333.333... ms) drifts; the index
        // form lands on whole seconds every third request.
        let s = Schedule::new(Instant::now(), 3.0, Duration::from_secs(3600));
        assert_eq!(s.count(), 10_800);
        assert_eq!(s.offset(10_797), Duration::from_secs(3599));
    }

    #[test]
    fn fractional_rate_is_monotonic() {
        let s = Schedule::new(Instant::now(), 7.5, Duration::from_secs(10));
        assert_eq!(s.count(), 75);
        let offsets: Vec<_> = (0..s.count()).map(|i| s.offset(i)).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(offsets[74] < Duration::from_secs(10));
    }

    #[test]
    fn warm_up_boundary() {
        let s = Schedule::new(Instant::now(), 1000.0, Duration::from_secs(5));
        assert_eq!(s.first_at_or_after(Duration::ZERO), 0);
        assert_eq!(s.first_at_or_after(Duration::from_secs(2)), 2000);
        assert_eq!(s.first_at_or_after(Duration::from_micros(1500)), 2);
        assert_eq!(s.first_at_or_after(Duration::from_secs(9)), s.count());
    }

    #[test]
    fn nonsense_rates_schedule_nothing() {
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                Schedule::new(Instant::now(), rate, Duration::from_secs(1)).count(),
                0
            );
        }
    }
}
