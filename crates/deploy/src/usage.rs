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
        let here = self.for_app_named(app).await?;
        here.app_usage_here(app).await
    }

    /// [`Self::app_usage`] on this deployer's server.
    async fn app_usage_here(&self, app: &AppName) -> Result<Vec<ContainerUsage>, ActionError> {
        let containers = self.running_containers(app).await?;
        let samples =
            futures::future::join_all(containers.iter().map(|c| self.target().usage(&c.name)))
                .await;
        let mut usages = Vec::new();
        for (container, sample) in containers.into_iter().zip(samples) {
            // A container that stopped between the listing and the sample is left out.
            let Ok(usage) = sample else { continue };
            usages.push(ContainerUsage {
                deployment: container.deployment,
                container: container.name,
                role: container.role,
                usage,
            });
        }
        usages.sort_by(|a, b| a.container.cmp(&b.container));
        Ok(usages)
    }
}
