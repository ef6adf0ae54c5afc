//! What a verified, new delivery's events lead to: a push of the app's tracked branch
//! (written with or without `refs/heads/`) in the app's repository, without a skip marker
//! and touching a watch path, queues a production deployment of exactly the pushed commit
//! (a full commit id, checked again here); everything else is answered 202 with the
//! reason, and each outcome goes to the app's event log.

use super::WebhookAnswer;
use crate::error::ApiError;
use crate::AppState;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use capstan_core::{AppName, Source};
use capstan_deploy::Caller;
use capstan_forge::{Event, Provider, Push};

/// A delivery handled: its status and answer.
pub(super) type Handled = (StatusCode, Json<WebhookAnswer>);

/// A delivery whose handling failed, with the deployments its earlier events queued.
#[derive(Debug)]
pub(super) struct Failed {
    pub error: ApiError,
    pub queued: Vec<i64>,
}

impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Self {
        Failed {
            error,
            queued: Vec::new(),
        }
    }
}

/// What one event led to.
enum Outcome {
    Pong,
    Queued { deployment: i64, commit: String },
    Ignored(String),
}

/// Parses the verified delivery and acts on each of its events.
pub(super) async fn handle(
    state: &AppState,
    provider: Provider,
    app: &AppName,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Handled, Failed> {
    let events = provider
        .parse_all(headers, body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let caller = Caller::webhook(provider.as_str());
    let mut answer = WebhookAnswer::default();
    let mut reasons = Vec::new();
    let mut only_pings = true;
    let mut queued = Vec::new();
    for event in events {
        let failed = |error: ApiError, queued: &[i64]| Failed {
            error,
            queued: queued.to_vec(),
        };
        let outcome = act(state, app, event, &caller)
            .await
            .map_err(|e| failed(e, &queued))?;
        if let Outcome::Queued { deployment, .. } = &outcome {
            queued.push(*deployment);
        }
        let detail = match &outcome {
            Outcome::Pong => "ping".to_string(),
            Outcome::Queued { deployment, commit } => {
                format!("queued deployment {deployment} of commit {commit}")
            }
            Outcome::Ignored(reason) => format!("ignored: {reason}"),
        };
        state
            .deployer
            .store()
            .record_event(app, &caller.actor(), "webhook", &detail)
            .await
            .map_err(|e| failed(e.into(), &queued))?;
        match outcome {
            Outcome::Pong => {}
            Outcome::Queued { deployment, commit } => {
                only_pings = false;
                answer.deployment = Some(deployment);
                answer.commit = Some(commit);
            }
            Outcome::Ignored(reason) => {
                only_pings = false;
                reasons.push(reason);
            }
        }
    }
    if !reasons.is_empty() {
        answer.reason = Some(reasons.join("; "));
    }
    let status = if only_pings {
        answer.reason = Some("pong: the webhook reaches Capstan and its signature holds".into());
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(answer)))
}

/// What one event leads to: a queued deployment, or the reason there is none.
async fn act(
    state: &AppState,
    app: &AppName,
    event: Event,
    caller: &Caller,
) -> Result<Outcome, ApiError> {
    let push = match event {
        Event::Ping => return Ok(Outcome::Pong),
        Event::Push(push) => push,
        Event::PullRequest(pr) => {
            return Ok(Outcome::Ignored(format!(
                "pull request #{} ({}): preview environments are not built yet",
                pr.number,
                pr_action(&pr.action)
            )))
        }
        Event::Ignored { event } => {
            return Ok(Outcome::Ignored(format!(
                "event {event:?} is not one Capstan acts on"
            )))
        }
    };
    let spec = state.deployer.store().app(app).await?.spec;
    let Source::Git { url, reference } = &spec.source else {
        return Ok(Outcome::Ignored(format!(
            "app {app} does not deploy from git"
        )));
    };
    let commit = match why_not(&push, url, reference, &spec.watch_paths) {
        Err(reason) => return Ok(Outcome::Ignored(reason)),
        Ok(commit) => commit,
    };
    let record = state
        .deployer
        .deploy(app, Some(&commit), false, caller)
        .await?;
    Ok(Outcome::Queued {
        deployment: record.id,
        commit,
    })
}

fn pr_action(action: &capstan_forge::PrAction) -> String {
    use capstan_forge::PrAction;
    match action {
        PrAction::Opened => "opened".into(),
        PrAction::Synchronized => "synchronized".into(),
        PrAction::Reopened => "reopened".into(),
        PrAction::Closed { merged: true } => "merged".into(),
        PrAction::Closed { merged: false } => "closed".into(),
        PrAction::Other(other) => other.clone(),
    }
}

/// The commit a push deploys, or why it deploys nothing: another repository, another
/// branch or a tag, a deleted branch, a commit that is not a full id, a skip marker, or
/// no watch path touched. The app's `tracked` ref may be written `refs/heads/<branch>`.
pub(super) fn why_not(
    push: &Push,
    app_url: &str,
    tracked: &str,
    watch_paths: &[String],
) -> Result<String, String> {
    if !push.repo.matches(app_url) {
        let theirs = [&push.repo.clone, &push.repo.ssh, &push.repo.web]
            .into_iter()
            .flatten()
            .next()
            .map(|u| capstan_core::redact::redact_url(u))
            .unwrap_or_else(|| "an unnamed repository".into());
        return Err(format!(
            "the push is for {theirs}, not the app's repository {}",
            capstan_core::redact::redact_url(app_url)
        ));
    }
    let tracked = tracked.strip_prefix("refs/heads/").unwrap_or(tracked);
    let branch = match (&push.branch, &push.tag) {
        (Some(branch), _) => branch,
        (None, Some(tag)) => {
            return Err(format!(
                "tag {tag} pushed: the app deploys branch {tracked}"
            ))
        }
        (None, None) => return Err("the push moved no branch".into()),
    };
    if branch != tracked {
        return Err(format!(
            "branch {branch} pushed: the app deploys branch {tracked}"
        ));
    }
    let commit = match (&push.commit, push.deleted) {
        (Some(commit), false) => commit.clone(),
        _ => return Err(format!("branch {branch} was deleted")),
    };
    if !capstan_forge::is_full_commit_id(&commit) {
        return Err(format!(
            "the push names {:?}, not a full commit id: nothing to deploy exactly",
            short(&commit)
        ));
    }
    if let Some(marker) = push
        .head_message
        .as_deref()
        .and_then(capstan_forge::skip_marker)
    {
        return Err(format!("the head commit {} says {marker}", short(&commit)));
    }
    if let Some(changed) = &push.changed_paths {
        if !capstan_forge::touches_watched(changed, watch_paths) {
            return Err(format!(
                "no changed file is under the watch paths ({})",
                watch_paths.join(", ")
            ));
        }
    }
    Ok(commit)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
