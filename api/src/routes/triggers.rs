//! HTTP triggers: any method on `ROUTE_PREFIX` + a function's route runs the function with an
//! API Gateway HTTP API (payload 2.0) event and answers with what its result asks for.
//!
//! The route is found in the in-memory route table and the function in the cache, so a call
//! makes no query of its own. CORS preflights are answered here without calling the function,
//! and without a key (browsers send none with them).

use super::invoke::{Detail, Trigger, call_function, find_function, runtime_for};
use crate::auth::{self, Principal, Scope};
use crate::error::ApiError;
use crate::http_trigger::{
    Cors, HttpAuth, RequestFacts, RouteEntry, answer_from_result, build_event,
};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{RawValue, ReplyStatus};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// The header that names the call, so that its record can be found.
const INVOCATION_ID_HEADER: HeaderName = HeaderName::from_static("x-faas-invocation-id");

/// Runs the function whose route matches the path below the prefix.
pub async fn call_route(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // The body was read whole, within the limit, by `limits::read_body`.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path()
        .strip_prefix(&*state.route_prefix)
        .unwrap_or_default();
    let routes = state.routes.routes();
    let Some(found) = routes.find(path) else {
        return ApiError::RouteNotFound(format!("{}{path}", state.route_prefix)).into_response();
    };
    let entry = found.value.clone();
    let params = found.params;
    let cors = entry.cors.as_ref();
    if let Some(cors) = cors
        && Cors::is_preflight(&parts.method, &parts.headers)
    {
        let mut answer = StatusCode::NO_CONTENT.into_response();
        *answer.headers_mut() = cors.preflight_headers(&parts.headers, &entry.allowed_methods());
        return answer;
    }
    let mut answer = match serve(&state, &parts, body, path, &entry, &params, started).await {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    };
    if let Some(cors) = cors {
        cors.apply(&parts.headers, answer.headers_mut());
    }
    answer
}

async fn serve(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    path: &str,
    entry: &Arc<RouteEntry>,
    params: &[(&str, String)],
    started: Instant,
) -> Result<Response, ApiError> {
    if let Some(methods) = &entry.methods
        && !methods.iter().any(|m| m == parts.method.as_str())
    {
        return Err(ApiError::MethodNotAllowed {
            method: parts.method.to_string(),
            allowed: methods.clone(),
        });
    }
    let carries_platform_key = match entry.auth {
        HttpAuth::Key => {
            let principal = Principal::from_headers(state, &parts.headers).await?;
            principal.require(Scope::Invoke)?;
            if principal.namespace != entry.namespace {
                return Err(ApiError::Forbidden(
                    "this key's namespace does not own this route".into(),
                ));
            }
            true
        }
        HttpAuth::None => is_platform_credential(state, &parts.headers),
    };
    if body.len() > state.limits.max_event_bytes {
        return Err(ApiError::TooLarge(format!(
            "the request body is {} bytes, over the limit of {}",
            body.len(),
            state.limits.max_event_bytes
        )));
    }
    let not_found = || ApiError::RouteNotFound(format!("{}{path}", state.route_prefix));
    let function = find_function(state, &entry.namespace, entry.name.clone())
        .await
        .map_err(|error| match error {
            ApiError::FunctionNotFound(_) => not_found(),
            other => other,
        })?;
    // The function cache hears of a change as soon as the table does, and is dropped by the
    // replica that made it before it answers: a function deleted, renamed or moved to another
    // route since the table was loaded no longer answers here.
    if function.id != entry.function_id || function.route != entry.route {
        return Err(not_found());
    }
    let invocation_id = Uuid::now_v7();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default();
    let event = build_event(&RequestFacts {
        method: &parts.method,
        raw_path: path,
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        route: &entry.route,
        any_method: entry.methods.is_none(),
        path_params: params,
        source_ip: peer,
        request_id: invocation_id.to_string(),
        namespace: &entry.namespace,
        time_epoch_ms: common::now_unix_ms(),
        strip_authorization: carries_platform_key,
    });
    let event = RawValue::from_string(event).expect("the event is JSON");
    let runtime = runtime_for(&function, None);
    let called = call_function(
        state,
        &function,
        runtime,
        event,
        invocation_id,
        Trigger::Http,
        started,
    )
    .await?;
    let detail = match entry.auth {
        HttpAuth::Key => Detail::Full,
        HttpAuth::None => Detail::Public,
    };
    let mut response = match &called.outcome {
        Ok(reply) if reply.status == ReplyStatus::Success => {
            match answer_from_result(&reply.result) {
                Ok(answer) => {
                    let mut response = Response::new(Body::from(answer.body));
                    *response.status_mut() = answer.status;
                    *response.headers_mut() = answer.headers;
                    response
                }
                Err(why) => {
                    tracing::info!(%invocation_id, function = %function.name, %why, "function answered an invalid HTTP response");
                    let error = ApiError::InvalidResponse(match detail {
                        Detail::Full => why,
                        Detail::Public => {
                            "the function's answer is not a valid HTTP response".into()
                        }
                    });
                    error.into_response()
                }
            }
        }
        _ => called.into_response(detail),
    };
    if let Ok(value) = HeaderValue::from_str(&invocation_id.to_string()) {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    Ok(response)
}

/// Whether `Authorization` carries what looks like a key of the platform (its format, or the
/// `ADMIN_KEY` setting): a public route's function must not receive one sent there by mistake.
fn is_platform_credential(state: &AppState, headers: &HeaderMap) -> bool {
    let Ok(token) = auth::bearer_token(headers.get(header::AUTHORIZATION)) else {
        return false;
    };
    match auth::parse_token(token) {
        auth::Presented::Key { .. } => true,
        auth::Presented::Other { hash } => state
            .keys
            .as_ref()
            .is_some_and(|keys| keys.is_admin_hash(&hash)),
    }
}
