//! What workers report about builds: one taking a build job ([`Builds::start`]), and how it
//! ended ([`Builds::finish`]): the functions that use the build are then announced, as a save
//! announces its function, and the builds held for their namespace's share are queued as
//! there is room. [`artifacts`] stores and serves the artifacts builds make.

pub mod artifacts;

use crate::services::Functions;
use crate::store::{self, BuildEnd, DbError, FinishError};
use common::ArtifactRef;
use deadpool_postgres::Pool;
use serde::Deserialize;
use uuid::Uuid;

/// The most of a build's log kept: its end.
const MAX_BUILD_LOG_BYTES: usize = 256 * 1024;

/// How a worker says a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishStatus {
    Ready,
    Failed,
}

/// The body of a worker's report that a build ended.
#[derive(Debug, Deserialize)]
pub struct FinishReport {
    /// The attempt the worker ran: a stale one is refused.
    attempt: Uuid,
    status: FinishStatus,
    /// The artifact's digest, when ready (uploaded first).
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    size_bytes: Option<i64>,
    #[serde(default)]
    log: String,
}

/// Why a worker's report about a build was refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A key or digest that is not one (422).
    #[error(transparent)]
    NotADigest(#[from] NotADigest),
    /// The attempt is not the running one, or the artifact of a ready build is missing (409).
    #[error("{0}")]
    Conflict(String),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

/// The builds service.
#[derive(Clone)]
pub struct Builds {
    db: Pool,
    /// To announce the functions a finished build changed.
    functions: Functions,
}

impl Builds {
    pub fn new(db: Pool, functions: Functions) -> Self {
        Builds { db, functions }
    }

    /// Worker `worker_id` takes attempt `attempt` of build `key`; false when the job is stale
    /// (another attempt replaced it, or the build ended) and the worker should drop it.
    pub async fn start(
        &self,
        key: &str,
        attempt: Uuid,
        worker_id: &str,
    ) -> Result<bool, BuildError> {
        check_hex("the build key", key)?;
        let proceed = store::start_build(&self.db, key, attempt, worker_id).await?;
        tracing::info!(build_key = %key, %attempt, worker = %worker_id, proceed, "build started");
        Ok(proceed)
    }

    /// Ends build `key` as `report` says and announces every function that uses it (a ready
    /// build's waiting versions now run); returns how many there are.
    pub async fn finish(&self, key: &str, report: FinishReport) -> Result<usize, BuildError> {
        check_hex("the build key", key)?;
        let end = build_end(&report)?;
        let log = stored_log(&report.log);
        let promoted = store::finish_build(&self.db, key, report.attempt, &end, &log)
            .await
            .map_err(refused)?;
        tracing::info!(build_key = %key, status = ?report.status, promoted = promoted.len(), "build finished");
        // Together: each announce waits for this replica's route table to be reloaded, and
        // their reloads coalesce into one or two rather than one per function.
        let announced = promoted.iter().map(|function| {
            self.functions.announce(
                function.function_id,
                &function.namespace,
                Some(function.version),
                Some(&function.name),
            )
        });
        futures_util::future::join_all(announced).await;
        // Its namespace has room for one more build now: a held one goes out at once rather
        // than at the next release pass. The build's end is stored whatever happens here.
        if let Err(error) = self.functions.release_held_builds().await {
            tracing::warn!(%error, "held builds not released after a build ended");
        }
        Ok(promoted.len())
    }
}

/// A build key, an artifact's digest or its SHA-256 that is not 64 lowercase hex digits;
/// `what` names it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 64 lowercase hex digits")]
pub struct NotADigest {
    /// What the value is (`the digest`, a header's name).
    pub what: &'static str,
}

/// Whether `value`, which `what` names, is a digest.
fn check_hex(what: &'static str, value: &str) -> Result<(), NotADigest> {
    if ArtifactRef::is_valid_digest(value) {
        Ok(())
    } else {
        Err(NotADigest { what })
    }
}

/// The end `report` describes: a ready build names its artifact's digest.
fn build_end(report: &FinishReport) -> Result<BuildEnd, BuildError> {
    Ok(match report.status {
        FinishStatus::Failed => BuildEnd::Failed,
        FinishStatus::Ready => {
            let digest = report.digest.clone().unwrap_or_default();
            check_hex("the digest", &digest)?;
            BuildEnd::Ready {
                digest,
                size_bytes: report.size_bytes.unwrap_or(0).max(0),
            }
        }
    })
}

/// The log as stored: it comes from a build of untrusted packages, so it is bounded (its end
/// is kept) and holds no NUL, which Postgres text cannot.
fn stored_log(log: &str) -> String {
    store::tail(log, MAX_BUILD_LOG_BYTES).replace('\0', "\u{fffd}")
}

fn refused(error: FinishError) -> BuildError {
    match error {
        FinishError::Db(error) => BuildError::Database(error),
        refused => BuildError::Conflict(refused.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: FinishStatus, digest: Option<&str>, size: Option<i64>) -> FinishReport {
        FinishReport {
            attempt: Uuid::nil(),
            status,
            digest: digest.map(str::to_owned),
            size_bytes: size,
            log: String::new(),
        }
    }

    #[test]
    fn digests_are_64_lowercase_hex_digits() {
        assert!(check_hex("the digest", &"0a".repeat(32)).is_ok());
        for bad in ["", "ab", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65)] {
            let refused = check_hex("the digest", bad).unwrap_err();
            assert_eq!(
                refused.to_string(),
                "the digest must be 64 lowercase hex digits",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_ready_build_needs_a_digest_and_never_has_a_negative_size() {
        let digest = "a".repeat(64);
        match build_end(&report(FinishStatus::Ready, Some(&digest), Some(-5))).unwrap() {
            BuildEnd::Ready {
                digest: got,
                size_bytes,
            } => {
                assert_eq!((got.as_str(), size_bytes), (digest.as_str(), 0));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            build_end(&report(FinishStatus::Ready, Some(&digest), None)).unwrap(),
            BuildEnd::Ready { size_bytes: 0, .. }
        ));
        for missing in [None, Some("short")] {
            assert!(matches!(
                build_end(&report(FinishStatus::Ready, missing, Some(1))),
                Err(BuildError::NotADigest(NotADigest { what: "the digest" }))
            ));
        }
        // A failed build names no artifact: whatever digest came is ignored.
        assert!(matches!(
            build_end(&report(FinishStatus::Failed, Some("junk"), None)).unwrap(),
            BuildEnd::Failed
        ));
    }

    #[test]
    fn a_report_reads_as_the_worker_sends_it() {
        let sent = serde_json::json!({
            "attempt": Uuid::nil(), "status": "ready", "digest": "a".repeat(64), "size_bytes": 7
        });
        let report: FinishReport = serde_json::from_value(sent).unwrap();
        assert_eq!(report.status, FinishStatus::Ready);
        assert_eq!((report.size_bytes, report.log.as_str()), (Some(7), ""));
        let unknown = serde_json::json!({"attempt": Uuid::nil(), "status": "done"});
        assert!(serde_json::from_value::<FinishReport>(unknown).is_err());
    }

    #[test]
    fn a_stored_log_keeps_its_end_without_nul() {
        assert_eq!(stored_log("a\0b"), "a\u{fffd}b");
        let long = format!("{}{}", "x".repeat(MAX_BUILD_LOG_BYTES), "end");
        let kept = stored_log(&long);
        assert_eq!(kept.len(), MAX_BUILD_LOG_BYTES);
        assert!(kept.ends_with("end"));
    }

    #[test]
    fn a_refused_report_is_a_conflict_that_says_why() {
        assert!(matches!(
            refused(FinishError::NotRunning("k".into())),
            BuildError::Conflict(why) if why == "no build k with that attempt is running"
        ));
        assert!(matches!(
            refused(FinishError::NoArtifact("d".into())),
            BuildError::Conflict(why) if why == "artifact d has not been uploaded"
        ));
        assert!(matches!(
            refused(FinishError::Db(DbError::Inconsistent("x"))),
            BuildError::Database(_)
        ));
    }
}
