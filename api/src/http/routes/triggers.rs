//! HTTP triggers: any method on a function's route, on the functions' own origin
//! (`FUNCTIONS_ADDR`), runs the function with an API Gateway HTTP API (payload 2.0) event and
//! answers with what its result asks for.
//!
//! The route is found in the in-memory route table and the function in the cache, so a call
//! makes no query of its own. CORS preflights are answered here without calling the function,
//! and without a key (browsers send none with them). A call is let in from its headers alone
//! (its route, its method, its key when the route wants one, then one of its origin's
//! `MAX_INFLIGHT` permits) before its body is read, as `http::admission` lets in the other routes' requests.

use super::invoke::{Detail, RouteFailure, called_response};
use crate::domain::auth::{self, Principal, Scope};
use crate::domain::http_trigger::{HttpAuth, RouteEntry, answer_from_result};
use crate::http::admission::{self, answer_unread_parts};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::limits::{self, BodyLimit};
use crate::http::state::AppState;
use crate::services::triggers::{self, Incoming, RouteCall, Routed};
use crate::services::{CallError, Called};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use common::ReplyStatus;
use std::net::SocketAddr;
use std::time::Instant;
use uuid::Uuid;

/// The header that names the call, so that its record can be found.
const INVOCATION_ID_HEADER: HeaderName = HeaderName::from_static("x-faas-invocation-id");

/// The trigger's routes: every method on every path of the functions' origin. Each call admits
/// itself ([`call_route`]): no layer reads a body before it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", any(call_route))
        .route("/{*path}", any(call_route))
}

/// `{path}` of `/{path}` on the functions' origin.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoutePath {
    /// The path that a function's route matches (`users/42` for the route `/users/{id}`);
    /// `/` is the route `/`.
    #[param(example = "hello")]
    #[allow(dead_code)] // Read by the derive only: the handler reads the request's own path.
    path: String,
}

