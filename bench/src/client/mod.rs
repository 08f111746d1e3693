//! The api as the benchmark sees it: create, list and delete functions, make and revoke keys,
//! call functions (through `/execute`, their HTTP trigger or `/execute_async`) over one
//! keep-alive HTTP client, timing each call from the client's side, and read invocations
//! (`/invocations/`). With a key, every request to the api carries `Authorization: Bearer <key>` (requests
//! to other URLs, the workers' metrics, never do).
//!
//! `call` makes the calls and reads their answers, `functions` creates, lists and deletes
//! functions, `keys` asks `/whoami` and makes and revokes keys; the rest of the client is here.

mod call;
mod functions;
mod keys;

pub use call::{CallOutcome, Target, Timing};
pub use functions::Function;
pub use keys::{MadeKey, Whoami};

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::Duration;

/// The handler every benchmark function runs.
pub const HANDLER: &str = "def handler(event, context):\n    return {\"ok\": True}";

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
