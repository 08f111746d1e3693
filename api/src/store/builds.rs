//! Dependency builds and their artifacts: one build per build key (language, dependencies
//! text), reported on by the worker that runs it; artifacts stored in chunks of at most
//! [`CHUNK_BYTES`], written and read one chunk at a time.

use super::DbError;
use chrono::{DateTime, Utc};
use common::Language;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// The largest chunk of an artifact a row holds.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// How long a published build may stay pending or building before saving the function again
/// starts a new attempt: its job was lost (a purged queue, a worker that died); nor does its
/// namespace count it as under way any longer.
pub(crate) const STALE_BUILD: Duration = Duration::from_secs(15 * 60);

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Queued for a worker, or held for its namespace's share of builds (`log` says which
    /// limit: `BUILD_NAMESPACE_CONCURRENCY` or `BUILD_NAMESPACE_SECONDS_PER_HOUR`).
    Pending,
    /// A worker runs it.
    Building,
    /// Its artifact is stored; the functions that use it run.
    Ready,
    /// It failed; `log` says why. Saving the function again retries it.
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Pending => "pending",
            BuildStatus::Building => "building",
            BuildStatus::Ready => "ready",
            BuildStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(BuildStatus::Pending),
            "building" => Some(BuildStatus::Building),
            "ready" => Some(BuildStatus::Ready),
            "failed" => Some(BuildStatus::Failed),
            _ => None,
        }
    }

    /// True once the build has ended, well or not.
    pub fn is_final(self) -> bool {
        matches!(self, BuildStatus::Ready | BuildStatus::Failed)
    }
}

/// A function's build as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "status": "ready",
    "digest": "3f1c9a0d5e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
    "size_bytes": 1048576, "log": "pip 23.0.1 / Python 3.11.2\nSuccessfully installed six-1.16.0\n",
    "started_at": "2026-11-27T16:00:01Z", "finished_at": "2026-11-27T16:00:04Z"
})))]
pub struct Build {
    pub status: BuildStatus,
    /// The artifact's digest: SHA-256 of (language, build image id, dependencies text).
    pub digest: Option<String>,
    /// Bytes of the dependency tree, unpacked.
    pub size_bytes: Option<i64>,
    /// The build's output: in a function, its last 4 KiB; in `GET /functions/{id}/build`, all
    /// of it (at most 256 KiB, the end kept).
    pub log: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When its job was queued; `None` while it is held for its namespace's share.
    #[serde(skip)]
    pub published_at: Option<DateTime<Utc>>,
}

/// A build just asked for: where it is, and the attempt to claim when it is not queued yet.
#[derive(Debug, Clone)]
pub struct Requested {
    pub status: BuildStatus,
    /// `Some` when the build waits to be queued (this request (re)started it, or it is held
    /// for its namespace's share): the attempt to claim and publish a job for
    /// (`store::claim_build`).
    pub publish: Option<Uuid>,
}

/// Asks for the build of `key`, needed by a function of `namespace`: starts it (held, not yet
/// queued, charged to `namespace`) when there is none, or when the last one failed or went
/// stale; otherwise shares the one there is. Runs in the caller's transaction, so that the
/// function that names the build and the build appear together.
pub async fn request_build(
    client: &impl GenericClient,
    key: &str,
    language: Language,
    dependencies: &str,
    namespace: &str,
) -> Result<Requested, DbError> {
    let attempt = Uuid::now_v7();
    let stale = STALE_BUILD.as_secs_f64();
    // A held build (never published) is not stale however long it waits: the release pass
    // queues it.
    let restarted = client
        .query_opt(
            "INSERT INTO builds (key, language, dependencies, status, attempt, namespace)
             VALUES ($1, $2, $3, 'pending', $4, $6)
             ON CONFLICT (key) DO UPDATE SET status = 'pending', attempt = EXCLUDED.attempt,
                 namespace = EXCLUDED.namespace, published_at = NULL,
                 log = '', digest = NULL, size_bytes = NULL, worker_id = NULL,
                 created_at = now(), started_at = NULL, finished_at = NULL
             WHERE builds.status = 'failed'
                OR (builds.status IN ('pending', 'building')
                    AND builds.published_at < now() - make_interval(secs => $5))
             RETURNING status",
            &[
                &key,
                &language.as_str(),
                &dependencies,
                &attempt,
                &stale,
                &namespace,
            ],
        )
        .await?;
    if restarted.is_some() {
        return Ok(Requested {
            status: BuildStatus::Pending,
            publish: Some(attempt),
        });
    }
    let row = client
        .query_one(
            "SELECT status, attempt, published_at IS NULL AS held FROM builds WHERE key = $1",
            &[&key],
        )
        .await?;
    let status: String = row.try_get("status")?;
    let status = BuildStatus::parse(&status).unwrap_or(BuildStatus::Pending);
    // Held for another namespace's share: this namespace may queue it from its own.
    let held = status == BuildStatus::Pending && row.try_get::<_, bool>("held")?;
    Ok(Requested {
        status,
        publish: held.then(|| row.try_get("attempt")).transpose()?,
    })
}

