//! Changing functions from the console (`manage`): deploy edited code, the settings form, and
//! a new function from a template. Every save goes through `services::functions`, as
//! `POST /functions/` and `PUT /functions/{id}` do, so the same checks hold; a refused save
//! changes nothing, and the form comes back with the api's message beside its field.

use super::forms::{self, FieldProblem, SETTINGS_FIELDS, TEMPLATES};
use super::pages::{self, Tab, field_error};
use super::{
    MANAGERS, Resumed, api_status, csrf_refused, function_page, page_of, session_with, unavailable,
};
use crate::domain::auth::Scope;
use crate::http::state::AppState;
use crate::services::{FunctionInput, SaveError, SaveOptions};
use crate::store::Function;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};

/// The keys of a function's JSON that a save takes back.
const INPUT_KEYS: [&str; 20] = [
    "name",
    "route",
    "language",
    "code",
    "handler",
    "timeout",
    "runtime",
    "memory_mb",
    "env",
    "max_concurrency",
    "http_methods",
    "http_auth",
    "cors",
    "dependencies",
    "max_retries",
    "max_event_age_secs",
    "on_success",
    "on_failure",
    "schedule",
    "schedule_timezone",
];

/// `function` as the body of the save that keeps it as it is.
pub fn body_of(function: &Function) -> Value {
    let full = serde_json::to_value(function).expect("a function always serializes");
    let mut body = Map::new();
    for key in INPUT_KEYS {
        if let Some(value) = full.get(key).filter(|v| !v.is_null()) {
            body.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(body)
}

/// Why a save from a form did not happen.
pub enum Refused {
    /// The form comes back with this, by field, under this status.
    Problem(StatusCode, FieldProblem),
    /// Not the form's fault (the database is away): this page.
    Page(Box<Response>),
}

/// The body of a form as the input of a save, or the form's problem.
fn input_of(body: Value) -> Result<FunctionInput, Refused> {
    serde_json::from_value(body).map_err(|error| {
        Refused::Problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldProblem {
                field: None,
                message: format!("the form is not a function: {error}"),
            },
        )
    })
}

fn options_of(session: &Resumed) -> SaveOptions {
    SaveOptions {
        may_catch_all: session.principal.has(Scope::Admin),
        wait: false,
    }
}

/// A refused save as the form shows it: the api's status, and its message by the field it
/// names first among `fields`.
fn refused(error: SaveError, fields: &[&'static str]) -> Refused {
    if let SaveError::Database(error) = error {
        return Refused::Page(Box::new(unavailable(error)));
    }
    let message = error.to_string();
    Refused::Problem(
        api_status(error),
        FieldProblem {
            field: forms::field_of(&message, fields),
            message,
        },
    )
}

/// Saves `body` as function `id` of the session's namespace (`None`: creates it).
pub async fn save(
    state: &AppState,
    session: &Resumed,
    id: Option<i64>,
    body: Value,
    fields: &[&'static str],
) -> Result<Function, Refused> {
    let input = input_of(body)?;
    let namespace = &session.principal.namespace;
    let options = options_of(session);
    let saved = match id {
        Some(id) => state.functions.update(namespace, id, input, options).await,
        None => state.functions.create(namespace, input, options).await,
    };
    saved.map_err(|error| refused(error, fields))
}

/// Saves `body` as the next version of `function`, as [`save`] does (checked once), once a
/// worker has loaded its code: code that does not load is refused (422, the loader's error by `load_field`),
/// nothing saved. Checked only when what a container loads changes (code, handler, env,
/// runtime, memory) and the dependencies do not (a new build would be needed first); when no
/// worker can say, the save goes on.
pub async fn save_loaded(
    state: &AppState,
    session: &Resumed,
    function: &Function,
    body: Value,
    fields: &[&'static str],
    load_field: &'static str,
) -> Result<Function, Refused> {
    let namespace = &session.principal.namespace;
    let checked = state
        .functions
        .validate(namespace, input_of(body)?, options_of(session))
        .await
        .map_err(|error| refused(error, fields))?;
    let valid = checked.fields();
    let loads_differently = valid.code != function.code.clone().unwrap_or_default()
        || valid.handler != function.handler
        || valid.env != function.env
        || valid.runtime != function.runtime
        || valid.memory_mb != function.memory_mb;
    if loads_differently && valid.dependencies == function.dependencies {
        let mut candidate = function.clone();
        candidate.code = Some(valid.code.clone());
        candidate.handler = valid.handler.clone();
        candidate.env = valid.env.clone();
        candidate.runtime = valid.runtime;
        candidate.memory_mb = valid.memory_mb;
        candidate.timeout = valid.timeout;
        match state.invocations.check_load(&candidate).await {
            Ok(Some((error, logs))) => {
                let mut message = format!(
                    "the code does not load, so nothing was saved: {}: {}",
                    error.kind, error.message
                );
                if !logs.trim().is_empty() {
                    message.push('\n');
                    message.push_str(crate::store::tail(&logs, 2048));
                }
                return Err(Refused::Problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    FieldProblem {
                        field: Some(load_field),
                        message,
                    },
                ));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, function = %function.name, "console: the load check could not run; saving unchecked");
            }
        }
    }
    state
        .functions
        .update_checked(namespace, function.id, checked)
        .await
        .map_err(|error| refused(error, fields))
}

/// The code form: the code and the version it was opened at.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    /// The version the page showed: a deploy over a newer one would undo it unseen.
    #[serde(default)]
    version: i32,
}

/// Deploys the code form's code as the function's next version.
pub async fn post_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CodeForm>,
) -> Response {
    let path = format!("/console/functions/{id}");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, MANAGERS, "Deploying").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    let problem = if function.code.is_none() {
        Some((
            StatusCode::CONFLICT,
            "this function is deployed as a package: deploy a new package with the api or the CLI"
                .to_owned(),
        ))
    } else if form.version != function.version {
        Some((
            StatusCode::CONFLICT,
            format!(
                "the function changed since this page was opened (version {} then, {} now): nothing was deployed; copy your code, reload, and deploy again",
                form.version, function.version
            ),
        ))
    } else {
        let mut body = body_of(&function);
        body["code"] = Value::String(form.code.clone());
        match save_loaded(
            &state,
            &session,
            &function,
            body,
            &["code", "handler"],
            "code",
        )
        .await
        {
            Ok(saved) => {
                return Redirect::to(&format!("{path}?deployed={}", saved.version)).into_response();
            }
            Err(Refused::Problem(status, problem)) => Some((status, problem.message)),
            Err(Refused::Page(response)) => return *response,
        }
    };
    let (status, message) = problem.expect("every other branch returned");
    let problem = FieldProblem {
        field: Some("code"),
        message,
    };
    let edit = super::function::Edit {
        code: &form.code,
        problem: &problem,
    };
    super::function::render(&state, &session, &function, None, Some(edit), None, status).await
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    /// Set after a save, to say so.
    saved: Option<String>,
}

