//! The api's OpenAPI 3.1 document (`GET /openapi.json`), generated from the code's own types.
//!
//! Each handler carries a `#[utoipa::path]` attribute with its path, parameters, request body
//! and every status it can answer; the schemas of the bodies are derived (`ToSchema`) from the
//! structs the handlers read and write, so the document changes with them. [`ApiDoc`] lists
//! the handlers and adds what no handler knows by itself: the bearer scheme, the tags and the
//! document's description. The responses many operations share (a refused key, the api
//! unavailable, a refused body) are written once here, as [`utoipa::IntoResponses`] types that
//! the handlers' attributes name. Tests below check that every route the router serves is in
//! the document, and that every operation lists its errors and, unless public, the key.

pub mod docs;

use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::routes;
use serde_json::Value;
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The name of the bearer scheme in `components.securitySchemes`.
pub const BEARER: &str = "bearer";

/// The document: every operation of the api.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "faas",
        description = "A self-hosted Lambda: deploy Python and JavaScript functions and call them, \
each call in a sandboxed container (Docker or gVisor).\n\n\
**Keys.** Every operation but `/healthz`, `/readyz`, `/openapi.json` and `/docs` needs \
`Authorization: Bearer <key>`, a key `faas_<id>_<secret>` made by `POST /keys/` (or the \
operator's `ADMIN_KEY`). A key belongs to one namespace and carries scopes: `admin` \
(namespaces and keys of every namespace, everything in its own), `manage` (its namespace's \
functions), `invoke` (call them), `read` (read them and their invocation records). No key or a \
bad one: 401 `unauthorized`; a key without the scope: 403 `forbidden`; another namespace's \
function: 404, as if it did not exist. The description pages need no key: they describe the \
api and reveal nothing of what it holds.\n\n\
**Errors** are `{\"detail\": <sentence>, \"code\": <ErrorCode>}`; a failed call adds what is \
known of it (`invocation_id`, `logs`, `error`).\n\n\
**Two origins.** Everything here is served on the api's origin (`API_ADDR`, port 8000), except \
the HTTP trigger (`/{path}`, tag `http`): functions answer on an origin of their own \
(`FUNCTIONS_ADDR`, port 8080), since they may answer pages and set cookies."
    ),
    paths(
        routes::functions::create_function,
        routes::functions::list_functions,
        routes::functions::get_function,
        routes::functions::update_function,
        routes::functions::delete_function,
        routes::functions::get_function_build,
        routes::function_tests::get_function_tests,
        routes::function_tests::put_function_tests,
        routes::function_stats::get_function_stats,
        routes::invoke::execute_function,
        routes::invoke::execute_function_gvisor,
        routes::invoke::execute_function_async,
        routes::triggers::call_route,
        routes::metrics::list_invocations,
        routes::invocations::list_invocations,
        routes::invocations::get_invocation,
        routes::invocations::retry_invocation,
        routes::invocations::stream_invocations,
        routes::keys::create_key,
        routes::keys::list_keys,
        routes::keys::delete_key,
        routes::keys::get_whoami,
        routes::namespaces::create_namespace,
        routes::namespaces::list_namespaces,
        routes::namespaces::update_namespace,
        routes::namespaces::delete_namespace,
        routes::health::get_healthz,
        routes::health::get_readyz,
        docs::get_openapi,
        docs::get_docs,
        docs::get_swagger_ui_bundle,
        docs::get_swagger_ui_css,
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        crate::http::responses::Failure<'static>,
        routes::invoke::PublicFailure,
        crate::domain::stream::StreamedRecord
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "functions", description = "Functions of the key's namespace."),
        (name = "invocations", description = "Calling functions, and the records of the calls."),
        (name = "http", description = "HTTP triggers: functions called by plain HTTP on their routes."),
        (name = "keys", description = "API keys."),
        (name = "namespaces", description = "Namespaces (admin keys)."),
        (name = "health", description = "Probes; no key."),
        (name = "docs", description = "This document and its page; no key."),
    )
)]
pub struct ApiDoc;

/// The document as JSON text, made once.
pub fn json() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
        require_one_source(&mut document);
        serve_triggers_elsewhere(&mut document);
        document.to_string()
    });
    &DOCUMENT
}

