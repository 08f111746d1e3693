//! `faas.toml`: a function's settings, parsed with the position of every value so that an error
//! names the line and the field, checked against the platform's rules before anything is sent,
//! and turned into the body of `POST /functions/`.

use crate::error::{CliError, CliResult};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};
use toml::Spanned;

/// The file's name in a function's folder.
pub const FILE_NAME: &str = "faas.toml";

/// Every function field a `faas.toml` may set, in the order `init` writes them.
pub const FIELDS: [&str; 18] = [
    "name",
    "language",
    "handler",
    "runtime",
    "memory_mb",
    "timeout",
    "route",
    "http_methods",
    "http_auth",
    "cors",
    "env",
    "max_concurrency",
    "max_retries",
    "max_event_age_secs",
    "on_success",
    "on_failure",
    "schedule",
    "schedule_timezone",
];

/// The file as written; every value with its place in the text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    handler: Option<Spanned<String>>,
    runtime: Option<Spanned<String>>,
    memory_mb: Option<Spanned<i64>>,
    timeout: Option<Spanned<i64>>,
    route: Option<Spanned<String>>,
    http_methods: Option<Spanned<Vec<String>>>,
    http_auth: Option<Spanned<String>>,
    cors: Option<Spanned<toml::Table>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    max_concurrency: Option<Spanned<i64>>,
    max_retries: Option<Spanned<i64>>,
    max_event_age_secs: Option<Spanned<i64>>,
    on_success: Option<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    schedule_timezone: Option<Spanned<String>>,
}

/// The languages a function may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    Javascript,
}

impl Language {
    /// The name the api uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
        }
    }

    /// The file that lists dependencies, sent as `dependencies`.
    pub fn dependency_file(self) -> &'static str {
        match self {
            Language::Python => "requirements.txt",
            Language::Javascript => "package.json",
        }
    }

    /// The files a handler's module may be, given its path without extension.
    pub fn module_files(self, module: &str) -> Vec<String> {
        match self {
            Language::Python => vec![format!("{module}.py"), format!("{module}/__init__.py")],
            Language::Javascript => ["js", "mjs", "cjs"]
                .iter()
                .map(|ext| format!("{module}.{ext}"))
                .collect(),
        }
    }
}

/// A checked `faas.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub language: Language,
    /// `file.function`.
    pub handler: String,
    /// The handler's module as a path without extension (`main`, `lib/app`).
    pub module: String,
    pub route: String,
    /// Every field for the api, as JSON, except `code_zip` and `dependencies`.
    pub fields: Map<String, Value>,
}

