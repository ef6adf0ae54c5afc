//! An app's running containers (each replica of the routed service and each compose
//! companion), as its output, its use and the panel's app page list them, and the choice
//! of one of them by name, refused unless it is one of this app's.

use crate::{ActionError, Deployer};
use capstan_core::AppName;

/// One running container of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningContainer {
    pub id: String,
    /// The engine's name (`<instance>_<app>_d12_r2`).
    pub name: String,
    /// The name without the instance (`<app>_d12_r2`), as output lines are prefixed.
    pub shown: String,
    /// `app` (a replica of the routed service) or `companion` (another compose service).
    pub role: &'static str,
    /// The deployment that started it.
    pub deployment: Option<i64>,
}

impl RunningContainer {
    /// Whether `wanted` names this container, by its engine name or as its lines show it.
    pub fn is_named(&self, wanted: &str) -> bool {
        self.name == wanted || self.shown == wanted
    }
}

impl Deployer {
    /// Every running container of `app`, sorted by name (replicas first within a
    /// deployment, as their names sort). The app must exist; none running is an empty list.
    pub async fn running_containers(
        &self,
        app: &AppName,
    ) -> Result<Vec<RunningContainer>, ActionError> {
        let here = self.for_app_named(app).await?;
        here.running_containers_here(app).await
    }

    /// [`Self::running_containers`] on this deployer's server.
    async fn running_containers_here(
        &self,
        app: &AppName,
    ) -> Result<Vec<RunningContainer>, ActionError> {
        self.store().app(app).await?;
        let engine = self.target();
        let mut found: Vec<(&'static str, _)> = Vec::new();
        for container in engine.owned_containers(Some(app.as_str())).await? {
            found.push(("app", container));
        }
        for container in engine.companion_containers(Some(app.as_str())).await? {
            found.push(("companion", container));
        }
        let instance_prefix = format!("{}_", engine.instance());
        let mut running: Vec<RunningContainer> = found
            .into_iter()
            .filter(|(_, c)| c.running)
            .map(|(role, c)| RunningContainer {
                shown: c
                    .name
                    .strip_prefix(&instance_prefix)
                    .unwrap_or(&c.name)
                    .to_string(),
                deployment: c
                    .labels
                    .get(capstan_compose::labels::DEPLOYMENT)
                    .and_then(|d| d.parse().ok()),
                id: c.id,
                name: c.name,
                role,
            })
            .collect();
        running.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(running)
    }

    /// The running containers of `app`, or only those `wanted` names (each by its engine
    /// name or its shown name; none: all of them); a name that is not a running container
    /// of this app is refused (404) with the names it could be.
    pub async fn chosen_containers(
        &self,
        app: &AppName,
        wanted: &[&str],
    ) -> Result<Vec<RunningContainer>, ActionError> {
        let running = self.running_containers(app).await?;
        if wanted.is_empty() {
            return Ok(running);
        }
        if let Some(unknown) = wanted
            .iter()
            .find(|name| !running.iter().any(|c| c.is_named(name)))
        {
            let names: Vec<&str> = running.iter().map(|c| c.shown.as_str()).collect();
            let shown: String = unknown.chars().take(80).collect();
            return Err(ActionError::NotFound(if names.is_empty() {
                format!("container {shown:?}: {app} has no running containers")
            } else {
                format!(
                    "container {shown:?} is not a running container of {app}; its running containers: {}",
                    names.join(", ")
                )
            }));
        }
        Ok(running
            .into_iter()
            .filter(|c| wanted.iter().any(|name| c.is_named(name)))
            .collect())
    }
}