/// A function's input takes exactly one of `code` and `code_zip` (a string each; null is
/// absent): a rule across two fields,
/// which utoipa's derive cannot state, added to the derived schema.
fn require_one_source(document: &mut Value) {
    let input = &mut document["components"]["schemas"]["FunctionInput"];
    assert!(input.is_object(), "FunctionInput is in the document");
    // Present and not null: a null source is as good as an absent one.
    input["oneOf"] = serde_json::json!([
        {"required": ["code"], "properties": {"code": {"type": "string"}}},
        {"required": ["code_zip"], "properties": {"code_zip": {"type": "string"}}},
    ]);
}

/// The path of the HTTP trigger's operation, on the functions' origin.
pub const TRIGGER_PATH: &str = "/{path}";

/// The HTTP trigger is served on the functions' own origin, not the api's: its path item names
/// that server (an OpenAPI 3.1 path-level `servers`), at its default port.
fn serve_triggers_elsewhere(document: &mut Value) {
    let item = &mut document["paths"][TRIGGER_PATH];
    assert!(
        item.is_object(),
        "the trigger's operation is in the document"
    );
    item["servers"] = serde_json::json!([{
        "url": "http://{host}:{port}",
        "description": "The functions' own origin (`FUNCTIONS_ADDR`, published as \
            `FUNCTIONS_PORT`): never the api's, so that a function's pages and cookies cannot \
            reach the api, `/docs` or the console.",
        "variables": {
            "host": {"default": "localhost"},
            "port": {"default": "8080"},
        },
    }]);
}

