//! The api over HTTP: requests with the key as a bearer token, answers as JSON, and the api's
//! `{"detail", "code"}` errors (and an api that does not answer) as [`CliError`]s.

use crate::config::Target;
use crate::error::{CliError, CliResult};
use serde_json::Value;
use std::time::Duration;
use ureq::http::{self, StatusCode};

/// How long a connection may take to open; requests themselves may run long (builds, calls).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a function's result is at most 6 MiB, a build log 256 KiB).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// A response whose body is still to be read (streams).
pub type Response = http::Response<ureq::Body>;

/// An answer the api gave, whatever its status.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// The api at one URL, as one key.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    pub target: Target,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> CliResult<Client> {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .tls_config(tls)
            .user_agent(concat!("faas-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { agent, target })
    }

    /// The full URL of api path `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.target.url, path)
    }

    /// `method path` with the key, `headers` and a JSON `body`: the response of any status
    /// but 401, or why there was none.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> CliResult<Response> {
        let url = self.url(path);
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(key) = &self.target.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let built = |error: http::Error| CliError::Usage(format!("{url}: {error}"));
        let sent = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(body).expect("JSON values serialize"))
                    .map_err(built)?,
            ),
            None => self.agent.run(request.body(()).map_err(built)?),
        };
        let mut response = sent.map_err(|error| CliError::Unreachable {
            url: url.clone(),
            reason: describe(&error),
        })?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let body = read_json(&url, &mut response).unwrap_or(Value::Null);
            return Err(self.unauthorized(&body));
        }
        Ok(response)
    }

    /// `method path` with a JSON `body`, the answer read as JSON whatever its status; only a
    /// 401 and an api that does not answer (or not in JSON) are errors here.
    pub fn answer(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Answer> {
        let mut response = self.send(method, path, &[], body)?;
        let body = read_json(&self.url(path), &mut response)?;
        Ok(Answer {
            status: response.status(),
            body,
        })
    }

    /// `method path` with a JSON `body`: its JSON answer if it succeeded (2xx), else the
    /// api's error.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Value> {
        let answer = self.answer(method, path, body)?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(api_error(answer.status, &answer.body))
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> CliResult<Value> {
        self.json("GET", path, None)
    }

    /// `method path` with a JSON `body`.
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> CliResult<Value> {
        self.json(method, path, Some(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> CliResult<Value> {
        self.json("DELETE", path, None)
    }

    fn unauthorized(&self, body: &Value) -> CliError {
        let detail =
            body.get("detail")
                .and_then(Value::as_str)
                .unwrap_or(if self.target.key.is_none() {
                    "no key given"
                } else {
                    "unknown key"
                });
        CliError::Unauthorized {
            url: self.target.url.clone(),
            detail: detail.to_owned(),
        }
    }
}

/// A response's body as JSON (`null` when empty).
pub fn read_json(url: &str, response: &mut Response) -> CliResult<Value> {
    let status = response.status();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|error| CliError::Unreachable {
            url: url.to_owned(),
            reason: describe(&error),
        })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|_| CliError::Protocol {
        url: url.to_owned(),
        reason: format!(
            "HTTP {status} with a body that is not JSON: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    })
}

/// The api's `{"detail", "code"}` error from an answer.
pub fn api_error(status: StatusCode, body: &Value) -> CliError {
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    CliError::Api {
        status: status.as_u16(),
        code: text("code").unwrap_or_else(|| "unknown".into()),
        detail: text("detail").unwrap_or_else(|| body.to_string()),
    }
}

/// A transport error in words.
fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) => format!("connection failed ({io})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Timeout(which) => format!("timed out ({which})"),
        other => other.to_string(),
    }
}

/// Characters left as they are in a query value or a path segment (RFC 3986's unreserved).
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` escaped as a query value.
pub fn query_value(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

/// `text` escaped as one path segment.
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_apis_error_body_becomes_its_code_and_detail() {
        let error = api_error(
            StatusCode::NOT_FOUND,
            &json!({"detail": "function x not found", "code": "function_not_found"}),
        );
        assert_eq!(
            error.to_string(),
            "function x not found (function_not_found, HTTP 404)"
        );
        let odd = api_error(StatusCode::BAD_GATEWAY, &json!({"message": "?"}));
        assert!(odd.to_string().contains("unknown"), "{odd}");
    }

    #[test]
    fn query_values_and_path_segments_are_escaped() {
        assert_eq!(query_value("a b&c"), "a%20b%26c");
        assert_eq!(
            query_value("2026-01-01T00:00:00+00:00"),
            "2026-01-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(path_segment("hello"), "hello");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
