//! Start-up reconciliation after a crash: deployments that were running are failed as
//! interrupted, their half-made containers removed, and every app's route file rewritten
//! to point at its live deployment, which keeps serving throughout; what they left in the
//! workspace directory (checkouts, spooled image exports) is removed. The local engine is
//! reconciled before the daemon serves; every SSH server an app targets is reconciled the
//! same way in the background, once it can be reached (`servers::duties`), so a server
//! that is down never holds up the start.

use crate::Deployer;
use capstan_compose::labels;

impl Deployer {
    /// Reconciles state and engine. Errors are logged; a partial recovery never stops the
    /// daemon from serving.
    pub async fn recover(&self) {
        match self.store().fail_interrupted().await {
            Ok(interrupted) => {
                for d in interrupted {
                    tracing::warn!(deployment = d.id, app = %d.app, "deployment was interrupted by a daemon stop; marked failed");
                    let _ = self
                        .store()
                        .append_log(d.id, "capstan", "deployment failed: interrupted: the daemon stopped while it was running")
                        .await;
                }
            }
            Err(err) => tracing::error!(%err, "cannot fail interrupted deployments"),
        }
        if let Err(err) = self.reconcile_containers().await {
            tracing::error!(%err, "cannot reconcile containers");
        }
        self.recover_runs().await;
        self.sweep_workspaces().await;
        self.recover_servers_in_background();
    }

    /// Removes what deployments left in the workspace directory when the daemon stopped
    /// under them (their checkouts, image exports spooled for other servers): recovery
    /// runs before any worker, so nothing there is in use.
    async fn sweep_workspaces(&self) {
        let dir = &self.settings().workspace_dir;
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            let removed = match entry.file_type().await {
                Ok(kind) if kind.is_dir() => tokio::fs::remove_dir_all(&path).await,
                Ok(_) => tokio::fs::remove_file(&path).await,
                Err(err) => Err(err),
            };
            match removed {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a workspace left by an interrupted deployment")
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "cannot remove a leftover workspace")
                }
            }
        }
    }

    /// Removes this deployer's server's leftover containers and points its apps' routes at
    /// their live deployments again.
    pub(crate) async fn reconcile_containers(&self) -> Result<(), crate::ActionError> {
        // Each app's deployment live on this server (an app on several servers may run
        // another version elsewhere).
        let mut live = std::collections::HashMap::new();
        for app in self.store().apps().await? {
            if let Some(id) = self.live_here(&app.name).await? {
                live.insert(app.name.to_string(), id);
            }
        }
        // Remove every container that is not its app's live one (half-made by an
        // interrupted deployment, or an old one whose retirement was cut short). A
        // deployment still under way (one queued after the start, on a server recovered
        // late) keeps its containers.
        for container in self.target().owned_containers(None).await? {
            let app = container
                .labels
                .get(labels::APP)
                .cloned()
                .unwrap_or_default();
            let deployment = container
                .labels
                .get(labels::DEPLOYMENT)
                .and_then(|d| d.parse::<i64>().ok());
            if deployment.is_some() && live.get(&app) == deployment.as_ref() {
                continue;
            }
            if let Some(id) = deployment {
                if !self.deployment_finished(id).await? {
                    continue;
                }
            }
            tracing::info!(server = %self.server(), container = %container.name, "removing leftover container");
            self.target().remove_container(&container.id).await?;
        }
        // Point each route at the live deployment again (a crash mid-switch may have left
        // it pointing at a container that is now gone).
        self.reapply_idle_routes().await;
        Ok(())
    }

    /// Points the route of each app this server serves at its live deployment, except an
    /// app a deployment is switching right now (it holds the app's lock and sets the
    /// route itself). Errors are logged.
    async fn reapply_idle_routes(&self) {
        let apps = match self.store().apps().await {
            Ok(apps) => apps,
            Err(err) => {
                tracing::warn!(%err, "cannot list apps to re-apply routes");
                return;
            }
        };
        for app in apps.into_iter().filter(|a| self.serves(a)) {
            let live = match self.live_here(&app.name).await {
                Ok(Some(live)) => live,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(app = %app.name, %err, "cannot read the version live here");
                    continue;
                }
            };
            let lock = self.app_lock(app.name.as_str());
            let Ok(_idle) = lock.try_lock() else {
                tracing::info!(server = %self.server(), app = %app.name, "a deployment of the app runs: it sets the route");
                continue;
            };
            let outcome = match self.route_of_deployment(&app.name, live).await {
                Ok(target) => self.point_route(&app.name, &target).await,
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(server = %self.server(), app = %app.name, deployment = live, "route points at the live deployment")
                }
                Err(failure) => {
                    tracing::warn!(server = %self.server(), app = %app.name, %failure, "cannot confirm the live route")
                }
            }
        }
    }

    /// Whether deployment `id` is over (a deployment the store no longer knows is).
    async fn deployment_finished(&self, id: i64) -> Result<bool, crate::ActionError> {
        match self.store().deployment(id).await {
            Ok(d) => Ok(d.state.is_finished()),
            Err(capstan_store::StoreError::NotFound(_)) => Ok(true),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::target::flow_tests::host;

    #[tokio::test]
    async fn recovery_sweeps_what_interrupted_deployments_left_in_the_workspace() {
        let host = host().await;
        let dir = host.deployer.settings().workspace_dir.clone();
        std::fs::create_dir_all(dir.join("41/src")).unwrap();
        std::fs::write(dir.join("41/src/main.rs"), "fn main() {}").unwrap();
        std::fs::create_dir_all(dir.join("transfers")).unwrap();
        std::fs::write(dir.join("transfers/export-1.tar"), vec![0u8; 4096]).unwrap();
        host.deployer.recover().await;
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