/// Adds the bearer scheme the operations' `security` name.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("faas_<id>_<secret>")
                    .description(Some(
                        "A key made by `POST /keys/` (`faas_` + 32 hex digits of id + `_` + \
                         the secret), or the operator's `ADMIN_KEY`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(json()).expect("the document is JSON")
    }

    /// The operations that need no key: they describe the api or probe it.
    const PUBLIC: [&str; 6] = [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
    ];

    const TRIGGER: &str = TRIGGER_PATH;

    /// A path item's operations, without its other fields (the trigger's `servers`).
    fn operations_of(item: &Value) -> impl Iterator<Item = (&String, &Value)> {
        item.as_object()
            .unwrap()
            .iter()
            .filter(|(key, _)| key.as_str() != "servers")
    }

    #[test]
    fn the_trigger_is_served_on_the_functions_origin() {
        let doc = document();
        let servers = doc["paths"][TRIGGER]["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0]["url"], "http://{host}:{port}");
        assert_eq!(servers[0]["variables"]["port"]["default"], "8080");
        assert!(
            !doc["paths"]
                .as_object()
                .unwrap()
                .keys()
                .any(|p| p.starts_with("/fn"))
        );
    }

    /// The paths the management router serves, read from the source that declares them, so
    /// that a route added without an entry in [`ApiDoc`] fails here. The trigger's, on the
    /// functions' origin, is checked on its own.
    fn router_paths() -> Vec<String> {
        let sources = [include_str!("../routes/mod.rs"), include_str!("docs.rs")];
        let mut paths = Vec::new();
        for source in sources {
            for piece in source.split(".route(").skip(1) {
                let literal = piece
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|rest| rest.split_once('"'))
                    .map(|(path, _)| path.to_owned());
                paths.push(literal.expect("a route's path is a string literal"));
            }
        }
        assert!(paths.len() >= 15, "found only {paths:?}");
        paths
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = document();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            doc["openapi"]
        );
        let paths = doc["paths"].as_object().unwrap();
        for path in router_paths() {
            assert!(
                paths.contains_key(&path),
                "{path} is served but not documented"
            );
        }
        for path in PUBLIC.into_iter().chain([TRIGGER]) {
            assert!(paths.contains_key(path), "{path}");
        }
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
    }

    #[test]
    fn every_operation_lists_its_errors_and_the_key_it_needs() {
        let doc = document();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations_of(item) {
                operations += 1;
                let what = format!("{method} {path}");
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|status| status.starts_with('2')),
                    "{what}: no success"
                );
                let security = operation.get("security").and_then(Value::as_array);
                if path == TRIGGER {
                    // A route's key is its own setting (`http_auth`): optional here.
                    assert_eq!(
                        security,
                        Some(&vec![
                            serde_json::json!({}),
                            serde_json::json!({BEARER: []})
                        ]),
                        "{what}"
                    );
                    for status in ["401", "403", "404", "405", "413", "502", "503", "504"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                    continue;
                }
                if PUBLIC.contains(&path.as_str()) {
                    // An empty requirement: no key.
                    assert_eq!(
                        security,
                        Some(&vec![serde_json::json!({})]),
                        "{what} is public"
                    );
                    continue;
                }
                assert_eq!(
                    security,
                    Some(&vec![serde_json::json!({BEARER: []})]),
                    "{what}: needs a key"
                );
                for status in ["401", "403", "503"] {
                    assert!(responses.contains_key(status), "{what}: no {status}");
                }
                if operation.get("requestBody").is_some() {
                    for status in ["408", "413", "422"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                }
                if path.contains('{') {
                    assert!(responses.contains_key("404"), "{what}: no 404");
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &response["content"]["application/json"]["schema"];
                        assert!(
                            schema.get("$ref").is_some(),
                            "{what} {status}: no error schema: {response}"
                        );
                    }
                }
            }
        }
        // 31, and the trigger's seven methods.
        assert_eq!(operations, 38);
    }

    /// Every JSON success body shows an example: in the response, on its schema, or on every
    /// one of its schema's properties.
    #[test]
    fn every_success_body_has_an_example() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations_of(item) {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let Some(content) = response["content"].get("application/json") else {
                        continue;
                    };
                    if !status.starts_with('2') || content.get("example").is_some() {
                        continue;
                    }
                    let schema = &content["schema"];
                    let target = schema
                        .get("$ref")
                        .or_else(|| schema["items"].get("$ref"))
                        .and_then(Value::as_str);
                    let Some(name) = target.and_then(|t| t.rsplit('/').next()) else {
                        continue; // the document itself: an example would be the document
                    };
                    let component = &schemas[name];
                    let by_property = component["properties"]
                        .as_object()
                        .is_some_and(|props| props.values().all(|p| p.get("examples").is_some()));
                    if component.get("examples").is_none() && !by_property {
                        missing.push(format!("{method} {path} {status}: {name}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "no example: {missing:#?}");
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, doc: &Value, seen: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.strip_prefix('#').expect("a local reference");
                        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let doc = document();
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
    }

    #[test]
    fn the_error_codes_are_the_codes_the_api_sends() {
        let doc = document();
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum")
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
        let sent: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(listed, sent);
    }

    #[test]
    fn every_failed_call_gets_a_documented_status() {
        use common::ReplyStatus;
        let doc = document();
        let execute = &doc["paths"]["/execute/{name}"]["post"]["responses"];
        let statuses = [
            ReplyStatus::Success,
            ReplyStatus::Error,
            ReplyStatus::InitError,
            ReplyStatus::Timeout,
            ReplyStatus::Oom,
            ReplyStatus::ResultTooLarge,
            ReplyStatus::Crashed,
            ReplyStatus::Expired,
        ];
        for status in statuses {
            // Exhaustive: a new reply status fails to compile here until it is listed above.
            match status {
                ReplyStatus::Success
                | ReplyStatus::Error
                | ReplyStatus::InitError
                | ReplyStatus::Timeout
                | ReplyStatus::Oom
                | ReplyStatus::ResultTooLarge
                | ReplyStatus::Crashed
                | ReplyStatus::Expired => {}
            }
            let reply = serde_json::from_value(serde_json::json!({
                "invocation_id": uuid::Uuid::nil(),
                "worker_id": "w",
                "status": status,
                "cold_start": false,
            }))
            .expect("a reply");
            let response =
                routes::invoke::reply_response(reply, 1.0, 5, routes::invoke::Detail::Full);
            let code = response.status().as_u16().to_string();
            assert!(
                execute.get(&code).is_some(),
                "{status:?} answers {code}, which /execute does not document"
            );
        }
    }
}
