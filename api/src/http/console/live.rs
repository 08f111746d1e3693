//! A function's live logs (its finished calls as they end, from the stream of `GET
//! /invocations/stream`, under the console's session instead of a key), its dependency build
//! and log, and the redrive of a dead-lettered invocation.

use super::pages::{self, Tab};
use super::{READERS, Resumed, csrf_refused, function_page, page_of, session_with, unavailable};
use crate::domain::auth::Scope;
use crate::domain::stream::StreamFilter;
use crate::http::event_stream::{last_event_id, stream_response};
use crate::http::state::AppState;
use crate::services::streams::StreamRequest;
use crate::store::{self, Function, Redriven};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

/// Following calls needs what `/invocations/stream` needs: `read` or `invoke` (or `manage`,
/// which reads functions).
const FOLLOW: &[Scope] = &[Scope::Read, Scope::Invoke, Scope::Manage];

/// The live logs page: the script opens the stream and adds each call as it ends.
pub async fn get_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/console/functions/{id}/logs");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, FOLLOW, "Live logs").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    logs_page(&session, &function).into_response()
}

fn logs_page(session: &Resumed, function: &Function) -> maud::Markup {
    pages::page(
        &format!("{} live logs", function.name),
        Some(&page_of(&session.principal, &session.csrf_token)),
        true,
        html! {
            (pages::function_head(function, Tab::Logs))
            p id="live-state" class="help" role="status" data-stream={ "/console/functions/" (function.id) "/stream" } {
                "Connecting…"
            }
            p class="help" { "Each call of " (function.name) " appears here as it ends, from any trigger, on any api replica. Newest at the bottom." }
            ol id="live-lines" class="live" aria-live="polite" aria-label="Calls as they end" {}
            noscript { p { "Live logs need JavaScript; the function's page lists the latest calls without it." } }
        },
    )
}

/// The function's calls as server-sent events, from now on (or after `Last-Event-ID`, which
/// the browser sends when it reconnects).
pub async fn get_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/console/functions/{id}/logs");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, FOLLOW, "Live logs").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let after = match last_event_id(&headers) {
        Ok(after) => after,
        Err(error) => return error.into_response(),
    };
    let request = StreamRequest {
        namespace: session.principal.namespace,
        filter: StreamFilter {
            function: Some(function.name),
            status: None,
        },
        after,
    };
    match stream_response(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The function's dependency build: its status and its whole log.
pub async fn get_build(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/console/functions/{id}/build");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, READERS, "The build log").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let namespace = &session.principal.namespace;
    let build = match store::get_function_build(&state.db, namespace, function.id).await {
        Ok(Some(build)) => build,
        Ok(None) => return super::function_not_found(),
        Err(error) => return unavailable(error),
    };
    pages::layout(
        &format!("{} build", function.name),
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            (pages::function_head(&function, Tab::Build))
            @match &build {
                None => p { "No dependencies: nothing to build." },
                Some(build) => {
                    dl class="settings" {
                        dt { "Status" } dd { (build.status.as_str()) }
                        @if let Some(size) = build.size_bytes {
                            dt { "Size" } dd { (format!("{:.1} MB", size as f64 / 1e6)) }
                        }
                        @if let Some(at) = build.started_at {
                            dt { "Started" } dd { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        }
                        @if let Some(at) = build.finished_at {
                            dt { "Finished" } dd { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        }
                    }
                    h2 { "Log" }
                    @if build.log.is_empty() { p { "Nothing yet." } }
                    @else { pre class="logs" { (build.log) } }
                }
            }
        },
    )
    .into_response()
}

#[derive(serde::Deserialize)]
pub struct RedriveForm {
    #[serde(default)]
    csrf: String,
}

/// Runs a dead-lettered invocation again (`invoke`, as `POST /invocations/{id}/retry`).
pub async fn post_redrive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RedriveForm>,
) -> Response {
    let session = match session_with(
        &state,
        &headers,
        "/console/functions",
        &[Scope::Invoke],
        "Redriving",
    )
    .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such invocation in this namespace."),
        )
            .into_response()
    };
    let Ok(uuid) = id.parse::<uuid::Uuid>() else {
        return not_found();
    };
    let namespace = &session.principal.namespace;
    let redriven = crate::services::dispatch::redrive(&state.dispatch, namespace, uuid).await;
    let function = match redriven {
        Ok(Redriven::Requeued { function, .. }) => function,
        Err(error) => return unavailable(error),
        Ok(Redriven::NotDeadLettered(status)) => {
            let text = format!(
                "Invocation {uuid} is {status}, not dead-lettered: only a dead letter can be redriven."
            );
            return (StatusCode::CONFLICT, pages::message("Not redriven", &text)).into_response();
        }
        Ok(Redriven::NotFound) => return not_found(),
    };
    // Back to its function's page, where it now shows as queued.
    match store::get_function_by_name(&state.db, namespace, &function).await {
        Ok(Some(function)) => {
            Redirect::to(&format!("/console/functions/{}#invocations", function.id)).into_response()
        }
        Ok(None) => Redirect::to("/console/functions").into_response(),
        Err(error) => unavailable(error),
    }
}
