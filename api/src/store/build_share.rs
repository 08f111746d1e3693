//! Builds held for their namespace's fair share ([`BuildShare`]): a saved build is queued only
//! once its namespace has room ([`claim_build`]), and the held ones are queued as builds end
//! ([`release_held_builds`]). Each namespace's decisions take one transaction-scoped advisory
//! lock, so that two saves (or a save and a release, on any api replica) never both take the
//! last place.

use super::DbError;
use super::builds::STALE_BUILD;
use crate::domain::build_share::{BuildShare, BuildUsage, Held};
use common::Language;
use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

/// The class of the per-namespace advisory lock ("buld" in ASCII); the namespace's hash is
/// the second key.
const BUILD_SHARE_LOCK: i32 = 0x6275_6c64;

/// What claiming a held build for a namespace did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is this namespace's now and marked published: publish its job.
    Publish,
    /// The namespace has no room: it stays held, its log saying why.
    Held(Held),
    /// Another save or a release pass queued it (or restarted it) meanwhile: nothing to do.
    Gone,
}

/// A held build just released: the job to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub key: String,
    pub attempt: Uuid,
    pub language: Language,
    /// As stored: the text of the first save that needed it (normalised into the job).
    pub dependencies: String,
    pub namespace: String,
}

/// Takes `namespace`'s lock (held until the transaction ends) and reads what its builds use.
async fn lock_and_measure(
    client: &impl GenericClient,
    namespace: &str,
) -> Result<BuildUsage, DbError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&BUILD_SHARE_LOCK, &namespace],
        )
        .await?;
    // Under way: published, not ended, not lost (a published build gone stale is not waited
    // for). Build time: the part of each build's run within the last hour; a running build's
    // until now, a lost one's not at all.
    let row = client
        .query_one(
            "WITH b AS (
                 SELECT status, published_at, started_at,
                        coalesce(finished_at, CASE WHEN published_at > now() - make_interval(secs => $2)
                                                   THEN now() END) AS ran_until
                 FROM builds WHERE namespace = $1)
             SELECT
                 count(*) FILTER (WHERE status IN ('pending', 'building')
                     AND published_at > now() - make_interval(secs => $2)) AS in_flight,
                 coalesce(sum(extract(epoch FROM ran_until
                         - greatest(started_at, now() - interval '1 hour')))
                     FILTER (WHERE started_at IS NOT NULL
                         AND ran_until > now() - interval '1 hour'), 0)::bigint AS seconds
             FROM b",
            &[&namespace, &STALE_BUILD.as_secs_f64()],
        )
        .await?;
    let in_flight: i64 = row.try_get("in_flight")?;
    let seconds: i64 = row.try_get("seconds")?;
    Ok(BuildUsage {
        in_flight: in_flight.max(0) as u64,
        seconds_last_hour: seconds.max(0) as u64,
    })
}

/// Claims `attempt` of held build `key` for `namespace` if the namespace has room under
/// `share`: the build is then charged to it and marked published (the caller publishes the
/// job). Otherwise it stays held with why as its log.
pub async fn claim_build(
    pool: &Pool,
    namespace: &str,
    key: &str,
    attempt: Uuid,
    share: BuildShare,
) -> Result<Claim, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let usage = lock_and_measure(&tx, namespace).await?;
    let claim = match share.room(usage) {
        Ok(_) => {
            let claimed = tx
                .execute(
                    "UPDATE builds SET published_at = now(), namespace = $3, log = ''
                     WHERE key = $1 AND attempt = $2 AND status = 'pending'
                       AND published_at IS NULL",
                    &[&key, &attempt, &namespace],
                )
                .await?;
            if claimed > 0 {
                Claim::Publish
            } else {
                Claim::Gone
            }
        }
        Err(held) => {
            // Only the namespace it is charged to says why in its log: another namespace
            // sharing it has its own reasons, which its save was told.
            tx.execute(
                "UPDATE builds SET log = $4
                 WHERE key = $1 AND attempt = $2 AND namespace = $3 AND published_at IS NULL",
                &[&key, &attempt, &namespace, &held.to_string()],
            )
            .await?;
            Claim::Held(held)
        }
    };
    tx.commit().await?;
    Ok(claim)
}

/// Marks published, oldest first, as many held builds of each namespace as its share has room
/// for, and returns their jobs. Held builds no function names any more are left alone.
pub async fn release_held_builds(pool: &Pool, share: BuildShare) -> Result<Vec<Released>, DbError> {
    let mut client = pool.get().await?;
    let namespaces: Vec<String> = client
        .query(
            "SELECT DISTINCT namespace FROM builds
             WHERE status = 'pending' AND published_at IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut released = Vec::new();
    for namespace in namespaces {
        let tx = client.transaction().await?;
        let usage = lock_and_measure(&tx, &namespace).await?;
        let Ok(room) = share.room(usage) else {
            continue;
        };
        let rows = tx
            .query(
                "UPDATE builds SET published_at = now(), log = ''
                 WHERE key IN (
                     SELECT b.key FROM builds b
                     WHERE b.namespace = $1 AND b.status = 'pending' AND b.published_at IS NULL
                       AND EXISTS (SELECT 1 FROM functions f WHERE f.build_key = b.key)
                     ORDER BY b.created_at LIMIT $2 FOR UPDATE)
                 RETURNING key, attempt, language, dependencies, namespace",
                &[&namespace, &(room.min(i64::MAX as u64) as i64)],
            )
            .await?;
        for row in rows {
            let language: String = row.try_get("language")?;
            released.push(Released {
                key: row.try_get("key")?,
                attempt: row.try_get("attempt")?,
                language: language
                    .parse()
                    .map_err(|_| DbError::Inconsistent("a build's language"))?,
                dependencies: row.try_get("dependencies")?,
                namespace: row.try_get("namespace")?,
            });
        }
        tx.commit().await?;
    }
    Ok(released)
}
