//! The subscriber: deployment events from the bus become commit statuses, each deployment
//! reported by its own task in order (a newer status of a deployment replaces one still
//! waiting to be retried), so a slow or failing forge never holds up the bus, another
//! deployment or the deployment itself.

use crate::api::{self, CommitStatus, StatusState};
use crate::send::{self, SendError};
use capstan_core::{AppName, ForgeSettings, Source};
use capstan_deploy::events::{DeployEvent, Finished, Outcome};
use capstan_store::{SecretKey, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// The waits before each retry of a report that did not go through.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// What the reporter needs besides the events.
#[derive(Clone)]
pub struct Reporter {
    pub store: Store,
    pub secret_key: SecretKey,
    /// The panel's public address (`https://capstan.example.com`), for links to a
    /// deployment's page; `None`: statuses link to the app's domain only.
    pub public_url: Option<String>,
    /// The waits before each retry ([`RETRY_DELAYS`] in the daemon).
    pub retry_delays: Vec<Duration>,
    pub client: reqwest::Client,
}

/// A deployment event worth a status.
enum Job {
    Queued { deployment: i64, app: AppName },
    Finished(Arc<Finished>),
}

impl Reporter {
    pub fn new(store: Store, secret_key: SecretKey, public_url: Option<String>) -> Self {
        Self {
            store,
            secret_key,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            retry_delays: RETRY_DELAYS.to_vec(),
            client: send::client(),
        }
    }

    /// Takes events until the bus closes or `stop` turns true.
    pub async fn run(
        self,
        mut events: broadcast::Receiver<DeployEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        let mut workers: HashMap<i64, mpsc::UnboundedSender<Job>> = HashMap::new();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = stop.changed() => return,
            };
            let (deployment, job, last) = match event {
                Ok(DeployEvent::Queued {
                    deployment, app, ..
                }) => (deployment, Job::Queued { deployment, app }, false),
                Ok(DeployEvent::Finished(finished)) => {
                    (finished.record.id, Job::Finished(finished), true)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "commit statuses fell behind the event bus; some were not reported"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            workers.retain(|_, worker| !worker.is_closed());
            let worker = workers.entry(deployment).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(Arc::clone(&this).work(rx));
                tx
            });
            let _ = worker.send(job);
            if last {
                // Dropping the sender ends the worker once it has reported this.
                workers.remove(&deployment);
            }
        }
    }

    /// Reports one deployment's jobs in order until its sender is dropped.
    async fn work(self: Arc<Self>, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut next = jobs.recv().await;
        while let Some(job) = next {
            next = match self.prepare(&job).await {
                Ok(Some(report)) => self.deliver(report, &mut jobs).await,
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(deployment = job.deployment(), %err, "no commit status reported");
                    None
                }
            };
            if next.is_none() {
                next = jobs.recv().await;
            }
        }
    }

    /// Sends `report`, retrying transient failures; a newer job for the deployment that
    /// arrives while waiting to retry replaces it (and is returned).
    async fn deliver(
        &self,
        report: Report,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Option<Job> {
        let request = &report.request;
        for attempt in 0..=self.retry_delays.len() {
            let err = match send::send(&self.client, request, &report.token).await {
                Ok(()) => {
                    tracing::info!(deployment = report.deployment, forge = %report.provider,
                        state = report.state, sha = %report.sha, "commit status reported");
                    self.record(&report, attempt, None).await;
                    return None;
                }
                Err(err) => err,
            };
            let retry = err
                .is_transient()
                .then(|| self.retry_delays.get(attempt))
                .flatten();
            log_failure(&report, &err, attempt, retry.is_some());
            let Some(delay) = retry.copied() else {
                self.record(&report, attempt, Some(err.to_string())).await;
                return None;
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                Some(newer) = jobs.recv() => return Some(newer),
            }
        }
        None
    }

    /// Keeps the outcome of `report` after `attempt + 1` tries for the panel and the API.
    async fn record(&self, report: &Report, attempt: usize, error: Option<String>) {
        let record = capstan_store::CommitStatusRecord {
            deployment_id: report.deployment,
            provider: report.provider.as_str().to_owned(),
            sha: report.sha.clone(),
            state: report.state.to_owned(),
            delivered: error.is_none(),
            tries: attempt as i64 + 1,
            error,
            updated_at: 0,
        };
        if let Err(err) = self.store.record_commit_status(&record).await {
            tracing::warn!(deployment = report.deployment, %err, "cannot record the commit status");
        }
    }

    /// The request a job makes, or `None` when there is nothing to report (no forge
    /// settings, no known commit).
    async fn prepare(&self, job: &Job) -> Result<Option<Report>, ReportError> {
        let (deployment, app, sha, state, description, target) = match job {
            Job::Queued { deployment, app } => {
                let record = self.store.deployment(*deployment).await?;
                let Some(sha) = record.git_ref.filter(|r| is_full_sha(r)) else {
                    return Ok(None);
                };
                let target = self.panel_link(*deployment);
                (
                    *deployment,
                    app,
                    sha,
                    StatusState::Pending,
                    format!("Deploying {app}"),
                    target,
                )
            }
            Job::Finished(finished) => {
                let record = &finished.record;
                let sha = record.commit_sha.clone().or_else(|| record.git_ref.clone());
                let Some(sha) = sha.filter(|r| is_full_sha(r)) else {
                    return Ok(None);
                };
                let (state, description) = outcome_words(&finished.outcome, &record.app);
                (record.id, &record.app, sha, state, description, None)
            }
        };
        let app_record = self.store.app(app).await?;
        let spec = &app_record.spec;
        let Some(forge) = &spec.forge else {
            return Ok(None);
        };
        let Source::Git { url, .. } = &spec.source else {
            return Err(ReportError::NotGit(app.clone()));
        };
        let repo = api::repository(url).ok_or_else(|| ReportError::NoRepository(app.clone()))?;
        let token = self.token(app, forge).await?;
        let target = match state {
            StatusState::Success => environment_url(spec).or(target),
            _ => target,
        }
        .or_else(|| self.panel_link(deployment));
        let provider = forge.provider.into();
        let root = api::api_root(provider, forge.api_url.as_deref(), &repo);
        let status = CommitStatus {
            sha: sha.clone(),
            state,
            context: format!("capstan/{app}"),
            description,
            target_url: target,
        };
        Ok(Some(Report {
            deployment,
            provider,
            state: state.name(provider),
            sha,
            request: api::request(provider, &root, &repo, &status, &token),
            token,
        }))
    }

    /// The token from the app's secret `forge.token_secret`.
    async fn token(&self, app: &AppName, forge: &ForgeSettings) -> Result<String, ReportError> {
        let secrets = self.store.secret_values(&self.secret_key, app).await?;
        secrets
            .into_iter()
            .find(|s| s.name == forge.token_secret)
            .map(|s| s.value)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ReportError::NoToken {
                app: app.clone(),
                secret: forge.token_secret.clone(),
            })
    }

    fn panel_link(&self, deployment: i64) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/deployments/{deployment}"))
    }
}

