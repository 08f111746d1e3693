//! Who the api takes the client for (`GET /whoami`), and the keys a run makes and revokes
//! (`/keys/`).

use super::{Api, truncate};
use anyhow::{Context, bail};
use serde_json::{Value, json};

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

impl Api {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
