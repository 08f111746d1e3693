//! The api over HTTP: requests with the key as a bearer token, answers as JSON, and the api's
//! `{"detail", "code"}` errors (and an api that does not answer) as [`CliError`]s.

use crate::config::Target;
use crate::error::{CliError, CliResult};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// How long a connection may take to open; requests themselves may run long (builds, calls).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer the api gave, whatever its status.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// The api at one URL, as one key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub target: Target,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> CliResult<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("faas-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::Usage(format!("cannot set up HTTP: {error}")))?;
        Ok(Client { http, target })
    }

    /// The full URL of api path `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.target.url, path)
    }

    /// A request to `path` with the key, if any.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.target.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends `request` and reads the answer as JSON, whatever its status; only a 401 and an
    /// api that does not answer (or not in JSON) are errors here.
    pub async fn answer(&self, request: reqwest::RequestBuilder) -> CliResult<Answer> {
        let response = self.send(request).await?;
        let status = response.status();
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| CliError::Unreachable {
                url: url.clone(),
                reason: describe(&error),
            })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| CliError::Protocol {
                url: url.clone(),
                reason: format!(
                    "HTTP {status} with a body that is not JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            })?
        };
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(&body));
        }
        Ok(Answer { status, body })
    }

    /// Sends `request`: the response of any status but 401, or why there was none.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> CliResult<reqwest::Response> {
        let request = request
            .build()
            .map_err(|error| CliError::Usage(error.to_string()))?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|error| CliError::Unreachable {
                url,
                reason: describe(&error),
            })?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            return Err(self.unauthorized(&body));
        }
        Ok(response)
    }

    /// Sends `request` and returns its JSON body if it succeeded (2xx), else the api's error.
    pub async fn json(&self, request: reqwest::RequestBuilder) -> CliResult<Value> {
        let answer = self.answer(request).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(api_error(answer.status, &answer.body))
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.json(self.request(Method::GET, path)).await
    }

    /// `method path` with a JSON `body`.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> CliResult<Value> {
        self.json(self.request(method, path).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.json(self.request(Method::DELETE, path)).await
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

/// The api's `{"detail", "code"}` error from an answer.
pub fn api_error(status: StatusCode, body: &Value) -> CliError {
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    CliError::Api {
        status: status.as_u16(),
        code: text("code").unwrap_or_else(|| "unknown".into()),
        detail: text("detail").unwrap_or_else(|| body.to_string()),
    }
}

/// A transport error in words: the innermost cause says most (connection refused, DNS).
fn describe(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let inner = cause.to_string();
    if error.is_timeout() {
        format!("timed out ({inner})")
    } else if error.is_connect() {
        format!("connection failed ({inner})")
    } else {
        inner
    }
}

/// `text` with the characters a query value may not hold escaped.
pub fn query_value(text: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid URL");
    url.query_pairs_mut().append_pair("v", text);
    url.query().unwrap_or("v=")[2..].to_owned()
}

/// `text` escaped as one path segment.
pub fn path_segment(text: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a valid URL");
    url.path_segments_mut()
        .expect("http URLs have segments")
        .push(text);
    url.path()[1..].to_owned()
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
        assert_eq!(query_value("a b&c"), "a+b%26c");
        assert_eq!(
            query_value("2026-01-01T00:00:00+00:00"),
            "2026-01-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(path_segment("hello"), "hello");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