/// A status ready to send, with what the log says of it.
struct Report {
    deployment: i64,
    provider: capstan_forge::Provider,
    state: &'static str,
    sha: String,
    request: api::ForgeRequest,
    token: String,
}

/// Why a deployment's status could not even be sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("app {app} has forge settings but no secret {secret} holding the token")]
    NoToken { app: AppName, secret: String },
    #[error("app {0} has forge settings but its source is not a git repository")]
    NotGit(AppName),
    #[error("app {0}: its git URL names no forge repository (host/owner/name)")]
    NoRepository(AppName),
    #[error(transparent)]
    Store(#[from] capstan_store::StoreError),
}

impl Job {
    fn deployment(&self) -> i64 {
        match self {
            Job::Queued { deployment, .. } => *deployment,
            Job::Finished(finished) => finished.record.id,
        }
    }
}

fn log_failure(report: &Report, err: &SendError, attempt: usize, retrying: bool) {
    let (deployment, forge, tries) = (report.deployment, report.provider, attempt + 1);
    if retrying {
        tracing::warn!(deployment, %forge, tries, %err, "commit status not reported; retrying");
    } else {
        tracing::warn!(deployment, %forge, tries, %err, "commit status not reported; giving up");
    }
}

/// The state and words of a finished deployment.
fn outcome_words(outcome: &Outcome, app: &AppName) -> (StatusState, String) {
    match outcome {
        Outcome::Live => (StatusState::Success, format!("{app} is live")),
        Outcome::RolledBack => (StatusState::Success, format!("{app} rolled back to this")),
        Outcome::Failed(reason) => (
            StatusState::Failure,
            format!("Failed while {}: {}", reason.phase.as_str(), reason.message),
        ),
        Outcome::Superseded => (
            StatusState::Stopped,
            "Superseded by a newer deployment".into(),
        ),
        Outcome::Cancelled => (StatusState::Stopped, "Cancelled".into()),
    }
}

/// The app's first domain, over HTTPS when the app has TLS.
fn environment_url(spec: &capstan_core::AppSpec) -> Option<String> {
    let domain = spec.domains.first()?;
    let scheme = if spec.tls { "https" } else { "http" };
    Some(format!("{scheme}://{domain}"))
}

/// A full 40-digit hexadecimal commit id.
fn is_full_sha(reference: &str) -> bool {
    reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_commit_ids_are_reported() {
        assert!(is_full_sha(&"0123456789abcdef".repeat(3)[..40]));
        assert!(!is_full_sha("main"));
        assert!(!is_full_sha(&"a".repeat(39)));
        assert!(!is_full_sha(&"g".repeat(40)));
    }
}