/// Parses and checks `text`, the content of `faas.toml`. Errors name the line and the field.
pub fn parse(text: &str) -> CliResult<Manifest> {
    let raw: Raw = toml::from_str(text).map_err(|error| {
        let place = error
            .span()
            .map(|span| place(text, &span))
            .unwrap_or_default();
        CliError::Usage(format!(
            "{FILE_NAME}{place}: {}",
            error.message().trim_end()
        ))
    })?;
    let invalid = |span: &Range<usize>, why: String| {
        CliError::Usage(format!("{FILE_NAME}{}: {why}", place(text, span)))
    };
    let missing = |field: &str, example: &str| {
        CliError::Usage(format!(
            "{FILE_NAME}: missing field `{field}` (e.g. {example})"
        ))
    };

    let name = raw
        .name
        .ok_or_else(|| missing("name", "name = \"hello\""))?;
    if !is_function_name(name.get_ref()) {
        return Err(invalid(
            &name.span(),
            "name must be 1 to 64 letters, digits, `_` or `-`".into(),
        ));
    }
    let language_field = raw
        .language
        .ok_or_else(|| missing("language", "language = \"python\""))?;
    let language = match language_field.get_ref().as_str() {
        "python" => Language::Python,
        "javascript" => Language::Javascript,
        other => {
            return Err(invalid(
                &language_field.span(),
                format!("language must be \"python\" or \"javascript\"; got {other:?}"),
            ));
        }
    };
    let route = raw
        .route
        .ok_or_else(|| missing("route", "route = \"/hello\""))?;
    if !route.get_ref().starts_with('/') || route.get_ref().len() > 256 {
        return Err(invalid(
            &route.span(),
            "route must be a path starting with `/`, at most 256 characters".into(),
        ));
    }
    let timeout = raw
        .timeout
        .ok_or_else(|| missing("timeout", "timeout = 10"))?;
    in_range(&timeout, "timeout", 1..=900, &invalid)?;
    let (handler, module) = match &raw.handler {
        Some(handler) => split_handler(handler.get_ref())
            .map(|module| (handler.get_ref().clone(), module))
            .ok_or_else(|| {
                invalid(
                    &handler.span(),
                    format!(
                        "handler must be FILE.FUNCTION (e.g. \"main.handler\"); got {:?}",
                        handler.get_ref()
                    ),
                )
            })?,
        None => {
            let default = match language {
                Language::Python => "main.handler",
                Language::Javascript => "index.handler",
            };
            (
                default.to_owned(),
                default.split('.').next().unwrap().into(),
            )
        }
    };
    one_of(&raw.runtime, "runtime", &["docker", "gvisor"], &invalid)?;
    one_of(&raw.http_auth, "http_auth", &["key", "none"], &invalid)?;
    if let Some(memory) = &raw.memory_mb {
        in_range(memory, "memory_mb", 64..=10_240, &invalid)?;
    }
    if let Some(value) = &raw.max_concurrency {
        in_range(value, "max_concurrency", 1..=1000, &invalid)?;
    }
    if let Some(value) = &raw.max_retries {
        in_range(value, "max_retries", 0..=5, &invalid)?;
    }
    if let Some(value) = &raw.max_event_age_secs {
        in_range(value, "max_event_age_secs", 60..=21_600, &invalid)?;
    }
    for (field, value) in [
        ("on_success", &raw.on_success),
        ("on_failure", &raw.on_failure),
    ] {
        if let Some(value) = value
            && !is_function_name(value.get_ref())
        {
            return Err(invalid(
                &value.span(),
                format!("{field} must name a function (1 to 64 letters, digits, `_` or `-`)"),
            ));
        }
    }
    if let Some(env) = &raw.env
        && let Some(bad) = env.get_ref().keys().find(|name| !is_env_name(name))
    {
        return Err(invalid(
            &env.span(),
            format!("env: {bad:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        ));
    }

    let mut fields = Map::new();
    fields.insert("name".into(), json!(name.get_ref()));
    fields.insert("language".into(), json!(language.as_str()));
    fields.insert("handler".into(), json!(handler));
    fields.insert("route".into(), json!(route.get_ref()));
    fields.insert("timeout".into(), json!(timeout.get_ref()));
    let optional = [
        ("runtime", raw.runtime.map(|v| json!(v.into_inner()))),
        ("memory_mb", raw.memory_mb.map(|v| json!(v.into_inner()))),
        (
            "http_methods",
            raw.http_methods.map(|v| json!(v.into_inner())),
        ),
        ("http_auth", raw.http_auth.map(|v| json!(v.into_inner()))),
        ("cors", raw.cors.map(|v| toml_to_json(v.into_inner()))),
        ("env", raw.env.map(|v| json!(v.into_inner()))),
        (
            "max_concurrency",
            raw.max_concurrency.map(|v| json!(v.into_inner())),
        ),
        (
            "max_retries",
            raw.max_retries.map(|v| json!(v.into_inner())),
        ),
        (
            "max_event_age_secs",
            raw.max_event_age_secs.map(|v| json!(v.into_inner())),
        ),
        ("on_success", raw.on_success.map(|v| json!(v.into_inner()))),
        ("on_failure", raw.on_failure.map(|v| json!(v.into_inner()))),
        ("schedule", raw.schedule.map(|v| json!(v.into_inner()))),
        (
            "schedule_timezone",
            raw.schedule_timezone.map(|v| json!(v.into_inner())),
        ),
    ];
    for (field, value) in optional {
        if let Some(value) = value {
            fields.insert(field.into(), value);
        }
    }
    Ok(Manifest {
        name: name.into_inner(),
        language,
        handler,
        module,
        route: route.into_inner(),
        fields,
    })
}

/// ` line N (field)` for the value at `span`: the field is the key written on that line.
fn place(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    match line_text.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.trim_start().starts_with('[') => {
            format!(" line {line} ({})", key.trim())
        }
        _ => format!(" line {line}"),
    }
}

fn in_range(
    value: &Spanned<i64>,
    field: &str,
    range: RangeInclusive<i64>,
    invalid: &impl Fn(&Range<usize>, String) -> CliError,
) -> CliResult<()> {
    if range.contains(value.get_ref()) {
        return Ok(());
    }
    Err(invalid(
        &value.span(),
        format!(
            "{field} must be from {} to {}; got {}",
            range.start(),
            range.end(),
            value.get_ref()
        ),
    ))
}

fn one_of(
    value: &Option<Spanned<String>>,
    field: &str,
    allowed: &[&str],
    invalid: &impl Fn(&Range<usize>, String) -> CliError,
) -> CliResult<()> {
    match value {
        Some(value) if !allowed.contains(&value.get_ref().as_str()) => Err(invalid(
            &value.span(),
            format!(
                "{field} must be one of {}; got {:?}",
                allowed.join(", "),
                value.get_ref()
            ),
        )),
        _ => Ok(()),
    }
}

/// The module path of `file.function` (dots or slashes between directories), if it is one.
fn split_handler(handler: &str) -> Option<String> {
    let (module, function) = handler.rsplit_once('.')?;
    let word = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'))
    };
    if !word(function) || module.split(['.', '/']).any(|part| !word(part)) {
        return None;
    }
    Some(module.replace('.', "/"))
}

/// Whether `name` is a function name: `[A-Za-z0-9_-]{1,64}`.
pub fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn toml_to_json(table: toml::Table) -> Value {
    serde_json::to_value(table).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "name = \"hello\"\nlanguage = \"python\"\nroute = \"/hello\"\ntimeout = 5\n";

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_gets_the_languages_default_handler() {
        let manifest = parse(MINIMAL).unwrap();
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.handler, "main.handler");
        assert_eq!(manifest.module, "main");
        assert_eq!(
            Value::Object(manifest.fields),
            json!({"name": "hello", "language": "python", "handler": "main.handler",
                   "route": "/hello", "timeout": 5})
        );
        let js = parse(&MINIMAL.replace("python", "javascript")).unwrap();
        assert_eq!(js.handler, "index.handler");
        assert_eq!(js.language.module_files("index")[1], "index.mjs");
    }

    #[test]
    fn every_field_goes_into_the_body() {
        let text = format!(
            "{MINIMAL}handler = \"lib.app.main\"\nruntime = \"gvisor\"\nmemory_mb = 256\n\
             http_methods = [\"GET\"]\nhttp_auth = \"none\"\nmax_concurrency = 3\nmax_retries = 0\n\
             max_event_age_secs = 60\non_success = \"ok\"\non_failure = \"ko\"\n\
             schedule = \"0 9 * * *\"\nschedule_timezone = \"Europe/Paris\"\n\
             [env]\nGREETING = \"hi\"\n[cors]\nallow_origins = [\"*\"]\nmax_age = 60\n"
        );
        let manifest = parse(&text).unwrap();
        assert_eq!(manifest.module, "lib/app");
        assert_eq!(manifest.fields.len(), 18, "{:?}", manifest.fields.keys());
        assert_eq!(
            manifest.fields["cors"],
            json!({"allow_origins": ["*"], "max_age": 60})
        );
        assert_eq!(manifest.fields["env"], json!({"GREETING": "hi"}));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            (
                MINIMAL.replace("timeout = 5", "timeout = 5000"),
                "faas.toml line 4 (timeout): timeout must be from 1 to 900; got 5000",
            ),
            (
                MINIMAL.replace("timeout = 5", "timeout = \"soon\""),
                "faas.toml line 4 (timeout): invalid type: string \"soon\", expected i64",
            ),
            (
                format!("{MINIMAL}memroy_mb = 128\n"),
                "faas.toml line 5 (memroy_mb): unknown field `memroy_mb`",
            ),
            (
                MINIMAL.replace("\"python\"", "\"ruby\""),
                "faas.toml line 2 (language): language must be \"python\" or \"javascript\"; got \"ruby\"",
            ),
            (
                MINIMAL.replace("hello\"\nlang", "hel lo\"\nlang"),
                "faas.toml line 1 (name): name must be",
            ),
            (
                format!("{MINIMAL}handler = \"main\"\n"),
                "faas.toml line 5 (handler): handler must be FILE.FUNCTION",
            ),
            (
                format!("{MINIMAL}runtime = \"kvm\"\n"),
                "faas.toml line 5 (runtime): runtime must be one of docker, gvisor",
            ),
            (
                MINIMAL.replace("route = \"/hello\"\n", ""),
                "faas.toml: missing field `route`",
            ),
            (format!("{MINIMAL}name = \"again\"\n"), "faas.toml line 5"),
            ("name = \"x\nlanguage".to_owned(), "faas.toml line 2"),
            (
                format!("{MINIMAL}[env]\n\"1X\" = \"a\"\n"),
                "faas.toml line 5: env: \"1X\" is not a variable name",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(&text);
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
            assert!(!error.contains('\n'), "{error:?}");
        }
    }

    #[test]
    fn handlers_name_a_module_path() {
        assert_eq!(split_handler("main.handler").as_deref(), Some("main"));
        assert_eq!(split_handler("a/b.c.handler").as_deref(), Some("a/b/c"));
        assert_eq!(split_handler("handler"), None);
        assert_eq!(split_handler("../x.handler"), None);
        assert_eq!(split_handler("main."), None);
    }
}
