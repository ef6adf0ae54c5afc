//! Docker Swarm on a manager's engine, through the API (never the docker CLI): whether the
//! engine is a manager (`Swarm.ControlAvailable`), the app's attachable overlay network,
//! services created or updated from a stack (`spec`), the progress of an update read from
//! the service's `UpdateStatus` and what it means, the tasks and logs of a service
//! (`tasks`), and this namespace's services listed and removed.

mod spec;
mod tasks;

pub use spec::service_spec;
pub use tasks::TaskFacts;

use crate::{is_not_found, Engine, EngineError};
use bollard::models::ServiceUpdateStatusStateEnum;
use bollard::service::{InspectServiceOptions, ListServicesOptions, UpdateServiceOptions};
use capstan_compose::labels;
use capstan_compose::stack::StackService;
use std::collections::HashMap;

/// Why a swarm call could not be made or did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The engine is not a manager of a swarm: services cannot be made there.
    #[error("the engine is not a swarm manager ({0}); run `docker swarm init` there, or add it as a server of kind ssh")]
    NotManager(String),
    /// A network of that name exists and is not an overlay this namespace can use.
    #[error("network {0} exists and is not an attachable overlay network")]
    NotOverlay(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<bollard::errors::Error> for SwarmError {
    fn from(err: bollard::errors::Error) -> Self {
        SwarmError::Engine(EngineError::Docker(err))
    }
}

/// Where a service's latest update stands, as its `UpdateStatus` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateProgress {
    /// No update recorded (a service just created) or one still rolling.
    Rolling,
    /// Every task runs the new spec.
    Completed,
    /// The new spec failed and Swarm is putting the previous one back.
    RollingBack(String),
    /// The new spec failed and Swarm rolled back: the previous spec serves. The
    /// engine's message says why.
    RolledBack(String),
    /// Swarm's rollback itself stopped on a failure: tasks of either spec may run.
    RollbackPaused(String),
    /// The update paused on a failure without rolling back.
    Paused(String),
}

/// What an `UpdateStatus` state means for a deployment.
pub fn interpret_update(
    state: Option<ServiceUpdateStatusStateEnum>,
    message: Option<&str>,
) -> UpdateProgress {
    let message = message.unwrap_or("no reason given").to_string();
    match state {
        Some(ServiceUpdateStatusStateEnum::COMPLETED) => UpdateProgress::Completed,
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) => {
            UpdateProgress::RollingBack(message)
        }
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) => {
            UpdateProgress::RolledBack(message)
        }
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
            UpdateProgress::RollbackPaused(message)
        }
        Some(ServiceUpdateStatusStateEnum::PAUSED) => UpdateProgress::Paused(message),
        _ => UpdateProgress::Rolling,
    }
}

