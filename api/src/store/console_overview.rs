//! The console's overview (DESIGN §17): a namespace's calls, errors, latency and cold starts
//! over the last hour, day or week, in fixed buckets, from the rollups the records are counted
//! into as they are written (`invocation_rollups`, V17; no Prometheus needed).
//!
//! The rollups count per 5 minutes (read for the hour) and per hour (for the day and the week),
//! so the window ends at the end of the current 5 minutes or hour, and is cut, from its start,
//! into buckets of equal width: 12 of 5 minutes, 24 of 1 hour or 28 of 6 hours. Each bucket is `[start, end)`, and so is the window. Counts are exact; latency
//! percentiles are read from duration bins 10% wide (nearest rank, each bin's geometric
//! middle), so within 5% of the records' own.

use super::DbError;
use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;

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

    /// The width of the rollups it reads, in seconds (V17 keeps 300 and 3600): the window
    /// ends on a multiple of it.
    pub fn rollup_secs(self) -> i64 {
        match self {
            OverviewRange::Hour => 300,
            OverviewRange::Day | OverviewRange::Week => 3600,
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

/// Where the window that contains `now` ends: the end of the current rollup bucket of
/// `rollup_secs`.
pub fn window_end(now: DateTime<Utc>, rollup_secs: i64) -> DateTime<Utc> {
    let secs = now.timestamp();
    let end = (secs.div_euclid(rollup_secs) + 1) * rollup_secs;
    DateTime::from_timestamp(end, 0).unwrap_or(now)
}

/// The lower bound of duration bin `bin` (V17's `duration_bin`): 0.1 ms x 1.1^bin.
fn bin_floor_ms(bin: i16) -> f64 {
    0.1 * 1.1_f64.powi(i32::from(bin))
}

/// What a bin stands for: its geometric middle (within 5% of any duration in it).
pub fn bin_middle_ms(bin: i16) -> f64 {
    bin_floor_ms(bin) * 1.1_f64.sqrt()
}

/// The `fraction` percentile (nearest rank) of calls counted by duration bin, as its bin's
/// middle; none without calls.
pub fn binned_percentile(bins: &BTreeMap<i16, i64>, fraction: f64) -> Option<f64> {
    let total: i64 = bins.values().sum();
    if total <= 0 {
        return None;
    }
    let rank = ((fraction * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (&bin, &calls) in bins {
        seen += calls;
        if seen >= rank {
            return Some(bin_middle_ms(bin));
        }
    }
    None
}

/// Calls of a bucket or a window as they are added up: counts and the duration bins.
#[derive(Debug, Default)]
struct Tally {
    calls: i64,
    errors: i64,
    cold_starts: i64,
    bins: BTreeMap<i16, i64>,
}

impl Tally {
    fn add(&mut self, bin: i16, calls: i64, errors: i64, cold_starts: i64) {
        self.calls += calls;
        self.errors += errors;
        self.cold_starts += cold_starts;
        *self.bins.entry(bin).or_default() += calls;
    }

    fn stats(&self) -> CallStats {
        CallStats {
            calls: self.calls,
            errors: self.errors,
            cold_starts: self.cold_starts,
            p50_ms: binned_percentile(&self.bins, 0.5),
            p99_ms: binned_percentile(&self.bins, 0.99),
        }
    }
}

/// The overview of `namespace`'s records over `range`, the window ending with the rollup
/// bucket that holds `now`.
///
/// One statement reads the window's rollups (by their key, `(namespace, width, bucket, bin)`) and
/// adds them up per overview bucket (`width_bucket`) and bin; the totals and the percentiles
/// are added up here. Buckets without rows had no calls.
pub async fn overview(
    pool: &Pool,
    namespace: &str,
    range: OverviewRange,
    now: DateTime<Utc>,
) -> Result<Overview, DbError> {
    let end = window_end(now, range.rollup_secs());
    let start = end - range.window();
    let count = range.bucket_count() as i32;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT width_bucket(date_part('epoch', r.bucket),
                                 date_part('epoch', $2::timestamptz),
                                 date_part('epoch', $3::timestamptz), $4::int) AS slot,
                    r.bin, sum(r.calls)::bigint AS calls, sum(r.errors)::bigint AS errors,
                    sum(r.cold_starts)::bigint AS cold_starts
             FROM invocation_rollups r
             WHERE r.namespace = $1 AND r.width = $5 AND r.bucket >= $2 AND r.bucket < $3
             GROUP BY 1, 2",
            &[
                &namespace,
                &start,
                &end,
                &count,
                &(range.rollup_secs() as i32),
            ],
        )
        .await?;
    let mut tallies: Vec<Tally> = (0..range.bucket_count())
        .map(|_| Tally::default())
        .collect();
    let mut totals = Tally::default();
    for row in &rows {
        let slot: i32 = row.try_get("slot")?;
        let (bin, calls, errors, cold_starts): (i16, i64, i64, i64) = (
            row.try_get("bin")?,
            row.try_get("calls")?,
            row.try_get("errors")?,
            row.try_get("cold_starts")?,
        );
        // `width_bucket` numbers them from 1; the window's own bounds keep it in range.
        let Some(tally) = usize::try_from(slot - 1)
            .ok()
            .and_then(|i| tallies.get_mut(i))
        else {
            continue;
        };
        tally.add(bin, calls, errors, cold_starts);
        totals.add(bin, calls, errors, cold_starts);
    }
    let counted = tallies
        .iter()
        .enumerate()
        .map(|(i, tally)| (Some(i as i32 + 1), tally.stats()))
        .chain([(None, totals.stats())])
        .collect();
    Ok(arrange(range, end, counted))
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
    fn the_window_ends_with_the_rollup_bucket_that_holds_now() {
        assert_eq!(window_end(at(12, 0), 300), at(12, 5));
        assert_eq!(window_end(at(12, 3), 300), at(12, 5));
        assert_eq!(
            window_end(at(12, 4) + TimeDelta::seconds(59), 300),
            at(12, 5)
        );
        assert_eq!(window_end(at(12, 5), 300), at(12, 10));
        assert_eq!(window_end(at(12, 5), 3600), at(13, 0));
        assert_eq!(window_end(at(13, 0), 3600), at(14, 0));
    }

    #[test]
    fn a_binned_percentile_is_its_nearest_ranks_bin_within_five_percent() {
        // Bins as V17's duration_bin makes them: floor(ln(ms / 0.1) / ln(1.1)).
        let bin = |ms: f64| ((ms.max(0.1) / 0.1).ln() / 1.1_f64.ln()).floor() as i16;
        for ms in [0.05, 0.1, 0.5, 1.0, 7.3, 30.0, 300.0, 9_999.0, 900_000.0] {
            let middle = bin_middle_ms(bin(ms));
            if ms >= 0.1 {
                assert!((middle / ms - 1.0).abs() < 0.05, "{ms} -> {middle}");
            }
        }
        let mut bins = BTreeMap::new();
        for ms in [10.0, 20.0, 30.0, 100.0, 300.0] {
            *bins.entry(bin(ms)).or_insert(0) += 1;
        }
        // Five calls: the median is the 3rd, the 99th percentile the 5th.
        assert_eq!(
            binned_percentile(&bins, 0.5),
            Some(bin_middle_ms(bin(30.0)))
        );
        assert_eq!(
            binned_percentile(&bins, 0.99),
            Some(bin_middle_ms(bin(300.0)))
        );
        assert_eq!(
            binned_percentile(&bins, 0.0),
            Some(bin_middle_ms(bin(10.0)))
        );
        assert_eq!(binned_percentile(&BTreeMap::new(), 0.5), None);
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
