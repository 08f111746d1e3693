//! Function schedules, as in EventBridge or a Kubernetes CronJob: a five-field cron expression
//! (minute, hour, day of month, month, day of week) read on the wall clock of an IANA time zone.
//!
//! This module only parses, validates and evaluates schedules; whatever fires the functions asks
//! [`Schedule::ticks_between`] which instants fell due since it last looked. Instants go in and
//! come out in UTC, so that callers never handle local times; the zone matters only for which
//! instants match, and it follows the zone's daylight saving rules (see [`Schedule`]).
//!
//! Parsing and evaluation are croner's; this module pins the dialect (five fields only, no
//! seconds, no years, no `@reboot`) and bounds the input, so that what is accepted once keeps
//! its meaning.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Longest accepted expression, in bytes (refuse longer: 422-worthy input): 200.
pub const MAX_SCHEDULE_LEN: usize = 200;

/// Longest accepted time zone name, in bytes; the longest IANA name is about half of it.
const MAX_TIME_ZONE_LEN: usize = 64;

/// The zone of a schedule that names none.
const DEFAULT_TIME_ZONE: &str = "UTC";

/// The `@` aliases croner expands, each to a five-field expression. `@reboot` is not one: a
/// function has no boot to run at.
const ALIASES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A parsed, validated schedule: a cron expression that fires at least once more, and the time
/// zone whose wall clock it is read on.
///
/// Daylight saving time, as croner handles it (pinned by this module's tests):
/// - A *fixed-time* schedule (one minute and one hour, no `*`, list, range or step in either,
///   such as `30 2 * * *`) fires once a day whatever the clock does. On a spring-forward day
///   whose gap swallows its time it fires at the first instant after the gap (02:30 in
///   Europe/Paris on 2026-03-29 fires at 03:00 CEST, 01:00 UTC); on a fall-back day that repeats
///   its time it fires once, at the first of the two instants (02:30 CEST, 00:30 UTC, on
///   2026-10-25).
/// - Any other schedule (`*/15 * * * *`, `0 * * * *`, `0 2,14 * * *`) follows real time: wall
///   clock times that a gap skips never fire, and those that a fall-back repeats fire twice,
///   once per instant.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// Why an expression or a time zone was refused; the messages are meant for the API's caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The expression does not parse, is not a five-field one, or never fires.
    #[error("invalid schedule {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given (cut short if it is over [`MAX_SCHEDULE_LEN`]).
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not an IANA name that chrono-tz knows (cut short if over 64 bytes).
    #[error("unknown time zone {0:?}: expected an IANA name such as \"Europe/Paris\"")]
    InvalidTimeZone(String),
}

impl Schedule {
    /// Parses and validates; `timezone` None means UTC.
    ///
    /// Refuses, as [`ScheduleError::InvalidCron`]: an expression over [`MAX_SCHEDULE_LEN`]
    /// bytes, an empty one, one of other than five fields (no seconds, no years), an `@` alias
    /// other than `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily` and `@hourly`, what
    /// croner does not parse, and an expression that can never fire (`0 0 30 2 *`). Refuses a
    /// zone name that is over 64 bytes or unknown as [`ScheduleError::InvalidTimeZone`]; names
    /// are case-sensitive, as in the IANA database.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let cron = parse_cron(expr)?;
        let zone = parse_zone(timezone.unwrap_or(DEFAULT_TIME_ZONE))?;
        let schedule = Schedule { cron, zone };
        // A schedule that would silently never run is the caller's mistake, to be told now.
        // Without a year field the calendar repeats every 400 years (146097 days, whole weeks),
        // so one such cycle of wall clock time, free of any zone, refuses an impossible date
        // (`0 0 30 2 *`) five to eight times faster than croner's search from now to its limit,
        // the year 5000, would (a few milliseconds in a release build). The search from now, in the zone, is quick for any expression that
        // passed, and still refuses one whose only times are skipped by daylight saving.
        let cycle_start = NaiveDate::from_ymd_opt(croner::YEAR_UPPER_LIMIT - 400, 1, 1)
            .and_then(|day| day.and_hms_opt(0, 0, 0));
        let fires_in_a_cycle = cycle_start
            .is_some_and(|start| schedule.cron.find_next_occurrence(&start, true).is_ok());
        if !fires_in_a_cycle || schedule.next_after(Utc::now()).is_none() {
            return Err(invalid_cron(
                expr,
                "it never fires: no date and time match it (such as February 30)".to_owned(),
            ));
        }
        Ok(schedule)
    }

    /// The ticks t with after < t <= until, oldest first, at most `max` of them.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        // Not `with_capacity(max)`: `max` is a bound, often far above the count.
        let mut ticks = Vec::new();
        let mut from = after;
        while ticks.len() < max {
            match self.next_after(from) {
                Some(tick) if tick <= until => {
                    ticks.push(tick);
                    from = tick;
                }
                _ => break,
            }
        }
        ticks
    }

    /// The first tick strictly after `after` (None if none exists, e.g. Feb 30).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The search runs on the zone's wall clock; a UTC instant converted to the zone keeps
        // its offset, which tells croner which half of a repeated hour it starts in.
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }
}

