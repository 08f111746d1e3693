//! The web console (DESIGN §17), on the api's origin only, never on the functions' origin:
//! server-rendered pages (`pages`, maud) behind a session cookie (`services::console`).
//!
//! - The cookie (`faas_console`; `__Host-faas_console`, `Secure`, with `CONSOLE_SECURE_COOKIE`
//!   behind TLS) is HttpOnly, SameSite=Strict, and holds a random id the server issued; the key
//!   is never in a page, a cookie or script-readable storage.
//! - Every form carries the CSRF token of the server-side session (the sign-in form's too:
//!   it has a session of its own); a POST without it is 403 and changes nothing.
//! - Every response says `Content-Security-Policy: default-src 'self'` with
//!   `frame-ancestors 'none'` (and no inline script anywhere), `X-Frame-Options: DENY`,
//!   `nosniff`, and `Cache-Control: no-store` for pages.
//! - A request without a live session goes to the sign-in page, and back to where it was
//!   going after it (a path of the console only).

mod assets;
mod edit;
mod forms;
mod function;
mod keys;
mod live;
mod namespaces;
mod overview;
mod pages;
mod test_events;
mod versions;

use crate::domain::auth::{Principal, Scope};
use crate::http::state::AppState;
use crate::services::console::{FORM_TTL, Issued, Resumed, SignInError, same_token};
use crate::store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// What every console response says about where it may be loaded from and framed.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Forms are small: a key, a token, a path.
const FORM_BODY_MAX: usize = 16 * 1024;

/// A new function's code, or a test event's, at most: the api's own limits apply after.
const EDIT_BODY_MAX: usize = 2 * 1024 * 1024;

/// Keys that may read functions (as `GET /functions/` asks; `admin` holds every scope).
const READERS: &[Scope] = &[Scope::Read, Scope::Manage];
/// Keys that may save functions (as `PUT /functions/{id}` asks).
const MANAGERS: &[Scope] = &[Scope::Manage];

/// The functions a page of the list shows, as Lambda's console does: the page's cost is
/// theirs, not the namespace's.
const LIST_PAGE: i64 = 50;

/// The console's routes, with their security headers.
pub fn router() -> Router<AppState> {
    let small = Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/functions") }),
        )
        .route("/console/sign-in", get(get_sign_in).post(post_sign_in))
        .route("/console/sign-out", post(post_sign_out))
        .route("/console/overview", get(overview::get_overview))
        .route("/console/functions", get(get_functions))
        .route("/console/functions/{id}", get(function::get_function))
        .route(
            "/console/functions/{id}/settings",
            get(edit::get_settings).post(edit::post_settings),
        )
        .route("/console/functions/{id}/logs", get(live::get_logs))
        .route("/console/functions/{id}/stream", get(live::get_stream))
        .route("/console/functions/{id}/build", get(live::get_build))
        .route(
            "/console/functions/{id}/versions",
            get(versions::get_versions),
        )
        .route(
            "/console/functions/{id}/versions/{version}",
            get(versions::get_version),
        )
        .route(
            "/console/functions/{id}/versions/{version}/restore",
            post(versions::post_restore),
        )
        .route(
            "/console/invocations/{id}/redrive",
            post(live::post_redrive),
        )
        .route(
            "/console/namespaces",
            get(namespaces::get_namespaces).post(namespaces::post_namespaces),
        )
        .route(
            "/console/namespaces/{name}/delete",
            post(namespaces::post_delete_namespace),
        )
        .route("/console/keys", get(keys::get_keys).post(keys::post_keys))
        .route("/console/keys/{id}/revoke", post(keys::post_revoke_key))
        .route("/console/console.css", get(assets::get_css))
        .route("/console/console.js", get(assets::get_js))
        .route("/console/vendor/{file}", get(assets::get_vendor))
        .layer(DefaultBodyLimit::max(FORM_BODY_MAX));
    // Forms that carry code or an event: larger bodies.
    let edits = Router::new()
        .route("/console/new", get(edit::get_new).post(edit::post_new))
        .route("/console/functions/{id}/code", post(edit::post_code))
        .route(
            "/console/functions/{id}/test",
            get(test_events::get_test).post(test_events::post_test),
        )
        .layer(DefaultBodyLimit::max(EDIT_BODY_MAX));
    small.merge(edits).layer(from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The cookie's name: `__Host-` prefixed behind TLS, so that it must be `Secure`, for the
/// whole host and set by it.
fn cookie_name(state: &AppState) -> &'static str {
    if state.console_secure_cookie {
        "__Host-faas_console"
    } else {
        "faas_console"
    }
}

