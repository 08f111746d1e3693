//! The console's overview (DESIGN §17): known invocation records, written straight into the
//! test's database at known ages (the rollups follow by trigger), must come out of
//! `/console/overview` as the totals and the bucket numbers they give, for each range (counts
//! exact, percentiles as their 10% duration bins give them); records of another namespace or older than the
//! window never count. Who may see the page: a `read` key, not an `invoke` one, nobody
//! without a session.

use crate::console::Console;
use crate::support::{ADMIN_KEY, TestApp};
use reqwest::header::LOCATION;

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// One record: how long ago it was written, its duration, whether it succeeded, whether it
/// was a cold start, and its namespace. Every age is well inside a bucket of every range, so
/// that the seconds the test takes cannot move a record to the next one.
struct Record {
    age_secs: f64,
    duration_ms: f64,
    status: &'static str,
    cold_start: bool,
    namespace: &'static str,
}

const fn record(
    age_secs: f64,
    duration_ms: f64,
    status: &'static str,
    cold_start: bool,
    namespace: &'static str,
) -> Record {
    Record {
        age_secs,
        duration_ms,
        status,
        cold_start,
        namespace,
    }
}

const OTHER: &str = "overview-other";

const RECORDS: [Record; 16] = [
    // 2 minutes ago: the last bucket of every range.
    record(2.0 * MINUTE, 10.0, "success", true, "default"),
    record(2.0 * MINUTE, 20.0, "success", false, "default"),
    record(2.0 * MINUTE, 30.0, "error", false, "default"),
    // 12 minutes ago: the hour's tenth bucket of twelve.
    record(12.0 * MINUTE, 100.0, "success", true, "default"),
    record(12.0 * MINUTE, 300.0, "timeout", true, "default"),
    // 3 h 30 min ago: out of the hour; the day's 21st bucket; the week's last.
    record(3.5 * HOUR, 5.0, "success", false, "default"),
    record(3.5 * HOUR, 15.0, "success", false, "default"),
    record(3.5 * HOUR, 25.0, "success", true, "default"),
    record(3.5 * HOUR, 1000.0, "error", false, "default"),
    // 3 days 3 hours ago: the week's 16th bucket only.
    record(3.0 * DAY + 3.0 * HOUR, 50.0, "success", false, "default"),
    record(3.0 * DAY + 3.0 * HOUR, 70.0, "success", true, "default"),
    // 6 days 21 hours ago: the week's first bucket.
    record(6.0 * DAY + 21.0 * HOUR, 40.0, "oom", false, "default"),
    // 8 days ago: outside every window.
    record(8.0 * DAY, 9999.0, "error", true, "default"),
    // Another namespace's, 2 minutes ago: never in this one's overview.
    record(2.0 * MINUTE, 7777.0, "error", true, OTHER),
    record(2.0 * MINUTE, 7777.0, "error", true, OTHER),
    record(2.0 * MINUTE, 7777.0, "error", true, OTHER),
];

/// The ranges: their parameter, bucket count and width, and the width of the rollups they read.
const RANGES: [(&str, usize, f64, i64); 3] = [
    ("1h", 12, 5.0 * MINUTE, 300),
    ("24h", 24, HOUR, 3600),
    ("7d", 28, 6.0 * HOUR, 3600),
];

/// The duration bin of `ms`, as V17's `duration_bin` computes it.
fn bin(ms: f64) -> i32 {
    ((ms.max(0.1) / 0.1).ln() / 1.1_f64.ln()).floor() as i32
}

/// The `fraction` percentile of `values` as the overview reads it: the nearest rank's bin, as
/// that bin's geometric middle.
fn binned_percentile(values: &[f64], fraction: f64) -> Option<f64> {
    let mut bins: Vec<i32> = values.iter().map(|ms| bin(*ms)).collect();
    bins.sort();
    let rank = ((fraction * bins.len() as f64).ceil() as usize).clamp(1, bins.len().max(1));
    let bin = *bins.get(rank - 1)?;
    Some(0.1 * 1.1_f64.powi(bin) * 1.1_f64.sqrt())
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"))
}

/// What the page shows of some records: calls, errors, p50, p99, cold starts, as the data
/// table's cells say them.
fn shown(records: &[&Record]) -> [String; 5] {
    let durations: Vec<f64> = records.iter().map(|r| r.duration_ms).collect();
    [
        records.len().to_string(),
        records
            .iter()
            .filter(|r| r.status != "success")
            .count()
            .to_string(),
        ms(binned_percentile(&durations, 0.5)),
        ms(binned_percentile(&durations, 0.99)),
        records.iter().filter(|r| r.cold_start).count().to_string(),
    ]
}

