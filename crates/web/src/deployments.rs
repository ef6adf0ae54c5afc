//! Deployments: trigger (deploy, rollback, restart), retry, cancel, show, and read or follow
//! the log.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::{Accepted, Deployment, ErrorBody};
use crate::{views, AppState};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use capstan_deploy::{Caller, Cancelled, LogEvent, RollbackTarget};
use capstan_store::{DeploymentRecord, LogLine};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

/// An optional JSON body: empty means `None`, anything else must parse.
pub(crate) fn optional_body<T: DeserializeOwned>(body: &Bytes) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn accepted(d: &DeploymentRecord) -> (StatusCode, Json<views::Accepted>) {
    (
        StatusCode::ACCEPTED,
        Json(views::Accepted {
            id: d.id,
            state: d.state.as_str().to_string(),
            trigger: d.trigger.as_str().to_string(),
            app: d.app.to_string(),
        }),
    )
}

fn deployment_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{raw:?} is not a deployment id (a positive integer)"
        ))
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// Force a clean build: no reuse of an earlier image, no layer cache.
    #[serde(default)]
    no_cache: bool,
}

#[utoipa::path(post, path = "/apps/{app}/deployments", tag = "deployments", params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<DeployRequest>, description = "optional: another ref, or a clean build"),
    responses((status = 202, description = "queued (older deployments of the app still queued end superseded)", body = Accepted), (status = 429, description = "the app's hourly rate limit (deploys_per_hour) is reached; an admin is not limited", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until the oldest deployment in the hour leaves the window"))), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let name = app_name(&app)?;
    let request: Option<DeployRequest> = optional_body(&body)?;
    let (git_ref, no_cache) = request.map_or((None, false), |r| (r.git_ref, r.no_cache));
    let d = state
        .deployer
        .deploy(&name, git_ref.as_deref(), no_cache, &caller)
        .await?;
    Ok(accepted(&d))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    deployment: Option<i64>,
}

#[utoipa::path(post, path = "/apps/{app}/rollback", tag = "deployments", params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<RollbackRequest>, description = "optional: the deployment to return to (default: the previous successful one)"),
    responses((status = 202, description = "queued (older deployments of the app still queued end superseded)", body = Accepted), (status = 429, description = "the app's hourly rate limit (deploys_per_hour) is reached; an admin is not limited", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until the oldest deployment in the hour leaves the window"))), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let name = app_name(&app)?;
    let request: Option<RollbackRequest> = optional_body(&body)?;
    let target = match request.and_then(|r| r.deployment) {
        Some(id) => RollbackTarget::Deployment(id),
        None => RollbackTarget::Previous,
    };
    let d = state.deployer.rollback(&name, target, &caller).await?;
    Ok(accepted(&d))
}

#[utoipa::path(post, path = "/apps/{app}/restart", tag = "deployments", params(("app" = String, Path, description = "the app's name")),
    responses((status = 202, description = "queued (older deployments of the app still queued end superseded)", body = Accepted), (status = 429, description = "the app's hourly rate limit (deploys_per_hour) is reached; an admin is not limited", body = ErrorBody, headers(("Retry-After" = u64, description = "seconds until the oldest deployment in the hour leaves the window"))), (status = "4XX", description = "what was wrong (409: nothing is deployed yet)", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = state.deployer.restart(&app_name(&app)?, &caller).await?;
    Ok(accepted(&d))
}

#[utoipa::path(post, path = "/deployments/{id}/retry", tag = "deployments",
    params(("id" = i64, Path, description = "the deployment's id")),
    responses((status = 202, description = "queued again, to run only on the servers where it failed", body = Accepted), (status = "4XX", description = "what was wrong (409: it failed on no server, a later deployment replaced it, or it never recorded a release)", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = state.deployer.retry(deployment_id(&id)?, &caller).await?;
    Ok(accepted(&d))
}

#[utoipa::path(post, path = "/deployments/{id}/cancel", tag = "deployments",
    params(("id" = i64, Path, description = "the deployment's id")),
    responses((status = 200, description = "it was queued and is now cancelled", body = Deployment), (status = 202, description = "it runs and stops at its next step, before its traffic switch: its build or health wait stopped, its new containers removed, the live version untouched", body = Deployment), (status = "4XX", description = "what was wrong (409: it already ended, naming its state, or it is already switching traffic)", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (status, d) = match state.deployer.cancel(deployment_id(&id)?, &caller).await? {
        Cancelled::Now(d) => (StatusCode::OK, d),
        Cancelled::Requested(d) => (StatusCode::ACCEPTED, d),
    };
    let view = views::deployment_view(&d, None);
    Ok((status, Json(view)))
}

#[utoipa::path(get, path = "/apps/{app}/deployments", tag = "deployments", params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app's last 100 deployments, newest first", body = Vec<Deployment>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn list_for_app(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = app_name(&app)?;
    state.deployer.store().app(&name).await?;
    let list = state.deployer.store().deployments_of(&name, 100).await?;
    Ok(Json(Value::Array(
        list.iter().map(|d| views::deployment(d, None)).collect(),
    )))
}

#[utoipa::path(get, path = "/deployments/{id}", tag = "deployments",
    params(("id" = i64, Path, description = "the deployment's id")),
    responses((status = 200, description = "the deployment with its phases", body = Deployment), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = deployment_id(&id)?;
    let d = state.deployer.store().deployment(id).await?;
    let phases = state.deployer.store().phases(id).await?;
    let mut view = views::deployment_view(&d, Some(&phases));
    let targets = state.deployer.store().targets_of(id).await?;
    view.servers = Some(targets.iter().map(views::deployment_server).collect());
    let release = state.deployer.store().release_of(id).await?;
    view.port = release.and_then(|r| r.app_spec.port);
    let status = state.deployer.store().commit_status(id).await?;
    view.commit_status = status.as_ref().map(views::commit_status);
    Ok(Json(
        serde_json::to_value(view).expect("a deployment always serializes"),
    ))
}

#[utoipa::path(get, path = "/deployments/{id}/spec", tag = "deployments",
    params(("id" = i64, Path, description = "the deployment's id")),
    responses((status = 200, description = "the compose spec it rendered", content_type = "application/yaml", body = serde_json::Value), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// The compose spec a deployment rendered, as YAML.
pub async fn spec(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = deployment_id(&id)?;
    state.deployer.store().deployment(id).await?;
    let release = state
        .deployer
        .store()
        .release_of(id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("deployment {id} has no compose spec (it never reached the release phase)"),
            )
        })?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml")],
        release.compose_spec,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: bool,
}

fn plain_line(line: &LogLine) -> String {
    format!("{} [{}] {}\n", views::time(line.at), line.stream, line.line)
}

#[utoipa::path(get, path = "/deployments/{id}/logs", tag = "deployments",
    params(("id" = i64, Path, description = "the deployment's id"),
           ("follow" = Option<bool>, Query, description = "stream as server-sent events until the deployment ends")),
    responses((status = 200, description = "the log", content((String = "text/plain"), (serde_json::Value = "text/event-stream"))), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// The log as text, or with `?follow=true` as server-sent events until the deployment ends
/// (`event: log` per line with the sequence number as id, then one `event: end`).
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = deployment_id(&id)?;
    let Query(query) = query?;
    let store = state.deployer.store().clone();
    store.deployment(id).await?;
    if !query.follow {
        let text: String = store
            .logs_after(id, 0)
            .await?
            .iter()
            .map(plain_line)
            .collect();
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(256);
    let deployer = state.deployer.clone();
    tokio::spawn(async move {
        follow(deployer, id, resume_after, (), sender).await;
    });
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn log_event(line: &LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.seq.to_string())
        .data(format!("[{}] {}", line.stream, line.line))
}

/// Sends stored lines after `*last`, advancing it; false when the follower is gone or the
/// store cannot be read.
async fn send_stored(
    store: &capstan_store::Store,
    id: i64,
    last: &mut i64,
    sender: &tokio::sync::mpsc::Sender<Result<Event, Infallible>>,
) -> bool {
    match store.logs_after(id, *last).await {
        Ok(lines) => {
            for line in lines {
                *last = line.seq;
                if sender.send(Ok(log_event(&line))).await.is_err() {
                    return false;
                }
            }
            true
        }
        Err(err) => {
            tracing::warn!(deployment = id, %err, "cannot read log");
            false
        }
    }
}

/// What a follower sends besides the log lines: asked each time the follow loop wakes,
/// with the deployment as the store has it now, for an event to send before the next
/// line (the panel's page follows the phases this way; `()` sends nothing, as for the
/// API's log).
pub(crate) trait ProgressFeed: Send {
    fn news(
        &mut self,
        store: &capstan_store::Store,
        record: &DeploymentRecord,
    ) -> impl std::future::Future<Output = Option<Event>> + Send;
}

impl ProgressFeed for () {
    async fn news(&mut self, _: &capstan_store::Store, _: &DeploymentRecord) -> Option<Event> {
        None
    }
}

/// Streams stored lines after `last`, then live ones, until the deployment finishes
/// (shared by the API and the panel's live log), with what `feed` adds. Subscribing
/// before reading the store means no line can fall between the two.
pub(crate) async fn follow(
    deployer: capstan_deploy::Deployer,
    id: i64,
    last: i64,
    feed: impl ProgressFeed,
    sender: tokio::sync::mpsc::Sender<Result<Event, Infallible>>,
) {
    follow_until_end(&deployer, id, last, feed, sender).await;
    deployer.logs().release(id);
}

async fn follow_until_end(
    deployer: &capstan_deploy::Deployer,
    id: i64,
    mut last: i64,
    mut feed: impl ProgressFeed,
    sender: tokio::sync::mpsc::Sender<Result<Event, Infallible>>,
) {
    let store = deployer.store().clone();
    let mut live = deployer.logs().subscribe(id);
    loop {
        if sender.is_closed() || !send_stored(&store, id, &mut last, &sender).await {
            return;
        }
        let Ok(record) = store.deployment(id).await else {
            return;
        };
        if let Some(event) = feed.news(&store, &record).await {
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let (state, error) = (record.state, record.error);
        if state.is_finished() && !deployer.is_running(id) {
            if !send_stored(&store, id, &mut last, &sender).await {
                return;
            }
            let end = Event::default()
                .event("end")
                .data(json!({ "state": state, "error": error }).to_string());
            let _ = sender.send(Ok(end)).await;
            return;
        }
        // Wait for news (a line or the end) or re-check the store every second (a phase
        // may change without a line), unless the reader leaves first: an abandoned
        // stream stops now, not when a send to it would fail. Lines are always sent from
        // the store, so a lagging receiver can never skip one.
        tokio::select! {
            () = sender.closed() => return,
            news = tokio::time::timeout(Duration::from_secs(1), live.recv()) => match news {
                Ok(Err(RecvError::Closed)) => live = deployer.logs().subscribe(id),
                Ok(Ok(LogEvent::Line(_) | LogEvent::End(_)))
                | Ok(Err(RecvError::Lagged(_)))
                | Err(_) => {}
            },
        }
    }
}
