//! The console's namespaces page (`admin`, as `/namespaces/`): every namespace with its
//! runtimes, concurrency and quotas in force, a form that makes one, and deletion, which takes
//! the namespace's name typed again (it deletes its functions, keys, records and queued work).

use super::{Resumed, api_status, csrf_refused, page_of, pages, session_with, unavailable};
use crate::domain::auth::Scope;
use crate::http::state::AppState;
use crate::services::namespaces::{NamespaceError, NamespaceInput, NamespaceView};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

const ADMIN: &[Scope] = &[Scope::Admin];
const PATH: &str = "/console/namespaces";

pub async fn get_namespaces(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_with(&state, &headers, PATH, ADMIN, "Namespaces").await {
        Ok(session) => render(&state, &session, None, StatusCode::OK).await,
        Err(response) => response,
    }
}

/// The page, with `problem` (why the last form did nothing).
async fn render(
    state: &AppState,
    session: &Resumed,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    match state.namespaces.list().await {
        Ok(namespaces) => (status, page(session, &namespaces, problem)).into_response(),
        Err(error) => unavailable(error),
    }
}

/// Makes a namespace from the form: name, runtimes ticked, max concurrency.
pub async fn post_namespaces(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let session = match session_with(&state, &headers, PATH, ADMIN, "Namespaces").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    if let Some(response) = csrf_refused(&session, field("csrf")) {
        return response;
    }
    let runtimes: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "runtime")
        .map(|(_, v)| v.as_str())
        .collect();
    let max_concurrency = field("max_concurrency").trim();
    let max_concurrency = if max_concurrency.is_empty() {
        Value::Null
    } else {
        match max_concurrency.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => {
                let problem =
                    format!("max_concurrency must be a whole number; got {max_concurrency:?}");
                return render(
                    &state,
                    &session,
                    Some(&problem),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    };
    let body = json!({
        "name": field("name").trim(),
        "allowed_runtimes": if runtimes.is_empty() { Value::Null } else { json!(runtimes) },
        "max_concurrency": max_concurrency,
    });
    let input: NamespaceInput = match serde_json::from_value(body) {
        Ok(input) => input,
        Err(error) => {
            let problem = format!("the form is not a namespace: {error}");
            return render(
                &state,
                &session,
                Some(&problem),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match state.namespaces.create(input).await {
        Ok(_) => Redirect::to(PATH).into_response(),
        Err(error) => refused(&state, &session, error).await,
    }
}

/// The page again with why `error` refused the change, under the api's status for it.
async fn refused(state: &AppState, session: &Resumed, error: NamespaceError) -> Response {
    if let NamespaceError::Database(error) = error {
        return unavailable(error);
    }
    let message = error.to_string();
    render(state, session, Some(&message), api_status(error)).await
}

#[derive(serde::Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    /// The namespace's name typed again.
    #[serde(default)]
    confirm: String,
}

/// Deletes a namespace whose name the form repeats.
pub async fn post_delete_namespace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let session = match session_with(&state, &headers, PATH, ADMIN, "Namespaces").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    if form.confirm.trim() != name {
        let problem =
            format!("type the namespace's name, {name}, to delete it; nothing was deleted");
        return render(
            &state,
            &session,
            Some(&problem),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match state.namespaces.delete(&name).await {
        Ok(()) => Redirect::to(PATH).into_response(),
        Err(error) => refused(&state, &session, error).await,
    }
}

fn limit(value: Option<i64>) -> String {
    value.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

fn page(session: &Resumed, namespaces: &[NamespaceView], problem: Option<&str>) -> Markup {
    pages::layout(
        "Namespaces",
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            h1 { "Namespaces" }
            @if let Some(problem) = problem {
                p class="error" role="alert" { (problem) }
            }
            div class="scroll" {
                table {
                    caption { "Every namespace, with the quotas in force" }
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Runtimes" }
                            th scope="col" class="num" { "Max concurrency" }
                            th scope="col" class="num" { "Functions" }
                            th scope="col" class="num" { "Keys" }
                            th scope="col" class="num" { "Pending async" }
                            th scope="col" { "Made" }
                            th scope="col" { span class="visually-hidden" { "Delete" } }
                        }
                    }
                    tbody {
                        @for view in namespaces {
                            @let ns = &view.namespace;
                            @let quotas = serde_json::to_value(view.quotas_in_force).unwrap_or_default();
                            tr {
                                th scope="row" { (ns.name) }
                                td {
                                    @if ns.allowed_runtimes.is_empty() { "docker, gvisor" }
                                    @else { (ns.allowed_runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
                                }
                                td class="num" { (limit(ns.max_concurrency.map(i64::from))) }
                                td class="num" { (limit(quotas["functions"].as_i64())) }
                                td class="num" { (limit(quotas["keys"].as_i64())) }
                                td class="num" { (limit(quotas["pending_async"].as_i64())) }
                                td { (ns.created_at.format("%Y-%m-%d %H:%M UTC")) }
                                td {
                                    @if ns.name != "default" {
                                        details {
                                            summary { "Delete " (ns.name) }
                                            form method="post" action={ "/console/namespaces/" (ns.name) "/delete" } class="inline-grid" {
                                                input type="hidden" name="csrf" value=(session.csrf_token);
                                                label for={ "confirm-" (ns.name) } { "Type " code { (ns.name) } " to delete it with its functions, keys and records" }
                                                input id={ "confirm-" (ns.name) } name="confirm" type="text" autocomplete="off";
                                                button type="submit" class="danger" { "Delete namespace" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Make a namespace" }
            form method="post" action=(PATH) class="card" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                label for="ns-name" { "Name" }
                input id="ns-name" name="name" type="text" maxlength="63" required autocomplete="off"
                    aria-describedby="ns-name-help";
                p id="ns-name-help" class="help" { "A DNS label: lower-case letters, digits and inner hyphens." }
                fieldset {
                    legend { "Runtimes (none ticked: both)" }
                    label class="check" { input type="checkbox" name="runtime" value="docker"; " docker" }
                    label class="check" { input type="checkbox" name="runtime" value="gvisor"; " gvisor" }
                }
                label for="ns-concurrency" { "Max concurrency" }
                input id="ns-concurrency" name="max_concurrency" type="text" inputmode="numeric"
                    aria-describedby="ns-concurrency-help";
                p id="ns-concurrency-help" class="help" { "Calls of all its functions at once; empty: no limit." }
                button type="submit" { "Make namespace" }
            }
        },
    )
}
