//! A claimed deployment from start to end: the server it runs on (a deployment whose
//! server has no target fails at once), the app's lock, a panic caught as a failure, the
//! outcome recorded and published, the workspace removed, and the retirement of the version
//! it replaced left to run after the app is free. The phases themselves are `pipeline`'s.

use crate::events::{DeployEvent, FailureKind};
use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::Deployer;
use capstan_core::DeploymentState;
use capstan_store::DeploymentRecord;
use std::path::Path;

impl Deployer {
    /// Runs a claimed deployment to its end and records the outcome. The retirement of
    /// the version it replaced goes on in a task of its own after the app is free for its
    /// next deployment; the deployment's log ends when that is done.
    pub(crate) async fn run_deployment(&self, deployment: DeploymentRecord) {
        match self.bound_for(&deployment).await {
            Ok(here) => here.run_here(deployment).await,
            Err(failure) => self.fail_unstarted(deployment, failure).await,
        }
    }

    /// The deployer of the server the deployment's app runs on; for a deployment on
    /// several servers, the first of its servers that can be reached (it builds).
    async fn bound_for(&self, deployment: &DeploymentRecord) -> Result<Deployer, Failure> {
        let app = self.store().app(&deployment.app).await?;
        let targets = self.store().targets_of(deployment.id).await?;
        let builds = deployment.trigger == capstan_core::Trigger::Deploy
            && self.store().release_of(deployment.id).await?.is_none();
        if let Some(builder) = app.spec.build_server.as_ref().filter(|_| builds) {
            // The build server builds; the image moves to the app's servers from there.
            return self
                .connect_target(builder)
                .await
                .map_err(|refused| Failure::msg(format!("build server {builder}: {refused}")));
        }
        if targets.len() <= 1 {
            return self
                .for_app(&app.spec)
                .await
                .map_err(|refused| Failure::msg(refused.to_string()));
        }
        // The servers recorded when it was queued, in their order (the app's list may
        // have changed since).
        let mut refusals = Vec::new();
        for target in &targets {
            let server = capstan_core::ServerName::parse(&target.server)
                .map_err(|e| Failure::msg(format!("deployment server {:?}: {e}", target.server)))?;
            match self.connect_target(&server).await {
                Ok(here) => return Ok(here),
                Err(refused) => refusals.push(format!("{server}: {refused}")),
            }
        }
        Err(Failure::msg(format!(
            "no server of the app can be reached: {}",
            refusals.join("; ")
        )))
    }

    /// Records a deployment that could not start on any server as failed.
    async fn fail_unstarted(&self, deployment: DeploymentRecord, failure: Failure) {
        let id = deployment.id;
        self.set_running(id, Some(&deployment.app));
        let log = DeployLog::new(self, id);
        let kind = FailureKind::of(&failure);
        let state = self.record_outcome(id, Err(failure), &log).await;
        self.forget_cancel(id);
        self.publish_finished(id, Some(kind)).await;
        self.set_running(id, None);
        log.end(state);
    }

    /// Runs the deployment on this deployer's server.
    async fn run_here(&self, deployment: DeploymentRecord) {
        let id = deployment.id;
        self.set_running(id, Some(&deployment.app));
        // Made now, so a cancel from here on finds it (one made by a cancel that came
        // between the claim and now is the same).
        self.cancel_cell(id);
        let log = DeployLog::new(self, id);
        log_queue_wait(&deployment, &log).await;
        let app_guard = self.lock_app(&deployment.app, &log).await;
        self.publish(DeployEvent::Started {
            deployment: id,
            app: deployment.app.clone(),
        });
        log.info(format!(
            "deployment {id} of {} ({}) started",
            deployment.app,
            deployment.trigger.as_str()
        ))
        .await;
        let workspace = self.settings().workspace_dir.join(id.to_string());
        let outcome = self.execute_guarded(&deployment, &workspace, &log).await;
        if workspace.exists() {
            if let Err(err) = tokio::fs::remove_dir_all(&workspace).await {
                tracing::warn!(deployment = id, %err, "cannot remove workspace");
            }
        }
        let kind = outcome.as_ref().err().map(FailureKind::of);
        let final_state = self.record_outcome(id, outcome, &log).await;
        self.forget_cancel(id);
        // Published before the app is free, so a subscriber sees this deployment end before
        // the app's next one starts (two reads of the store: the next one barely waits).
        self.publish_finished(id, kind).await;
        drop(app_guard);
        let retirement = self.take_retirement(id);
        let deployer = self.clone();
        let finish = async move {
            if let Some(retirement) = retirement {
                retirement.await;
            }
            deployer.set_running(id, None);
            log.end(final_state);
        };
        tokio::spawn(finish);
    }