/// Marks a build whose job could not be published as failed, with the reason as its log.
pub async fn fail_unpublished(
    pool: &Pool,
    key: &str,
    attempt: Uuid,
    why: &str,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE builds SET status = 'failed', log = $3, finished_at = now()
             WHERE key = $1 AND attempt = $2 AND status = 'pending'",
            &[&key, &attempt, &why],
        )
        .await?;
    Ok(())
}

/// A worker takes the build: true when it is this attempt's and not yet ended (a redelivered
/// job restarts it), false for a stale job the worker should drop.
pub async fn start_build(
    pool: &Pool,
    key: &str,
    attempt: Uuid,
    worker_id: &str,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let started = client
        .execute(
            "UPDATE builds SET status = 'building', started_at = now(), worker_id = $3
             WHERE key = $1 AND attempt = $2 AND status IN ('pending', 'building')",
            &[&key, &attempt, &worker_id],
        )
        .await?;
    Ok(started > 0)
}

/// A function whose build just ended: its caches must forget it.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub function_id: i64,
    pub namespace: String,
    pub name: String,
    pub version: i32,
}

/// How a build ended, as its worker reports it.
#[derive(Debug, Clone)]
pub enum BuildEnd {
    Ready { digest: String, size_bytes: i64 },
    Failed,
}

/// Why a build's report was refused.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("no build {0} with that attempt is running")]
    NotRunning(String),
    #[error("artifact {0} has not been uploaded")]
    NoArtifact(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Ends the build `key` (this attempt only) and returns the functions that use it, for
/// announcing. Ready: every function version that waited for it now runs (their `serving`
/// snapshot is dropped).
pub async fn finish_build(
    pool: &Pool,
    key: &str,
    attempt: Uuid,
    end: &BuildEnd,
    log: &str,
) -> Result<Vec<Promoted>, FinishError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let (status, digest, size) = match end {
        BuildEnd::Ready { digest, size_bytes } => {
            let stored = tx
                .query_opt("SELECT 1 FROM artifacts WHERE digest = $1", &[digest])
                .await
                .map_err(DbError::from)?;
            if stored.is_none() {
                return Err(FinishError::NoArtifact(digest.clone()));
            }
            ("ready", Some(digest.as_str()), Some(*size_bytes))
        }
        BuildEnd::Failed => ("failed", None, None),
    };
    let updated = tx
        .execute(
            "UPDATE builds SET status = $3, digest = $4, size_bytes = $5, log = $6,
                 finished_at = now(), started_at = coalesce(started_at, now())
             WHERE key = $1 AND attempt = $2 AND status IN ('pending', 'building')",
            &[&key, &attempt, &status, &digest, &size, &log],
        )
        .await
        .map_err(DbError::from)?;
    if updated == 0 {
        return Err(FinishError::NotRunning(key.to_owned()));
    }
    // Ready: the waiting versions run now. Either way the caches must see the new status, and
    // the workers hear the version that serves (so they retire nothing still in use).
    let sql = if matches!(end, BuildEnd::Ready { .. }) {
        "UPDATE functions SET serving = NULL WHERE build_key = $1
         RETURNING id, namespace, name, version"
    } else {
        "SELECT id, namespace, name,
                coalesce((serving->>'version')::int, version) AS version
         FROM functions WHERE build_key = $1"
    };
    let promoted = tx
        .query(sql, &[&key])
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|row| {
            Ok(Promoted {
                function_id: row.try_get("id")?,
                namespace: row.try_get("namespace")?,
                name: row.try_get("name")?,
                version: row.try_get("version")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(promoted)
}

/// The build of function `id` of `namespace`, full log included; `None` when the function does
/// not exist, `Some(None)` when it has no dependencies.
pub async fn get_function_build(
    pool: &Pool,
    namespace: &str,
    id: i64,
) -> Result<Option<Option<Build>>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT f.build_key, b.status AS build_status, b.digest AS build_digest,
                    b.size_bytes AS build_size, b.log AS build_log,
                    b.started_at AS build_started_at, b.finished_at AS build_finished_at,
                    b.published_at AS build_published_at
             FROM functions f LEFT JOIN builds b ON b.key = f.build_key
             WHERE f.id = $1 AND f.namespace = $2",
            &[&id, &namespace],
        )
        .await?;
    row.as_ref().map(Build::from_row).transpose()
}

impl Build {
    /// The build of a row that joined a function `f` with its build `b` as
    /// `f.build_key, b.status AS build_status, b.digest AS build_digest, b.size_bytes AS
    /// build_size, … AS build_log, b.started_at AS build_started_at, b.finished_at AS
    /// build_finished_at, b.published_at AS build_published_at`; `None` when the function has
    /// no dependencies.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Option<Build>, DbError> {
        let key: Option<String> = row.try_get("build_key")?;
        if key.is_none() {
            return Ok(None);
        }
        let status: String = row.try_get("build_status")?;
        Ok(Some(Build {
            status: BuildStatus::parse(&status).unwrap_or(BuildStatus::Pending),
            digest: row.try_get("build_digest")?,
            size_bytes: row.try_get("build_size")?,
            log: row.try_get("build_log")?,
            started_at: row.try_get("build_started_at")?,
            finished_at: row.try_get("build_finished_at")?,
            published_at: row.try_get("build_published_at")?,
        }))
    }

    /// Whether saving a function that names this build would start it again at `now`: it
    /// failed, or it was queued longer than [`STALE_BUILD`] ago and never ended (its job was
    /// lost). The same rule as [`request_build`]'s `WHERE`, which applies it when saving.
    pub fn restarts_on_save(&self, now: DateTime<Utc>) -> bool {
        let stale_before = now - STALE_BUILD;
        match self.status {
            BuildStatus::Failed => true,
            BuildStatus::Pending | BuildStatus::Building => {
                self.published_at.is_some_and(|at| at < stale_before)
            }
            BuildStatus::Ready => false,
        }
    }
}

