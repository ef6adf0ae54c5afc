//! Start-up reconciliation after a crash: deployments that were running are failed as
//! interrupted, their half-made containers removed, and every app's route file rewritten
//! to point at its live deployment, which keeps serving throughout.

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
    }

    async fn reconcile_containers(&self) -> Result<(), crate::ActionError> {
        let apps = self.store().apps().await?;
        let live: std::collections::HashMap<String, i64> = apps
            .iter()
            .filter_map(|a| a.live_deployment_id.map(|id| (a.name.to_string(), id)))
            .collect();
        // Remove every container that is not its app's live one (half-made by an
        // interrupted deployment, or an old one whose retirement was cut short).
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
            tracing::info!(container = %container.name, "removing leftover container");
            self.target().remove_container(&container.id).await?;
        }
        // Point each route at the live deployment again (a crash mid-switch may have left
        // it pointing at a container that is now gone).
        self.reapply_routes().await;
        Ok(())
    }
}