    /// Holds the app's lock for the deployment, saying so in the log when it has to wait.
    async fn lock_app(
        &self,
        app: &capstan_core::AppName,
        log: &DeployLog,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let app_lock = self.app_lock(app.as_str());
        match app_lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                log.info(format!(
                    "waiting for the previous deployment of {app} to finish"
                ))
                .await;
                app_lock.lock_owned().await
            }
        }
    }

    /// Runs the deployment; a panic inside it fails that deployment and frees its app.
    async fn execute_guarded(
        &self,
        deployment: &DeploymentRecord,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(self.execute(deployment, workspace, log))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(deployment = deployment.id, %what, "deployment panicked");
                Err(Failure::msg(format!("internal error (panic): {what}")))
            })
    }

    /// Logs how the deployment ended and records a failure (going live was recorded by the
    /// cutover); the final state.
    async fn record_outcome(
        &self,
        id: i64,
        outcome: Result<(), Failure>,
        log: &DeployLog,
    ) -> DeploymentState {
        let failure = match outcome {
            Ok(()) => {
                log.info("deployment is live").await;
                return DeploymentState::Live;
            }
            Err(Failure::Cancelled(by)) => return self.record_cancelled(id, &by, log).await,
            Err(failure) => failure,
        };
        log.info(format!("deployment failed: {failure}")).await;
        let reason = log.masked(&failure.to_string());
        if let Err(err) = self.store().fail_open_targets(id, &reason).await {
            tracing::error!(deployment = id, %err, "cannot record the servers' failure");
        }
        // A retry that failed before reaching a server: it still serves where it is live.
        if let Some(state) = self.settle_if_live_somewhere(id, &reason).await {
            return state;
        }
        if let Err(err) = self
            .store()
            .transition(id, DeploymentState::Failed, Some(&reason))
            .await
        {
            tracing::error!(deployment = id, %err, "cannot record failure");
        }
        DeploymentState::Failed
    }
}

impl Deployer {
    /// Records a deployment cancelled while it ran (its new containers already removed by
    /// the step it stopped in); `failed` should the store refuse the move.
    async fn record_cancelled(&self, id: i64, by: &str, log: &DeployLog) -> DeploymentState {
        let note = format!("cancelled by {by} while it ran; the live version was not touched");
        log.info(format!("deployment {note}")).await;
        if let Err(err) = self.store().cancel_open_targets(id, &note).await {
            tracing::error!(deployment = id, %err, "cannot record the servers' cancellation");
        }
        match self
            .store()
            .transition(id, DeploymentState::Cancelled, Some(&note))
            .await
        {
            Ok(()) => DeploymentState::Cancelled,
            Err(err) => {
                tracing::error!(deployment = id, %err, "cannot record the cancellation");
                let _ = self
                    .store()
                    .transition(id, DeploymentState::Failed, Some(&note))
                    .await;
                DeploymentState::Failed
            }
        }
    }

    /// Settles a deployment live on some server as live (the failure kept as its note);
    /// `None` when it is live nowhere.
    async fn settle_if_live_somewhere(&self, id: i64, reason: &str) -> Option<DeploymentState> {
        let targets = self.store().targets_of(id).await.ok()?;
        if !targets.iter().any(|t| t.state == DeploymentState::Live) {
            return None;
        }
        let record = self.store().deployment(id).await.ok()?;
        match self
            .store()
            .settle_from_targets(&record.app, id, Some(reason))
            .await
        {
            Ok(state) => Some(state),
            Err(err) => {
                tracing::error!(deployment = id, %err, "cannot settle the deployment from its servers");
                None
            }
        }
    }
}

/// Says how long the deployment waited in the queue, when it was a second or more.
async fn log_queue_wait(deployment: &DeploymentRecord, log: &DeployLog) {
    let queued_ms = capstan_store::now_ms() - deployment.created_at;
    if queued_ms >= 1000 {
        log.info(format!(
            "waited {:.1}s in the queue (for the app's previous deployment or a free deployment slot)",
            queued_ms as f64 / 1000.0
        ))
        .await;
    }
}
