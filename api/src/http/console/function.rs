//! The console's page of one function (`read`, `manage` or `admin`): its settings at a glance,
//! its code (in the editor, with a deploy button, for a key that may save), and its latest
//! invocations, sync and async, by status, with their attempts and logs and a redrive button
//! for a dead letter. Another namespace's function is 404, as in the api.

use super::forms::FieldProblem;
use super::pages::{self, Tab, field_error, ms};
use super::{READERS, Resumed, function_page, page_of, unavailable};
use crate::domain::async_status::InvocationStatus;
use crate::domain::auth::Scope;
use crate::http::state::AppState;
use crate::store::{self, Function, InvocationView};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

/// The invocations a function page shows at most, newest first.
const RECORDS_SHOWN: i64 = 50;

/// The statuses the page filters by, as its links name them.
const FILTERS: [(InvocationStatus, &str); 4] = [
    (InvocationStatus::Succeeded, "Succeeded"),
    (InvocationStatus::Failed, "Failed"),
    (InvocationStatus::Timeout, "Timed out"),
    (InvocationStatus::DeadLettered, "Dead-lettered"),
];

#[derive(Debug, Deserialize)]
pub struct FunctionQuery {
    /// Only the invocations of this status (`failed`, `dead_lettered`, ...).
    status: Option<String>,
    /// The version just deployed, said once.
    deployed: Option<i32>,
}

/// Code the deploy form sent back with why it was not deployed.
pub struct Edit<'a> {
    pub code: &'a str,
    pub problem: &'a FieldProblem,
}

pub async fn get_function(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<FunctionQuery>,
) -> Response {
    let path = format!("/console/functions/{id}");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, READERS, "Functions").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let filter = query.status.as_deref().and_then(InvocationStatus::parse);
    let notice = query
        .deployed
        .filter(|v| *v == function.version)
        .map(|v| format!("Deployed: version {v} serves new calls."));
    render(
        &state,
        &session,
        &function,
        filter,
        None,
        notice.as_deref(),
        StatusCode::OK,
    )
    .await
}

/// The function page, with `edit` (code that was not deployed, and why) in the editor.
pub async fn render(
    state: &AppState,
    session: &Resumed,
    function: &Function,
    filter: Option<InvocationStatus>,
    edit: Option<Edit<'_>>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let views = store::list_invocation_views(
        &state.db,
        &session.principal.namespace,
        Some(&function.name),
        filter,
        None,
        RECORDS_SHOWN,
    )
    .await;
    match views {
        Ok(views) => (
            status,
            page(session, function, &views, filter, edit, notice),
        )
            .into_response(),
        Err(error) => unavailable(error),
    }
}

fn page(
    session: &Resumed,
    function: &Function,
    views: &[InvocationView],
    filter: Option<InvocationStatus>,
    edit: Option<Edit<'_>>,
    notice: Option<&str>,
) -> Markup {
    let base = format!("/console/functions/{}", function.id);
    let may_save = session.principal.has(Scope::Manage);
    let may_redrive = session.principal.has(Scope::Invoke);
    pages::page(
        &function.name,
        Some(&page_of(&session.principal, &session.csrf_token)),
        true,
        html! {
            (pages::function_head(function, Tab::Code))
            @if let Some(notice) = notice {
                p class="notice" role="status" { (notice) }
            }
            dl class="settings" {
                dt { "Language" } dd { (function.language.as_str()) }
                dt { "Runtime" } dd { (function.runtime.as_str()) }
                dt { "Handler" } dd { code { (function.handler) } }
                dt { "Route" } dd { code { (function.route) } }
                dt { "Memory" } dd { (function.memory_mb) " MB" }
                dt { "Timeout" } dd { (function.timeout) " s" }
                dt { "Environment" } dd {
                    @if function.env.is_empty() { "none" }
                    @else { (function.env.keys().map(String::as_str).collect::<Vec<_>>().join(", ")) }
                }
            }
            h2 { "Code" }
            @match (&function.code, may_save) {
                (None, _) => p { "Deployed as a package." },
                (Some(code), true) => {
                    @let problem = edit.as_ref().map(|e| e.problem);
                    @if let Some(problem) = problem {
                        p class="error" role="alert" { "Not deployed: " (problem.message) }
                    }
                    form method="post" action={ (base) "/code" } class="editor" {
                        input type="hidden" name="csrf" value=(session.csrf_token);
                        input type="hidden" name="version" value=(function.version);
                        label for="code" { "Code (" (function.language.as_str()) ")" }
                        textarea id="code" name="code" rows="18" spellcheck="false"
                            data-editor=(function.language.as_str())
                            aria-describedby=[problem.is_some().then_some("code-error")]
                            aria-invalid=[problem.is_some().then_some("true")] {
                            (edit.as_ref().map_or(code.as_str(), |e| e.code))
                        }
                        (field_error("code", problem))
                        button type="submit" { "Deploy" }
                    }
                },
                (Some(code), false) => pre class="code" { code { (code) } },
            }
            h2 id="invocations" { "Latest invocations" }
            // With htmx, a filter swaps this part only: the editor above keeps what is typed.
            div id="invocations-list" {
                nav aria-label="Filter invocations" class="filters" {
                    @if filter.is_none() {
                        strong aria-current="page" { "All" }
                    } @else {
                        (filter_link(&base, "", "All"))
                    }
                    @for (status, title) in FILTERS {
                        " · "
                        @if filter == Some(status) {
                            strong aria-current="page" { (title) }
                        } @else {
                            (filter_link(&base, &format!("?status={}", status.as_str()), title))
                        }
                    }
                }
                @if views.is_empty() {
                    p { @if filter.is_some() { "No such calls." } @else { "No calls yet." } }
                } @else {
                    (invocations_table(session, views, may_redrive))
                }
            }
        },
    )
}