/// A service as this namespace sees it.
#[derive(Debug, Clone)]
pub struct ServiceFacts {
    pub id: String,
    pub name: String,
    /// The spec's version (needed to update it).
    pub version: u64,
    pub progress: UpdateProgress,
    /// When the latest update started, as the engine says it (`None`: never updated).
    pub update_started: Option<String>,
    pub force_update: i64,
    pub image: Option<String>,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// Whether this engine manages a swarm: `Ok(node id)`, else [`SwarmError::NotManager`]
    /// with the node's state.
    pub async fn swarm_manager(&self) -> Result<String, SwarmError> {
        let info = self.docker().info().await?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.control_available == Some(true) {
            return Ok(swarm.node_id.unwrap_or_default());
        }
        let state = swarm
            .local_node_state
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "inactive".into());
        Err(SwarmError::NotManager(format!("swarm state: {state}")))
    }

    /// Creates the app's attachable overlay network `name` if missing.
    pub async fn ensure_overlay_network(&self, name: &str, app: &str) -> Result<(), SwarmError> {
        match self.docker().inspect_network::<String>(name, None).await {
            Ok(net) => {
                if net.driver.as_deref() == Some("overlay") && net.attachable == Some(true) {
                    return Ok(());
                }
                Err(SwarmError::NotOverlay(name.to_string()))
            }
            Err(err) if is_not_found(&err) => {
                let labels = HashMap::from([
                    (labels::INSTANCE.to_string(), self.instance().to_string()),
                    (labels::APP.to_string(), app.to_string()),
                ]);
                let options = bollard::network::CreateNetworkOptions {
                    name: name.to_string(),
                    driver: "overlay".to_string(),
                    attachable: true,
                    labels,
                    ..Default::default()
                };
                self.docker().create_network(options).await?;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The service `name`, if it exists.
    pub async fn service_facts(&self, name: &str) -> Result<Option<ServiceFacts>, SwarmError> {
        let options = Some(InspectServiceOptions {
            insert_defaults: false,
        });
        let service = match self.docker().inspect_service(name, options).await {
            Ok(service) => service,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let spec = service.spec.unwrap_or_default();
        let task = spec.task_template.unwrap_or_default();
        let status = service.update_status;
        Ok(Some(ServiceFacts {
            id: service.id.unwrap_or_default(),
            name: spec.name.unwrap_or_default(),
            version: service.version.and_then(|v| v.index).unwrap_or(0),
            update_started: status
                .as_ref()
                .and_then(|s| s.started_at.as_ref())
                .map(|t| format!("{t:?}")),
            progress: status
                .map(|s| interpret_update(s.state, s.message.as_deref()))
                .unwrap_or(UpdateProgress::Rolling),
            force_update: task.force_update.unwrap_or(0),
            image: task.container_spec.and_then(|c| c.image),
            labels: spec.labels.unwrap_or_default(),
        }))
    }

    /// Creates service `name` from `stack`, or updates it to that spec (`force`: replace
    /// its tasks even if nothing changed). Whether it was created.
    pub async fn apply_service(
        &self,
        name: &str,
        stack: &StackService,
        force: bool,
    ) -> Result<bool, SwarmError> {
        match self.service_facts(name).await? {
            None => {
                let spec = service_spec(name, stack, 0);
                self.docker().create_service(spec, None).await?;
                Ok(true)
            }
            Some(facts) => {
                let force_update = facts.force_update + i64::from(force);
                let spec = service_spec(name, stack, force_update);
                let options = UpdateServiceOptions {
                    version: facts.version,
                    ..Default::default()
                };
                self.docker()
                    .update_service(&facts.id, spec, options, None)
                    .await?;
                Ok(false)
            }
        }
    }

    /// Asks Swarm to put service `name`'s previous spec back (what `docker service
    /// rollback` does), for an update that paused or never finished.
    pub async fn roll_back_service(&self, name: &str) -> Result<(), SwarmError> {
        let service = self
            .docker()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await?;
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let id = service.id.unwrap_or_else(|| name.to_string());
        let options = UpdateServiceOptions {
            version,
            rollback: true,
            ..Default::default()
        };
        // Swarm ignores the spec sent with a rollback; the current one is sent as is.
        let spec = service.spec.unwrap_or_default();
        self.docker()
            .update_service(&id, spec, options, None)
            .await?;
        Ok(())
    }

    /// The services of this namespace (of one app when given), by name.
    pub async fn owned_services(&self, app: Option<&str>) -> Result<Vec<String>, SwarmError> {
        let mut label = vec![labels::filter(labels::INSTANCE, self.instance())];
        if let Some(app) = app {
            label.push(labels::filter(labels::APP, app));
        }
        let options = ListServicesOptions {
            filters: HashMap::from([("label".to_string(), label)]),
            status: false,
        };
        let services = self.docker().list_services(Some(options)).await?;
        let mut names: Vec<String> = services
            .into_iter()
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// How many containers (of any state) the tasks of `services` still have on this node.
    pub async fn service_containers(&self, services: &[String]) -> Result<usize, SwarmError> {
        let mut count = 0;
        for service in services {
            let options = bollard::container::ListContainersOptions::<String> {
                all: true,
                filters: HashMap::from([(
                    "label".to_string(),
                    vec![format!("com.docker.swarm.service.name={service}")],
                )]),
                ..Default::default()
            };
            count += self.docker().list_containers(Some(options)).await?.len();
        }
        Ok(count)
    }

    /// Removes service `name` (its tasks stop); gone already is fine.
    pub async fn remove_service(&self, name: &str) -> Result<(), SwarmError> {
        match self.docker().delete_service(name).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_states_read_as_live_rolled_back_paused_or_rolling() {
        use ServiceUpdateStatusStateEnum as S;
        assert_eq!(
            interpret_update(Some(S::COMPLETED), None),
            UpdateProgress::Completed
        );
        assert_eq!(
            interpret_update(Some(S::ROLLBACK_COMPLETED), Some("task unhealthy")),
            UpdateProgress::RolledBack("task unhealthy".into())
        );
        assert!(matches!(
            interpret_update(Some(S::ROLLBACK_STARTED), None),
            UpdateProgress::RollingBack(_)
        ));
        assert!(matches!(
            interpret_update(Some(S::ROLLBACK_PAUSED), None),
            UpdateProgress::RollbackPaused(_)
        ));
        assert_eq!(
            interpret_update(Some(S::PAUSED), Some("update paused")),
            UpdateProgress::Paused("update paused".into())
        );
        assert_eq!(
            interpret_update(Some(S::UPDATING), None),
            UpdateProgress::Rolling
        );
        assert_eq!(interpret_update(None, None), UpdateProgress::Rolling);
    }
}