/// The unpacked size of build `key`'s artifact, once it is ready.
pub async fn ready_build_size(pool: &Pool, key: &str) -> Result<Option<i64>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT size_bytes FROM builds WHERE key = $1 AND status = 'ready'",
            &[&key],
        )
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// Stores a deployment package's artifact, chunk by chunk, in the saving transaction `tx`
/// (so that a save refused later keeps nothing); one already stored (the same files) is kept,
/// its unused-artifact grace started over. A concurrent save of the same files waits on the
/// artifact's key until this one commits or rolls back.
pub async fn store_package_in(
    tx: &deadpool_postgres::Transaction<'_>,
    package: &crate::domain::package::Package,
) -> Result<(), DbError> {
    let chunks: Vec<&[u8]> = package.archive.chunks(CHUNK_BYTES).collect();
    let inserted = tx
        .query_opt(
            "INSERT INTO artifacts (digest, content_sha256, size_bytes, unpacked_bytes, chunks)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING RETURNING digest",
            &[
                &package.digest,
                &package.content_sha256,
                &(package.archive.len() as i64),
                &(package.unpacked_bytes as i64),
                &(chunks.len() as i32),
            ],
        )
        .await?;
    if inserted.is_none() {
        tx.execute(
            "UPDATE artifacts SET created_at = now() WHERE digest = $1",
            &[&package.digest],
        )
        .await?;
        return Ok(());
    }
    let statement = tx
        .prepare_cached("INSERT INTO artifact_chunks (digest, seq, data) VALUES ($1, $2, $3)")
        .await?;
    for (seq, chunk) in chunks.into_iter().enumerate() {
        tx.execute(&statement, &[&package.digest, &(seq as i32), &chunk])
            .await?;
    }
    Ok(())
}

/// Deletes the finished builds no function names, then the artifacts nothing names (no
/// function's package, no snapshot of a serving version, no build), each once unused for
/// `grace`: an artifact's `created_at` is renewed when a save names it again. Returns how many
/// of each went; an artifact's chunks go with it.
pub async fn delete_unused_artifacts(pool: &Pool, grace: Duration) -> Result<(u64, u64), DbError> {
    let client = pool.get().await?;
    let grace = grace.as_secs_f64();
    let builds = client
        .execute(
            "DELETE FROM builds b
             WHERE b.status IN ('ready', 'failed')
               AND coalesce(b.finished_at, b.created_at) < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM functions f WHERE f.build_key = b.key)",
            &[&grace],
        )
        .await?;
    let artifacts = client
        .execute(
            &format!(
                "WITH {USED_DIGESTS}
                 DELETE FROM artifacts a
                 WHERE a.created_at < now() - make_interval(secs => $1)
                   AND a.digest NOT IN (SELECT digest FROM used WHERE digest IS NOT NULL)"
            ),
            &[&grace],
        )
        .await?;
    Ok((builds, artifacts))
}

/// The artifacts something names (`used`): a function's package, a serving snapshot's
/// package or dependencies, a build's output.
const USED_DIGESTS: &str = "used AS (
    SELECT package_digest AS digest FROM functions
    UNION SELECT serving->'package'->>'digest' FROM functions
    UNION SELECT serving->'dependencies'->>'digest' FROM functions
    UNION SELECT digest FROM builds)";

