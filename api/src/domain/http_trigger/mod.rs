//! HTTP triggers: every function answers at its `route` on the functions' own origin.
//!
//! `pattern` parses routes and matches paths against them (most specific first); `crate::services::route_table`
//! keeps every function's route in memory on each replica, reloaded when a function changes
//! (the events exchange), so a request makes no query to find its function; `event` turns a request
//! into an API Gateway HTTP API (payload 2.0) event and the handler's result into the answer;
//! `cors` answers browsers. The handler itself is `routes::triggers`.

mod cors;
mod event;
mod pattern;

pub use crate::domain::wire::HTTP_METHODS;
pub use cors::Cors;
pub use event::{RequestFacts, answer_from_result, build_event};
pub use pattern::{RouteMatcher, RoutePattern};

use serde::{Deserialize, Serialize};

/// Who may call a function's route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    /// An `invoke` key of the function's namespace (`Authorization: Bearer …`).
    #[default]
    Key,
    /// Anyone: a public endpoint, like a Lambda function URL with auth type NONE.
    None,
}

impl HttpAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpAuth::Key => "key",
            HttpAuth::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<HttpAuth> {
        match text {
            "key" => Some(HttpAuth::Key),
            "none" => Some(HttpAuth::None),
            _ => None,
        }
    }
}

/// What a route leads to.
#[derive(Debug)]
pub struct RouteEntry {
    pub function_id: i64,
    pub namespace: String,
    pub name: String,
    pub route: String,
    /// `None`: every method.
    pub methods: Option<Vec<String>>,
    pub auth: HttpAuth,
    pub cors: Option<Cors>,
}

impl RouteEntry {
    /// The methods the route answers, for `Allow` and CORS.
    pub fn allowed_methods(&self) -> Vec<String> {
        match &self.methods {
            Some(methods) => methods.clone(),
            None => HTTP_METHODS.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

/// [`HTTP_METHODS`], owned: what a route without `http_methods` answers.
pub fn all_methods() -> Vec<String> {
    HTTP_METHODS.iter().map(|m| (*m).to_owned()).collect()
}

/// `http_methods` as a client wrote them, checked: each one of [`HTTP_METHODS`] (upper case,
/// as the document's enum says), none twice.
pub fn validate_methods(methods: Vec<String>) -> Result<Vec<String>, String> {
    if methods.is_empty() {
        return Err(
            "http_methods must list at least one method; leave it out (or null) for all of them"
                .into(),
        );
    }
    let mut checked: Vec<String> = Vec::with_capacity(methods.len());
    for method in methods {
        if !HTTP_METHODS.contains(&method.as_str()) {
            return Err(format!(
                "http_methods: {method:?} is not one of {} (upper case)",
                HTTP_METHODS.join(", ")
            ));
        }
        if !checked.contains(&method) {
            checked.push(method);
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_known_upper_case_and_unique() {
        assert_eq!(
            validate_methods(vec!["GET".into(), "POST".into(), "GET".into()]),
            Ok(vec!["GET".to_owned(), "POST".to_owned()])
        );
        assert!(
            validate_methods(vec!["get".into()])
                .unwrap_err()
                .contains("upper case")
        );
        assert!(
            validate_methods(vec![])
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            validate_methods(vec!["TRACE".into()])
                .unwrap_err()
                .contains("not one of")
        );
        assert!(HttpAuth::parse("none") == Some(HttpAuth::None) && HttpAuth::parse("x").is_none());
    }
}
