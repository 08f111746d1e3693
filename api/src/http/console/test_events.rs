//! A function's test events in the console, Lambda's "Test" tab: the stored events (the same
//! ones `faas test` runs, `GET`/`PUT /functions/{id}/tests`), an event to edit, run (`invoke`)
//! and save under a name (`manage`), and the last run's result, logs and timing. A run is a
//! real call (`/execute`'s), recorded like any other.

use super::pages::{self, Tab};
use super::{Resumed, api_status, csrf_refused, function_page, page_of, unavailable};
use crate::broker::NoReply;
use crate::domain::auth::Scope;
use crate::domain::function_tests::{FunctionTests, TestEvent};
use crate::http::state::AppState;
use crate::services::{Call, CallError};
use crate::store::{self, Function};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{RawValue, Reply, ReplyStatus};
use maud::{Markup, html};
use serde::Deserialize;
use std::time::Instant;
use uuid::Uuid;

/// Seeing the tests needs `read` or `manage`; running them `invoke`; saving them `manage`.
const SEE: &[Scope] = &[Scope::Read, Scope::Manage, Scope::Invoke];

/// What a run showed.
struct Ran {
    invocation_id: Uuid,
    ok: bool,
    /// `success`, a reply status, or why no worker answered.
    status: String,
    /// The result or the error, as text.
    output: String,
    logs: String,
    duration_ms: f64,
    timing: Option<common::Timing>,
    cold_start: bool,
}

#[derive(Debug, Deserialize)]
pub struct TestQuery {
    /// A stored test to load into the form.
    test: Option<String>,
}

pub async fn get_test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TestQuery>,
) -> Response {
    let path = format!("/console/functions/{id}/test");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, SEE, "Testing").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let tests = match tests_of(&state, &session, &function).await {
        Ok(tests) => tests,
        Err(response) => return response,
    };
    let chosen = query
        .test
        .as_deref()
        .and_then(|name| tests.iter().find(|t| t.name == name));
    let (name, event) = chosen.map_or_else(
        || (String::new(), "{}".to_owned()),
        |t| (t.name.clone(), pretty(&t.event)),
    );
    let form = EventForm {
        csrf: String::new(),
        name,
        event,
        action: String::new(),
    };
    page(&session, &function, &tests, &form, None, None).into_response()
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The function's stored tests (none for a key that may only invoke: reading them is
/// `read`'s or `manage`'s).
async fn tests_of(
    state: &AppState,
    session: &Resumed,
    function: &Function,
) -> Result<Vec<TestEvent>, Response> {
    if !(session.principal.has(Scope::Read) || session.principal.has(Scope::Manage)) {
        return Ok(Vec::new());
    }
    let namespace = &session.principal.namespace;
    match store::get_function_tests(&state.db, namespace, function.id).await {
        Ok(tests) => Ok(tests.unwrap_or_default()),
        Err(error) => Err(unavailable(error)),
    }
}

#[derive(Debug, Deserialize)]
pub struct EventForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    event: String,
    /// `run` or `save`.
    #[serde(default)]
    action: String,
}

pub async fn post_test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<EventForm>,
) -> Response {
    let path = format!("/console/functions/{id}/test");
    let (scope, what) = if form.action == "save" {
        (Scope::Manage, "Saving a test event")
    } else {
        (Scope::Invoke, "Running a test event")
    };
    let (session, function) =
        match function_page(&state, &headers, &id, &path, &[scope], what).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    let mut tests = match tests_of(&state, &session, &function).await {
        Ok(tests) => tests,
        Err(response) => return response,
    };
    let event: serde_json::Value = match serde_json::from_str(&form.event) {
        Ok(event) => event,
        Err(error) => {
            let problem = format!("the event is not JSON: {error}");
            let page = page(&session, &function, &tests, &form, None, Some(&problem));
            return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
        }
    };
    if form.action == "save" {
        let test = TestEvent {
            name: form.name.trim().to_owned(),
            event,
            expect: None,
        };
        match tests.iter_mut().find(|t| t.name == test.name) {
            Some(same) => same.event = test.event,
            None => tests.push(test),
        }
        let all = FunctionTests { tests };
        let size = serde_json::to_vec(&all).map_or(usize::MAX, |body| body.len());
        if let Err(invalid) = all.check(size) {
            let page = page(
                &session,
                &function,
                &all.tests,
                &form,
                None,
                Some(&invalid.0),
            );
            return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
        }
        let namespace = &session.principal.namespace;
        return match store::replace_function_tests(&state.db, namespace, function.id, &all.tests)
            .await
        {
            Ok(_) => page(&session, &function, &all.tests, &form, None, None).into_response(),
            Err(error) => unavailable(error),
        };
    }
    let ran = match run(&state, &function, &form.event).await {
        Ok(ran) => ran,
        Err((status, problem)) => {
            let page = page(&session, &function, &tests, &form, None, Some(&problem));
            return (status, page).into_response();
        }
    };
    page(&session, &function, &tests, &form, Some(&ran), None).into_response()
}