/// The settings page.
pub async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<SavedQuery>,
) -> Response {
    let path = format!("/console/functions/{id}/settings");
    match function_page(&state, &headers, &id, &path, MANAGERS, "Settings").await {
        Ok((session, function)) => {
            let values = display_values(&body_of(&function), &[]);
            let saved = query.saved.is_some();
            settings_page(&session, &function, &values, None, saved).into_response()
        }
        Err(response) => response,
    }
}

/// Saves the settings form; the same form with the message by its field when refused.
pub async fn post_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/console/functions/{id}/settings");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, MANAGERS, "Settings").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if let Some(response) = csrf_refused(&session, csrf.unwrap_or_default()) {
        return response;
    }
    let current = body_of(&function);
    let values = display_values(&current, &form);
    let refused = |status: StatusCode, problem: FieldProblem| {
        (
            status,
            settings_page(&session, &function, &values, Some(&problem), false),
        )
            .into_response()
    };
    if function.code.is_none() {
        let problem = FieldProblem {
            field: None,
            message: "this function is deployed as a package: change its settings with the api or the CLI, which send the package again".into(),
        };
        return refused(StatusCode::CONFLICT, problem);
    }
    let body = match forms::apply_settings(&current, &form) {
        Ok(body) => body,
        Err(problem) => return refused(StatusCode::UNPROCESSABLE_ENTITY, problem),
    };
    match save_loaded(
        &state,
        &session,
        &function,
        body,
        &SETTINGS_FIELDS,
        "handler",
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("{path}?saved=1")).into_response(),
        Err(Refused::Problem(status, problem)) => refused(status, problem),
        Err(Refused::Page(response)) => *response,
    }
}

/// What each settings field shows: the form's text where it sent one, else the body's value.
fn display_values(body: &Value, form: &[(String, String)]) -> Vec<(&'static str, String)> {
    SETTINGS_FIELDS
        .iter()
        .map(|&field| {
            let sent = form
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.clone());
            let text = sent.unwrap_or_else(|| match (field, body.get(field)) {
                ("env", Some(env)) => forms::env_lines(env),
                ("http_methods", Some(Value::Array(methods))) => methods
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, Some(Value::String(text))) => text.clone(),
                (_, Some(Value::Null) | None) => String::new(),
                (_, Some(other)) => other.to_string(),
            });
            (field, text)
        })
        .collect()
}

/// What the settings form says of each field.
fn field_help(field: &str) -> (&'static str, &'static str) {
    match field {
        "handler" => ("Handler", "`name` or Lambda's `file.name`."),
        "runtime" => ("Runtime", "docker (runc) or gvisor (runsc)."),
        "memory_mb" => ("Memory (MB)", "64 to 10240."),
        "timeout" => ("Timeout (s)", "1 to 900."),
        "max_concurrency" => ("Max concurrency", "1 to 1000; empty: no limit."),
        "route" => ("Route", "Its HTTP trigger's path on the functions' origin."),
        "http_methods" => ("HTTP methods", "Comma-separated; empty: all."),
        "http_auth" => ("Route auth", "key (an invoke key) or none (anyone)."),
        "env" => ("Environment", "One NAME=value per line."),
        "dependencies" => ("Dependencies", "requirements.txt or package.json."),
        "max_retries" => ("Async retries", "0 to 5."),
        "max_event_age_secs" => ("Max event age (s)", "60 to 21600."),
        "on_success" => ("On success", "A function invoked with each async success."),
        "on_failure" => ("On failure", "A function invoked with each dead letter."),
        "schedule" => ("Schedule", "5-field cron; empty: none."),
        "schedule_timezone" => ("Schedule time zone", "IANA name, e.g. Europe/Paris."),
        _ => ("", ""),
    }
}

