//! The console's overview (DESIGN §17): a namespace's calls, errors, latency and cold starts
//! over the last hour, day or week, in fixed buckets, counted from its invocation records in
//! one query (no Prometheus needed).
//!
//! The window ends at the moment asked for and is cut, from its start, into buckets of equal
//! width: 12 of 5 minutes, 24 of 1 hour or 28 of 6 hours. Each bucket is `[start, end)`, and so
//! is the window. Latency percentiles are `percentile_cont` (interpolated), as on the function
//! list and in `GET /functions/{id}/stats`, so that the pages agree.

use super::DbError;
use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::Pool;

/// The windows the overview shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverviewRange {
    /// The last hour, in 12 buckets of 5 minutes.
    Hour,
    /// The last 24 hours, in 24 buckets of 1 hour.
    #[default]
    Day,
    /// The last 7 days, in 28 buckets of 6 hours.
    Week,
}

impl OverviewRange {
    pub const ALL: [OverviewRange; 3] =
        [OverviewRange::Hour, OverviewRange::Day, OverviewRange::Week];

    /// As the page's `range` parameter names it.
    pub fn as_str(self) -> &'static str {
        match self {
            OverviewRange::Hour => "1h",
            OverviewRange::Day => "24h",
            OverviewRange::Week => "7d",
        }
    }

    /// The range `text` names (`1h`, `24h`, `7d`), if any.
    pub fn parse(text: &str) -> Option<OverviewRange> {
        OverviewRange::ALL
            .into_iter()
            .find(|range| range.as_str() == text)
    }

    /// The range of a `range` parameter: 24 hours when absent or not one of them.
    pub fn from_param(param: Option<&str>) -> OverviewRange {
        param.and_then(OverviewRange::parse).unwrap_or_default()
    }

    /// How long each bucket is.
    pub fn bucket_width(self) -> TimeDelta {
        match self {
            OverviewRange::Hour => TimeDelta::minutes(5),
            OverviewRange::Day => TimeDelta::hours(1),
            OverviewRange::Week => TimeDelta::hours(6),
        }
    }

    /// How many buckets the window has.
    pub fn bucket_count(self) -> usize {
        match self {
            OverviewRange::Hour => 12,
            OverviewRange::Day => 24,
            OverviewRange::Week => 28,
        }
    }

    /// The whole window.
    pub fn window(self) -> TimeDelta {
        self.bucket_width() * self.bucket_count() as i32
    }

    /// Where each bucket of the window ending at `end` starts, oldest first.
    pub fn bucket_starts(self, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let start = end - self.window();
        (0..self.bucket_count())
            .map(|i| start + self.bucket_width() * i as i32)
            .collect()
    }
}

/// Calls counted over a bucket or a whole window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Invocation records: sync calls, HTTP-trigger calls, async attempts.
    pub calls: i64,
    /// Those whose status is not `success`.
    pub errors: i64,
    pub cold_starts: i64,
    /// The median `duration_ms` (`percentile_cont`); none without calls.
    pub p50_ms: Option<f64>,
    /// The 99th percentile of `duration_ms` (`percentile_cont`); none without calls.
    pub p99_ms: Option<f64>,
}

impl CallStats {
    /// The share of calls that failed, 0 to 1; none without calls.
    pub fn error_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 / self.calls as f64)
    }
}

/// One bucket of the overview: `[start, start + width)`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewBucket {
    pub start: DateTime<Utc>,
    pub stats: CallStats,
}

/// A namespace's calls over a window: by bucket, oldest first, and in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub range: OverviewRange,
    /// Where the window starts and ends (`[start, end)`).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Every bucket of the window, with or without calls.
    pub buckets: Vec<OverviewBucket>,
    pub totals: CallStats,
}

/// The overview of `namespace`'s records over `range`, the window ending at `now`.
///
/// One statement reads the window's records once (through `(namespace, created_at)`, V17's
/// index covering what is counted), numbers each one's bucket with `width_bucket`, and
/// groups them by bucket and as a whole (`GROUPING SETS`); buckets without records have no
/// row, and are filled in here.
pub async fn overview(
    pool: &Pool,
    namespace: &str,
    range: OverviewRange,
    now: DateTime<Utc>,
) -> Result<Overview, DbError> {
    let start = now - range.window();
    let count = range.bucket_count() as i32;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT width_bucket(date_part('epoch', i.created_at),
                                 date_part('epoch', $2::timestamptz),
                                 date_part('epoch', $3::timestamptz), $4::int) AS bucket,
                    count(*) AS calls,
                    count(*) FILTER (WHERE i.status <> 'success') AS errors,
                    count(*) FILTER (WHERE i.cold_start) AS cold_starts,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY i.duration_ms) AS p50,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY i.duration_ms) AS p99
             FROM invocations i
             WHERE i.namespace = $1 AND i.created_at >= $2 AND i.created_at < $3
             GROUP BY GROUPING SETS ((bucket), ())",
            &[&namespace, &start, &now, &count],
        )
        .await?;
    let mut counted = Vec::with_capacity(rows.len());
    for row in &rows {
        let bucket: Option<i32> = row.try_get("bucket")?;
        let stats = CallStats {
            calls: row.try_get("calls")?,
            errors: row.try_get("errors")?,
            cold_starts: row.try_get("cold_starts")?,
            p50_ms: row.try_get("p50")?,
            p99_ms: row.try_get("p99")?,
        };
        counted.push((bucket, stats));
    }
    Ok(arrange(range, now, counted))
}

