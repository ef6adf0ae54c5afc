//! The worker pool: claims queued deployments from the store (the table is the queue) and
//! runs them, a bounded number at once and one per app (image builds have slots of
//! their own, so fetching or health-checking never holds one).

use crate::Deployer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Resolves once the shutdown flag is true (or its sender is gone).
async fn stopping(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

impl Deployer {
    /// Runs the queue until `shutdown` turns true, then waits up to `grace` for running
    /// deployments to finish. Ones still running then are left to crash recovery.
    pub async fn run_workers(&self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.deployment_slots()));
        let mut running = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("semaphore never closes"),
                _ = stopping(&mut shutdown) => break,
            };
            match self.store().claim_next().await {
                Ok(Some(deployment)) => {
                    let deployer = self.clone();
                    running.spawn(async move {
                        deployer.run_deployment(deployment).await;
                        drop(permit);
                        deployer.wake_workers();
                    });
                    continue;
                }
                Ok(None) => drop(permit),
                Err(err) => {
                    drop(permit);
                    tracing::error!(%err, "cannot claim a deployment");
                }
            }
            while running.try_join_next().is_some() {}
            // Sleep until woken by a new or finished deployment, or poll again shortly.
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopping(&mut shutdown) => break,
            }
        }
        tracing::info!(
            running = running.len(),
            "queue stopped; waiting for running deployments"
        );
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "deployments still running at shutdown will be marked interrupted on next start"
            );
        }
    }
}