/// A link to the invocations filtered by `query`: a plain link, which htmx turns into a swap
/// of the list alone (the address still changes, so it can be shared and reloaded).
fn filter_link(base: &str, query: &str, title: &str) -> Markup {
    let href = format!("{base}{query}");
    html! {
        a href={ (href) "#invocations" } hx-get=(href) hx-target="#invocations-list"
            hx-select="#invocations-list" hx-swap="outerHTML" hx-push-url="true" { (title) }
    }
}

/// `error` as one line: `Type: message` for a function's error, its JSON otherwise.
fn error_text(error: &Value) -> String {
    match (error.get("type"), error.get("message")) {
        (Some(Value::String(kind)), Some(Value::String(message))) => format!("{kind}: {message}"),
        (_, Some(Value::String(message))) => message.clone(),
        _ => error.to_string(),
    }
}

fn invocations_table(session: &Resumed, views: &[InvocationView], may_redrive: bool) -> Markup {
    html! {
        div class="scroll" {
            table {
                caption { "Newest first" }
                thead {
                    tr {
                        th scope="col" { "When" }
                        th scope="col" { "Status" }
                        th scope="col" { "Mode" }
                        th scope="col" class="num" { "Attempts" }
                        th scope="col" class="num" { "Duration" }
                        th scope="col" { "Cold" }
                        th scope="col" { "Logs and error" }
                    }
                }
                tbody {
                    @for v in views {
                        @let last = v.attempts.last();
                        @let ok = v.status == InvocationStatus::Succeeded;
                        tr id={ "inv-" (v.invocation_id) } {
                            td { (v.created_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                            td class={ "status " @if ok { "ok" } @else { "failed" } } { (v.status.as_str()) }
                            td { (v.mode.as_str()) }
                            td class="num" { (v.attempts.len()) }
                            td class="num" {
                                (ms(last.and_then(|a| a.duration_ms)))
                            }
                            td { @if last.is_some_and(|a| a.cold_start) { "yes" } @else { "no" } }
                            td {
                                @if let Some(error) = &v.error {
                                    p class="error" { (error_text(error)) }
                                }
                                @if v.attempts.len() > 1 {
                                    details {
                                        summary { "Attempts" }
                                        ol {
                                            @for a in &v.attempts {
                                                li { (a.outcome) " at " (a.started_at.format("%H:%M:%S")) }
                                            }
                                        }
                                    }
                                }
                                @if let Some(logs) = v.logs.as_deref().filter(|logs| !logs.is_empty()) {
                                    details {
                                        summary { "Logs" }
                                        pre { (logs) }
                                    }
                                }
                                @if may_redrive && v.status == InvocationStatus::DeadLettered {
                                    form method="post" action={ "/console/invocations/" (v.invocation_id) "/redrive" } class="inline" {
                                        input type="hidden" name="csrf" value=(session.csrf_token);
                                        button type="submit" aria-label={ "Redrive invocation " (v.invocation_id) } { "Redrive" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
