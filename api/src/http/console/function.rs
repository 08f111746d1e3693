//! The console's page of one function (`read`, `manage` or `admin`): its settings, its code,
//! and its latest invocations (all, or only the failed ones), each with its logs. Another
//! namespace's function is 404, as in the api.

use super::{Resumed, page_of, pages, signed_in, unavailable};
use crate::domain::auth::Scope;
use crate::http::state::AppState;
use crate::store;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The records a function page reads, newest first, before filtering by status.
const RECORDS_READ: i64 = 200;
/// The records it shows at most.
const RECORDS_SHOWN: usize = 50;

/// Whether a session's key may read functions: what the api's `GET /functions/` asks too.
pub fn may_read(session: &Resumed) -> bool {
    [Scope::Admin, Scope::Manage, Scope::Read]
        .iter()
        .any(|scope| session.principal.has(*scope))
}

/// The page that says a key may not read functions.
pub fn not_a_reader() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message(
            "Forbidden",
            "Functions need a key with the read, manage or admin scope; this session's has none of them.",
        ),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct FunctionQuery {
    /// `failed`: only the calls that did not succeed.
    status: Option<String>,
}

pub async fn get_function(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<FunctionQuery>,
) -> Response {
    let session = match signed_in(&state, &headers, &format!("/console/functions/{id}")).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !may_read(&session) {
        return not_a_reader();
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            pages::message("Not found", "No such function in this namespace."),
        )
            .into_response()
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let namespace = &session.principal.namespace;
    let function = match store::get_function(&state.db, namespace, id).await {
        Ok(Some(function)) => function,
        Ok(None) => return not_found(),
        Err(error) => return unavailable(error),
    };
    let records = store::list_invocations(
        &state.db,
        namespace,
        Some(&function.name),
        None,
        RECORDS_READ,
    )
    .await;
    let failed_only = query.status.as_deref() == Some("failed");
    match records {
        Ok(records) => {
            let shown: Vec<_> = records
                .into_iter()
                .filter(|record| record.function_id == function.id)
                .filter(|record| !failed_only || record.status != "success")
                .take(RECORDS_SHOWN)
                .collect();
            let page = pages::function(
                &page_of(&session.principal, &session.csrf_token),
                &function,
                &shown,
                failed_only,
            );
            page.into_response()
        }
        Err(error) => unavailable(error),
    }
}
