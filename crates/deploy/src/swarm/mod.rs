//! Apps on a swarm server: the server's engine must be a swarm manager (checked when it is
//! connected and in its preflight), its proxy reads services through Traefik's swarm
//! provider, and a deployment applies the release as swarm services and lets Swarm do the
//! update (`flow`): start-first, health-gated, rolled back by Swarm when the new tasks never
//! turn healthy. An app's services and overlay network go when the app is deleted.

mod flow;
mod maintenance;

use crate::servers::checks::Check;
use crate::target::SwarmHost;
use crate::{ActionError, Deployer};
use capstan_compose::stack::StackNames;
use capstan_core::{AppName, ServerKind, ServerSpec};
use capstan_engine::swarm::SwarmError;
use capstan_engine::Engine;
use std::time::Duration;

/// Where an engine's socket is when the server does not say.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long a deleted app's tasks may take to leave its overlay network.
const TASKS_GONE: Duration = Duration::from_secs(30);

/// What a server of kind `swarm` needs to be deployed to: its engine must manage a swarm
/// (refused with the engine's swarm state otherwise). `None` for any other kind.
pub(crate) async fn swarm_host(
    spec: &ServerSpec,
    engine: &Engine,
) -> Result<Option<SwarmHost>, ActionError> {
    if spec.kind != ServerKind::Swarm {
        return Ok(None);
    }
    match engine.swarm_manager().await {
        Ok(_) => Ok(Some(SwarmHost {
            socket: spec
                .docker_socket
                .clone()
                .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
        })),
        Err(SwarmError::NotManager(state)) => Err(ActionError::Conflict(format!(
            "server {} is of kind swarm but its engine is not a swarm manager ({state})",
            spec.name
        ))),
        Err(err) => Err(ActionError::Unavailable(format!(
            "server {}: cannot ask the engine about its swarm: {err}",
            spec.name
        ))),
    }
}

/// The preflight check of a swarm server: its engine is a manager (`Swarm.ControlAvailable`).
pub(crate) async fn manager_check(engine: &Engine) -> Check {
    let (ok, detail) = match engine.swarm_manager().await {
        Ok(node) => (true, format!("the engine is a swarm manager (node {node})")),
        Err(err) => (false, err.to_string()),
    };
    Check {
        name: "swarm_manager".into(),
        ok,
        detail,
    }
}

impl Deployer {
    /// Removes an app's swarm services and, once their tasks are gone, leaves the overlay
    /// network to the caller's network removal. Nothing on a server that is not a swarm.
    pub(crate) async fn remove_swarm_app(&self, app: &AppName) -> Result<(), ActionError> {
        let (Some(_), Some(engine)) = (self.target().swarm(), self.target().docker_engine()) else {
            return Ok(());
        };
        let services = engine
            .owned_services(Some(app.as_str()))
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        for service in &services {
            engine
                .remove_service(service)
                .await
                .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        }
        // Tasks leave the network a moment after their service is gone.
        let network = StackNames::new(self.target().instance(), app).network;
        let started = std::time::Instant::now();
        while started.elapsed() < TASKS_GONE {
            let left = engine
                .service_containers(&services)
                .await
                .unwrap_or_default();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tracing::info!(%app, %network, removed = services.len(), "swarm services removed");
        Ok(())
    }
}

/// Where an app's output on a swarm server comes from: each of its services' logs.
impl Deployer {
    /// The last `tail` lines of each service of `app` (or of those named in `only`, by
    /// service name), prefixed with the service and masked; following is not offered yet.
    pub(crate) async fn swarm_output(
        &self,
        app: &AppName,
        only: &[&str],
        tail: usize,
        follow: bool,
    ) -> Result<futures::stream::BoxStream<'static, String>, ActionError> {
        use futures::StreamExt;
        if follow {
            return Err(ActionError::Invalid(
                "following an app's output is not available on swarm servers yet; ask for its last lines".into(),
            ));
        }
        let engine = self
            .target()
            .docker_engine()
            .ok_or_else(|| ActionError::Internal("a swarm server without its engine".into()))?;
        let unavailable = |e: SwarmError| ActionError::Unavailable(e.to_string());
        let mut services = engine
            .owned_services(Some(app.as_str()))
            .await
            .map_err(unavailable)?;
        if let Some(unknown) = only.iter().find(|o| !services.iter().any(|s| s == *o)) {
            return Err(ActionError::NotFound(format!(
                "{app} has no service {unknown} (its services: {})",
                services.join(", ")
            )));
        }
        if !only.is_empty() {
            services.retain(|s| only.contains(&s.as_str()));
        }
        if services.is_empty() {
            return Err(ActionError::Conflict(format!(
                "{app} has no services: deploy it first"
            )));
        }
        let secrets = self.secret_values(app).await?;
        let masker = crate::logs::Masker::new(secrets.iter().map(|s| s.value.as_str()));
        let mut lines = Vec::new();
        for service in &services {
            let tail_lines = engine
                .service_log_tail(service, tail)
                .await
                .map_err(unavailable)?;
            lines.extend(
                tail_lines
                    .into_iter()
                    .map(|line| format!("[{service}] {}", masker.mask(&line))),
            );
        }
        Ok(futures::stream::iter(lines).boxed())
    }
}
