//! A function's CORS settings, checked when it is saved, and the headers the api answers with
//! for it, preflight included, without calling the function. Pure: no I/O.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde::{Deserialize, Serialize};

/// The longest `max_age` accepted: a day (browsers cap it lower still).
const MAX_AGE_LIMIT: i64 = 86_400;

/// An HTTP token (RFC 9110), what a header name is: as the document's pattern says.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
/// Entries per list at most.
const MAX_ENTRIES: usize = 100;

/// `cors` of a function, as a client sets it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed to read the answers (`https://app.example.com`, no path), or `*` for
    /// any: 1 to 100.
    #[schema(schema_with = crate::domain::wire::cors_origins_schema)]
    pub allow_origins: Vec<String>,
    /// Methods a preflight allows (upper case, or `*`); empty: the function's `http_methods`.
    #[serde(default)]
    #[schema(schema_with = crate::domain::wire::cors_methods_schema)]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight allows; `*` allows whatever the browser asks for.
    #[serde(default)]
    #[schema(schema_with = crate::domain::wire::cors_headers_schema)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser's script may read.
    #[serde(default)]
    #[schema(schema_with = crate::domain::wire::cors_headers_schema)]
    pub expose_headers: Vec<String>,
    /// Seconds a browser may keep a preflight's answer: 0 to 86400.
    #[serde(default, deserialize_with = "crate::domain::wire::whole_number")]
    #[schema(minimum = 0, maximum = 86400)]
    pub max_age: i64,
    /// Whether the browser may send cookies and credentials, to the origins listed by name:
    /// `*` never gets them (browsers refuse credentials with a wildcard origin).
    #[serde(default)]
    pub allow_credentials: bool,
}

