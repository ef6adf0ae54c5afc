//! The queue's policy as the deployer applies it: deployments queued under the app's rate
//! limit (an admin is exempt) superseding the app's older queued ones, cancellation of a
//! queued deployment (at once) or a running one (at its next step, up to the switch), and
//! transient faults before anything was started tried again with backoff.

use crate::events::DeployEvent;
use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::{ActionError, Caller, Deployer};
use capstan_core::DeploymentState;
use capstan_store::{DeploymentRecord, NewDeployment, RateLimit};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How many times a transient fault before anything was started is tried in all.
pub(crate) const TRANSIENT_TRIES: u32 = 3;

/// The wait before try `n + 1` (after `n` failed): 1 s, 2 s, 4 s (milliseconds in tests).
pub(crate) fn backoff(failed_tries: u32) -> Duration {
    let unit = if cfg!(test) {
        Duration::from_millis(10)
    } else {
        Duration::from_secs(1)
    };
    unit * 2u32.pow(failed_tries.saturating_sub(1).min(6))
}

/// One running deployment's cancellation: who asked, and whether it is past the point
/// where it can be (its route is switching).
#[derive(Debug)]
pub(crate) struct CancelCell {
    by: watch::Sender<Option<String>>,
    committed: Mutex<bool>,
}

impl Default for CancelCell {
    fn default() -> Self {
        Self {
            by: watch::channel(None).0,
            committed: Mutex::new(false),
        }
    }
}

impl CancelCell {
    /// Asks for the cancellation; `false` when the deployment already switches.
    fn request(&self, actor: &str) -> bool {
        let committed = self.committed.lock().expect("cancel lock");
        if *committed {
            return false;
        }
        self.by.send_if_modified(|by| {
            let first = by.is_none();
            by.get_or_insert_with(|| actor.to_string());
            first
        });
        true
    }

    /// Who cancelled it, if someone did.
    fn cancelled_by(&self) -> Option<String> {
        self.by.borrow().clone()
    }

    /// Passes the point of no return (the switch) unless it was cancelled first.
    fn commit(&self) -> Result<(), String> {
        let mut committed = self.committed.lock().expect("cancel lock");
        if let Some(by) = self.cancelled_by() {
            return Err(by);
        }
        *committed = true;
        Ok(())
    }

    /// Resolves when it is cancelled, with who did.
    async fn cancelled(&self) -> String {
        let mut by = self.by.subscribe();
        let seen = by
            .wait_for(Option::is_some)
            .await
            .map(|by| by.clone().unwrap_or_default());
        match seen {
            Ok(by) => by,
            // The sender lives as long as the cell: never.
            Err(_) => std::future::pending().await,
        }
    }
}

/// The cancellation cells of the deployments this process runs.
#[derive(Debug, Default)]
pub(crate) struct Cancels(Mutex<HashMap<i64, Arc<CancelCell>>>);

impl Deployer {
    /// Deployment `id`'s cancellation cell, made on first use (by its worker or by a cancel
    /// that came between its claim and its start).
    pub(crate) fn cancel_cell(&self, id: i64) -> Arc<CancelCell> {
        let mut cells = self.inner.cancels.0.lock().expect("cancels lock");
        cells.entry(id).or_default().clone()
    }

    /// Forgets deployment `id`'s cell: it has ended.
    pub(crate) fn forget_cancel(&self, id: i64) {
        self.inner
            .cancels
            .0
            .lock()
            .expect("cancels lock")
            .remove(&id);
    }

    fn existing_cell(&self, id: i64) -> Option<Arc<CancelCell>> {
        self.inner
            .cancels
            .0
            .lock()
            .expect("cancels lock")
            .get(&id)
            .cloned()
    }

    /// Between phases: a cancelled deployment stops here; entering `switching` is the point
    /// after which it cannot be cancelled any more.
    pub(crate) fn cancel_gate(&self, id: i64, next: DeploymentState) -> Result<(), Failure> {
        let Some(cell) = self.existing_cell(id) else {
            return Ok(());
        };
        let checked = match next {
            DeploymentState::Switching => cell.commit(),
            _ => cell.cancelled_by().map_or(Ok(()), Err),
        };
        checked.map_err(Failure::Cancelled)
    }

    /// Runs `work` (a fetch, a build, a health wait) unless deployment `id` is cancelled
    /// first, in which case `work` is dropped (a build stream stops, a git process is
    /// killed) and the failure says who cancelled it.
    pub(crate) async fn unless_cancelled<T, E>(
        &self,
        id: i64,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure>
    where
        Failure: From<E>,
    {
        let cell = self.cancel_cell(id);
        tokio::select! {
            biased;
            by = cell.cancelled() => Err(Failure::Cancelled(by)),
            done = work => done.map_err(Failure::from),
        }
    }

    /// Runs `attempt` up to [`TRANSIENT_TRIES`] times while it fails with a transient fault
    /// (the network while fetching, the engine unreachable), each failed try and the wait
    /// in the log; `what` names the step. Only for steps before any container is started.
    pub(crate) async fn with_transient_retries<T, Fut>(
        &self,
        id: i64,
        what: &str,
        log: &DeployLog,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let failure = match self.unless_cancelled(id, attempt()).await {
                Ok(done) => return Ok(done),
                Err(failure) => failure,
            };
            if !failure.is_transient() || tries >= TRANSIENT_TRIES {
                return Err(failure);
            }
            let wait = backoff(tries);
            log.info(format!(
                "{what} failed (try {tries} of {TRANSIENT_TRIES}): {failure}; trying again in {:.0?}",
                wait
            ))
            .await;
            let slept: Result<(), Failure> = self
                .unless_cancelled(id, async {
                    tokio::time::sleep(wait).await;
                    Ok::<(), Failure>(())
                })
                .await;
            slept?;
        }
    }