/// Parses a five-field expression or one of [`ALIASES`].
fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    if expr.len() > MAX_SCHEDULE_LEN {
        return Err(invalid_cron(
            expr,
            format!("longer than {MAX_SCHEDULE_LEN} bytes"),
        ));
    }
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(invalid_cron(
            expr,
            "empty: expected 5 fields (minute hour day-of-month month day-of-week)".to_owned(),
        ));
    }
    // Counted here rather than left to croner so that the caller reads what this API accepts,
    // not which parser options were turned off.
    if trimmed.starts_with('@') {
        if !ALIASES
            .iter()
            .any(|alias| alias.eq_ignore_ascii_case(trimmed))
        {
            return Err(invalid_cron(
                expr,
                format!("unknown alias: expected one of {}", ALIASES.join(", ")),
            ));
        }
    } else {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 {
            return Err(invalid_cron(
                expr,
                format!(
                    "{fields} fields: expected 5 (minute hour day-of-month month day-of-week), \
                     without seconds or years"
                ),
            ));
        }
    }
    // Disallowed rather than optional, so that croner itself refuses a sixth or seventh field
    // should the count above ever be bypassed.
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| invalid_cron(expr, error.to_string()))
}

/// Looks an IANA name up in chrono-tz's copy of the database.
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    if name.len() > MAX_TIME_ZONE_LEN {
        return Err(ScheduleError::InvalidTimeZone(shorten(
            name,
            MAX_TIME_ZONE_LEN,
        )));
    }
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::InvalidTimeZone(name.to_owned()))
}

