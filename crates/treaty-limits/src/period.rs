//! Budget periods and their resets, on the UTC calendar.
//!
//! A period is identified by its start in unix milliseconds: the UTC
//! midnight of the day, the first of the month at UTC midnight, or 0 for a
//! budget that never resets. Spend is kept per (budget, period start), so
//! a reset is simply a new row; nothing is ever zeroed in place.

use time::{Date, Month, OffsetDateTime, Time};

/// How often a budget starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// Each UTC day.
    Day,
    /// Each UTC calendar month.
    Month,
    /// Never: the amount is for the budget's whole life.
    Total,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Month, Period::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The start of the period holding `now_ms`.
    pub fn start(self, now_ms: i64) -> i64 {
        match self {
            Period::Total => 0,
            Period::Day => millis(day_of(now_ms)),
            Period::Month => {
                let d = day_of(now_ms);
                Date::from_calendar_date(d.year(), d.month(), 1)
                    .map(millis)
                    .unwrap_or(0)
            }
        }
    }

    /// When the period holding `now_ms` ends (the next reset); `None` for
    /// a total budget.
    pub fn end(self, now_ms: i64) -> Option<i64> {
        match self {
            Period::Total => None,
            Period::Day => day_of(now_ms).next_day().map(millis),
            Period::Month => {
                let d = day_of(now_ms);
                let (year, month) = match d.month() {
                    Month::December => (d.year() + 1, Month::January),
                    m => (d.year(), m.next()),
                };
                Date::from_calendar_date(year, month, 1).ok().map(millis)
            }
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn day_of(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(OffsetDateTime::date)
        .unwrap_or(Date::MIN)
}

fn millis(d: Date) -> i64 {
    (d.with_time(Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp_nanos()
        / 1_000_000) as i64
}

/// `ms` as RFC 3339 (UTC), for messages.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-31T23:59:59.999Z and the next millisecond.
    const LAST_MS_OF_2026: i64 = 1_798_761_599_999;

    #[test]
    fn days_and_months_reset_at_utc_midnight() {
        let next = LAST_MS_OF_2026 + 1;
        assert_eq!(
            rfc3339(Period::Day.start(LAST_MS_OF_2026)),
            "2026-12-31T00:00:00Z"
        );
        assert_eq!(Period::Day.end(LAST_MS_OF_2026), Some(next));
        assert_eq!(Period::Day.start(next), next);
        assert_eq!(
            rfc3339(Period::Month.start(LAST_MS_OF_2026)),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Period::Month.end(LAST_MS_OF_2026).unwrap()),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(Period::Month.start(next), next);
        // February of a leap year ends on the 29th.
        let feb = Period::Month.start(1_835_481_600_000); // 2028-03-01
        assert_eq!(rfc3339(feb), "2028-03-01T00:00:00Z");
        assert_eq!(rfc3339(Period::Day.start(feb - 1)), "2028-02-29T00:00:00Z");
        assert_eq!(
            (Period::Total.start(next), Period::Total.end(next)),
            (0, None)
        );
    }

    #[test]
    fn names_round_trip() {
        for p in Period::ALL {
            assert_eq!(Period::parse(p.as_str()), Some(p));
        }
        assert_eq!(Period::parse("week"), None);
    }
}
