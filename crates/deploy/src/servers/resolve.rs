//! Which server's deployer an app's action runs on: its first server, the first of its
//! servers that can be reached, and whether a deployment of it can be queued at all.

use crate::{ActionError, Deployer};

impl Deployer {
    /// The deployer of the server an app's deployments run on (its first; `local` by
    /// default), connecting to a remote one and preparing it the first time.
    pub(crate) async fn for_app(
        &self,
        spec: &capstan_core::AppSpec,
    ) -> Result<Deployer, ActionError> {
        let local = capstan_core::ServerName::local();
        self.connect_target(spec.servers.first().unwrap_or(&local))
            .await
    }

    /// Whether a deployment of the app can be queued: its server is one the daemon can
    /// deploy to (it is connected to when the deployment runs).
    pub(crate) async fn check_deployable(
        &self,
        spec: &capstan_core::AppSpec,
    ) -> Result<(), ActionError> {
        for server in spec.servers.iter().chain(&spec.build_server) {
            if self.on(server).is_some() {
                continue;
            }
            let record = self.store().server(server).await?;
            match record.spec.kind {
                capstan_core::ServerKind::Ssh | capstan_core::ServerKind::Swarm => {}
                kind => {
                    return Err(ActionError::Invalid(format!(
                        "the app targets server {server} of kind {}: deploying to it is not available yet",
                        kind.as_str()
                    )))
                }
            }
        }
        Ok(())
    }

    /// The deployer of the first of the app's servers that can be reached (the first
    /// server's refusal when none can).
    pub(crate) async fn first_reachable(
        &self,
        spec: &capstan_core::AppSpec,
    ) -> Result<Deployer, ActionError> {
        let mut first_refusal = None;
        for server in &spec.servers {
            match self.connect_target(server).await {
                Ok(here) => return Ok(here),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        match first_refusal {
            Some(refused) => Err(refused),
            None => self.for_app(spec).await,
        }
    }

    /// The deployer of the server app `name` runs on.
    pub(crate) async fn for_app_named(
        &self,
        name: &capstan_core::AppName,
    ) -> Result<Deployer, ActionError> {
        self.for_app(&self.store().app(name).await?.spec).await
    }
}