/// The session ids the request's cookies carry under the console's name (a planted one
/// beside the real one included: only an id the server issued resolves).
fn session_ids<'a>(state: &AppState, headers: &'a HeaderMap) -> Vec<&'a str> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, value)| *key == name && !value.is_empty() && value.len() <= 64)
        .map(|(_, value)| value)
        .take(4)
        .collect()
}

/// `Set-Cookie` for session `id`, lasting `max_age_secs` (0: removed).
fn set_cookie(state: &AppState, id: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.console_secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}",
        cookie_name(state)
    );
    HeaderValue::from_str(&cookie).expect("a session id is URL-safe base64")
}

/// A 303 to `location` that sets (or removes) the session cookie.
fn see_other(cookie: HeaderValue, location: HeaderValue) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
    )
        .into_response()
}

/// `next` if it is a path of the console, else the functions list: the sign-in never sends
/// anyone elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with("/console")
                && path.len() <= 512
                && !path.contains("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/console/functions".to_owned(),
    }
}

/// To the sign-in page, then back to `path`.
fn to_sign_in(path: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    Redirect::to(&format!("/console/sign-in?next={next}")).into_response()
}

/// A page that says the database is away, and nothing of why.
fn unavailable(error: store::DbError) -> Response {
    tracing::error!(%error, "console: the database failed");
    metrics::counter!("faas_database_errors_total").increment(1);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(
            "Unavailable",
            "The database is unavailable; try again shortly.",
        ),
    )
        .into_response()
}

/// The signed-in session of the request, or the response that sends it to sign in.
async fn signed_in(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Resumed, Response> {
    for id in session_ids(state, headers) {
        match state.console.resume(id).await {
            Ok(Some(resumed)) => return Ok(resumed),
            Ok(None) => continue,
            Err(error) => return Err(unavailable(error)),
        }
    }
    Err(to_sign_in(path))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn get_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if signed_in(&state, &headers, &next).await.is_ok() {
        return Redirect::to(&next).into_response();
    }
    match state.console.open_form().await {
        Ok(form) => sign_in_form(&state, &form, &next, None, StatusCode::OK),
        Err(error) => unavailable(error),
    }
}

fn sign_in_form(
    state: &AppState,
    form: &Issued,
    next: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let page = pages::sign_in(&form.csrf_token, next, message, state.key_cache.is_none());
    let cookie = set_cookie(state, &form.id, FORM_TTL.as_secs());
    (status, [(header::SET_COOKIE, cookie)], page).into_response()
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

async fn post_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(form_id) = session_ids(&state, &headers).into_iter().next() else {
        return stale_form(&state, &next).await;
    };
    match state.console.sign_in(form_id, &form.csrf, &form.key).await {
        Ok(session) => {
            let ttl = state.console.ttl().as_secs();
            let location = HeaderValue::from_str(&next).expect("a checked path");
            see_other(set_cookie(&state, &session.id, ttl), location)
        }
        Err(SignInError::StaleForm) => stale_form(&state, &next).await,
        Err(SignInError::WrongKey) => match state.console.form_token(form_id).await {
            // The same form again, with what went wrong; its session lasts.
            Ok(Some(csrf_token)) => {
                let page = pages::sign_in(
                    &csrf_token,
                    &next,
                    Some("That key is not valid: check it and try again."),
                    state.key_cache.is_none(),
                );
                (StatusCode::UNAUTHORIZED, page).into_response()
            }
            Ok(None) => stale_form(&state, &next).await,
            Err(error) => unavailable(error),
        },
        Err(SignInError::Database(error)) => unavailable(error),
    }
}

/// A sign-in whose form's session is unknown, expired or not its own: 403, and a fresh form.
async fn stale_form(state: &AppState, next: &str) -> Response {
    match state.console.open_form().await {
        Ok(form) => sign_in_form(
            state,
            &form,
            next,
            Some("This form had expired or was not this browser's: sign in again."),
            StatusCode::FORBIDDEN,
        ),
        Err(error) => unavailable(error),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn post_sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    for id in session_ids(&state, &headers) {
        match state.console.resume(id).await {
            Ok(Some(session)) if same_token(&session.csrf_token, &form.csrf) => {
                if let Err(error) = state.console.sign_out(id).await {
                    return unavailable(error);
                }
                let location = HeaderValue::from_static("/console/sign-in");
                return see_other(set_cookie(&state, "", 0), location);
            }
            Ok(Some(_)) => return forbidden(),
            Ok(None) => continue,
            Err(error) => return unavailable(error),
        }
    }
    Redirect::to("/console/sign-in").into_response()
}

/// The signed-in session of the request if its key has one of `scopes`; else the page that
/// says it lacks them (`what` names what they are needed for), or the sign-in.
async fn session_with(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    scopes: &[Scope],
    what: &str,
) -> Result<Resumed, Response> {
    let session = signed_in(state, headers, path).await?;
    if scopes.iter().any(|scope| session.principal.has(*scope)) {
        return Ok(session);
    }
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let text = format!(
        "{what} needs a key with the {} scope; this session's has none of them.",
        names.join(" or ")
    );
    Err((StatusCode::FORBIDDEN, pages::message("Forbidden", &text)).into_response())
}

/// The status the api answers `error` with: a console form refused for a reason answers as
/// the api would a client refused for it.
fn api_status(error: impl Into<crate::http::error::ApiError>) -> StatusCode {
    error.into().status()
}

/// The 403 to answer instead when `given` is not the session's CSRF token.
fn csrf_refused(session: &Resumed, given: &str) -> Option<Response> {
    (!same_token(&session.csrf_token, given)).then(forbidden)
}

/// The session of a request for a page of function `id` at `path` (its key with one of
/// `scopes`), and the function, of the session's namespace; else the page to answer.
async fn function_page(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    path: &str,
    scopes: &[Scope],
    what: &str,
) -> Result<(Resumed, store::Function), Response> {
    let session = session_with(state, headers, path, scopes, what).await?;
    let function = function_of(state, &session.principal.namespace, id).await?;
    Ok((session, function))
}

/// The 404 page of a function that is not in the session's namespace.
fn function_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        pages::message("Not found", "No such function in this namespace."),
    )
        .into_response()
}

