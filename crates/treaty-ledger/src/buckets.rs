//! Time buckets for `report --by time` and the HTML report's charts.
//!
//! A bucket is a half-open interval of `width` milliseconds aligned to
//! the Unix epoch, so buckets are the same whatever range is asked for
//! and a bucket of a day or less starts at a whole UTC minute, hour or
//! day. When no width is given one is chosen from [`WIDTHS`] so that the
//! decisions in the range fill at most about [`MAX_BUCKETS`] buckets.
//! This module only computes; it reads the store only to find the span of
//! the decisions.

use treaty_store::Store;

use crate::LedgerError;
use crate::record::Kind;
use crate::scan::TimeRange;

/// Bucket widths to choose from, in milliseconds, with their names.
pub(crate) const WIDTHS: [(i64, &str); 9] = [
    (60_000, "1 minute"),
    (300_000, "5 minutes"),
    (900_000, "15 minutes"),
    (3_600_000, "1 hour"),
    (6 * 3_600_000, "6 hours"),
    (86_400_000, "1 day"),
    (7 * 86_400_000, "1 week"),
    (30 * 86_400_000, "30 days"),
    (365 * 86_400_000, "365 days"),
];

/// The most buckets a chosen width gives (a chart's columns).
pub(crate) const MAX_BUCKETS: i64 = 60;

/// The most rows `report --by time` writes: past this, a narrower bucket
/// than the range deserves was asked for, and the answer says so rather
/// than printing millions of empty rows.
pub(crate) const MAX_ROWS: i64 = 100_000;

/// The width of [`WIDTHS`] giving at most [`MAX_BUCKETS`] buckets from
/// `lo` to `hi` (unix ms), and its name.
pub(crate) fn width_for_span(lo: i64, hi: i64) -> (i64, &'static str) {
    WIDTHS
        .iter()
        .copied()
        .find(|(w, _)| (hi - lo) / w < MAX_BUCKETS)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1])
}

/// The start of the bucket of `width` holding `at_ms`.
pub(crate) fn start_of(at_ms: i64, width: i64) -> i64 {
    at_ms.div_euclid(width) * width
}

/// The first and last decision instants in `range` (unix ms); `None`
/// when it holds no decision.
pub(crate) async fn decision_span(
    store: &Store,
    range: TimeRange,
) -> Result<Option<(i64, i64)>, LedgerError> {
    let (lo, hi) = range.bounds();
    let (_, first, last) = store.ledger_span(Kind::Decision.as_str(), lo, hi).await?;
    Ok(first.zip(last))
}

/// The bucket width `report --by time` uses when none is given: the one
/// the HTML report would chart the decisions of `[since, until)` with
/// (at most about 60 buckets), in milliseconds.
pub async fn auto_bucket(
    store: &Store,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<i64, LedgerError> {
    let span = decision_span(store, TimeRange::new(since, until)).await?;
    let (lo, hi) = span.unwrap_or((0, 0));
    Ok(width_for_span(lo, hi).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_the_epoch_and_widths_fit_the_span() {
        // 2026-01-01T10:17:00Z falls in the 10:00 hour and the 10:15
        // quarter, whatever range was asked for.
        let t = 1_767_262_620_000;
        assert_eq!(start_of(t, 3_600_000), 1_767_261_600_000);
        assert_eq!(start_of(t, 900_000), 1_767_262_500_000);
        assert_eq!(start_of(-1, 60_000), -60_000);
        assert_eq!(width_for_span(0, 59 * 60_000), (60_000, "1 minute"));
        assert_eq!(width_for_span(0, 100 * 60_000), (300_000, "5 minutes"));
        assert_eq!(width_for_span(0, 2 * 86_400_000), (3_600_000, "1 hour"));
        assert_eq!(width_for_span(0, i64::MAX).1, "365 days");
    }
}