    /// Queues a deployment under the app's rate limit (none for an admin or a rollback), superseding
    /// the app's older queued deployments; each superseded one says so in its log and on
    /// the bus.
    pub(crate) async fn enqueue_under_policy(
        &self,
        new: NewDeployment<'_>,
        per_hour: u32,
        caller: &Caller,
    ) -> Result<DeploymentRecord, ActionError> {
        // A rollback is how an incident ends: never refused, never counted.
        let limit = if caller.is_admin() || new.trigger == capstan_core::Trigger::Rollback {
            RateLimit::Exempt
        } else {
            RateLimit::Counted { per_hour }
        };
        let app = new.app.clone();
        let queued = self
            .store()
            .enqueue_with(new, limit)
            .await?
            .map_err(|limited| {
                let secs = (limited.retry_after_ms + 999) / 1000;
                ActionError::RateLimited {
                    message: format!(
                        "app {app} may be deployed {} times an hour (deploys_per_hour) and that many were queued in the last hour; try again in {secs} s, or ask an admin",
                        limited.per_hour
                    ),
                    retry_after_secs: secs.max(1) as u64,
                }
            })?;
        for id in &queued.superseded {
            let log = DeployLog::new(self, *id);
            log.info(format!(
                "superseded by deployment {} before it started",
                queued.record.id
            ))
            .await;
            self.publish_finished(*id, None).await;
            log.end(DeploymentState::Superseded);
        }
        self.publish(DeployEvent::Queued {
            deployment: queued.record.id,
            app: queued.record.app.clone(),
            trigger: queued.record.trigger,
        });
        self.wake_workers();
        Ok(queued.record)
    }

    /// Cancels a deployment: a queued one ends `cancelled` at once (`Cancelled::Now`), a
    /// running one stops at its next step (`Cancelled::Requested`: its build or health wait
    /// is dropped, its new containers removed, the live version untouched). 409 once it is
    /// switching or has ended.
    pub async fn cancel(&self, id: i64, caller: &Caller) -> Result<Cancelled, ActionError> {
        let actor = caller.actor();
        let d = self.store().deployment(id).await?;
        if d.state == DeploymentState::Queued {
            // A queued retry is the app's live deployment where it went live: cancelling it
            // would record the serving version as cancelled.
            let live_on = self.store().targets_of(id).await?;
            let live_on: Vec<&str> = live_on
                .iter()
                .filter(|t| t.state == DeploymentState::Live)
                .map(|t| t.server.as_str())
                .collect();
            if !live_on.is_empty() {
                return Err(ActionError::Conflict(format!(
                    "deployment {id} is queued to run again where it failed but is live on {}: it cannot be cancelled (deploy or roll back instead)",
                    live_on.join(", ")
                )));
            }
            let note = format!("cancelled by {actor} before it started");
            if let Some(ended) = self.store().cancel_queued(id, &note).await? {
                let log = DeployLog::new(self, id);
                log.info(&note).await;
                self.publish_finished(id, None).await;
                log.end(DeploymentState::Cancelled);
                return Ok(Cancelled::Now(ended));
            }
        }
        // Claimed meanwhile, or running.
        let d = self.store().deployment(id).await?;
        refuse_cancel(&d)?;
        let cell = self.cancel_cell(id);
        if !cell.request(&actor) {
            return Err(too_late(id));
        }
        let now = self.store().deployment(id).await?;
        if now.state.is_finished() {
            self.forget_cancel(id);
            refuse_cancel(&now)?;
        }
        DeployLog::new(self, id)
            .info(format!(
                "cancel requested by {actor}: stopping at the next step"
            ))
            .await;
        Ok(Cancelled::Requested(now))
    }
}

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// It was queued and is now `cancelled`.
    Now(DeploymentRecord),
    /// It runs and stops at its next step.
    Requested(DeploymentRecord),
}

fn too_late(id: i64) -> ActionError {
    ActionError::Conflict(format!(
        "deployment {id} is already switching traffic to its new version: too late to cancel"
    ))
}

/// The refusal for a deployment that cannot be cancelled any more.
fn refuse_cancel(d: &DeploymentRecord) -> Result<(), ActionError> {
    match d.state {
        DeploymentState::Switching => Err(too_late(d.id)),
        state if state.is_finished() => Err(ActionError::Conflict(format!(
            "deployment {} already ended: it is {state}",
            d.id
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles() {
        assert_eq!(backoff(2), backoff(1) * 2);
        assert_eq!(backoff(3), backoff(1) * 4);
    }

    #[tokio::test]
    async fn a_cell_cancelled_before_the_switch_refuses_it_and_after_refuses_the_cancel() {
        let cell = CancelCell::default();
        assert!(cell.request("user:ann"));
        assert!(cell.request("user:bob"), "a second ask is no error");
        assert_eq!(cell.commit(), Err("user:ann".to_string()));
        assert_eq!(cell.cancelled().await, "user:ann");
        let switching = CancelCell::default();
        assert_eq!(switching.commit(), Ok(()));
        assert!(!switching.request("user:ann"));
        assert_eq!(switching.cancelled_by(), None);
    }
}
