//! The daemon's background duties on every server, not only on the engine beside it: crash
//! recovery of each SSH server an app targets (in the background at start-up, retried with
//! backoff while the server cannot be reached, so a server that is down never holds up the
//! start), the deployers cleanup runs on, and the disk under each server's engine data
//! root (a remote one measured through its engine's API: `capstan-probe --disk` in a
//! one-off container, see `capstan_engine::host_facts`).

use crate::{ActionError, Deployer, DiskUsage};
use capstan_core::{AppName, ServerKind, ServerName};
use capstan_store::AppRecord;
use std::time::Duration;

/// The first wait before trying a server whose recovery could not run yet; doubled after
/// each failure up to [`RECOVERY_RETRY_MAX`].
const RECOVERY_RETRY_FIRST: Duration = Duration::from_secs(2);
const RECOVERY_RETRY_MAX: Duration = Duration::from_secs(60);
/// How long measuring a remote engine's disk may take (a container created, filled,
/// started, read and removed over SSH).
pub(crate) const DISK_TIMEOUT: Duration = Duration::from_secs(20);

impl Deployer {
    /// Whether this deployer's server is one of `app`'s servers (`local` when it names
    /// none).
    pub(crate) fn serves(&self, app: &AppRecord) -> bool {
        if app.spec.servers.is_empty() {
            return self.server().is_local();
        }
        app.spec.servers.contains(self.server())
    }

    /// The deployment of `app` live on this deployer's server, if any.
    pub(crate) async fn live_here(&self, app: &AppName) -> Result<Option<i64>, ActionError> {
        Ok(self.store().live_on(app, self.server().as_str()).await?)
    }

    /// The deployer of the server app `name` runs on (connected and prepared the first
    /// time): what the web layer asks for an app's containers, images and proxy.
    pub async fn app_server(&self, name: &AppName) -> Result<Deployer, ActionError> {
        self.for_app_named(name).await
    }

    /// The SSH servers, other than this deployer's, that some app names.
    pub(crate) async fn targeted_remote_servers(&self) -> Result<Vec<ServerName>, ActionError> {
        let apps = self.store().apps().await?;
        let servers = self.store().servers().await?;
        Ok(servers
            .into_iter()
            .map(|s| s.spec)
            .filter(|s| s.kind == ServerKind::Ssh && &s.name != self.server())
            .filter(|s| apps.iter().any(|a| a.spec.servers.contains(&s.name)))
            .map(|s| s.name)
            .collect())
    }

    /// The deployer of every SSH server some app runs on, connected now if it was not;
    /// the ones that cannot be reached with the reason.
    pub(crate) async fn remote_deployers(
        &self,
    ) -> Vec<(ServerName, Result<Deployer, ActionError>)> {
        let servers = match self.targeted_remote_servers().await {
            Ok(servers) => servers,
            Err(err) => {
                tracing::warn!(%err, "cannot list the servers apps run on");
                return Vec::new();
            }
        };
        let connects = servers.into_iter().map(|server| async move {
            let here = self.connect_target(&server).await;
            (server, here)
        });
        futures::future::join_all(connects).await
    }

    /// Recovers every SSH server an app runs on, each in a task of its own.
    pub(crate) fn recover_servers_in_background(&self) {
        let deployer = self.clone();
        tokio::spawn(async move {
            let servers = match deployer.targeted_remote_servers().await {
                Ok(servers) => servers,
                Err(err) => {
                    tracing::error!(%err, "cannot list the servers to recover");
                    return;
                }
            };
            for server in servers {
                let deployer = deployer.clone();
                tokio::spawn(async move { deployer.recover_server(server).await });
            }
        });
    }

    /// Connects to `server` and reconciles it as the local engine is at start-up: its
    /// leftover containers (of deployments and runs that are over) removed and its apps'
    /// routes pointed at their live deployments. While it cannot be reached, tries again
    /// with backoff, saying so in the log; stops once done, or when the server is gone.
    async fn recover_server(&self, server: ServerName) {
        let mut wait = RECOVERY_RETRY_FIRST;
        loop {
            let outcome = match self.connect_target(&server).await {
                Ok(here) => here.reconcile_server().await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(server = %server, "server recovered: leftovers removed, live routes confirmed");
                    return;
                }
                Err(ActionError::NotFound(_)) => return,
                Err(err) => {
                    tracing::warn!(server = %server, %err, retry_in_secs = wait.as_secs(),
                        "server not reachable: its recovery waits until it is");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECOVERY_RETRY_MAX);
        }
    }

    async fn reconcile_server(&self) -> Result<(), ActionError> {
        self.reconcile_containers().await?;
        self.remove_finished_run_containers().await
    }

    /// Removes the run containers on this server whose run is over.
    async fn remove_finished_run_containers(&self) -> Result<(), ActionError> {
        for container in self.target().run_containers(None).await? {
            let run = container
                .labels
                .get(capstan_compose::labels::RUN)
                .and_then(|id| id.parse::<i64>().ok());
            let over = match run {
                Some(id) => match self.store().run(id).await {
                    Ok(run) => run.state.is_finished(),
                    Err(capstan_store::StoreError::NotFound(_)) => true,
                    Err(err) => return Err(err.into()),
                },
                None => true,
            };
            if over {
                tracing::info!(server = %self.server(), container = %container.name, "removing leftover run container");
                self.target().remove_container(&container.id).await?;
            }
        }
        Ok(())
    }