fn settings_page(
    session: &Resumed,
    function: &Function,
    values: &[(&'static str, String)],
    problem: Option<&FieldProblem>,
    saved: bool,
) -> Markup {
    let action = format!("/console/functions/{}/settings", function.id);
    pages::layout(
        &format!("{} settings", function.name),
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            (pages::function_head(function, Tab::Settings))
            @if saved {
                p class="notice" role="status" { "Saved: version " (function.version) "." }
            }
            @if let Some(problem) = problem {
                p class="error" role="alert" { "Not saved: " (problem.message) }
            }
            form method="post" action=(action) class="card wide" novalidate {
                input type="hidden" name="csrf" value=(session.csrf_token);
                @for (field, value) in values {
                    @let (label, help) = field_help(field);
                    @let invalid = problem.is_some_and(|p| p.field == Some(*field));
                    @let described = if invalid { format!("{field}-help {field}-error") } else { format!("{field}-help") };
                    label for=(field) { (label) }
                    @match *field {
                        "env" | "dependencies" => {
                            textarea id=(field) name=(field) rows="4" aria-describedby=(described) aria-invalid=[invalid.then_some("true")] { (value) }
                        }
                        "runtime" | "http_auth" => {
                            @let options: &[&str] = if *field == "runtime" { &["docker", "gvisor"] } else { &["key", "none"] };
                            select id=(field) name=(field) aria-describedby=(described) aria-invalid=[invalid.then_some("true")] {
                                @for option in options {
                                    option value=(option) selected[value == option] { (option) }
                                }
                            }
                        }
                        _ => {
                            input id=(field) name=(field) type="text" value=(value) aria-describedby=(described) aria-invalid=[invalid.then_some("true")];
                        }
                    }
                    p id={ (field) "-help" } class="help" { (help) }
                    (field_error(field, problem))
                }
                button type="submit" { "Save settings" }
            }
        },
    )
}

/// The new-function form's fields.
#[derive(serde::Deserialize)]
pub struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: String,
}

pub async fn get_new(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_with(&state, &headers, "/console/new", MANAGERS, "A new function").await {
        Ok(session) => new_page(&session, "", TEMPLATES[0].id, None).into_response(),
        Err(response) => response,
    }
}

/// Creates a function from a template, then opens it.
pub async fn post_new(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<NewForm>,
) -> Response {
    let session =
        match session_with(&state, &headers, "/console/new", MANAGERS, "A new function").await {
            Ok(session) => session,
            Err(response) => return response,
        };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    let name = form.name.trim();
    let refused = |status: StatusCode, problem: FieldProblem| {
        (
            status,
            new_page(&session, name, &form.template, Some(&problem)),
        )
            .into_response()
    };
    let Some(template) = forms::template(&form.template) else {
        let problem = FieldProblem {
            field: Some("template"),
            message: "choose one of the templates".into(),
        };
        return refused(StatusCode::UNPROCESSABLE_ENTITY, problem);
    };
    let body = forms::from_template(template, name);
    match save(&state, &session, None, body, &["name", "route", "schedule"]).await {
        Ok(created) => Redirect::to(&format!("/console/functions/{}", created.id)).into_response(),
        Err(Refused::Problem(status, mut problem)) => {
            // A route taken is the name's problem here: the route is made from it.
            if problem.field == Some("route") {
                problem.field = Some("name");
            }
            refused(status, problem)
        }
        Err(Refused::Page(response)) => *response,
    }
}

fn new_page(session: &Resumed, name: &str, chosen: &str, problem: Option<&FieldProblem>) -> Markup {
    let name_invalid = problem.is_some_and(|p| p.field == Some("name"));
    pages::layout(
        "New function",
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            p { a href="/console/functions" { "← Functions" } }
            h1 { "New function" }
            @if let Some(problem) = problem.filter(|p| p.field.is_none()) {
                p class="error" role="alert" { (problem.message) }
            }
            form method="post" action="/console/new" class="card wide" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                label for="name" { "Name" }
                input id="name" name="name" type="text" value=(name) required maxlength="64"
                    autocomplete="off" aria-describedby=(if name_invalid { "name-help name-error" } else { "name-help" })
                    aria-invalid=[name_invalid.then_some("true")];
                p id="name-help" class="help" { "1 to 64 of A-Z, a-z, 0-9, _ and -. Its route is /name." }
                (field_error("name", problem))
                fieldset {
                    legend { "Template" }
                    @for template in &TEMPLATES {
                        label class="check" {
                            input type="radio" name="template" value=(template.id) checked[template.id == chosen];
                            " " (template.title)
                        }
                    }
                }
                (field_error("template", problem))
                button type="submit" { "Create function" }
            }
        },
    )
}
