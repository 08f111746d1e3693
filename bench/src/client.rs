//! The api as the benchmark sees it: create, list and delete functions, make and revoke keys,
//! call functions (through `/execute`, their HTTP trigger or `/execute_async`) over one
//! keep-alive HTTP client, timing each call from the client's side, and read invocations
//! (`/invocations/`). With a key, every request to the api carries `Authorization: Bearer <key>` (requests
//! to other URLs, the workers' metrics, never do).

use crate::config::Runtime;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The handler every benchmark function runs.
pub const HANDLER: &str = "def handler(event, context):\n    return {\"ok\": True}";

/// The body of every invocation through `/execute`.
const EVENT_BODY: &str = r#"{"event": {}}"#;

/// The body of every call of an HTTP trigger: the event `/execute` is sent, as the request's
/// own body (the function finds it, as a string, in the payload's `body`).
const ROUTE_BODY: &str = "{}";

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `POST /execute/{name}` on docker, `/execute_gvisor/{name}` on gvisor, with
    /// `{"event": {}}`; the answer wraps the result.
    Execute { name: String, runtime: Runtime },
    /// `POST` to an HTTP trigger's whole path (`/fn/...`) with `{}`; the answer is the result.
    Route { path: String },
    /// `POST /execute_async/{name}` with `{"event": {}}`; the answer is a 202 with the
    /// invocation's id (the function runs later, on its own runtime).
    Async { name: String },
}

impl Target {
    /// `/execute/{name}` on `runtime`.
    pub fn execute(name: &str, runtime: Runtime) -> Self {
        Target::Execute {
            name: name.to_owned(),
            runtime,
        }
    }
}

/// How an answer carries the handler's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `{result, cold_start, duration_ms, timing, ...}`, as `/execute` answers.
    Wrapped,
    /// The result itself, as an HTTP trigger answers a result without `statusCode`.
    Bare,
    /// A 202 `{invocation_id, status_url}`, as `/execute_async` answers an accepted call.
    Accepted,
}

/// The server's breakdown of a call, when the answer carries `timing`.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub queue_ms: Option<f64>,
    pub init_ms: Option<f64>,
    pub run_ms: Option<f64>,
}

/// One invocation as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    /// HTTP status; 0 when no HTTP answer came (connection error, client timeout).
    pub status: u16,
    /// From sending the request to having read the whole answer.
    pub latency_ms: f64,
    pub cold_start: Option<bool>,
    /// The api's own `duration_ms`.
    pub duration_ms: Option<f64>,
    pub timing: Option<Timing>,
    /// `code` of a failed call: the answer's, `-` when it had none, `transport` or
    /// `client_timeout` when no answer came, `wrong_result` for a 200 without `{"ok": true}`
    /// (or a 202 without an `invocation_id`).
    pub code: Option<String>,
    /// `detail` of an error answer.
    pub detail: Option<String>,
    /// The `invocation_id` of an accepted async call.
    pub invocation_id: Option<String>,
}

impl CallOutcome {
    /// A 200 carrying the handler's `{"ok": true}`, or the 202 of an accepted async call.
    pub fn is_ok(&self) -> bool {
        matches!(self.status, 200 | 202) && self.code.is_none()
    }

    /// `status code: detail`, for a progress line about a failed call.
    pub fn describe(&self) -> String {
        format!(
            "{} {}: {}",
            self.status,
            self.code.as_deref().unwrap_or("-"),
            self.detail.as_deref().unwrap_or("")
        )
    }
}

/// A function the benchmark created.
#[derive(Debug, Clone)]
pub struct Function {
    pub id: i64,
    pub name: String,
}

/// A key `POST /keys/` made.
#[derive(Debug, Clone)]
pub struct MadeKey {
    /// As `DELETE /keys/{id}` takes it.
    pub id: String,
    pub key: String,
}

/// What `GET /whoami` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Whoami {
    /// 200: the caller's namespace and key id (`None` on an api with `AUTH=disabled`).
    Caller {
        namespace: String,
        key_id: Option<String>,
    },
    /// 401: the api wants a key, or rejected the one sent.
    Unauthorized,
    /// Anything else (an api without `/whoami` answers 404).
    Other(u16),
}

