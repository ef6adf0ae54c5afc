//! `POST /api/v1/webhooks/{provider}/{app}`: a forge's delivery, on the open part of the
//! router. In order: the body's size (5 MiB), the provider, the app's secret, the
//! signature over the RAW body (nothing is parsed before it holds; neither the body, the
//! secret nor the signature is ever logged or echoed), the delivery id against replays,
//! then each event: a push of the app's tracked branch in the app's repository, without a
//! skip marker and touching a watch path, queues a production deployment of exactly the
//! pushed commit; everything else is answered 202 with the reason. The answer comes as
//! soon as the deployment is queued: no git, engine or server work happens here.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::ErrorBody;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use capstan_core::{AppName, Source};
use capstan_deploy::Caller;
use capstan_forge::{Event, Provider, Push};
use serde::Serialize;

/// The largest delivery accepted (GitHub caps its payloads at 25 MB, but a push's is far
/// smaller; the others send less).
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// What came of a delivery.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// `true` when the delivery id was seen before: nothing was done this time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// The deployment queued, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    /// The commit it deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why nothing (else) was queued, one sentence per event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What one event led to.
enum Outcome {
    Pong,
    Queued { deployment: i64, commit: String },
    Ignored(String),
}

/// Refused before the app is known: the same words whether the app is missing or has no
/// secret, so a stranger cannot tell which apps exist.
fn no_secret() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this webhook URL has no secret to verify against: show the app's webhook settings (GET /api/v1/apps/{app}/webhooks) to create one",
    )
}

#[utoipa::path(post, path = "/webhooks/{provider}/{app}", tag = "webhooks", security(()),
    params(("provider" = String, Path, description = "github, gitlab, gitea, forgejo or bitbucket"),
           ("app" = String, Path, description = "the app's name")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "the forge's payload, signed with the app's webhook secret"),
    responses(
        (status = 200, description = "a ping, or a delivery seen before (`duplicate`): nothing queued", body = WebhookAnswer),
        (status = 202, description = "accepted: the deployment queued, or the reason nothing was", body = WebhookAnswer),
        (status = 400, description = "a verified payload that cannot be read", body = ErrorBody),
        (status = 401, description = "no secret to verify against, or a missing or wrong signature", body = ErrorBody),
        (status = 404, description = "unknown provider", body = ErrorBody),
        (status = 413, description = "the body is larger than 5 MiB", body = ErrorBody),
        (status = "4XX", description = "the app cannot be deployed", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Receives a forge's webhook delivery. Needs no token: the delivery is signed with the
/// app's webhook secret (GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`,
/// Gitea/Forgejo `X-Gitea-Signature`, Bitbucket `X-Hub-Signature`).
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let body = read_body(&headers, body).await?;
    let provider: Provider = provider
        .parse()
        .map_err(|e: capstan_forge::UnknownProvider| {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        })?;
    let app = app_name(&app).map_err(|_| no_secret())?;
    let secret = state
        .deployer
        .webhook_secret(&app)
        .await?
        .ok_or_else(no_secret)?;
    if let Err(refused) = provider.verify(secret.as_bytes(), &headers, &body) {
        tracing::warn!(%app, %provider, reason = %refused, "webhook delivery refused");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, refused.to_string()));
    }
    let delivery = provider.delivery_id(&headers);
    if let Some(id) = &delivery {
        let store = state.deployer.store();
        if !store.record_delivery(provider.as_str(), &app, id).await? {
            let answer = WebhookAnswer {
                duplicate: true,
                reason: Some(format!("delivery {id} was handled before")),
                ..Default::default()
            };
            return Ok((StatusCode::OK, Json(answer)));
        }
    }
    let result = handle(&state, provider, &app, &headers, &body).await;
    settle_delivery(&state, provider, &app, delivery.as_deref(), &result).await;
    result
}

/// Reads the body up to [`MAX_BODY`]: a larger `Content-Length` is refused before any of
/// it is read.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the delivery is larger than {} MiB", MAX_BODY >> 20),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    // The only failures are the limit and a body cut short; either way nothing is read.
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())
}

/// Records the delivery's outcome; a failure before anything was queued forgets the
/// delivery, so the forge's retry is handled again.
async fn settle_delivery(
    state: &AppState,
    provider: Provider,
    app: &AppName,
    delivery: Option<&str>,
    result: &Result<(StatusCode, Json<WebhookAnswer>), ApiError>,
) {
    let Some(id) = delivery else { return };
    let store = state.deployer.store();
    let recorded = match result {
        Ok((_, Json(answer))) => {
            let outcome = match answer.deployment {
                Some(deployment) => format!("queued deployment {deployment}"),
                None => format!("ignored: {}", answer.reason.as_deref().unwrap_or("")),
            };
            store
                .set_delivery_outcome(provider.as_str(), app, id, &outcome)
                .await
        }
        Err(_) => store.forget_delivery(provider.as_str(), app, id).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(%app, %provider, error = %e, "webhook delivery outcome not recorded");
    }
}

/// Parses the verified delivery and acts on each of its events.
async fn handle(
    state: &AppState,
    provider: Provider,
    app: &AppName,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let events = provider
        .parse_all(headers, body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let caller = Caller::webhook(provider.as_str());
    let mut answer = WebhookAnswer::default();
    let mut reasons = Vec::new();
    let mut only_pings = true;
    for event in events {
        let outcome = act(state, app, event, &caller).await?;
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
            .await?;
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
/// branch or a tag, a deleted branch, a skip marker, or no watch path touched.
fn why_not(
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