/// Calls `function` with `event` (JSON text, checked) as `/execute` would; why not, with the
/// status the api would answer.
async fn run(
    state: &AppState,
    function: &Function,
    event: &str,
) -> Result<Ran, (StatusCode, String)> {
    let started = Instant::now();
    if event.len() > state.limits.max_event_bytes {
        let message = format!(
            "the event is {} bytes, over the limit of {}",
            event.len(),
            state.limits.max_event_bytes
        );
        return Err((StatusCode::PAYLOAD_TOO_LARGE, message));
    }
    let event = RawValue::from_string(event.to_owned())
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let call = Call::execute(function, None, event, started);
    let called = state.invocations.call(call).await.map_err(|error| {
        let message = match &error {
            CallError::Database(_) | CallError::Broker(_) => {
                tracing::error!(%error, "console: a test run failed");
                "the platform could not run the call; try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        (api_status(error), message)
    })?;
    Ok(match called.outcome {
        Ok(reply) => ran_of(called.invocation_id, called.duration_ms, reply),
        Err(NoReply::TimedOut) => Ran {
            invocation_id: called.invocation_id,
            ok: false,
            status: "no_reply".into(),
            output: "no worker answered before the call's deadline".into(),
            logs: String::new(),
            duration_ms: called.duration_ms,
            timing: None,
            cold_start: false,
        },
    })
}

fn ran_of(invocation_id: Uuid, duration_ms: f64, reply: Reply) -> Ran {
    let ok = reply.status == ReplyStatus::Success;
    let output = if ok {
        serde_json::from_str::<serde_json::Value>(reply.result.get())
            .map(|v| pretty(&v))
            .unwrap_or_else(|_| reply.result.get().to_owned())
    } else {
        reply.error.as_ref().map_or_else(String::new, |e| {
            let mut text = format!("{}: {}", e.kind, e.message);
            if !e.stack.is_empty() {
                text.push_str("\n\n");
                text.push_str(&e.stack);
            }
            text
        })
    };
    Ran {
        invocation_id,
        ok,
        status: reply.status.as_str().to_owned(),
        output,
        logs: reply.logs,
        duration_ms,
        timing: Some(reply.timing),
        cold_start: reply.cold_start,
    }
}

fn page(
    session: &Resumed,
    function: &Function,
    tests: &[TestEvent],
    form: &EventForm,
    ran: Option<&Ran>,
    problem: Option<&str>,
) -> Markup {
    let action = format!("/console/functions/{}/test", function.id);
    let may_run = session.principal.has(Scope::Invoke);
    let may_save = session.principal.has(Scope::Manage);
    pages::layout(
        &format!("{} test", function.name),
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            (pages::function_head(function, Tab::Test))
            @if !tests.is_empty() {
                nav aria-label="Saved test events" class="filters" {
                    "Saved events: "
                    @for test in tests {
                        a href={ (action) "?test=" (urlencode(&test.name)) } { (test.name) } " "
                    }
                }
            }
            @if let Some(problem) = problem {
                p class="error" role="alert" id="event-error" { (problem) }
            }
            form method="post" action=(action) class="card wide" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                label for="test-name" { "Event name" }
                input id="test-name" name="name" type="text" value=(form.name) maxlength="100"
                    aria-describedby="test-name-help";
                p id="test-name-help" class="help" { "To save it: 1 to 100 of A-Z, a-z, 0-9, ., _ and -." }
                label for="event" { "Event (JSON)" }
                textarea id="event" name="event" rows="8" spellcheck="false"
                    aria-invalid=[problem.is_some().then_some("true")] { (form.event) }
                div class="buttons" {
                    @if may_run { button type="submit" name="action" value="run" { "Run" } }
                    @if may_save { button type="submit" name="action" value="save" class="secondary" { "Save event" } }
                }
            }
            @if let Some(ran) = ran {
                section class="card wide" aria-labelledby="result-title" id="result" {
                    h2 id="result-title" {
                        "Result: "
                        span class={ "status " @if ran.ok { "ok" } @else { "failed" } } { (ran.status) }
                    }
                    p {
                        "Invocation " code { (ran.invocation_id) } ", "
                        (format!("{:.1} ms", ran.duration_ms))
                        @if ran.cold_start { ", cold start" }
                        @if let Some(t) = &ran.timing {
                            (format!(" (queue {:.1} ms, init {:.1} ms, run {:.1} ms)", t.queue_ms, t.init_ms, t.run_ms))
                        }
                    }
                    h3 { @if ran.ok { "Returned" } @else { "Error" } }
                    pre class="result" { (ran.output) }
                    h3 { "Logs" }
                    @if ran.logs.is_empty() { p { "Nothing printed." } }
                    @else { pre class="logs" { (ran.logs) } }
                }
            }
        },
    )
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
