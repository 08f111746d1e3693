//! Whether an update changes anything: [`unchanged`] compares the fields a save would store with
//! the function as stored, so that saving the same function again (a redeploy of an unchanged
//! folder) writes nothing, starts no build and bumps no version. Pure: tested by the table below.

use crate::domain::deps;
use crate::store::{Function, FunctionFields};
use chrono::{DateTime, Utc};

/// True when storing `fields` over `stored` would change nothing a client set: the same code
/// (or the same package digest: the same files), the same dependencies once normalised (what is
/// built from them), and every other field equal. A function whose build the save would start
/// again at `now` (failed, or lost: [`Build::restarts_on_save`]) is never unchanged: saving it
/// again is how its build is retried.
///
/// [`Build::restarts_on_save`]: crate::store::Build::restarts_on_save
pub fn unchanged(stored: &Function, fields: &FunctionFields, now: DateTime<Utc>) -> bool {
    // Every field named, none left to `..`: a new field does not compile until it is compared.
    let FunctionFields {
        name,
        route,
        language,
        code,
        handler,
        timeout,
        runtime,
        memory_mb,
        env,
        max_concurrency,
        http_methods,
        http_auth,
        cors,
        // Both follow from fields compared here: the route and the dependencies.
        route_shape: _,
        build_key: _,
        dependencies,
        package,
        max_retries,
        max_event_age_secs,
        on_success,
        on_failure,
        schedule,
        schedule_timezone,
    } = fields;
    let build_restarts = stored
        .build
        .as_ref()
        .is_some_and(|build| build.restarts_on_save(now));
    let normalised =
        |text: &Option<String>| text.as_deref().map(|text| deps::normalise(*language, text));
    !build_restarts
        && stored.name == *name
        && stored.route == *route
        && stored.language == *language
        && stored.code.as_deref().unwrap_or_default() == code
        && stored.package.as_ref().map(|p| &p.digest) == package.as_ref().map(|p| &p.digest)
        && stored.handler == *handler
        && stored.timeout == *timeout
        && stored.runtime == *runtime
        && stored.memory_mb == *memory_mb
        && stored.env == *env
        && stored.max_concurrency == *max_concurrency
        && stored.http_methods == *http_methods
        && stored.http_auth == *http_auth
        && stored.cors == *cors
        && normalised(&stored.dependencies) == normalised(dependencies)
        && stored.max_retries == *max_retries
        && stored.max_event_age_secs == *max_event_age_secs
        && stored.on_success == *on_success
        && stored.on_failure == *on_failure
        && stored.schedule == *schedule
        && stored.schedule_timezone == *schedule_timezone
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::http_trigger::{Cors, HttpAuth};
    use crate::store::{Build, BuildStatus, PackageInfo};
    use common::{Language, Runtime};
    use std::time::Duration;

    const REQUIREMENTS: &str = "requests==2.31.0\n";

    /// The fields that store `stored` as it is.
    fn fields_of(stored: &Function) -> FunctionFields {
        FunctionFields {
            name: stored.name.clone(),
            route: stored.route.clone(),
            language: stored.language,
            code: stored.code.clone().unwrap_or_default(),
            handler: stored.handler.clone(),
            timeout: stored.timeout,
            runtime: stored.runtime,
            memory_mb: stored.memory_mb,
            env: stored.env.clone(),
            max_concurrency: stored.max_concurrency,
            http_methods: stored.http_methods.clone(),
            http_auth: stored.http_auth,
            cors: stored.cors.clone(),
            route_shape: stored.route.clone(),
            dependencies: stored.dependencies.clone(),
            build_key: stored
                .dependencies
                .as_deref()
                .map(|text| deps::build_key(stored.language, text)),
            package: stored.package.clone(),
            max_retries: stored.max_retries,
            max_event_age_secs: stored.max_event_age_secs,
            on_success: stored.on_success.clone(),
            on_failure: stored.on_failure.clone(),
            schedule: stored.schedule.clone(),
            schedule_timezone: stored.schedule_timezone.clone(),
        }
    }

    fn package(digest: &str, zip_bytes: i64) -> PackageInfo {
        PackageInfo {
            digest: digest.into(),
            zip_bytes,
            unpacked_bytes: 100,
            files: 2,
        }
    }

    /// A build in `status`, its job queued `queued_ago` before now (`None`: held, never
    /// queued).
    fn build(status: BuildStatus, queued_ago: Option<Duration>) -> Build {
        Build {
            status,
            digest: None,
            size_bytes: None,
            log: String::new(),
            started_at: None,
            finished_at: None,
            published_at: queued_ago.map(|ago| Utc::now() - ago),
        }
    }

    /// A function with a bit of everything set, so that each change below is from something.
    fn stored() -> Function {
        Function {
            env: [("GREETING".to_owned(), "hi".to_owned())].into(),
            max_concurrency: Some(3),
            http_methods: Some(vec!["GET".into()]),
            cors: Some(Cors {
                allow_origins: vec!["https://example.com".into()],
                allow_methods: Vec::new(),
                allow_headers: Vec::new(),
                expose_headers: Vec::new(),
                max_age: 600,
                allow_credentials: false,
            }),
            dependencies: Some(REQUIREMENTS.into()),
            build: Some(build(BuildStatus::Ready, Some(Duration::from_secs(60)))),
            schedule: Some("0 9 * * *".into()),
            on_success: Some("notify".into()),
            ..Function::example()
        }
    }

    #[test]
    fn the_same_fields_are_unchanged() {
        let stored = stored();
        assert!(unchanged(&stored, &fields_of(&stored), Utc::now()));
        // Nothing set at all is the same too.
        let bare = Function::example();
        assert!(unchanged(&bare, &fields_of(&bare), Utc::now()));
    }

    #[test]
    fn any_field_set_otherwise_is_a_change() {
        type Change = fn(&mut FunctionFields);
        let changes: [(&str, Change); 23] = [
            ("name", |f| f.name = "other".into()),
            ("route", |f| f.route = "/other".into()),
            ("language", |f| f.language = Language::Javascript),
            ("code", |f| f.code.push('\n')),
            ("handler", |f| f.handler = "main".into()),
            ("timeout", |f| f.timeout += 1),
            ("runtime", |f| f.runtime = Runtime::Gvisor),
            ("memory_mb", |f| f.memory_mb *= 2),
            ("env value", |f| {
                f.env.insert("GREETING".into(), "hello".into());
            }),
            ("env name", |f| {
                f.env.insert("OTHER".into(), "hi".into());
            }),
            ("max_concurrency", |f| f.max_concurrency = None),
            ("http_methods", |f| f.http_methods = None),
            ("http_auth", |f| f.http_auth = HttpAuth::None),
            ("cors", |f| f.cors = None),
            ("dependencies", |f| {
                f.dependencies = Some("requests==2.32.0\n".into())
            }),
            ("no dependencies", |f| f.dependencies = None),
            ("package", |f| f.package = Some(package("abc", 10))),
            ("max_retries", |f| f.max_retries = 0),
            ("max_event_age_secs", |f| f.max_event_age_secs = 60),
            ("on_success", |f| f.on_success = None),
            ("on_failure", |f| f.on_failure = Some("notify".into())),
            ("schedule", |f| f.schedule = Some("0 10 * * *".into())),
            ("schedule_timezone", |f| {
                f.schedule_timezone = "Europe/Paris".into()
            }),
        ];
        let stored = stored();
        for (what, change) in changes {
            let mut fields = fields_of(&stored);
            change(&mut fields);
            assert!(
                !unchanged(&stored, &fields, Utc::now()),
                "{what} changed nothing"
            );
        }
    }

    #[test]
    fn a_package_is_the_same_by_its_digest_alone() {
        let stored = Function {
            code: None,
            package: Some(package("abc", 10)),
            ..Function::example()
        };
        let mut fields = fields_of(&stored);
        assert_eq!(
            fields.code, "",
            "a packaged function's fields carry no code"
        );
        // Zipped again (another zip size), the same files make the same digest.
        fields.package = Some(package("abc", 12));
        assert!(unchanged(&stored, &fields, Utc::now()));
        fields.package = Some(package("abd", 10));
        assert!(!unchanged(&stored, &fields, Utc::now()));
        // Code instead of the package.
        let mut fields = fields_of(&stored);
        fields.package = None;
        fields.code = "def handler(event, context):\n    return 1".into();
        assert!(!unchanged(&stored, &fields, Utc::now()));
    }

    #[test]
    fn dependencies_are_the_same_once_normalised() {
        let stored = stored();
        let mut fields = fields_of(&stored);
        fields.dependencies = Some("# http\n\nrequests==2.31.0   # pinned\n".into());
        assert!(unchanged(&stored, &fields, Utc::now()));
        let javascript = Function {
            language: Language::Javascript,
            dependencies: Some(r#"{"dependencies": {"ms": "2.1.3"}}"#.into()),
            ..Function::example()
        };
        let mut fields = fields_of(&javascript);
        fields.dependencies = Some("\n  {\"dependencies\": {\"ms\": \"2.1.3\"}}  \n".into());
        assert!(unchanged(&javascript, &fields, Utc::now()));
        fields.dependencies = Some(r#"{"dependencies": {"ms": "2.1.2"}}"#.into());
        assert!(!unchanged(&javascript, &fields, Utc::now()));
    }

    #[test]
    fn a_function_whose_build_a_save_would_start_again_is_saved_again() {
        let minute = Duration::from_secs(60);
        let an_hour = Duration::from_secs(3600);
        for (status, queued_ago, same) in [
            // Saving again is how a failed build is retried.
            (BuildStatus::Failed, Some(minute), false),
            // A build under way is not started again by the same save...
            (BuildStatus::Pending, Some(minute), true),
            (BuildStatus::Building, Some(minute), true),
            // ...nor one held for its namespace's share however long it waits...
            (BuildStatus::Pending, None, true),
            // ...but one whose job was lost (queued longer than STALE_BUILD ago) is.
            (BuildStatus::Pending, Some(an_hour), false),
            (BuildStatus::Building, Some(an_hour), false),
            (BuildStatus::Ready, Some(an_hour), true),
        ] {
            let stored = Function {
                build: Some(build(status, queued_ago)),
                ..stored()
            };
            assert_eq!(
                unchanged(&stored, &fields_of(&stored), Utc::now()),
                same,
                "{status:?} queued {queued_ago:?} ago"
            );
        }
    }
}