/// The records of `namespace` within the window of `count` buckets of `width` seconds that
/// starts at `start` (Unix seconds), by bucket (oldest first), and all of them; a record counts
/// at the start of its rollup bucket (`rollup` seconds), as the rollups count it. `created` is
/// each record's time.
fn expected<'a>(
    namespace: &str,
    (count, width, rollup): (usize, f64, i64),
    start: i64,
    created: &[i64],
) -> (Vec<Vec<&'a Record>>, Vec<&'a Record>) {
    let mut buckets: Vec<Vec<&Record>> = (0..count).map(|_| Vec::new()).collect();
    let mut all = Vec::new();
    for (record, created) in RECORDS.iter().zip(created) {
        if record.namespace != namespace {
            continue;
        }
        let rolled = created.div_euclid(rollup) * rollup;
        let slot = (rolled - start).div_euclid(width as i64);
        if (0..count as i64).contains(&slot) {
            buckets[slot as usize].push(record);
            all.push(record);
        }
    }
    (buckets, all)
}

/// The cells of each row of the page's data table (its body), tags removed.
fn table_rows(html: &str) -> Vec<Vec<String>> {
    let table = &html[html.find("id=\"overview-data\"").expect("the data table")..];
    let body = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let mut cells = Vec::new();
            let mut rest = row;
            while let Some(open) = rest.find("<t") {
                let cell = &rest[open..];
                let start = cell.find('>').unwrap() + 1;
                let end = cell.find("</t").unwrap();
                cells.push(cell[start..end].to_owned());
                rest = &cell[end + 3..];
            }
            cells
        })
        .collect()
}

/// The value the totals list gives `term`.
fn total<'a>(html: &'a str, term: &str) -> &'a str {
    let at = html
        .find(&format!("<dt>{term}</dt><dd>"))
        .unwrap_or_else(|| panic!("no total {term}: {html}"))
        + term.len()
        + 13;
    html[at..].split("</dd>").next().unwrap()
}

