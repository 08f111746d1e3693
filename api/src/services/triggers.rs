//! The HTTP trigger: which function's route a request to the functions' origin reaches (found in
//! this replica's route table, with no query), whether the api answers it itself (a CORS
//! preflight) or why no route answers it, pure over a snapshot of the table; then the call of
//! the route's function with the API Gateway event made of the request.

use crate::domain::http_trigger::{
    self, Cors, HTTP_METHODS, RequestFacts, RouteEntry, build_event,
};
use crate::services::route_table::Routes;
use crate::services::{Call, CallError, Called, Invocations, Trigger, runtime_for};
use axum::http::{HeaderMap, Method};
use common::RawValue;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Why no route answers a request.
#[derive(Debug, thiserror::Error)]
pub enum RouteMiss {
    /// Not a method any route may answer (TRACE, CONNECT, extensions): 405, allowing every
    /// method a route may answer.
    #[error("{method} is not one of the methods routes answer ({})", allowed.join(", "))]
    MethodNotAllowed {
        method: String,
        allowed: Vec<String>,
    },
    /// No function's route matches; the path as requested.
    #[error("no function answers {0}")]
    NotFound(String),
}

/// Where a request goes.
#[derive(Debug)]
pub enum Routed<'a> {
    /// A CORS preflight of a route with `cors`: answered 204 with these headers, without its
    /// function.
    Preflight(HeaderMap),
    /// A call of the route's function.
    Call(RouteCall<'a>),
}

/// A request that calls a route's function.
#[derive(Debug)]
pub struct RouteCall<'a> {
    /// The request's path, as it came (not decoded).
    pub path: &'a str,
    pub entry: Arc<RouteEntry>,
    /// The path's parameters, percent-decoded, by name.
    pub params: Vec<(&'a str, String)>,
}

