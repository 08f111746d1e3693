//! The fake's side of the port: each [`FunctionBackend`] method, recorded and applied to the
//! in-memory state as the store would apply it.

use super::{Call, FakeBackend, row_of};
use crate::broker::BrokerError;
use crate::domain::build_share::BuildShare;
use crate::domain::package::Package;
use crate::services::functions::FunctionBackend;
use crate::store::{
    BuildStatus, Claim, DbError, Function, FunctionFields, Namespace, Released, Saved,
};
use common::{BuildJob, FunctionEvent};
use uuid::Uuid;

impl FunctionBackend for FakeBackend {
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, DbError> {
        let mut state = self.state();
        state.calls.push(Call::GetNamespace(name.to_owned()));
        Ok(state.namespaces.get(name).cloned())
    }

    async fn get_function_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Function>, DbError> {
        let mut state = self.state();
        state.calls.push(Call::GetFunctionByName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        let found = state
            .functions
            .values()
            .find(|row| row.function.namespace == namespace && row.function.name == name);
        Ok(found.map(|row| state.joined(row)))
    }

    async fn ready_build_size(&self, key: &str) -> Result<Option<i64>, DbError> {
        let mut state = self.state();
        state.calls.push(Call::ReadyBuildSize(key.to_owned()));
        Ok(state
            .builds
            .get(key)
            .filter(|build| build.status == BuildStatus::Ready)
            .and_then(|build| build.size_bytes))
    }

    async fn insert_function(
        &self,
        namespace: &str,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> Result<Saved, DbError> {
        let mut state = self.state();
        state.store_package(package);
        state.calls.push(Call::InsertFunction {
            namespace: namespace.to_owned(),
            fields: Box::new(fields.clone()),
        });
        if let Some(error) = state.write_error.take() {
            return Err(error);
        }
        let publish_build = state.request_build(namespace, fields);
        state.last_id += 1;
        let row = row_of(namespace, state.last_id, 1, fields);
        let function = state.joined(&row);
        state.functions.insert(function.id, row);
        Ok(Saved {
            function,
            publish_build,
        })
    }

    async fn update_function(
        &self,
        namespace: &str,
        id: i64,
        fields: &FunctionFields,
        package: Option<&Package>,
    ) -> Result<Option<Saved>, DbError> {
        let mut state = self.state();
        state.store_package(package);
        state.calls.push(Call::UpdateFunction {
            namespace: namespace.to_owned(),
            id,
            fields: Box::new(fields.clone()),
        });
        if let Some(error) = state.write_error.take() {
            return Err(error);
        }
        let Some(old) = state
            .functions
            .get(&id)
            .filter(|row| row.function.namespace == namespace)
            .map(|row| state.joined(row))
        else {
            return Ok(None);
        };
        let publish_build = state.request_build(namespace, fields);
        let mut row = row_of(namespace, id, old.version + 1, fields);
        let waits = state.joined(&row).runnable().is_err();
        // As the store keeps it: the version that ran until now serves while this one waits.
        row.function.serving = if waits { old.runnable().ok() } else { None };
        let function = state.joined(&row);
        state.functions.insert(id, row);
        Ok(Some(Saved {
            function,
            publish_build,
        }))
    }

    async fn delete_function(&self, namespace: &str, id: i64) -> Result<bool, DbError> {
        let mut state = self.state();
        state.calls.push(Call::DeleteFunction {
            namespace: namespace.to_owned(),
            id,
        });
        if let Some(error) = state.write_error.take() {
            return Err(error);
        }
        let found = state
            .functions
            .get(&id)
            .is_some_and(|row| row.function.namespace == namespace);
        if found {
            state.functions.remove(&id);
        }
        Ok(found)
    }

    async fn fail_unpublished(&self, key: &str, attempt: Uuid, why: &str) -> Result<(), DbError> {
        let mut state = self.state();
        state.calls.push(Call::FailUnpublished {
            key: key.to_owned(),
            attempt,
            why: why.to_owned(),
        });
        if let Some(build) = state.builds.get_mut(key) {
            build.status = BuildStatus::Failed;
            build.log = why.to_owned();
        }
        Ok(())
    }

    async fn claim_build(
        &self,
        namespace: &str,
        key: &str,
        attempt: Uuid,
        share: BuildShare,
    ) -> Result<Claim, DbError> {
        let mut state = self.state();
        state.calls.push(Call::ClaimBuild {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            attempt,
        });
        if let Err(held) = share.room(state.usage(namespace)) {
            let charged_here = state
                .charges
                .get(key)
                .is_some_and(|c| c.namespace == namespace && !c.published);
            if charged_here && let Some(build) = state.builds.get_mut(key) {
                build.log = held.to_string();
            }
            return Ok(Claim::Held(held));
        }
        let Some(charge) = state
            .charges
            .get_mut(key)
            .filter(|c| c.attempt == attempt && !c.published)
        else {
            return Ok(Claim::Gone);
        };
        charge.published = true;
        charge.namespace = namespace.to_owned();
        if let Some(build) = state.builds.get_mut(key) {
            build.log.clear();
            build.published_at = Some(chrono::Utc::now());
        }
        Ok(Claim::Publish)
    }

    async fn release_held_builds(&self, share: BuildShare) -> Result<Vec<Released>, DbError> {
        let mut state = self.state();
        state.calls.push(Call::ReleaseHeldBuilds);
        let mut held: Vec<(u64, String)> = state
            .charges
            .iter()
            .filter(|(key, charge)| {
                !charge.published
                    && state.builds.get(*key).map(|b| b.status) == Some(BuildStatus::Pending)
                    && state
                        .functions
                        .values()
                        .any(|row| row.build_key.as_deref() == Some(key.as_str()))
            })
            .map(|(key, charge)| (charge.seq, key.clone()))
            .collect();
        held.sort();
        let mut released = Vec::new();
        for (_, key) in held {
            let namespace = state.charges[&key].namespace.clone();
            if share.room(state.usage(&namespace)).is_err() {
                continue;
            }
            let charge = state.charges.get_mut(&key).expect("listed");
            charge.published = true;
            released.push(Released {
                key: key.clone(),
                attempt: charge.attempt,
                language: charge.language,
                dependencies: charge.dependencies.clone(),
                namespace,
            });
            if let Some(build) = state.builds.get_mut(&key) {
                build.log.clear();
                build.published_at = Some(chrono::Utc::now());
            }
        }
        Ok(released)
    }

    async fn get_function(&self, namespace: &str, id: i64) -> Result<Option<Function>, DbError> {
        let mut state = self.state();
        state.calls.push(Call::GetFunction {
            namespace: namespace.to_owned(),
            id,
        });
        state.progress(id);
        Ok(state
            .functions
            .get(&id)
            .filter(|row| row.function.namespace == namespace)
            .map(|row| state.joined(row)))
    }

    async fn publish_build(&self, job: &BuildJob) -> Result<(), BrokerError> {
        let mut state = self.state();
        state.calls.push(Call::PublishBuild(job.clone()));
        match state.publish_error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn publish_event(&self, event: &FunctionEvent) {
        self.state().calls.push(Call::PublishEvent(event.clone()));
    }

    async fn build_consumers(&self) -> u32 {
        let mut state = self.state();
        state.calls.push(Call::BuildConsumers);
        state.build_consumers
    }

    async fn refresh_routes(&self) {
        self.state().calls.push(Call::RefreshRoutes);
    }
}