fn invalid_cron(expr: &str, reason: String) -> ScheduleError {
    ScheduleError::InvalidCron {
        expr: shorten(expr, MAX_SCHEDULE_LEN),
        reason,
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) and marked as cut: errors echo
/// what was given, and an oversized input must not come back whole.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, minute, 0)
            .unwrap()
    }

    fn schedule(expr: &str, zone: &str) -> Schedule {
        Schedule::parse(expr, Some(zone)).unwrap()
    }

    fn assert_invalid_cron(expr: &str) -> String {
        match Schedule::parse(expr, None) {
            Err(ScheduleError::InvalidCron {
                expr: echoed,
                reason,
            }) => {
                assert_eq!(echoed, expr);
                reason
            }
            other => panic!("{expr:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_minute_ticks_between_two_instants() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        let after = utc(2026, 1, 1, 12, 0);
        // Bounds: `after` itself is excluded, `until` included, seconds ignored.
        let ticks = every_minute.ticks_between(after, utc(2026, 1, 1, 12, 3), 100);
        assert_eq!(
            ticks,
            vec![
                utc(2026, 1, 1, 12, 1),
                utc(2026, 1, 1, 12, 2),
                utc(2026, 1, 1, 12, 3)
            ]
        );
        let mid_minute = after + chrono::Duration::milliseconds(59_500);
        assert_eq!(
            every_minute.next_after(mid_minute),
            Some(utc(2026, 1, 1, 12, 1))
        );
        assert!(every_minute.ticks_between(after, after, 100).is_empty());
        assert!(
            every_minute
                .ticks_between(after, after - chrono::Duration::hours(1), 100)
                .is_empty()
        );
    }

    #[test]
    fn every_quarter_hour() {
        let quarterly = Schedule::parse("*/15 * * * *", Some("UTC")).unwrap();
        let ticks = quarterly.ticks_between(utc(2026, 1, 1, 12, 7), utc(2026, 1, 1, 13, 0), 100);
        assert_eq!(
            ticks,
            vec![
                utc(2026, 1, 1, 12, 15),
                utc(2026, 1, 1, 12, 30),
                utc(2026, 1, 1, 12, 45),
                utc(2026, 1, 1, 13, 0),
            ]
        );
    }

    #[test]
    fn weekdays_by_name() {
        let weekdays = Schedule::parse("0 9 * * MON-FRI", None).unwrap();
        // 2026-01-02 is a Friday: then Monday the 5th, Tuesday the 6th.
        let ticks = weekdays.ticks_between(utc(2026, 1, 2, 0, 0), utc(2026, 1, 7, 0, 0), 100);
        assert_eq!(
            ticks,
            vec![
                utc(2026, 1, 2, 9, 0),
                utc(2026, 1, 5, 9, 0),
                utc(2026, 1, 6, 9, 0)
            ]
        );
        let january = Schedule::parse("0 0 1 jan *", None).unwrap();
        assert_eq!(
            january.next_after(utc(2026, 6, 1, 0, 0)),
            Some(utc(2027, 1, 1, 0, 0))
        );
    }

    #[test]
    fn aliases_are_accepted_and_reboot_is_not() {
        let hourly = Schedule::parse(" @HOURLY ", None).unwrap();
        assert_eq!(
            hourly.next_after(utc(2026, 1, 1, 12, 30)),
            Some(utc(2026, 1, 1, 13, 0))
        );
        let daily = Schedule::parse("@daily", None).unwrap();
        assert_eq!(
            daily.next_after(utc(2026, 1, 1, 12, 30)),
            Some(utc(2026, 1, 2, 0, 0))
        );
        assert!(assert_invalid_cron("@reboot").contains("unknown alias"));
        assert_invalid_cron("@every 5m");
    }

    #[test]
    fn six_and_seven_fields_are_refused() {
        assert!(assert_invalid_cron("0 0 * * * *").contains("6 fields"));
        assert!(assert_invalid_cron("0 0 0 * * * 2026").contains("7 fields"));
        assert!(assert_invalid_cron("* * * *").contains("4 fields"));
    }

    #[test]
    fn garbage_is_refused() {
        assert_invalid_cron("every day at noon");
        assert_invalid_cron("60 * * * *");
        assert_invalid_cron("* 24 * * *");
        assert_invalid_cron("* * * 13 *");
        assert_invalid_cron("* * * * MONDAY");
        assert_invalid_cron("*/0 * * * *");
    }

    #[test]
    fn empty_expressions_are_refused() {
        assert!(assert_invalid_cron("").contains("empty"));
        assert!(assert_invalid_cron(" \t\n").contains("empty"));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!(assert_invalid_cron("0 0 30 2 *").contains("never fires"));
        assert!(assert_invalid_cron("0 0 31 4,6,9,11 *").contains("never fires"));
        // Rare is not impossible: February 29th comes round in leap years.
        let leap = Schedule::parse("0 0 29 2 *", None).unwrap();
        assert_eq!(
            leap.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2028, 2, 29, 0, 0))
        );
    }

    #[test]
    fn overlong_expressions_are_refused_and_not_echoed_whole() {
        let longest = format!("0 0 * * {}", "1,".repeat(95) + "1");
        assert_eq!(longest.len(), MAX_SCHEDULE_LEN - 1);
        Schedule::parse(&longest, None).unwrap();
        let too_long = format!("{longest}  ");
        match Schedule::parse(&too_long, None) {
            Err(ScheduleError::InvalidCron { expr, reason }) => {
                assert!(reason.contains("longer than 200 bytes"), "{reason}");
                assert_eq!(expr, format!("{}…", &too_long[..MAX_SCHEDULE_LEN]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus_Mons")).unwrap_err(),
            ScheduleError::InvalidTimeZone("Mars/Olympus_Mons".to_owned())
        );
        assert!(Schedule::parse("* * * * *", Some("")).is_err());
        assert!(Schedule::parse("* * * * *", Some("europe/paris")).is_err());
        let long = "A/".repeat(40);
        assert_eq!(
            Schedule::parse("* * * * *", Some(&long)).unwrap_err(),
            ScheduleError::InvalidTimeZone(format!("{}…", &long[..64]))
        );
        Schedule::parse("* * * * *", Some("Europe/Paris")).unwrap();
        Schedule::parse("* * * * *", Some("Etc/UTC")).unwrap();
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            Schedule::parse("* * * * *", Some("Nowhere"))
                .unwrap_err()
                .to_string(),
            "unknown time zone \"Nowhere\": expected an IANA name such as \"Europe/Paris\""
        );
        assert_eq!(
            Schedule::parse("0 0 * * * *", None)
                .unwrap_err()
                .to_string(),
            "invalid schedule \"0 0 * * * *\": 6 fields: expected 5 (minute hour day-of-month \
             month day-of-week), without seconds or years"
        );
    }

    #[test]
    fn new_york_morning_follows_daylight_saving() {
        let nine = schedule("0 9 * * *", "America/New_York");
        // EST (UTC-5) in winter, EDT (UTC-4) in summer.
        assert_eq!(
            nine.next_after(utc(2026, 1, 15, 0, 0)),
            Some(utc(2026, 1, 15, 14, 0))
        );
        assert_eq!(
            nine.next_after(utc(2026, 7, 15, 0, 0)),
            Some(utc(2026, 7, 15, 13, 0))
        );
        // Across the 2026-03-08 switch: 14:00 UTC before, 13:00 UTC from that day on.
        assert_eq!(
            nine.ticks_between(utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 23, 0), 10),
            vec![
                utc(2026, 3, 7, 14, 0),
                utc(2026, 3, 8, 13, 0),
                utc(2026, 3, 9, 13, 0)
            ]
        );
    }

    #[test]
    fn fixed_time_in_the_spring_forward_gap_fires_once_after_it() {
        // Europe/Paris, 2026-03-29: at 02:00 CET (01:00 UTC) clocks go to 03:00 CEST, so 02:30
        // never happens; croner fires at 03:00 CEST, the first instant after the gap.
        let half_past_two = schedule("30 2 * * *", "Europe/Paris");
        assert_eq!(
            half_past_two.ticks_between(utc(2026, 3, 28, 0, 0), utc(2026, 3, 31, 0, 0), 10),
            vec![
                utc(2026, 3, 28, 1, 30), // 02:30 CET
                utc(2026, 3, 29, 1, 0),  // 03:00 CEST
                utc(2026, 3, 30, 0, 30), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn fixed_time_in_the_fall_back_overlap_fires_once() {
        // Europe/Paris, 2026-10-25: at 03:00 CEST (01:00 UTC) clocks go back to 02:00 CET, so
        // 02:30 happens twice (00:30 and 01:30 UTC); croner fires at the first only.
        let half_past_two = schedule("30 2 * * *", "Europe/Paris");
        assert_eq!(
            half_past_two.ticks_between(utc(2026, 10, 24, 0, 0), utc(2026, 10, 27, 0, 0), 10),
            vec![
                utc(2026, 10, 24, 0, 30), // 02:30 CEST
                utc(2026, 10, 25, 0, 30), // 02:30 CEST, not again at 02:30 CET
                utc(2026, 10, 26, 1, 30), // 02:30 CET
            ]
        );
        // Starting inside the repeated hour, after the first 02:30, does not bring it back.
        assert_eq!(
            half_past_two.next_after(utc(2026, 10, 25, 0, 45)),
            Some(utc(2026, 10, 26, 1, 30))
        );
    }

    #[test]
    fn other_schedules_follow_real_time_across_daylight_saving() {
        let half_hours_at_two = schedule("*/30 2 * * *", "Europe/Paris");
        // Spring forward: 02:00 and 02:30 do not exist that day and are not carried over.
        assert_eq!(
            half_hours_at_two.ticks_between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 12, 0), 10),
            vec![utc(2026, 3, 30, 0, 0), utc(2026, 3, 30, 0, 30)]
        );
        // Fall back: each of 02:00 and 02:30 happens twice, and fires twice.
        assert_eq!(
            half_hours_at_two.ticks_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0), 10),
            vec![
                utc(2026, 10, 25, 0, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 1, 30),
            ]
        );
        // An hourly schedule ticks every real hour: 23 ticks on the short day, 25 on the long.
        let hourly = schedule("0 * * * *", "Europe/Paris");
        let paris_day = |month, day| {
            let start = chrono_tz::Europe::Paris
                .with_ymd_and_hms(2026, month, day, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc);
            let end = chrono_tz::Europe::Paris
                .with_ymd_and_hms(2026, month, day + 1, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc);
            hourly.ticks_between(start, end, 100).len()
        };
        assert_eq!(paris_day(3, 29), 23);
        assert_eq!(paris_day(10, 25), 25);
    }

    #[test]
    fn ticks_between_respects_max() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        let after = utc(2026, 1, 1, 0, 0);
        let until = utc(2026, 1, 2, 0, 0);
        assert_eq!(
            every_minute.ticks_between(after, until, 2),
            vec![utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)]
        );
        assert!(every_minute.ticks_between(after, until, 0).is_empty());
        assert_eq!(
            every_minute.ticks_between(after, until, usize::MAX).len(),
            24 * 60
        );
    }
}