impl Cors {
    /// The settings, checked; the text says what is wrong. The OpenAPI document states the
    /// same rules (`wire::cors_*_schema`).
    pub fn validate(self) -> Result<Cors, String> {
        if self.allow_origins.is_empty() {
            return Err("cors.allow_origins must list at least one origin, or \"*\"".into());
        }
        for (name, list) in [
            ("allow_origins", &self.allow_origins),
            ("allow_methods", &self.allow_methods),
            ("allow_headers", &self.allow_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            if list.len() > MAX_ENTRIES {
                return Err(format!("cors.{name} holds more than {MAX_ENTRIES} entries"));
            }
        }
        for origin in &self.allow_origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = origin == "*"
                || host.is_some_and(|host| {
                    !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
                });
            if !ok {
                return Err(format!(
                    "cors.allow_origins entries are \"*\" or scheme://host[:port] with no path; got {origin:?}"
                ));
            }
        }
        for method in &self.allow_methods {
            if method != "*" && !super::HTTP_METHODS.contains(&method.as_str()) {
                return Err(format!(
                    "cors.allow_methods entries are \"*\" or one of {}; got {method:?}",
                    super::HTTP_METHODS.join(", ")
                ));
            }
        }
        for header_name in self.allow_headers.iter().chain(&self.expose_headers) {
            if header_name != "*" && !is_token(header_name) {
                return Err(format!("cors: {header_name:?} is not a header name"));
            }
        }
        if !(0..=MAX_AGE_LIMIT).contains(&self.max_age) {
            return Err(format!(
                "cors.max_age must be from 0 to {MAX_AGE_LIMIT} seconds; got {}",
                self.max_age
            ));
        }
        Ok(self)
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if allowed,
    /// and whether that origin was named (only a named one gets credentials).
    fn allowed_origin(&self, origin: &HeaderValue) -> Option<(HeaderValue, bool)> {
        let origin_text = origin.to_str().ok()?;
        if self
            .allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin_text))
        {
            Some((origin.clone(), true))
        } else if self.allow_origins.iter().any(|o| o == "*") {
            Some((HeaderValue::from_static("*"), false))
        } else {
            None
        }
    }

    /// Whether the request is a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), which the api answers itself.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The headers of a preflight's answer (204): none but `Vary` when the origin is not
    /// allowed, so that the browser refuses the call. `methods` are the function's own, used
    /// when `allow_methods` is empty.
    pub fn preflight_headers(&self, request: &HeaderMap, methods: &[String]) -> HeaderMap {
        let mut answer = HeaderMap::new();
        answer.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some((allow_origin, named)) = request
            .get(header::ORIGIN)
            .and_then(|origin| self.allowed_origin(origin))
        else {
            return answer;
        };
        answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        let allow_methods = if self.allow_methods.is_empty() {
            methods.join(", ")
        } else {
            self.allow_methods.join(", ")
        };
        if let Ok(value) = HeaderValue::from_str(&allow_methods) {
            answer.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        let allow_headers = if self.allow_headers.iter().any(|h| h == "*") {
            request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
        } else if self.allow_headers.is_empty() {
            None
        } else {
            HeaderValue::from_str(&self.allow_headers.join(", ")).ok()
        };
        if let Some(value) = allow_headers {
            answer.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if self.max_age > 0 {
            answer.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.into());
        }
        if self.allow_credentials && named {
            answer.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        answer
    }

    /// Adds what a browser needs to read an answer to a request from an allowed origin (the
    /// function's own CORS headers give way).
    pub fn apply(&self, request: &HeaderMap, answer: &mut HeaderMap) {
        answer.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some((allow_origin, named)) = request
            .get(header::ORIGIN)
            .and_then(|origin| self.allowed_origin(origin))
        else {
            return;
        };
        answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if !self.expose_headers.is_empty()
            && let Ok(value) = HeaderValue::from_str(&self.expose_headers.join(", "))
        {
            answer.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
        }
        if self.allow_credentials && named {
            answer.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_methods: vec![],
            allow_headers: vec![],
            expose_headers: vec![],
            max_age: 0,
            allow_credentials: false,
        }
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn settings_are_checked() {
        assert!(cors(&["*"]).validate().is_ok());
        assert!(
            cors(&["https://app.example.com", "http://localhost:3000"])
                .validate()
                .is_ok()
        );
        for (bad, why) in [
            (cors(&[]), "at least one"),
            (cors(&["app.example.com"]), "scheme://host"),
            (cors(&["https://a.com/path"]), "scheme://host"),
            (cors(&["https://"]), "scheme://host"),
            (
                Cors {
                    max_age: 90_000,
                    ..cors(&["*"])
                },
                "max_age",
            ),
            (
                Cors {
                    max_age: -1,
                    ..cors(&["*"])
                },
                "max_age",
            ),
            (
                Cors {
                    allow_methods: vec!["GE T".into()],
                    ..cors(&["*"])
                },
                "allow_methods",
            ),
            (
                Cors {
                    allow_headers: vec!["x y".into()],
                    ..cors(&["*"])
                },
                "not a header",
            ),
        ] {
            let error = bad.validate().unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        let methods = Cors {
            allow_methods: vec!["get".into()],
            ..cors(&["*"])
        };
        assert!(methods.validate().unwrap_err().contains("allow_methods"));
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_the_allowances() {
        let cors = Cors {
            allow_headers: vec!["*".into()],
            max_age: 600,
            allow_credentials: true,
            ..cors(&["https://app.example.com"])
        };
        let asked = request(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type, x-token"),
        ]);
        assert!(Cors::is_preflight(&Method::OPTIONS, &asked));
        assert!(!Cors::is_preflight(&Method::GET, &asked));
        let answer = cors.preflight_headers(&asked, &["GET".into(), "PUT".into()]);
        assert_eq!(
            answer["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(answer["access-control-allow-methods"], "GET, PUT");
        assert_eq!(
            answer["access-control-allow-headers"],
            "content-type, x-token"
        );
        assert_eq!(answer["access-control-max-age"], "600");
        assert_eq!(answer["access-control-allow-credentials"], "true");
        assert_eq!(answer["vary"], "Origin");
    }

    #[test]
    fn another_origin_gets_no_allowance() {
        let cors = cors(&["https://app.example.com"]);
        let asked = request(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ]);
        let answer = cors.preflight_headers(&asked, &["POST".into()]);
        assert!(!answer.contains_key("access-control-allow-origin"));
        let mut actual = HeaderMap::new();
        cors.apply(&asked, &mut actual);
        assert!(!actual.contains_key("access-control-allow-origin"));
        assert_eq!(actual["vary"], "Origin");
    }

    #[test]
    fn a_wildcard_answers_star_and_exposes_headers() {
        let cors = Cors {
            expose_headers: vec!["x-total".into()],
            ..cors(&["*"])
        };
        let mut answer = HeaderMap::new();
        answer.insert(
            "access-control-allow-origin",
            HeaderValue::from_static("https://x"),
        );
        cors.apply(&request(&[("origin", "https://any.example")]), &mut answer);
        assert_eq!(answer["access-control-allow-origin"], "*");
        assert_eq!(answer["access-control-expose-headers"], "x-total");
        assert!(!answer.contains_key("access-control-allow-credentials"));
    }
}
