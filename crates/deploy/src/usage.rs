//! An app's running containers and what each uses now (CPU and memory from the engine),
//! for the API.

use crate::{ActionError, Deployer};
use capstan_core::AppName;
use capstan_engine::usage::Usage;

/// One running container of an app and its use.
pub struct ContainerUsage {
    pub container: String,
    /// `app` (a replica of the routed service) or `companion` (another compose service).
    pub role: &'static str,
    /// The deployment that started it.
    pub deployment: Option<i64>,
    pub usage: Usage,
}

impl Deployer {
    /// Every running container of `app` with its CPU and memory use, sampled at once
    /// (about a second, the engine's sampling interval).
    pub async fn app_usage(&self, app: &AppName) -> Result<Vec<ContainerUsage>, ActionError> {
        self.store().app(app).await?;
        let mut containers: Vec<(&'static str, _)> = Vec::new();
        for container in self.engine().owned_containers(Some(app.as_str())).await? {
            containers.push(("app", container));
        }
        for container in self
            .engine()
            .companion_containers(Some(app.as_str()))
            .await?
        {
            containers.push(("companion", container));
        }
        containers.retain(|(_, c)| c.running);
        let samples =
            futures::future::join_all(containers.iter().map(|(_, c)| self.engine().usage(&c.name)))
                .await;
        let mut usages = Vec::new();
        for ((role, container), sample) in containers.into_iter().zip(samples) {
            // A container that stopped between the listing and the sample is left out.
            let Ok(usage) = sample else { continue };
            usages.push(ContainerUsage {
                deployment: container
                    .labels
                    .get(capstan_compose::labels::DEPLOYMENT)
                    .and_then(|d| d.parse().ok()),
                container: container.name,
                role,
                usage,
            });
        }
        usages.sort_by(|a, b| a.container.cmp(&b.container));
        Ok(usages)
    }
}