/// Function `id` (as the URL has it) of `namespace`, or the page that says it is not there.
async fn function_of(
    state: &AppState,
    namespace: &str,
    id: &str,
) -> Result<store::Function, Response> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(function_not_found());
    };
    match store::get_function(&state.db, namespace, id).await {
        Ok(Some(function)) => Ok(function),
        Ok(None) => Err(function_not_found()),
        Err(error) => Err(unavailable(error)),
    }
}

/// A form without its session's CSRF token.
fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message(
            "Forbidden",
            "This form did not carry this session's token, so nothing was changed. Reload the page and try again.",
        ),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// 1-based.
    page: Option<i64>,
}

async fn get_functions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let path = "/console/functions";
    let session = match session_with(&state, &headers, path, READERS, "Functions").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Resumed {
        principal,
        csrf_token,
    } = session;
    let page = query.page.unwrap_or(1).clamp(1, 1_000_000);
    let offset = (page - 1) * LIST_PAGE;
    let summaries =
        store::function_summaries(&state.db, &principal.namespace, LIST_PAGE, offset).await;
    match summaries {
        Ok((summaries, total)) => {
            let list = pages::FunctionList {
                summaries: &summaries,
                page,
                per_page: LIST_PAGE,
                total,
            };
            pages::functions(&page_of(&principal, &csrf_token), &list).into_response()
        }
        Err(error) => unavailable(error),
    }
}

/// What every signed-in page shows of its session.
fn page_of<'a>(principal: &'a Principal, csrf_token: &'a str) -> pages::Session<'a> {
    pages::Session {
        namespace: &principal.namespace,
        csrf_token,
        admin: principal.has(Scope::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_sends_back_only_to_the_consoles_own_paths() {
        assert_eq!(
            safe_next(Some("/console/functions/7")),
            "/console/functions/7"
        );
        for elsewhere in [
            None,
            Some("https://evil.example/console"),
            Some("//evil.example/console"),
            Some("/console//evil.example"),
            Some("/console\\evil"),
            Some("/keys/"),
            Some("/console/a b"),
        ] {
            assert_eq!(safe_next(elsewhere), "/console/functions", "{elsewhere:?}");
        }
    }
}