/// Deletes, at once rather than after a grace, builds `keys` that no function names any more
/// and artifacts `digests` (with those builds' outputs) that nothing names: what a deleted
/// namespace's functions alone used. A save elsewhere that names one of them meanwhile makes
/// the delete fail on its foreign key (the retention pass collects the rest later). Returns
/// how many builds and artifacts went.
pub async fn delete_unshared(
    pool: &Pool,
    keys: &[String],
    digests: &[String],
) -> Result<(u64, u64), DbError> {
    let client = pool.get().await?;
    let gone = client
        .query(
            "DELETE FROM builds b
             WHERE b.key = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM functions f WHERE f.build_key = b.key)
             RETURNING b.digest",
            &[&keys],
        )
        .await?;
    let mut candidates = digests.to_vec();
    for row in &gone {
        candidates.extend(row.try_get::<_, Option<String>>(0)?);
    }
    let artifacts = client
        .execute(
            &format!(
                "WITH {USED_DIGESTS}
                 DELETE FROM artifacts a
                 WHERE a.digest = ANY($1)
                   AND a.digest NOT IN (SELECT digest FROM used WHERE digest IS NOT NULL)"
            ),
            &[&candidates],
        )
        .await?;
    Ok((gone.len() as u64, artifacts))
}

/// An artifact's stored description.
#[derive(Debug, Clone)]
pub struct ArtifactMeta {
    pub content_sha256: String,
    pub size_bytes: i64,
    pub unpacked_bytes: i64,
    pub chunks: i32,
}

pub async fn artifact_meta(pool: &Pool, digest: &str) -> Result<Option<ArtifactMeta>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT content_sha256, size_bytes, unpacked_bytes, chunks FROM artifacts WHERE digest = $1",
            &[&digest],
        )
        .await?;
    Ok(match row {
        Some(row) => Some(ArtifactMeta {
            content_sha256: row.try_get(0)?,
            size_bytes: row.try_get(1)?,
            unpacked_bytes: row.try_get(2)?,
            chunks: row.try_get(3)?,
        }),
        None => None,
    })
}

/// One chunk of an artifact; `None` past its end.
pub async fn artifact_chunk(
    pool: &Pool,
    digest: &str,
    seq: i32,
) -> Result<Option<Vec<u8>>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT data FROM artifact_chunks WHERE digest = $1 AND seq = $2")
        .await?;
    let row = client.query_opt(&statement, &[&digest, &seq]).await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// An artifact being written: chunks go into one transaction, committed by [`Self::finish`]
/// with the artifact's row, so that a cut upload leaves nothing behind. Dropped unfinished (the
/// uploading request went away), its connection is taken out of the pool and closed, which
/// rolls the transaction back, rather than returned inside an open transaction.
pub struct ArtifactWriter {
    client: Option<deadpool_postgres::Object>,
    digest: String,
    next_seq: i32,
}

impl ArtifactWriter {
    /// Starts writing `digest`. A concurrent upload of the same digest waits on the row's
    /// unique key, then fails: the caller treats that as "already stored".
    pub async fn begin(pool: &Pool, digest: &str) -> Result<Self, DbError> {
        let client = pool.get().await?;
        client.batch_execute("BEGIN").await?;
        client
            .execute(
                "INSERT INTO artifacts (digest, content_sha256, size_bytes, unpacked_bytes, chunks)
                 VALUES ($1, '', 0, 0, 0)",
                &[&digest],
            )
            .await?;
        Ok(ArtifactWriter {
            client: Some(client),
            digest: digest.to_owned(),
            next_seq: 0,
        })
    }

    fn client(&self) -> &deadpool_postgres::Object {
        self.client.as_ref().expect("present until finished")
    }

    pub async fn write_chunk(&mut self, data: &[u8]) -> Result<(), DbError> {
        let client = self.client();
        let statement = client
            .prepare_cached("INSERT INTO artifact_chunks (digest, seq, data) VALUES ($1, $2, $3)")
            .await?;
        client
            .execute(&statement, &[&self.digest, &self.next_seq, &data])
            .await?;
        self.next_seq += 1;
        Ok(())
    }

    pub async fn finish(
        mut self,
        content_sha256: &str,
        size_bytes: i64,
        unpacked_bytes: i64,
    ) -> Result<(), DbError> {
        let client = self.client.take().expect("present until finished");
        client
            .execute(
                "UPDATE artifacts SET content_sha256 = $2, size_bytes = $3, unpacked_bytes = $4, chunks = $5
                 WHERE digest = $1",
                &[&self.digest, &content_sha256, &size_bytes, &unpacked_bytes, &self.next_seq],
            )
            .await?;
        client.batch_execute("COMMIT").await?;
        Ok(())
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
