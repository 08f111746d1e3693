//! Namespaces (what admin keys manage): created with a checked name, runtimes and concurrency
//! limit; deleted (never `default`) with everything of theirs: functions, keys, records, async
//! invocations and leases in one transaction, then the caches of every replica told, and the
//! artifacts no other namespace uses deleted.

use crate::domain::auth::DEFAULT_NAMESPACE;
use crate::domain::quota::{Limits, QuotaDefaults, Quotas, QuotasPatch};
use crate::services::functions::Functions;
use crate::services::keys::Keys;
use crate::store::{self, DbError, Namespace, NamespaceChange};
use common::Runtime;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

const MAX_CONCURRENCY_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;

/// The body of `POST /namespaces/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "team-a", "allowed_runtimes": ["gvisor"], "max_concurrency": 50})))]
pub struct NamespaceInput {
    /// A DNS label: 1 to 63 lower-case letters, digits and inner hyphens.
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    name: String,
    /// Default: both. `["gvisor"]` makes the namespace untrusted: its functions never run
    /// under runc, `/execute` included.
    #[serde(default)]
    #[schema(min_items = 1)]
    allowed_runtimes: Option<Vec<Runtime>>,
    /// Calls of all its functions at once, across the cluster; absent or null: no limit.
    #[serde(
        default,
        deserialize_with = "crate::domain::wire::optional_whole_number"
    )]
    #[schema(minimum = 1, maximum = 100000)]
    max_concurrency: Option<i64>,
    /// Its own quotas; absent or null: the platform's defaults.
    #[serde(default, deserialize_with = "crate::domain::wire::optional_object")]
    quotas: Option<QuotasPatch>,
}

/// The body of `PATCH /namespaces/{name}`: JSON merge semantics, an absent field unchanged.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"quotas": {"functions": 10, "result_bytes": null}})))]
pub struct NamespacePatch {
    /// Quotas to change: a number sets one, null goes back to the platform's default.
    #[serde(default, deserialize_with = "crate::domain::wire::optional_object")]
    quotas: Option<QuotasPatch>,
}

/// A namespace as the API shows it: as stored, and the quotas in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "name": "team-a", "allowed_runtimes": ["gvisor"], "max_concurrency": 50,
    "created_at": "2026-11-27T16:00:00Z",
    "quotas": {"functions": 50, "keys": null, "pending_async": null, "artifact_bytes": null,
               "result_bytes": null},
    "quotas_in_force": {"functions": 50, "keys": 100, "pending_async": 10000,
                        "artifact_bytes": 10737418240_i64, "result_bytes": 5368709120_i64}
})))]
pub struct NamespaceView {
    #[serde(flatten)]
    pub namespace: Namespace,
    /// Each quota in force: its own, else the platform's (`pending_async` never above
    /// `MAX_PENDING_ASYNC`).
    pub quotas_in_force: Limits,
}

/// Why a namespace was not created or deleted.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The input breaks a rule (422).
    #[error("{0}")]
    Invalid(String),
    /// The name is taken, or it is `default` (409).
    #[error("{0}")]
    Conflict(String),
    #[error("namespace {0} not found")]
    NotFound(String),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

/// The namespaces service.
#[derive(Clone)]
pub struct Namespaces {
    db: Pool,
    /// To forget a deleted namespace's keys.
    keys: Keys,
    /// To tell every cache, route table and worker of a deleted namespace's functions.
    functions: Functions,
    /// The platform's quotas (settings), for namespaces that set none.
    defaults: QuotaDefaults,
}

impl Namespaces {
    pub fn new(db: Pool, keys: Keys, functions: Functions, defaults: QuotaDefaults) -> Self {
        Namespaces {
            db,
            keys,
            functions,
            defaults,
        }
    }