/// Checks the page of `range` against the records of `namespace`.
fn check_page(
    html: &str,
    namespace: &str,
    (range, count, width, rollup): (&str, usize, f64, i64),
    created: &[i64],
) {
    let rows = table_rows(html);
    // The window starts where its first bucket does (whole minutes, UTC).
    let start = chrono::NaiveDateTime::parse_from_str(&rows[0][0], "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{range}: first bucket {:?}: {e}", rows[0][0]))
        .and_utc()
        .timestamp();
    let (buckets, all) = expected(namespace, (count, width, rollup), start, created);
    let [calls, errors, p50, p99, cold_starts] = shown(&all);
    assert_eq!(total(html, "Calls"), calls, "{range}");
    assert_eq!(total(html, "Errors"), errors, "{range}");
    assert_eq!(total(html, "p50"), p50, "{range}");
    assert_eq!(total(html, "p99"), p99, "{range}");
    assert_eq!(total(html, "Cold starts"), cold_starts, "{range}");
    let calls: f64 = calls.parse().unwrap();
    let errors: f64 = errors.parse().unwrap();
    let rate = if calls > 0.0 {
        format!("{:.1}%", errors / calls * 100.0)
    } else {
        "–".to_owned()
    };
    assert_eq!(total(html, "Error rate"), rate, "{range}");

    assert_eq!(rows.len(), count, "{range}: a row per bucket");
    for (i, (row, records)) in rows.iter().zip(&buckets).enumerate() {
        assert_eq!(&row[1..], &shown(records)[..], "{range}, bucket {i}");
    }

    // The current range is marked, the charts are labelled images, and nothing is inline.
    let current = format!("href=\"/console/overview?range={range}\" aria-current=\"page\"");
    assert!(html.contains(&current), "{range}: {html}");
    assert_eq!(html.matches("aria-current").count(), 1);
    assert_eq!(html.matches("role=\"img\"").count(), 4, "{range}");
    assert!(
        !html.contains(" style=") && !html.contains("<style"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
}

#[tokio::test]
async fn the_overview_counts_the_namespaces_records_in_each_window_and_bucket() {
    let app = TestApp::start().await;
    let other_key = app.namespace_with_key(OTHER, &["read"]).await;
    let invoke_key = app.key_of("default", &["invoke"]).await;
    let read_key = app.key_of("default", &["read"]).await;

    let db = app.db().await;
    let now = chrono::Utc::now();
    let mut created = Vec::new();
    for r in &RECORDS {
        let at = now - chrono::TimeDelta::milliseconds((r.age_secs * 1000.0) as i64);
        created.push(at.timestamp());
        db.execute(
            "INSERT INTO invocations (id, function_id, function_name, function_version, runtime,
                 status, cold_start, duration_ms, created_at, namespace)
             VALUES ($1, 1, 'charted', 1, 'docker', $2, $3, $4, $5, $6)",
            &[
                &uuid::Uuid::new_v4(),
                &r.status,
                &r.cold_start,
                &r.duration_ms,
                &at,
                &r.namespace,
            ],
        )
        .await
        .unwrap();
    }

    let console = Console::new(&app);
    let admin = console.sign_in(ADMIN_KEY).await;
    for range in RANGES {
        let path = format!("/console/overview?range={}", range.0);
        let (status, _, html) = console.get(&path, Some(&admin)).await;
        assert_eq!(status, 200, "{html}");
        check_page(&html, "default", range, &created);
    }
    // The hour's numbers, written out once: 10, 20, 30, 100 and 300 ms; the median is the
    // 3rd (30 ms, in the bin shown as 29.0 ms), the 99th percentile the 5th (300 ms: 314.5).
    let (_, _, html) = console
        .get("/console/overview?range=1h", Some(&admin))
        .await;
    assert_eq!(total(&html, "Calls"), "5");
    assert_eq!(total(&html, "Errors"), "2");
    assert_eq!(total(&html, "Error rate"), "40.0%");
    assert_eq!(total(&html, "p50"), "29.0 ms");
    assert_eq!(total(&html, "p99"), "314.5 ms");
    assert_eq!(total(&html, "Cold starts"), "3");

    // Deleting records takes them out of the rollups too (retention, a namespace's deletion).
    db.execute(
        "DELETE FROM invocations WHERE namespace = 'default' AND duration_ms IN (10, 20)",
        &[],
    )
    .await
    .unwrap();
    let (_, _, html) = console
        .get("/console/overview?range=1h", Some(&admin))
        .await;
    assert_eq!(total(&html, "Calls"), "3");
    assert_eq!(total(&html, "Cold starts"), "2");
    let leftover: i64 = db
        .query_one(
            "SELECT count(*) FROM invocation_rollups WHERE calls <= 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftover, 0, "emptied rollups are removed");
    let restored: Vec<(f64, &str, bool)> = vec![(10.0, "success", true), (20.0, "success", false)];
    for (duration_ms, status, cold_start) in restored {
        db.execute(
            "INSERT INTO invocations (id, function_id, function_name, function_version, runtime,
                 status, cold_start, duration_ms, created_at, namespace)
             VALUES ($1, 1, 'charted', 1, 'docker', $2, $3, $4, $5, 'default')",
            &[
                &uuid::Uuid::new_v4(),
                &status,
                &cold_start,
                &duration_ms,
                &chrono::DateTime::from_timestamp(created[0], 0).unwrap(),
            ],
        )
        .await
        .unwrap();
    }

    // No range, or one that is not a range: the last 24 hours.
    for path in ["/console/overview", "/console/overview?range=30d"] {
        let (status, _, html) = console.get(path, Some(&admin)).await;
        assert_eq!(status, 200, "{path}");
        check_page(&html, "default", RANGES[1], &created);
    }

    // A read key sees its namespace's; the other namespace sees only its own.
    let reader = console.sign_in(&read_key).await;
    let (status, _, html) = console
        .get("/console/overview?range=7d", Some(&reader))
        .await;
    assert_eq!(status, 200, "{html}");
    check_page(&html, "default", RANGES[2], &created);
    let other = console.sign_in(&other_key).await;
    let (status, _, html) = console
        .get("/console/overview?range=1h", Some(&other))
        .await;
    assert_eq!(status, 200, "{html}");
    check_page(&html, OTHER, RANGES[0], &created);
    assert_eq!(total(&html, "Calls"), "3");

    // An invoke key may not read; no session goes to sign in, and back here after.
    let invoker = console.sign_in(&invoke_key).await;
    let (status, _, html) = console
        .get("/console/overview?range=1h", Some(&invoker))
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("read or manage"), "{html}");
    let (status, headers, _) = console.get("/console/overview?range=7d", None).await;
    assert_eq!(status, 303);
    assert_eq!(
        headers[LOCATION],
        "/console/sign-in?next=%2Fconsole%2Foverview%3Frange%3D7d"
    );

    // Signed-in pages link to it.
    let (_, _, html) = console.get("/console/functions", Some(&admin)).await;
    assert!(html.contains("href=\"/console/overview\""), "{html}");
    app.stop().await;
}
