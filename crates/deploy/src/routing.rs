//! The app's route at the proxy: writing its file (routers from the app's domains, the
//! service with the serving deployment's containers) and confirming through Traefik's API
//! that the change is in force. Routes come only from these files.

use crate::pipeline::Failure;
use crate::Deployer;
use capstan_compose::render::DeploymentNames;
use capstan_compose::routes::{render_routes, RouteTarget};
use capstan_core::{AppName, AppSpec};
use std::time::{Duration, Instant};

/// How long Traefik may take to pick up a route file change.
pub(crate) const PROXY_TIMEOUT: Duration = Duration::from_secs(20);

/// The route that sends an app's traffic to one deployment's containers.
pub(crate) fn route_target(spec: &AppSpec, containers: &[String]) -> RouteTarget {
    RouteTarget {
        domains: spec.domains.clone(),
        tls: spec.tls,
        containers: containers.to_vec(),
        port: spec.listen_port(),
    }
}

impl Deployer {
    /// The route of an earlier deployment, from the settings stored with its release.
    pub(crate) async fn route_of_deployment(
        &self,
        app: &AppName,
        deployment: i64,
    ) -> Result<RouteTarget, Failure> {
        let release = self.store().release_of(deployment).await?.ok_or_else(|| {
            Failure::msg(format!("deployment {deployment} has no recorded release"))
        })?;
        let names = DeploymentNames::new(self.engine().instance(), app, deployment);
        let containers = names.replica_containers(release.app_spec.replicas);
        Ok(route_target(&release.app_spec, &containers))
    }

    /// Rewrites the app's route file to send everything to `target` and waits until
    /// Traefik's API shows exactly those servers in force.
    pub(crate) async fn point_route(
        &self,
        app: &AppName,
        target: &RouteTarget,
    ) -> Result<(), Failure> {
        let names = self.engine().names().app(app);
        let text = render_routes(&names, target)?;
        self.routes().write(&names.route_file(), &text)?;
        let service = format!("{}@file", names.traefik_service());
        let mut expected = target.server_urls();
        expected.sort();
        let deadline = Instant::now() + PROXY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(mut servers) = self.proxy().server_urls(&service).await {
                servers.sort();
                if servers == expected {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Failure::msg(format!(
            "the proxy did not apply the route change to {} within {}s{}",
            target.containers.join(", "),
            PROXY_TIMEOUT.as_secs(),
            self.proxy_state_hint().await
        )))
    }

    /// Removes the app's route file (nothing routes to the app any more).
    pub(crate) fn remove_route(&self, app: &AppName) -> Result<(), Failure> {
        let names = self.engine().names().app(app);
        Ok(self.routes().remove(&names.route_file())?)
    }

    /// Points every app's route at its live deployment again (after a crash, or after
    /// the proxy was recreated). Errors are logged, never fatal.
    pub(crate) async fn reapply_routes(&self) {
        let apps = match self.store().apps().await {
            Ok(apps) => apps,
            Err(err) => {
                tracing::warn!(%err, "cannot list apps to re-apply routes");
                return;
            }
        };
        for app in apps {
            let Some(live) = app.live_deployment_id else {
                continue;
            };
            let outcome = match self.route_of_deployment(&app.name, live).await {
                Ok(target) => self.point_route(&app.name, &target).await,
                Err(failure) => Err(failure),
            };
            if let Err(failure) = outcome {
                tracing::warn!(app = %app.name, %failure, "cannot confirm the live route");
            }
        }
    }

    /// A few words for an error message when the proxy itself is the problem.
    pub(crate) async fn proxy_state_hint(&self) -> String {
        if self.proxy().is_up().await {
            String::new()
        } else {
            "; the proxy is not answering (it is being restarted)".to_string()
        }
    }
}
