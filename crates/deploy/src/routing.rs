//! The app's route at the proxy: writing its file (routers from the app's domains, the
//! service with the serving deployment's containers) and confirming through Traefik's API
//! that the change is in force. Routes come only from these files.

use crate::pipeline::Failure;
use crate::Deployer;
use capstan_compose::render::DeploymentNames;
use capstan_compose::routes::{render_routes, MaintenanceRoute, RouteTarget};
use capstan_core::{AppName, AppSpec, ServerName};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long Traefik may take to pick up a route file change.
#[cfg(not(test))]
pub(crate) const PROXY_TIMEOUT: Duration = Duration::from_secs(20);
/// Unit tests' fake proxy either confirms at once or never.
#[cfg(test)]
pub(crate) const PROXY_TIMEOUT: Duration = Duration::from_secs(1);

/// The route that sends an app's traffic to one deployment's containers.
pub(crate) fn route_target(spec: &AppSpec, containers: &[String]) -> RouteTarget {
    RouteTarget {
        domains: spec.domains.clone(),
        tls: spec.tls,
        containers: containers.to_vec(),
        port: spec.listen_port(),
        maintenance: None,
    }
}

/// The routes each server's files hold, one lock per server.
#[derive(Default)]
pub(crate) struct RoutesInForce {
    servers: std::sync::Mutex<HashMap<ServerName, Arc<Mutex<ServerRoutes>>>>,
}

/// One server's routes in force, by app.
type ServerRoutes = HashMap<AppName, RouteTarget>;

impl RoutesInForce {
    /// `server`'s routes, locked until the guard drops.
    async fn lock(&self, server: &ServerName) -> OwnedMutexGuard<ServerRoutes> {
        let routes = self
            .servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(server.clone())
            .or_default()
            .clone();
        routes.lock_owned().await
    }
}

impl Deployer {
    /// This server's routes in force, locked.
    async fn routes_here(&self) -> OwnedMutexGuard<ServerRoutes> {
        self.inner.routes_in_force.lock(self.server()).await
    }

    /// The route of an earlier deployment, from the settings stored with its release.
    pub(crate) async fn route_of_deployment(
        &self,
        app: &AppName,
        deployment: i64,
    ) -> Result<RouteTarget, Failure> {
        let release = self.store().release_of(deployment).await?.ok_or_else(|| {
            Failure::msg(format!("deployment {deployment} has no recorded release"))
        })?;
        let names = DeploymentNames::new(self.target().instance(), app, deployment);
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
        if self.target().swarm().is_some() {
            // A swarm server's proxy routes an app from its service's labels (`swarm`):
            // a route file with the same rule would compete with them.
            return Ok(());
        }
        {
            let mut in_force = self.routes_here().await;
            self.write_route(app, target).await?;
            in_force.insert(app.clone(), target.clone());
        }
        let names = self.target().names().app(app);
        let service = format!("{}@file", names.traefik_service());
        let mut expected = target.server_urls();
        expected.sort();
        let deadline = Instant::now() + PROXY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(mut servers) = self.target().served_urls(&service).await {
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

    /// Renders the app's route file for `target`, with the maintenance router when the
    /// store says the app is in maintenance, and writes it. Callers hold this server's
    /// `routes_in_force` lock.
    async fn write_route(&self, app: &AppName, target: &RouteTarget) -> Result<(), Failure> {
        let names = self.target().names().app(app);
        let mut target = target.clone();
        if let Some(record) = self.store().maintenance(app).await? {
            let spec = self.store().app(app).await?.spec;
            target.maintenance = Some(MaintenanceRoute {
                message: record.page.message,
                retry_after_secs: record.page.retry_after_secs,
                passthrough_path: Some(spec.health.path.clone()),
                pages_url: self.target().names().maintenance_pages_url(),
            });
        }
        let text = render_routes(&names, &target, self.settings().proxy_https_port)?;
        self.target()
            .write_route(&names.route_file(), &text)
            .await?;
        Ok(())
    }

    /// Rewrites the app's route file in force (after its maintenance state changed);
    /// `false` when the app has no route (nothing live yet).
    pub(crate) async fn rewrite_route(&self, app: &AppName) -> Result<bool, Failure> {
        if self.target().swarm().is_some() {
            return self.swarm_maintenance_route(app).await;
        }
        let in_force = self.routes_here().await;
        let Some(target) = in_force.get(app) else {
            return Ok(false);
        };
        self.write_route(app, target).await?;
        Ok(true)
    }

    /// The route the app's file holds, if any.
    pub(crate) async fn route_in_force(&self, app: &AppName) -> Option<RouteTarget> {
        self.routes_here().await.get(app).cloned()
    }

    /// Removes the app's route file (nothing routes to the app any more).
    pub(crate) async fn remove_route(&self, app: &AppName) -> Result<(), Failure> {
        let mut in_force = self.routes_here().await;
        in_force.remove(app);
        let names = self.target().names().app(app);
        Ok(self.target().remove_route(&names.route_file()).await?)
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
        // Only the apps this server serves, each at the version live here.
        let here = |app: &capstan_store::AppRecord| app.spec.servers.contains(self.server());
        for app in apps.into_iter().filter(here) {
            let live = match self
                .store()
                .live_on(&app.name, self.server().as_str())
                .await
            {
                Ok(Some(live)) => live,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(app = %app.name, %err, "cannot read the live version");
                    continue;
                }
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
        if self.target().proxy_answers().await {
            String::new()
        } else {
            "; the proxy is not answering (it is being restarted)".to_string()
        }
    }
}