    /// The engine's data root on this deployer's server and the disk under it: measured
    /// here for the local engine, through the server's engine API for a remote one.
    pub async fn server_disk(&self) -> Result<(String, DiskUsage), String> {
        if self.server().is_local() {
            return self
                .engine_disk()
                .await
                .ok_or_else(|| "cannot measure the disk under the engine's data root".into());
        }
        let engine = self
            .target()
            .docker_engine()
            .ok_or("the server is not reached through a Docker engine")?;
        self.remote_disk(engine).await
    }

    /// The disk under a remote `engine`'s data root, measured by the daemon's probe in a
    /// one-off container of the proxy's image (which a prepared server has).
    pub(crate) async fn remote_disk(
        &self,
        engine: &capstan_engine::Engine,
    ) -> Result<(String, DiskUsage), String> {
        let setup = self.local_setup().map_err(|e| e.to_string())?;
        engine
            .data_root_disk(&setup.proxy.image, &setup.probe, DISK_TIMEOUT)
            .await
            .map_err(|err| format!("cannot measure the disk through the engine: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use crate::target::fake::{FakeTarget, Fault};
    use crate::{Caller, Deployer};
    use capstan_compose::render::DeploymentNames;
    use capstan_core::{AppName, DeploymentState, InstanceNames, ServerName};
    use std::sync::Arc;
    use std::time::Duration;

    /// A daemon stopped mid-switch on a server comes back while the server cannot be
    /// reached: it starts, the server's recovery waits, and once the server's target is
    /// there the half-made containers go and the route points at the live version.
    #[tokio::test]
    async fn a_server_left_mid_switch_is_recovered_once_it_can_be_reached() {
        let dir = tempfile::tempdir().unwrap();
        let store = capstan_store::Store::open(&dir.path().join("capstan.db"))
            .await
            .unwrap();
        let local = Arc::new(FakeTarget::new("capt"));
        let deployer = Deployer::new(
            store.clone(),
            local.clone(),
            crate::target::fake::test_settings(dir.path()),
        );
        let caller = Caller::daemon();
        let server = serde_json::json!({"name": "edge", "kind": "ssh", "host": "10.0.0.7"});
        let server = serde_json::from_value(server).unwrap();
        deployer.create_server(server, &caller).await.unwrap();
        let edge_name = ServerName::parse("edge").unwrap();
        let edge = Arc::new(FakeTarget::new("edge"));
        edge.add_image("web:v1");
        deployer.add_target(edge_name.clone(), edge.clone());
        let app = AppName::parse("api").unwrap();
        let spec = serde_json::from_value(serde_json::json!({
            "source": {"image": "web:v1"}, "port": 8080, "domains": ["api.example.com"],
            "servers": ["edge"], "drain_secs": 1,
            "health": {"interval_secs": 0.1, "deadline_secs": 2}
        }))
        .unwrap();
        deployer.create_app(&app, spec, &caller).await.unwrap();
        let run = |deployer: Deployer| async move {
            let claimed = deployer.store().claim_next().await.unwrap().unwrap();
            let id = claimed.id;
            (
                id,
                tokio::spawn(async move { deployer.run_deployment(claimed).await }),
            )
        };
        deployer.deploy(&app, None, false, &caller).await.unwrap();
        let (first, task) = run(deployer.clone()).await;
        task.await.unwrap();
        let first_containers = DeploymentNames::new("edge", &app, first).replica_containers(1);
        // The next one stalls once routed; the daemon stops there.
        edge.set_fault(Fault::StallsOnceRouted);
        deployer.restart(&app, &caller).await.unwrap();
        let (second, task) = run(deployer.clone()).await;
        let second_containers = DeploymentNames::new("edge", &app, second).replica_containers(1);
        let service = format!(
            "{}@file",
            InstanceNames::new("edge").app(&app).traefik_service()
        );
        let routed = |c: &[String]| -> Vec<String> {
            c.iter().map(|c| format!("http://{c}:8080")).collect()
        };
        for _ in 0..200 {
            if edge.served(&service) == routed(&second_containers) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            edge.served(&service),
            routed(&second_containers),
            "switched"
        );
        task.abort();
        let _ = task.await;
        edge.clear_faults();

        // A new daemon, without the server's target (it cannot be reached yet).
        let restarted = Deployer::new(
            store.clone(),
            local.clone(),
            crate::target::fake::test_settings(dir.path()),
        );
        restarted.recover().await;
        let state = store.deployment(second).await.unwrap().state;
        assert_eq!(state, DeploymentState::Failed);
        // Its first try fails (no target, no host set-up to connect with).
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            edge.exists(&second_containers[0]),
            "nothing done without the server"
        );
        // The server can be reached: its recovery runs at its next try.
        restarted.add_target(edge_name, edge.clone());
        for _ in 0..100 {
            if !edge.exists(&second_containers[0]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !edge.exists(&second_containers[0]),
            "half-made container removed"
        );
        assert_eq!(edge.served(&service), routed(&first_containers));
        assert_eq!(
            store.app(&app).await.unwrap().live_deployment_id,
            Some(first)
        );
        assert!(local.running().is_empty(), "{:?}", local.running());
    }
}