    /// Creates a namespace.
    pub async fn create(&self, input: NamespaceInput) -> Result<NamespaceView, NamespaceError> {
        let checked = check_new_namespace(input)?;
        let namespace = store::insert_namespace(
            &self.db,
            &checked.name,
            &checked.allowed_runtimes,
            checked.max_concurrency,
            &checked.quotas,
        )
        .await
        .map_err(|change| refused(change, &checked.name))?;
        tracing::info!(namespace = %namespace.name, "namespace created");
        Ok(self.view(namespace))
    }

    /// Changes namespace `name`'s quotas.
    pub async fn update(
        &self,
        name: &str,
        patch: NamespacePatch,
    ) -> Result<NamespaceView, NamespaceError> {
        let patch = patch.quotas.unwrap_or_default();
        Quotas::default()
            .merged(&patch)
            .check()
            .map_err(NamespaceError::Invalid)?;
        let namespace = store::update_quotas(&self.db, name, &patch)
            .await
            .map_err(|change| refused(change, name))?;
        tracing::info!(namespace = %name, quotas = ?namespace.quotas, "namespace quotas changed");
        Ok(self.view(namespace))
    }

    /// Every namespace.
    pub async fn list(&self) -> Result<Vec<NamespaceView>, DbError> {
        let namespaces = store::list_namespaces(&self.db).await?;
        Ok(namespaces.into_iter().map(|n| self.view(n)).collect())
    }

    fn view(&self, namespace: Namespace) -> NamespaceView {
        NamespaceView {
            quotas_in_force: namespace.quotas.in_force(&self.defaults),
            namespace,
        }
    }

    /// Deletes namespace `name` and everything of it (see `store::delete_namespace`). Async
    /// jobs of it still in the queues find no row and are dropped; a call in flight records
    /// nothing (its record names the deleted incarnation).
    pub async fn delete(&self, name: &str) -> Result<(), NamespaceError> {
        check_deletable(name)?;
        let deleted = store::delete_namespace(&self.db, name)
            .await
            .map_err(|change| refused(change, name))?;
        // Its keys went with it (ON DELETE CASCADE): no replica may trust them any more.
        self.keys.forget(None, Some(name)).await;
        for (id, function) in &deleted.functions {
            self.functions
                .announce(*id, name, None, Some(function))
                .await;
        }
        match store::delete_unshared(&self.db, &deleted.build_keys, &deleted.digests).await {
            Ok((builds, artifacts)) => {
                tracing::info!(namespace = %name, builds, artifacts, "unshared builds and artifacts deleted")
            }
            // Named again by a save meanwhile: the retention pass collects what is left.
            Err(error) => {
                tracing::warn!(namespace = %name, %error, "unshared artifacts not deleted; the retention pass will")
            }
        }
        tracing::info!(namespace = %name, functions = deleted.functions.len(), "namespace deleted");
        Ok(())
    }
}

/// A new namespace, checked: its runtimes sorted, without repeats.
#[derive(Debug, PartialEq)]
struct CheckedNamespace {
    name: String,
    allowed_runtimes: Vec<Runtime>,
    max_concurrency: Option<i32>,
    quotas: Quotas,
}

/// The input checked (name, runtimes, limit, in that order); absent runtimes are all of them.
fn check_new_namespace(input: NamespaceInput) -> Result<CheckedNamespace, NamespaceError> {
    if !valid_name(&input.name) {
        return Err(NamespaceError::Invalid(format!(
            "a namespace name is 1 to 63 lower-case letters, digits and inner hyphens; got {:?}",
            input.name
        )));
    }
    let mut runtimes = input
        .allowed_runtimes
        .unwrap_or_else(|| Runtime::ALL.to_vec());
    runtimes.sort_by_key(|runtime| runtime.as_str());
    runtimes.dedup();
    if runtimes.is_empty() {
        return Err(NamespaceError::Invalid(
            "allowed_runtimes must name docker, gvisor or both".into(),
        ));
    }
    if let Some(limit) = input.max_concurrency
        && !MAX_CONCURRENCY_RANGE.contains(&limit)
    {
        return Err(NamespaceError::Invalid(format!(
            "max_concurrency must be from {} to {}, or null for no limit; got {limit}",
            MAX_CONCURRENCY_RANGE.start(),
            MAX_CONCURRENCY_RANGE.end()
        )));
    }
    let quotas = Quotas::default().merged(&input.quotas.unwrap_or_default());
    quotas.check().map_err(NamespaceError::Invalid)?;
    Ok(CheckedNamespace {
        quotas,
        name: input.name,
        allowed_runtimes: runtimes,
        // Within MAX_CONCURRENCY_RANGE: it fits.
        max_concurrency: input.max_concurrency.map(|limit| limit as i32),
    })
}

