//! The console's keys page (`admin` or `manage`): the namespace's live keys, a form that makes
//! one (shown once, with a copy button), and a revoke button per key. A revoked key's console
//! sessions end with it (`services::console` re-checks the key on every request).

use super::{CsrfForm, Resumed, api_status, forbidden, pages, session_with, unavailable};
use crate::domain::auth::{Principal, Scope};
use crate::http::state::AppState;
use crate::services::console::same_token;
use crate::services::keys::{KeyChangeError, KeyInput};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// The scopes the form offers to `caller`: what it may mint.
pub fn mintable(caller: &Principal) -> Vec<Scope> {
    if caller.has(Scope::Admin) {
        Scope::ALL.to_vec()
    } else {
        vec![Scope::Invoke, Scope::Read]
    }
}

/// The session, if its key may see keys (`admin` or `manage`); else the page that says why.
async fn keys_session(state: &AppState, headers: &HeaderMap) -> Result<Resumed, Response> {
    let scopes = &[Scope::Admin, Scope::Manage];
    session_with(state, headers, "/console/keys", scopes, "The keys page").await
}

/// The keys page, with `made` (a key just made) or `problem` (why the last form failed).
async fn render(
    state: &AppState,
    session: &Resumed,
    made: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let namespace = Some(session.principal.namespace.clone());
    match state.keys.list(&session.principal, namespace).await {
        Ok(keys) => {
            let page = pages::keys(
                &super::page_of(&session.principal, &session.csrf_token),
                &keys,
                &mintable(&session.principal),
                made,
                problem,
            );
            (status, page).into_response()
        }
        Err(error) => unavailable(error),
    }
}

pub async fn get_keys(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match keys_session(&state, &headers).await {
        Ok(session) => render(&state, &session, None, None, StatusCode::OK).await,
        Err(response) => response,
    }
}

/// The form's fields, as a browser sends them: `scope` once per ticked box.
pub struct NewKeyForm {
    csrf: String,
    description: String,
    scopes: Vec<String>,
}

pub async fn post_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let session = match keys_session(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let form = NewKeyForm::from_pairs(form);
    if !same_token(&session.csrf_token, &form.csrf) {
        return forbidden();
    }
    let input: KeyInput = match serde_json::from_value(serde_json::json!({
        "scopes": form.scopes,
        "description": form.description,
    })) {
        Ok(input) => input,
        Err(error) => {
            let problem = format!("invalid form: {error}");
            return render(
                &state,
                &session,
                None,
                Some(&problem),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match state.keys.create(&session.principal, input).await {
        Ok(created) => render(&state, &session, Some(created.key()), None, StatusCode::OK).await,
        Err(KeyChangeError::Database(error)) => unavailable(error),
        Err(error) => {
            let message = error.to_string();
            render(&state, &session, None, Some(&message), api_status(error)).await
        }
    }
}

impl NewKeyForm {
    /// Reads the form's pairs (a scope can come several times, which a struct cannot say).
    fn from_pairs(pairs: Vec<(String, String)>) -> NewKeyForm {
        let mut form = NewKeyForm {
            csrf: String::new(),
            description: String::new(),
            scopes: Vec::new(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => form.csrf = value,
                "description" => form.description = value,
                "scope" => form.scopes.push(value),
                _ => {}
            }
        }
        form
    }
}

pub async fn post_revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match keys_session(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !same_token(&session.csrf_token, &form.csrf) {
        return forbidden();
    }
    match state.keys.revoke(&session.principal, &id).await {
        Ok(()) => Redirect::to("/console/keys").into_response(),
        Err(KeyChangeError::Database(error)) => unavailable(error),
        Err(KeyChangeError::KeyNotFound(_)) => {
            render(
                &state,
                &session,
                None,
                Some("No such key in this namespace."),
                StatusCode::NOT_FOUND,
            )
            .await
        }
        Err(error) => {
            render(
                &state,
                &session,
                None,
                Some(&error.to_string()),
                StatusCode::FORBIDDEN,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_may_tick_several_scopes() {
        let pairs = [
            ("csrf", "t"),
            ("scope", "invoke"),
            ("scope", "read"),
            ("description", "ci"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let form = NewKeyForm::from_pairs(pairs);
        assert_eq!((form.csrf.as_str(), form.description.as_str()), ("t", "ci"));
        assert_eq!(form.scopes, ["invoke", "read"]);
    }
}
