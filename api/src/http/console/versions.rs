//! A function's versions in the console: the kept ones listed (`read`), one compared with the
//! current version (its code as a line diff, its settings field by field), and roll back
//! (`manage`): the old version saved again as the next one, through the same checks as any
//! save, so a route or name taken since is refused with the api's message.

use super::edit::{Refused, save_loaded};
use super::pages::{self, Tab};
use super::{MANAGERS, READERS, Resumed, csrf_refused, function_page, page_of, unavailable};
use crate::domain::auth::Scope;
use crate::http::state::AppState;
use crate::store::{self, Function, FunctionVersion};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// Lines of context around each change of a diff.
const DIFF_CONTEXT: usize = 3;

pub async fn get_versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/console/functions/{id}/versions");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, READERS, "Versions").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    list(&state, &session, &function, None, StatusCode::OK).await
}

/// The versions page, with `problem` (why a roll back was refused).
async fn list(
    state: &AppState,
    session: &Resumed,
    function: &Function,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let versions = store::list_versions(&state.db, &session.principal.namespace, function.id).await;
    match versions {
        Ok(versions) => (status, list_page(session, function, &versions, problem)).into_response(),
        Err(error) => unavailable(error),
    }
}

fn list_page(
    session: &Resumed,
    function: &Function,
    versions: &[FunctionVersion],
    problem: Option<&str>,
) -> Markup {
    let base = format!("/console/functions/{}/versions", function.id);
    let may_save = session.principal.has(Scope::Manage);
    pages::layout(
        &format!("{} versions", function.name),
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            (pages::function_head(function, Tab::Versions))
            @if let Some(problem) = problem {
                p class="error" role="alert" { "Not rolled back: " (problem) }
            }
            p class="help" {
                "The newest " (store::KEPT_VERSIONS) " versions are kept. Rolling back saves an old version again as the next one."
            }
            div class="scroll" {
                table {
                    caption { "Versions of " (function.name) ", newest first" }
                    thead {
                        tr {
                            th scope="col" class="num" { "Version" }
                            th scope="col" { "Saved" }
                            th scope="col" { "Deployed as" }
                            th scope="col" { span class="visually-hidden" { "Actions" } }
                        }
                    }
                    tbody {
                        @for v in versions {
                            @let current = v.version == function.version;
                            tr {
                                th scope="row" class="num" {
                                    (v.version)
                                    @if current { " (current)" }
                                }
                                td { (v.saved_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                                td { @if v.is_package() { "package" } @else { "code" } }
                                td {
                                    @if !current {
                                        a href={ (base) "/" (v.version) } { "Compare with current" }
                                        @if may_save && !v.is_package() {
                                            " "
                                            form method="post" action={ (base) "/" (v.version) "/restore" } class="inline" {
                                                input type="hidden" name="csrf" value=(session.csrf_token);
                                                button type="submit" aria-label={ "Roll back to version " (v.version) } { "Roll back" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The version `{version}` of the URL, or the 404 page.
async fn version_of(
    state: &AppState,
    session: &Resumed,
    function: &Function,
    version: &str,
) -> Result<FunctionVersion, Response> {
    let not_kept = || {
        (
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such version of this function is kept."),
        )
            .into_response()
    };
    let Ok(version) = version.parse::<i32>() else {
        return Err(not_kept());
    };
    match store::get_version(
        &state.db,
        &session.principal.namespace,
        function.id,
        version,
    )
    .await
    {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(not_kept()),
        Err(error) => Err(unavailable(error)),
    }
}

/// One version compared with the current one.
pub async fn get_version(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    let path = format!("/console/functions/{id}/versions/{version}");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, READERS, "Versions").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let old = match version_of(&state, &session, &function, &version).await {
        Ok(old) => old,
        Err(response) => return response,
    };
    let current = match version_of(&state, &session, &function, &function.version.to_string()).await
    {
        Ok(current) => current,
        Err(response) => return response,
    };
    let reveal_env = session.principal.has(Scope::Manage);
    diff_page(&session, &function, &old, &current, reveal_env).into_response()
}

/// The settings two versions do not share: (field, old, new), as JSON text; env values
/// masked unless `reveal_env`.
pub fn changed_settings(
    old: &Value,
    new: &Value,
    reveal_env: bool,
) -> Vec<(String, String, String)> {
    let mut keys: Vec<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|o| o.keys())
        .filter(|k| *k != "code")
        .collect();
    keys.sort();
    keys.dedup();
    let shown = |value: Option<&Value>, key: &str| match value {
        None | Some(Value::Null) => "none".to_owned(),
        Some(Value::Object(env)) if key == "env" && !reveal_env => {
            let names: Vec<&str> = env.keys().map(String::as_str).collect();
            format!("{} (values hidden: manage scope)", names.join(", "))
        }
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    keys.into_iter()
        .filter(|k| old.get(k.as_str()) != new.get(k.as_str()))
        .map(|k| {
            (
                k.clone(),
                shown(old.get(k.as_str()), k),
                shown(new.get(k.as_str()), k),
            )
        })
        .collect()
}

fn diff_page(
    session: &Resumed,
    function: &Function,
    old: &FunctionVersion,
    current: &FunctionVersion,
    reveal_env: bool,
) -> Markup {
    let old_code = old.fields.get("code").and_then(Value::as_str).unwrap_or("");
    let new_code = current
        .fields
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let diff = TextDiff::from_lines(old_code, new_code);
    let settings = changed_settings(&old.fields, &current.fields, reveal_env);
    let may_save = session.principal.has(Scope::Manage) && !old.is_package();
    pages::layout(
        &format!("{} version {}", function.name, old.version),
        Some(&page_of(&session.principal, &session.csrf_token)),
        html! {
            (pages::function_head(function, Tab::Versions))
            h2 { "Version " (old.version) " against the current version " (current.version) }
            h3 { "Code" }
            @if old_code == new_code {
                p { "The same code." }
            } @else {
                pre class="diff" aria-label={ "Code diff: lines of version " (old.version) " marked -, of version " (current.version) " marked +" } {
                    @for group in diff.grouped_ops(DIFF_CONTEXT) {
                        span class="hunk" { "@@\n" }
                        @for op in &group {
                            @for change in diff.iter_changes(op) {
                                @let (class, sign) = match change.tag() {
                                    ChangeTag::Delete => ("del", "-"),
                                    ChangeTag::Insert => ("ins", "+"),
                                    ChangeTag::Equal => ("eq", " "),
                                };
                                span class=(class) { (sign) " " (change.value().trim_end_matches('\n')) "\n" }
                            }
                        }
                    }
                }
            }
            h3 { "Settings" }
            @if settings.is_empty() {
                p { "The same settings." }
            } @else {
                div class="scroll" {
                    table {
                        caption { "Settings that differ" }
                        thead {
                            tr {
                                th scope="col" { "Setting" }
                                th scope="col" { "Version " (old.version) }
                                th scope="col" { "Current (" (current.version) ")" }
                            }
                        }
                        tbody {
                            @for (field, was, now) in &settings {
                                tr { th scope="row" { (field) } td { code { (was) } } td { code { (now) } } }
                            }
                        }
                    }
                }
            }
            @if may_save {
                form method="post" action={ "/console/functions/" (function.id) "/versions/" (old.version) "/restore" } {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    button type="submit" { "Roll back to version " (old.version) }
                }
            }
        },
    )
}

#[derive(serde::Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
}

/// Saves an old version again, as the next one.
pub async fn post_restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
    Form(form): Form<RestoreForm>,
) -> Response {
    let path = format!("/console/functions/{id}/versions");
    let (session, function) =
        match function_page(&state, &headers, &id, &path, MANAGERS, "Rolling back").await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if let Some(response) = csrf_refused(&session, &form.csrf) {
        return response;
    }
    let old = match version_of(&state, &session, &function, &version).await {
        Ok(old) => old,
        Err(response) => return response,
    };
    if old.is_package() {
        let problem = "that version was deployed as a package, whose zip is not kept: deploy it again with the api or the CLI";
        return list(
            &state,
            &session,
            &function,
            Some(problem),
            StatusCode::CONFLICT,
        )
        .await;
    }
    let fields = crate::http::console::forms::SETTINGS_FIELDS;
    match save_loaded(&state, &session, &function, old.fields, &fields, "code").await {
        Ok(saved) => Redirect::to(&format!(
            "/console/functions/{}?deployed={}",
            function.id, saved.version
        ))
        .into_response(),
        Err(Refused::Problem(status, problem)) => {
            list(&state, &session, &function, Some(&problem.message), status).await
        }
        Err(Refused::Page(response)) => *response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_settings_that_differ_are_listed_and_env_values_only_for_manage() {
        let old =
            json!({"code": "a", "timeout": 5, "env": {"K": "secret1"}, "schedule": "* * * * *"});
        let new = json!({"code": "b", "timeout": 5, "env": {"K": "secret2"}});
        let hidden = changed_settings(&old, &new, false);
        assert_eq!(hidden.len(), 2, "{hidden:?}");
        assert_eq!(hidden[0].0, "env");
        assert!(!hidden[0].1.contains("secret1") && !hidden[0].2.contains("secret2"));
        assert_eq!(
            hidden[1],
            ("schedule".into(), "* * * * *".into(), "none".into())
        );
        let shown = changed_settings(&old, &new, true);
        assert!(shown[0].1.contains("secret1") && shown[0].2.contains("secret2"));
    }
}