/// A DNS label: lower-case letters, digits and inner hyphens, 1 to 63 characters (it ends up
/// in metric labels, and may one day in host names).
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn check_deletable(name: &str) -> Result<(), NamespaceError> {
    if name == DEFAULT_NAMESPACE {
        return Err(NamespaceError::Conflict(
            "namespace default cannot be deleted: it holds the bootstrap admin key and, with auth disabled, every function".into(),
        ));
    }
    Ok(())
}

/// What the store's refusal to create or delete namespace `name` means to the caller.
fn refused(change: NamespaceChange, name: &str) -> NamespaceError {
    match change {
        NamespaceChange::Taken => {
            NamespaceError::Conflict(format!("namespace {name:?} already exists"))
        }
        NamespaceChange::NotFound => NamespaceError::NotFound(name.to_owned()),
        NamespaceChange::Db(error) => NamespaceError::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, runtimes: Option<&[Runtime]>, limit: Option<i64>) -> NamespaceInput {
        NamespaceInput {
            name: name.into(),
            allowed_runtimes: runtimes.map(<[Runtime]>::to_vec),
            max_concurrency: limit,
            quotas: None,
        }
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        for good in ["a", "team-a", "t1", &"x".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Team", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_namespace_gets_every_runtime_by_default_sorted_without_repeats() {
        let checked = check_new_namespace(input("team", None, None)).unwrap();
        assert_eq!(
            checked.allowed_runtimes,
            vec![Runtime::Docker, Runtime::Gvisor]
        );
        assert_eq!(checked.max_concurrency, None);
        let twice = [Runtime::Gvisor, Runtime::Docker, Runtime::Gvisor];
        let checked = check_new_namespace(input("team", Some(&twice), Some(100_000))).unwrap();
        assert_eq!(
            checked,
            CheckedNamespace {
                name: "team".into(),
                allowed_runtimes: vec![Runtime::Docker, Runtime::Gvisor],
                max_concurrency: Some(100_000),
                quotas: Quotas::default(),
            }
        );
    }

    #[test]
    fn a_bad_name_no_runtime_or_a_limit_out_of_range_is_invalid() {
        for bad in [
            input("Team", None, None),
            input("team", Some(&[]), None),
            input("team", None, Some(0)),
            input("team", None, Some(100_001)),
            NamespaceInput {
                quotas: Some(QuotasPatch {
                    keys: Some(Some(-1)),
                    ..QuotasPatch::default()
                }),
                ..input("team", None, None)
            },
        ] {
            let why = format!("{bad:?}");
            assert!(
                matches!(check_new_namespace(bad), Err(NamespaceError::Invalid(_))),
                "{why}"
            );
        }
    }

    #[test]
    fn default_is_never_deleted_and_refusals_name_the_namespace() {
        assert!(matches!(
            check_deletable(DEFAULT_NAMESPACE),
            Err(NamespaceError::Conflict(_))
        ));
        assert!(check_deletable("team").is_ok());
        let conflict = |change| matches!(refused(change, "t"), NamespaceError::Conflict(why) if why.contains("\"t\""));
        assert!(conflict(NamespaceChange::Taken));
        assert_eq!(
            refused(NamespaceChange::NotFound, "t").to_string(),
            "namespace t not found"
        );
    }
}