/// Runs the function whose route matches the path.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/{path}",
    tag = "http",
    summary = "Call a function through its route (HTTP trigger)",
    description = "Served on the functions' own origin (`FUNCTIONS_ADDR`, port 8080 by \
        default), never on the api's: any of these methods on a function's `route` runs it \
        with an API Gateway HTTP API payload 2.0 event made of the request (headers, query, \
        path parameters, cookies, body; base64 when not UTF-8), and answers what its result asks \
        for: a result with `statusCode` gives that status, `headers`, `cookies` and `body` \
        (base64-decoded with `isBase64Encoded`); any other result is 200 with itself as JSON. \
        With `http_auth: \"key\"` (the default) it needs an `invoke` key of the function's \
        namespace, which the function never sees; with `\"none\"` anyone may call it and a \
        failure says only its status, code and invocation id. A route's `cors` answers \
        preflights here, without the function. The answer carries `X-Faas-Invocation-Id`.",
    params(RoutePath),
    request_body(content = Option<serde_json::Value>, content_type = "*/*", description = "Any body of any type, up to `MAX_EVENT_BYTES` (6 MiB): the event's `body` (base64 when not UTF-8)."),
    responses(
        (status = "default", description = "The function's answer: the status, headers and body its result asked for.",
            headers(("X-Faas-Invocation-Id" = String, description = "The call's invocation id (its record's, and the event's `requestContext.requestId`)."))),
        (status = 204, description = "A CORS preflight, answered by the api from the route's `cors`."),
        (status = 401, description = "`unauthorized`: the route wants a key (`http_auth: \"key\"`) and none valid came.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the key lacks `invoke`, or is of another namespace.", body = ErrorBody),
        (status = 404, description = "`route_not_found`: no function's route matches the path.", body = ErrorBody),
        (status = 405, description = "`method_not_allowed`: not one of the route's `http_methods` (see `Allow`).", body = ErrorBody,
            headers(("Allow" = String, description = "The methods the route answers."))),
        (status = 408, description = "`body_timeout`: the body did not arrive within `BODY_READ_TIMEOUT_SECS` a piece or `REQUEST_TIMEOUT_SECS` in all.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `MAX_EVENT_BYTES`.", body = ErrorBody),
        (status = 422, description = "`invalid_request`: the body could not be read.", body = ErrorBody),
        (status = 429, description = "`concurrency_limit`: the function or its namespace runs its `max_concurrency` calls. `queue_share`: the namespace's calls waiting for a reply hold its share of the job queues' bytes (`QUEUE_SHARE_BYTES`).", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
        (status = 502, description = "The function failed (`function_error`, `init_error`, `out_of_memory`, `result_too_large`, `function_crashed`), or its result is not a valid HTTP answer (`invalid_response`). A public route's failure is a `PublicFailure`.", body = RouteFailure<'static>),
        (status = 504, description = "`function_timeout` or `no_reply` (a `PublicFailure` on a public route).", body = RouteFailure<'static>),
        crate::http::responses::Unavailable,
    ),
    security((), ("bearer" = [])),
)]
pub async fn call_route(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let routes = state.routes.routes();
    let (method, headers, path) = (&parts.method, &parts.headers, parts.uri.path());
    let routed = triggers::route(&routes, method, headers, path);
    let call = match routed {
        Ok(Routed::Call(call)) => call,
        Ok(Routed::Preflight(preflight)) => {
            return answer_unread_parts((StatusCode::NO_CONTENT, preflight), headers, body);
        }
        Err(miss) => return answer_unread_parts(ApiError::from(miss), headers, body),
    };
    let mut answer = admit_and_serve(&state, &parts, body, &call, started).await;
    if let Some(cors) = &call.entry.cors {
        cors.apply(headers, answer.headers_mut());
    }
    answer
}

/// Lets the call in (the route's methods and auth, from the headers; then one of the
/// `MAX_INFLIGHT` permits), and only then reads its body and serves it. A call refused is
/// answered without its body read (`admission::answer_unread`).
async fn admit_and_serve(
    state: &AppState,
    parts: &Parts,
    body: Body,
    routed: &RouteCall<'_>,
    started: Instant,
) -> Response {
    let admitted = match routed.check_method(&parts.method) {
        Ok(()) => authorize(state, &parts.headers, &routed.entry).await,
        Err(miss) => Err(miss.into()),
    };
    let carries_platform_key = match admitted {
        Ok(carries) => carries,
        Err(error) => return answer_unread_parts(error, &parts.headers, body),
    };
    let _permit = match admission::take_permit(&state.functions_inflight) {
        Ok(permit) => permit,
        Err(error) => return answer_unread_parts(error, &parts.headers, body),
    };
    let limit = BodyLimit(state.limits.max_event_bytes);
    let body = match limits::read_whole(body, limit, &parts.headers).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    serve(state, parts, body, routed, carries_platform_key, started)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Calls the route's function, once let in, and maps its result to the answer.
async fn serve(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    routed: &RouteCall<'_>,
    carries_platform_key: bool,
    started: Instant,
) -> Result<Response, ApiError> {
    let entry = &routed.entry;
    let invocation_id = Uuid::now_v7();
    let incoming = Incoming {
        method: &parts.method,
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        source_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_default(),
        strip_authorization: carries_platform_key,
    };
    let called = triggers::call(&state.invocations, routed, incoming, invocation_id, started)
        .await
        .map_err(|error| match error {
            CallError::FunctionNotFound(_) => ApiError::RouteNotFound(routed.path.to_owned()),
            other => other.into(),
        })?;
    let mut response = route_response(called, entry);
    if let Ok(value) = HeaderValue::from_str(&invocation_id.to_string()) {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    Ok(response)
}

/// Whether the caller may call the route: with `http_auth: "key"`, an `invoke` key of the
/// route's namespace (then `true`: `Authorization` carries a platform key); with `"none"`
/// anyone, and whether `Authorization` looks like a platform key all the same.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    entry: &RouteEntry,
) -> Result<bool, ApiError> {
    match entry.auth {
        HttpAuth::Key => {
            let principal = Principal::from_headers(state, headers).await?;
            principal.require(Scope::Invoke)?;
            if principal.namespace != entry.namespace {
                return Err(ApiError::Forbidden(
                    "this key's namespace does not own this route".into(),
                ));
            }
            Ok(true)
        }
        HttpAuth::None => Ok(is_platform_credential(state, headers)),
    }
}

/// The answer a call through a route gets: what a successful result asks for (its status,
/// headers and body), else the call's failure, whole to a keyed route and only its status,
/// code and id to a public one.
fn route_response(called: Called, entry: &RouteEntry) -> Response {
    let detail = match entry.auth {
        HttpAuth::Key => Detail::Full,
        HttpAuth::None => Detail::Public,
    };
    let answer = match &called.outcome {
        Ok(reply) if reply.status == ReplyStatus::Success => answer_from_result(&reply.result),
        _ => return called_response(called, detail),
    };
    match answer {
        Ok(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(why) => {
            tracing::info!(invocation_id = %called.invocation_id, function = %entry.name, %why, "function answered an invalid HTTP response");
            ApiError::InvalidResponse(match detail {
                Detail::Full => why,
                Detail::Public => "the function's answer is not a valid HTTP response".into(),
            })
            .into_response()
        }
    }
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
            .key_cache
            .as_ref()
            .is_some_and(|keys| keys.is_admin_hash(&hash)),
    }
}
