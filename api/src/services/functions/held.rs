//! Queuing the builds held for their namespace's share: when a build ends
//! (`Builds::finish`) and every few seconds (a finish report that never came, a quota hour
//! gone by, an api that died between a save's commit and its publish).

use super::{FunctionBackend, Functions};
use crate::domain::deps;
use crate::store::DbError;
use common::BuildJob;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl<B: FunctionBackend> Functions<B> {
    /// Publishes the jobs of the held builds that their namespaces now have room for; returns
    /// how many were queued. One that cannot be published is failed, saying why, as a save's.
    pub async fn release_held_builds(&self) -> Result<usize, DbError> {
        let released = self.backend.release_held_builds(self.build_share).await?;
        let mut queued = 0;
        for build in released {
            let job = BuildJob {
                dependencies: deps::normalise(build.language, &build.dependencies),
                key: build.key,
                attempt: build.attempt,
                language: build.language,
                namespace: build.namespace,
            };
            match self.backend.publish_build(&job).await {
                Ok(()) => {
                    queued += 1;
                    tracing::info!(build_key = %job.key, namespace = %job.namespace, attempt = %job.attempt, "held build queued");
                }
                Err(error) => {
                    tracing::error!(build_key = %job.key, %error, "held build not queued");
                    let why = format!(
                        "the build could not be queued ({error}); save the function again to retry"
                    );
                    self.backend
                        .fail_unpublished(&job.key, job.attempt, &why)
                        .await?;
                }
            }
        }
        Ok(queued)
    }
}

/// Releases held builds every `interval` until `stop`.
pub fn spawn_build_releaser<B: FunctionBackend>(
    functions: Functions<B>,
    interval: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = functions.release_held_builds().await {
                tracing::warn!(%error, "held builds not released");
            }
        }
    })
}