/// Client of one api.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl Api {
    /// A client keeping up to `pool` idle connections to `base` (`http://host:port`), sending
    /// `key` as a bearer token on every request to the api when one is given.
    pub fn new(
        base: &str,
        pool: usize,
        timeout: Duration,
        key: Option<&str>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.filter(|key| !key.is_empty()).map(str::to_owned),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether requests carry a key.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// A request to the api's `path` (which starts with `/`), with the key when there is one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// `GET /whoami`: who the api takes this client for.
    pub async fn whoami(&self) -> anyhow::Result<Whoami> {
        let response = self
            .request(reqwest::Method::GET, "/whoami")
            .send()
            .await
            .with_context(|| format!("GET {}/whoami", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok(parse_whoami(status, &text))
    }

    /// `POST /keys/` of a key with `scopes` in the caller's namespace.
    pub async fn create_key(&self, scopes: &[&str], description: &str) -> anyhow::Result<MadeKey> {
        let response = self
            .request(reqwest::Method::POST, "/keys/")
            .json(&json!({ "scopes": scopes, "description": description }))
            .send()
            .await
            .context("POST /keys/")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("POST /keys/ answered {status}: {}", truncate(&text, 300));
        }
        parse_made_key(&text)
    }

    /// `DELETE /keys/{id}`; a 404 counts as revoked.
    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::DELETE, &format!("/keys/{id}"))
            .send()
            .await
            .with_context(|| format!("DELETE /keys/{id}"))?;
        let status = response.status();
        if !status.is_success() && status.as_u16() != 404 {
            let text = response.text().await.unwrap_or_default();
            bail!(
                "DELETE /keys/{id} answered {status}: {}",
                truncate(&text, 300)
            );
        }
        Ok(())
    }

    /// `GET /readyz` answered 200.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .with_context(|| format!("the api at {} does not answer", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("GET /readyz answered {status}: {body}");
        }
        Ok(())
    }

    /// The body of a `GET url` that answers 200, else `None` (for the workers' metrics).
    pub async fn get_text(&self, url: &str) -> Option<String> {
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// `POST /functions/` with the benchmark handler; the route is `/` + name.
    pub async fn create_function(
        &self,
        name: &str,
        runtime: Runtime,
        timeout_secs: u32,
    ) -> anyhow::Result<Function> {
        self.create_function_with_code(name, runtime, HANDLER, timeout_secs)
            .await
    }

    /// `POST /functions/` of a Python function running `code`; the route is `/` + name.
    pub async fn create_function_with_code(
        &self,
        name: &str,
        runtime: Runtime,
        code: &str,
        timeout_secs: u32,
    ) -> anyhow::Result<Function> {
        let route = format!("/{name}");
        self.create_function_at(name, &route, runtime, code, timeout_secs)
            .await
    }

    /// `POST /functions/` of a Python function running `code` at `route`, with
    /// `http_auth: "key"` (the default, said outright because scenario 8 depends on it: its
    /// HTTP trigger must check the key as `/execute` does).
    pub async fn create_function_at(
        &self,
        name: &str,
        route: &str,
        runtime: Runtime,
        code: &str,
        timeout_secs: u32,
    ) -> anyhow::Result<Function> {
        let body = json!({
            "name": name,
            "route": route,
            "language": "python",
            "code": code,
            "timeout": timeout_secs,
            "runtime": runtime.as_str(),
            "http_auth": "key",
        });
        let response = self
            .request(reqwest::Method::POST, "/functions/")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST /functions/ ({name})"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("POST /functions/ ({name}) answered {status}: {text}");
        }
        let value: Value = serde_json::from_str(&text).with_context(|| {
            format!("POST /functions/ answered a body that is not JSON: {text}")
        })?;
        let id = value["id"]
            .as_i64()
            .with_context(|| format!("POST /functions/ answered no numeric id: {text}"))?;
        Ok(Function {
            id,
            name: name.to_owned(),
        })
    }

    /// `POST /functions/` (with `?wait=true` when `wait`: the answer comes once the function's
    /// build has ended) of the JSON `body`; the function and the whole answer.
    pub async fn create_function_json(
        &self,
        body: &Value,
        wait: bool,
    ) -> anyhow::Result<(Function, Value)> {
        let name = body["name"].as_str().unwrap_or("?").to_owned();
        let path = if wait {
            "/functions/?wait=true"
        } else {
            "/functions/"
        };
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path} ({name})"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("POST {path} ({name}) answered {status}: {text}");
        }
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("POST {path} answered a body that is not JSON: {text}"))?;
        let id = value["id"]
            .as_i64()
            .with_context(|| format!("POST {path} answered no numeric id: {text}"))?;
        Ok((Function { id, name }, value))
    }

    /// Every function, through `GET /functions/?skip=..&limit=1000`.
    pub async fn list_functions(&self) -> anyhow::Result<Vec<Function>> {
        const PAGE: usize = 1000;
        let mut all = Vec::new();
        let mut skip = 0;
        loop {
            let response = self
                .request(
                    reqwest::Method::GET,
                    &format!("/functions/?skip={skip}&limit={PAGE}"),
                )
                .send()
                .await
                .context("GET /functions/")?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!("GET /functions/ answered {status}: {text}");
            }
            let page: Vec<Value> = serde_json::from_str(&text)
                .with_context(|| format!("GET /functions/ answered no array: {text}"))?;
            let len = page.len();
            skip += len;
            all.extend(page.into_iter().filter_map(|f| {
                Some(Function {
                    id: f["id"].as_i64()?,
                    name: f["name"].as_str()?.to_owned(),
                })
            }));
            if len < PAGE {
                return Ok(all);
            }
        }
    }

    /// `DELETE /functions/{id}`; a 404 counts as deleted.
    pub async fn delete_function(&self, id: i64) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::DELETE, &format!("/functions/{id}"))
            .send()
            .await
            .with_context(|| format!("DELETE /functions/{id}"))?;
        let status = response.status();
        if !status.is_success() && status.as_u16() != 404 {
            let text = response.text().await.unwrap_or_default();
            bail!("DELETE /functions/{id} answered {status}: {text}");
        }
        Ok(())
    }

    /// One invocation: `/execute/{name}` on docker, `/execute_gvisor/{name}` on gvisor.
    pub async fn invoke(&self, name: &str, runtime: Runtime) -> CallOutcome {
        self.invoke_within(name, runtime, None).await
    }

    /// One call of `target`.
    pub async fn call(&self, target: &Target) -> CallOutcome {
        match target {
            Target::Execute { name, runtime } => self.invoke(name, *runtime).await,
            Target::Route { path } => self.timed(path, ROUTE_BODY, None, Answer::Bare).await,
            Target::Async { name } => {
                let path = format!("/execute_async/{name}");
                self.timed(&path, EVENT_BODY, None, Answer::Accepted).await
            }
        }
    }

    /// `GET /invocations/{id}`: the invocation as the api shows it.
    pub async fn invocation(&self, id: &str) -> anyhow::Result<Value> {
        self.get_json(&format!("/invocations/{id}")).await
    }

    /// `GET /invocations/?function=..&status=..&limit=..`: the function's invocations with that
    /// status, newest first (`limit` at most 100).
    pub async fn list_invocations(
        &self,
        function: &str,
        status: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<Value>> {
        let mut url = reqwest::Url::parse("http://query.invalid/invocations/")
            .expect("a constant URL parses");
        url.query_pairs_mut()
            .append_pair("function", function)
            .append_pair("status", status)
            .append_pair("limit", &limit.to_string());
        let path = format!("/invocations/?{}", url.query().unwrap_or_default());
        let value = self.get_json(&path).await?;
        match value {
            Value::Array(items) => Ok(items),
            other => bail!(
                "GET /invocations/ answered no array: {}",
                truncate(&other.to_string(), 300)
            ),
        }
    }

    /// `GET path`, whose 200 answer is JSON.
    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() != 200 {
            bail!("GET {path} answered {status}: {}", truncate(&text, 300));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("GET {path} answered a body that is not JSON: {text:.100}"))
    }

    /// [`Api::invoke`] with its own client timeout instead of the client's, for functions
    /// that are meant to run longer than `--request-timeout-secs`.
    pub async fn invoke_within(
        &self,
        name: &str,
        runtime: Runtime,
        timeout: Option<Duration>,
    ) -> CallOutcome {
        let path = match runtime {
            Runtime::Docker => "execute",
            Runtime::Gvisor => "execute_gvisor",
        };
        self.timed(
            &format!("/{path}/{name}"),
            EVENT_BODY,
            timeout,
            Answer::Wrapped,
        )
        .await
    }

    /// `POST path` with the JSON `body`, timed from sending to having read the whole answer.
    async fn timed(
        &self,
        path: &str,
        body: &'static str,
        timeout: Option<Duration>,
        kind: Answer,
    ) -> CallOutcome {
        let mut request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let started = Instant::now();
        let sent = request.send().await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok((status, body)) => parse_answer(status, &body, latency_ms, kind),
            Err(error) => CallOutcome {
                status: 0,
                latency_ms,
                code: Some(if error.is_timeout() {
                    "client_timeout".to_owned()
                } else {
                    "transport".to_owned()
                }),
                detail: Some(error_chain(&error)),
                ..CallOutcome::default()
            },
        }
    }
}

