//! `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`, or combined: `1h30m`) or an
//! RFC 3339 instant, as the instant the api's `?since=` takes.

use chrono::{DateTime, Duration, Utc};

/// The instant `text` names, counted back from `now` for a duration.
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let invalid = || {
        format!(
            "--since must be a duration like 30s, 10m, 2h, 1d (or 1h30m), or an RFC 3339 time; got {text:?}"
        )
    };
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut any = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let amount: i64 = digits.parse().map_err(|_| invalid())?;
        digits.clear();
        let unit = match c {
            's' => Duration::try_seconds(amount),
            'm' => Duration::try_minutes(amount),
            'h' => Duration::try_hours(amount),
            'd' => Duration::try_days(amount),
            _ => None,
        }
        .ok_or_else(invalid)?;
        total = total.checked_add(&unit).ok_or_else(invalid)?;
        any = true;
    }
    if !digits.is_empty() || !any {
        return Err(invalid());
    }
    now.checked_sub_signed(total).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_count_back_from_now_and_instants_are_taken_as_they_are() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |text: &str| parse(text, now).map(|t| t.to_rfc3339());
        assert_eq!(at("10m").unwrap(), "2026-12-07T11:50:00+00:00");
        assert_eq!(at("90s").unwrap(), "2026-12-07T11:58:30+00:00");
        assert_eq!(at("1h30m").unwrap(), "2026-12-07T10:30:00+00:00");
        assert_eq!(at("2d").unwrap(), "2026-12-05T12:00:00+00:00");
        assert_eq!(
            at("2026-12-01T08:00:00+01:00").unwrap(),
            "2026-12-01T07:00:00+00:00"
        );
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "-5m",
            "ten minutes",
            "99999999999999999d",
        ] {
            let error = at(bad).unwrap_err();
            assert!(error.starts_with("--since must be"), "{bad}: {error}");
        }
    }
}