/// The overview of the window ending at `end` from the query's rows: `(Some(n), stats)` for
/// bucket `n` (1-based, as `width_bucket` numbers them), `(None, stats)` for the whole window.
/// A bucket without a row had no calls; a number out of the window's range is dropped.
fn arrange(
    range: OverviewRange,
    end: DateTime<Utc>,
    counted: Vec<(Option<i32>, CallStats)>,
) -> Overview {
    let mut buckets: Vec<OverviewBucket> = range
        .bucket_starts(end)
        .into_iter()
        .map(|start| OverviewBucket {
            start,
            stats: CallStats::default(),
        })
        .collect();
    let mut totals = CallStats::default();
    for (bucket, stats) in counted {
        match bucket {
            None => totals = stats,
            Some(n) => {
                let slot = usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| buckets.get_mut(i));
                if let Some(slot) = slot {
                    slot.stats = stats;
                }
            }
        }
    }
    Overview {
        range,
        start: end - range.window(),
        end,
        buckets,
        totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap()
    }

    #[test]
    fn a_range_is_named_by_its_parameter_and_defaults_to_a_day() {
        for range in OverviewRange::ALL {
            assert_eq!(OverviewRange::parse(range.as_str()), Some(range));
            assert_eq!(OverviewRange::from_param(Some(range.as_str())), range);
        }
        assert_eq!(OverviewRange::from_param(None), OverviewRange::Day);
        for unknown in ["", "1d", "24H", "7 d", "30d"] {
            assert_eq!(OverviewRange::parse(unknown), None, "{unknown}");
            assert_eq!(OverviewRange::from_param(Some(unknown)), OverviewRange::Day);
        }
    }

    #[test]
    fn each_range_has_fixed_buckets_that_fill_its_window() {
        let layout = [
            (
                OverviewRange::Hour,
                12,
                TimeDelta::minutes(5),
                TimeDelta::hours(1),
            ),
            (
                OverviewRange::Day,
                24,
                TimeDelta::hours(1),
                TimeDelta::hours(24),
            ),
            (
                OverviewRange::Week,
                28,
                TimeDelta::hours(6),
                TimeDelta::days(7),
            ),
        ];
        for (range, count, width, window) in layout {
            assert_eq!(range.bucket_count(), count);
            assert_eq!(range.bucket_width(), width);
            assert_eq!(range.window(), window);
        }
    }

    #[test]
    fn buckets_are_aligned_to_the_window_end_oldest_first() {
        let end = Utc.with_ymd_and_hms(2026, 11, 27, 14, 37, 12).unwrap();
        let starts = OverviewRange::Hour.bucket_starts(end);
        assert_eq!(starts.len(), 12);
        assert_eq!(starts[0], end - TimeDelta::hours(1));
        assert_eq!(starts[11], end - TimeDelta::minutes(5));
        assert!(
            starts
                .windows(2)
                .all(|w| w[1] - w[0] == TimeDelta::minutes(5))
        );
        let week = OverviewRange::Week.bucket_starts(end);
        assert_eq!(week[0], end - TimeDelta::days(7));
        assert_eq!(*week.last().unwrap() + TimeDelta::hours(6), end);
    }

    #[test]
    fn rows_are_placed_in_their_buckets_and_missing_ones_are_empty() {
        let end = at(12, 0);
        let stats = |calls| CallStats {
            calls,
            errors: 1,
            cold_starts: 0,
            p50_ms: Some(2.0),
            p99_ms: Some(9.0),
        };
        let overview = arrange(
            OverviewRange::Hour,
            end,
            vec![
                (Some(12), stats(3)),
                (None, stats(7)),
                (Some(1), stats(4)),
                // Out of the window: dropped, never a panic.
                (Some(0), stats(99)),
                (Some(13), stats(99)),
                (Some(-1), stats(99)),
            ],
        );
        assert_eq!(overview.start, at(11, 0));
        assert_eq!(overview.end, end);
        assert_eq!(overview.totals, stats(7));
        assert_eq!(overview.buckets.len(), 12);
        assert_eq!(overview.buckets[0].start, at(11, 0));
        assert_eq!(overview.buckets[0].stats, stats(4));
        assert_eq!(overview.buckets[11].start, at(11, 55));
        assert_eq!(overview.buckets[11].stats, stats(3));
        for bucket in &overview.buckets[1..11] {
            assert_eq!(bucket.stats, CallStats::default());
        }
        assert_eq!(CallStats::default().error_rate(), None);
        assert_eq!(stats(4).error_rate(), Some(0.25));
    }

    #[test]
    fn a_window_without_rows_is_all_empty() {
        let overview = arrange(OverviewRange::Week, at(0, 0), Vec::new());
        assert_eq!(overview.buckets.len(), 28);
        assert_eq!(overview.totals, CallStats::default());
    }
}