impl RouteCall<'_> {
    /// 405 unless the route's `http_methods` (all of them when unset) hold `method`.
    pub fn check_method(&self, method: &Method) -> Result<(), RouteMiss> {
        match &self.entry.methods {
            Some(methods) if !methods.iter().any(|m| m == method.as_str()) => {
                Err(RouteMiss::MethodNotAllowed {
                    method: method.to_string(),
                    allowed: methods.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// What of the request a route's event is made of, besides the route itself.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The caller's address, the event's `requestContext.http.sourceIp`.
    pub source_ip: String,
    /// Leave `Authorization` out of the event: it carries a key of the platform, which the
    /// function must never see.
    pub strip_authorization: bool,
}

/// Runs the function of `routed` with the API Gateway event made of `incoming`, as call
/// `invocation_id` (the event's `requestId`). The function is the one the route table names:
/// one deleted, renamed or moved to another route since the table was loaded is
/// `FunctionNotFound` (the function cache hears of a change as soon as the table does, and is
/// dropped by the replica that made it before it answers).
pub async fn call(
    invocations: &Invocations,
    routed: &RouteCall<'_>,
    incoming: Incoming<'_>,
    invocation_id: Uuid,
    started: Instant,
) -> Result<Called, CallError> {
    let entry = &routed.entry;
    let function = invocations
        .find(&entry.namespace, entry.name.clone())
        .await?;
    if function.id != entry.function_id || function.route != entry.route {
        return Err(CallError::FunctionNotFound(entry.name.clone()));
    }
    let event = build_event(&RequestFacts {
        method: incoming.method,
        raw_path: routed.path,
        raw_query: incoming.query,
        headers: incoming.headers,
        body: incoming.body,
        route: &entry.route,
        any_method: entry.methods.is_none(),
        path_params: &routed.params,
        source_ip: incoming.source_ip,
        request_id: invocation_id.to_string(),
        namespace: &entry.namespace,
        time_epoch_ms: common::now_unix_ms(),
        strip_authorization: incoming.strip_authorization,
    });
    let event = RawValue::from_string(event).expect("the event is JSON");
    invocations
        .call(Call {
            function: &function,
            runtime: runtime_for(&function, None),
            event,
            invocation_id,
            trigger: Trigger::Http,
            attempt: 1,
            started,
        })
        .await
}

/// Routes a request for `path` with `method` and `headers` through `routes`, the table of
/// every function's route.
pub fn route<'a>(
    routes: &'a Routes,
    method: &Method,
    headers: &HeaderMap,
    path: &'a str,
) -> Result<Routed<'a>, RouteMiss> {
    if !HTTP_METHODS.contains(&method.as_str()) {
        return Err(RouteMiss::MethodNotAllowed {
            method: method.to_string(),
            allowed: http_trigger::all_methods(),
        });
    }
    let Some(found) = routes.find(path) else {
        return Err(RouteMiss::NotFound(path.to_owned()));
    };
    let entry = found.value.clone();
    if let Some(cors) = &entry.cors
        && Cors::is_preflight(method, headers)
    {
        return Ok(Routed::Preflight(
            cors.preflight_headers(headers, &entry.allowed_methods()),
        ));
    }
    Ok(Routed::Call(RouteCall {
        path,
        entry,
        params: found.params,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::http_trigger::{HttpAuth, RoutePattern};
    use axum::http::{HeaderValue, header};

    fn entry(route: &str, cors: Option<Cors>) -> Arc<RouteEntry> {
        Arc::new(RouteEntry {
            function_id: 7,
            namespace: "default".into(),
            name: "f".into(),
            route: route.into(),
            methods: Some(vec!["GET".into()]),
            auth: HttpAuth::Key,
            cors,
        })
    }

    fn table(entries: Vec<Arc<RouteEntry>>) -> Routes {
        let mut routes = Routes::default();
        for entry in entries {
            let pattern = RoutePattern::parse(&entry.route).unwrap();
            routes.insert(pattern, entry).unwrap();
        }
        routes
    }

    fn cors() -> Cors {
        Cors {
            allow_origins: vec!["https://app.example.com".into()],
            allow_methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: 0,
            allow_credentials: false,
        }
    }

    fn preflight_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com"),
        );
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        headers
    }

    #[test]
    fn a_path_reaches_its_route_with_its_parameters() {
        let routes = table(vec![entry("/users/{id}", None)]);
        let routed = route(&routes, &Method::GET, &HeaderMap::new(), "/users/4%202");
        let Ok(Routed::Call(call)) = routed else {
            panic!("{routed:?}")
        };
        assert_eq!(call.path, "/users/4%202");
        assert_eq!(call.entry.function_id, 7);
        assert_eq!(call.params, vec![("id", "4 2".to_owned())]);
    }

    #[test]
    fn an_unmatched_path_names_itself() {
        let routes = table(vec![entry("/users/{id}", None)]);
        for (path, named) in [("/nobody", "/nobody"), ("/users/1/2", "/users/1/2")] {
            let missed = route(&routes, &Method::GET, &HeaderMap::new(), path).unwrap_err();
            assert!(
                matches!(&missed, RouteMiss::NotFound(full) if full == named),
                "{missed:?}"
            );
        }
    }

    #[test]
    fn a_method_no_route_answers_is_refused_before_any_lookup() {
        let routes = table(vec![entry("/a", None)]);
        let trace = Method::from_bytes(b"TRACE").unwrap();
        let missed = route(&routes, &trace, &HeaderMap::new(), "/a").unwrap_err();
        let RouteMiss::MethodNotAllowed { method, allowed } = missed else {
            panic!("{missed:?}")
        };
        assert_eq!(method, "TRACE");
        assert_eq!(allowed, http_trigger::all_methods());
    }

    #[test]
    fn only_a_route_with_cors_answers_a_preflight_itself() {
        let routes = table(vec![entry("/open", Some(cors())), entry("/closed", None)]);
        let options = Method::OPTIONS;
        let routed = route(&routes, &options, &preflight_headers(), "/open");
        let Ok(Routed::Preflight(answer)) = routed else {
            panic!("{routed:?}")
        };
        assert!(
            answer.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{answer:?}"
        );
        // Without cors the OPTIONS request is the function's (which refuses it, or not).
        let routed = route(&routes, &options, &preflight_headers(), "/closed");
        assert!(matches!(routed, Ok(Routed::Call(_))), "{routed:?}");
        // Not a preflight: no Access-Control-Request-Method.
        let routed = route(&routes, &options, &HeaderMap::new(), "/open");
        assert!(matches!(routed, Ok(Routed::Call(_))), "{routed:?}");
    }

    #[test]
    fn a_route_answers_only_its_methods_and_every_method_when_it_names_none() {
        let routes = table(vec![entry("/shop/{item}", None)]);
        let Ok(Routed::Call(call)) = route(&routes, &Method::GET, &HeaderMap::new(), "/shop/42")
        else {
            panic!("routed to the function");
        };
        assert!(call.check_method(&Method::GET).is_ok());
        match call.check_method(&Method::POST) {
            Err(RouteMiss::MethodNotAllowed { method, allowed }) => {
                assert_eq!(method, "POST");
                assert_eq!(allowed, vec!["GET".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        let mut any = Arc::try_unwrap(entry("/shop/{item}", None)).expect("one owner");
        any.methods = None;
        let call = RouteCall {
            entry: Arc::new(any),
            ..call
        };
        for method in [Method::POST, Method::DELETE, Method::PATCH] {
            assert!(call.check_method(&method).is_ok(), "{method}");
        }
    }
}
