//! The functions a run creates, lists and deletes (`/functions/`).

use super::{Api, HANDLER};
use crate::config::Runtime;
use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A function the benchmark created.
#[derive(Debug, Clone)]
pub struct Function {
    pub id: i64,
    pub name: String,
}

impl Api {
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
}