/// The error with its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a `GET /whoami` answer.
fn parse_whoami(status: u16, body: &str) -> Whoami {
    match status {
        200 => {
            let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            match value["namespace"].as_str() {
                Some(namespace) => Whoami::Caller {
                    namespace: namespace.to_owned(),
                    key_id: value["key_id"].as_str().map(str::to_owned),
                },
                None => Whoami::Other(status),
            }
        }
        401 => Whoami::Unauthorized,
        _ => Whoami::Other(status),
    }
}

/// Reads a `POST /keys/` answer: the key's id and, shown this once, the key.
fn parse_made_key(body: &str) -> anyhow::Result<MadeKey> {
    let value: Value = serde_json::from_str(body)
        .with_context(|| format!("POST /keys/ answered a body that is not JSON: {body:.100}"))?;
    let (Some(id), Some(key)) = (value["id"].as_str(), value["key"].as_str()) else {
        bail!("POST /keys/ answered no id and key");
    };
    Ok(MadeKey {
        id: id.to_owned(),
        key: key.to_owned(),
    })
}

/// Reads what matters out of an invocation answer.
fn parse_answer(status: u16, body: &[u8], latency_ms: f64, kind: Answer) -> CallOutcome {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut outcome = CallOutcome {
        status,
        latency_ms,
        cold_start: value["cold_start"].as_bool(),
        duration_ms: value["duration_ms"].as_f64(),
        timing: value
            .get("timing")
            .filter(|t| t.is_object())
            .map(|t| Timing {
                queue_ms: t["queue_ms"].as_f64(),
                init_ms: t["init_ms"].as_f64(),
                run_ms: t["run_ms"].as_f64(),
            }),
        code: None,
        detail: None,
        invocation_id: None,
    };
    // An accepted async call answers 202 (a 200 would be a repeated `Idempotency-Key`, which
    // the benchmark never sends); every other call answers 200.
    let expected = if kind == Answer::Accepted { 202 } else { 200 };
    if status != expected {
        outcome.code = Some(value["code"].as_str().unwrap_or("-").to_owned());
        outcome.detail = Some(match value["detail"].as_str() {
            Some(detail) => detail.to_owned(),
            None => truncate(&String::from_utf8_lossy(body), 300),
        });
        return outcome;
    }
    let right = match kind {
        Answer::Wrapped => value["result"] == json!({"ok": true}),
        Answer::Bare => value == json!({"ok": true}),
        Answer::Accepted => {
            outcome.invocation_id = value["invocation_id"].as_str().map(str::to_owned);
            outcome.invocation_id.is_some()
        }
    };
    if !right {
        // A success that does not carry the handler's answer (or the invocation's id) is a
        // failure of the platform.
        outcome.code = Some("wrong_result".to_owned());
        outcome.detail = Some(truncate(&String::from_utf8_lossy(body), 300));
    }
    outcome
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_success_with_and_without_timing() {
        let body = br#"{"result":{"ok":true},"duration_ms":4.5,"cold_start":false,"timing":{"queue_ms":1,"init_ms":0,"run_ms":0.5}}"#;
        let outcome = parse_answer(200, body, 5.0, Answer::Wrapped);
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.cold_start, Some(false));
        assert_eq!(outcome.duration_ms, Some(4.5));
        assert_eq!(outcome.timing.unwrap().run_ms, Some(0.5));
        let plain = parse_answer(
            200,
            br#"{"result":{"ok":true},"cold_start":true}"#,
            5.0,
            Answer::Wrapped,
        );
        assert!(plain.timing.is_none());
        assert_eq!(plain.cold_start, Some(true));
    }

    #[test]
    fn reads_errors_and_wrong_results() {
        let outcome = parse_answer(
            503,
            br#"{"detail":"no worker","code":"no_worker"}"#,
            1.0,
            Answer::Wrapped,
        );
        assert_eq!(outcome.code.as_deref(), Some("no_worker"));
        assert_eq!(outcome.detail.as_deref(), Some("no worker"));
        let wrong = parse_answer(200, br#"{"result":null}"#, 1.0, Answer::Wrapped);
        assert!(!wrong.is_ok());
        assert_eq!(wrong.code.as_deref(), Some("wrong_result"));
        let html = parse_answer(502, b"<html>bad gateway</html>", 1.0, Answer::Bare);
        assert_eq!(html.code.as_deref(), Some("-"));
    }

    #[test]
    fn reads_an_accepted_async_call_as_its_invocation_id() {
        let accepted = parse_answer(
            202,
            br#"{"invocation_id":"0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b","status_url":"/invocations/0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"}"#,
            1.5,
            Answer::Accepted,
        );
        assert!(accepted.is_ok());
        assert_eq!(
            accepted.invocation_id.as_deref(),
            Some("0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
        );
        let repeated = parse_answer(
            200,
            br#"{"invocation_id":"x","status_url":"/invocations/x"}"#,
            1.0,
            Answer::Accepted,
        );
        assert!(!repeated.is_ok(), "only a 202 is a new invocation");
        let no_id = parse_answer(202, br#"{}"#, 1.0, Answer::Accepted);
        assert_eq!(no_id.code.as_deref(), Some("wrong_result"));
        let refused = parse_answer(
            503,
            br#"{"detail":"broker down","code":"broker_unavailable"}"#,
            1.0,
            Answer::Accepted,
        );
        assert_eq!(refused.code.as_deref(), Some("broker_unavailable"));
        assert!(!refused.is_ok());
        // /execute never answers 202: it is not a success there.
        assert!(!parse_answer(202, br#"{"result":{"ok":true}}"#, 1.0, Answer::Wrapped).is_ok());
    }

    #[test]
    fn reads_a_route_answer_as_the_result_itself() {
        let ok = parse_answer(200, br#"{"ok": true}"#, 2.0, Answer::Bare);
        assert!(ok.is_ok());
        assert_eq!(ok.cold_start, None, "an HTTP trigger does not say");
        let wrapped = parse_answer(200, br#"{"result":{"ok":true}}"#, 2.0, Answer::Bare);
        assert_eq!(wrapped.code.as_deref(), Some("wrong_result"));
        let bare = parse_answer(200, br#"{"ok": true}"#, 2.0, Answer::Wrapped);
        assert_eq!(bare.code.as_deref(), Some("wrong_result"));
        let missing = parse_answer(
            404,
            br#"{"detail":"no route /fn/x","code":"route_not_found"}"#,
            1.0,
            Answer::Bare,
        );
        assert_eq!(missing.code.as_deref(), Some("route_not_found"));
        assert_eq!(
            Target::execute("f", Runtime::Docker),
            Target::Execute {
                name: "f".into(),
                runtime: Runtime::Docker
            }
        );
    }

    #[test]
    fn reads_whoami_with_and_without_auth() {
        assert_eq!(
            parse_whoami(
                200,
                r#"{"namespace":"default","scopes":["admin"],"key_id":"ADMIN_KEY"}"#
            ),
            Whoami::Caller {
                namespace: "default".into(),
                key_id: Some("ADMIN_KEY".into())
            }
        );
        assert_eq!(
            parse_whoami(
                200,
                r#"{"namespace":"default","scopes":["admin"],"key_id":null}"#
            ),
            Whoami::Caller {
                namespace: "default".into(),
                key_id: None
            }
        );
        assert_eq!(
            parse_whoami(401, r#"{"detail":"no Authorization header"}"#),
            Whoami::Unauthorized
        );
        assert_eq!(parse_whoami(404, ""), Whoami::Other(404));
        assert_eq!(parse_whoami(200, "not json"), Whoami::Other(200));
    }

    #[test]
    fn reads_a_made_key_without_echoing_it_in_errors() {
        let made = parse_made_key(
            r#"{"id":"0123456789abcdef0123456789abcdef","namespace":"default","scopes":["invoke"],"key":"faas_0123456789abcdef0123456789abcdef_c2VjcmV0"}"#,
        )
        .unwrap();
        assert_eq!(made.id, "0123456789abcdef0123456789abcdef");
        assert!(made.key.starts_with("faas_0123"));
        let error = parse_made_key(r#"{"key":"faas_x_secret"}"#).unwrap_err();
        assert!(!format!("{error:#}").contains("secret"), "{error:#}");
    }

    #[test]
    fn the_key_is_kept_out_of_debug_output() {
        let api = Api::new(
            "http://127.0.0.1:1/",
            1,
            Duration::from_secs(1),
            Some("s3cret-admin-key"),
        )
        .unwrap();
        assert!(api.has_key());
        assert_eq!(api.base(), "http://127.0.0.1:1");
        assert!(!format!("{api:?}").contains("s3cret"));
        let none = Api::new("http://127.0.0.1:1", 1, Duration::from_secs(1), Some("")).unwrap();
        assert!(!none.has_key());
    }
}
