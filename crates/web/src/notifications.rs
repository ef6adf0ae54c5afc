//! `/api/v1/apps/{app}/notifications` (deploy scope) and `/api/v1/notifications` (global
//! channels, admin): notification channels listed and added; `/api/v1/notifications/{id}`
//! removed, tested (a message sent now, the result in the answer) and its recent
//! deliveries listed (deploy scope for an app's channel, admin for a global one). URLs and
//! passwords go in and never come out: a channel shows its URL masked to scheme and host,
//! a webhook's signing secret is shown once, in the answer that creates it, and no error
//! repeats a value of the request.

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::{time, ErrorBody};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use capstan_core::{AppName, Scope};
use capstan_deploy::Caller;
use capstan_notify::{ChannelInput, Notifier, NotifyError, RetryPolicy};
use capstan_store::{ChannelRecord, OutboxRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body that adds a channel. Which fields apply depends on `kind`.
#[derive(ToSchema)]
#[allow(dead_code)] // read by `capstan_notify::ChannelInput`, documented here
pub struct NewChannel {
    /// `webhook`, `slack`, `discord` or `email`.
    kind: String,
    /// Among `deployment.live`, `deployment.failed`, `deployment.rolled_back`,
    /// `deployment.cancelled`, `deployment.superseded`, `server.unreachable` (global
    /// channels only). Default: live and failed.
    events: Option<Vec<String>>,
    /// webhook, slack, discord: the http(s) URL to POST to (stored encrypted).
    url: Option<String>,
    /// email: the SMTP server.
    smtp_host: Option<String>,
    /// email: default 587 (starttls), 465 (tls), 25 (none).
    smtp_port: Option<u16>,
    /// email: `starttls` (default), `tls` or `none` (no password unless to loopback).
    smtp_tls: Option<String>,
    smtp_username: Option<String>,
    /// Stored encrypted; never returned.
    smtp_password: Option<String>,
    /// email: the sender address.
    from: Option<String>,
    /// email: the recipients.
    to: Option<Vec<String>>,
}

/// A channel as the API shows it: no URL token, no password.
#[derive(Serialize, ToSchema)]
pub struct Channel {
    pub id: i64,
    /// The app, or null for a global channel.
    pub app: Option<String>,
    pub kind: String,
    pub events: Vec<String>,
    /// What may be shown: the URL masked (`https://hooks.slack.com/…`), or the SMTP
    /// host, port, TLS mode, username, sender and recipients.
    #[schema(value_type = Object)]
    pub config: Value,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The newest message's delivery, if any was queued.
    pub last_delivery: Option<Delivery>,
    /// A generic webhook's signing secret: only in the answer that creates it.
    pub signing_secret: Option<String>,
}

/// One message of a channel's outbox.
#[derive(Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub event: String,
    /// `pending`, `delivered` or `failed` (out of tries).
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it is tried next (pending).
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
}

/// What a test message came to.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    /// Why not (no secret in it).
    pub error: Option<String>,
}

fn delivery(row: OutboxRecord) -> Delivery {
    Delivery {
        id: row.id,
        event: row.event,
        state: row.state,
        attempts: row.attempts,
        last_error: row.last_error,
        created_at: time(row.created_at),
        next_attempt_at: time(row.next_attempt_at),
        delivered_at: row.delivered_at.map(time),
    }
}

async fn view(state: &AppState, record: ChannelRecord) -> Result<Channel, ApiError> {
    let last = state
        .deployer
        .store()
        .channel_deliveries(record.id, 1)
        .await?;
    Ok(Channel {
        id: record.id,
        app: record.app.map(|a| a.to_string()),
        kind: record.kind,
        events: record.events,
        config: record.config,
        created_at: time(record.created_at),
        last_delivery: last.into_iter().next().map(delivery),
        signing_secret: None,
    })
}

pub(crate) fn notifier(state: &AppState) -> Result<Notifier, ApiError> {
    Notifier::new(
        state.deployer.store().clone(),
        state.deployer.secret_key().clone(),
        RetryPolicy::default(),
    )
    .map_err(notify_error)
}

pub(crate) fn notify_error(err: NotifyError) -> ApiError {
    match err {
        NotifyError::Invalid { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
        NotifyError::Store(err) => err.into(),
        NotifyError::Send(_) => ApiError::new(StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

/// The body as a channel; a wrong field is named, its value never repeated.
fn channel_input(body: Result<Json<Value>, JsonRejection>) -> Result<ChannelInput, ApiError> {
    let Json(body) = body?;
    serde_path_to_error::deserialize(body).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: unknown field or wrong type", err.path()),
        )
    })
}

async fn list(state: &AppState, app: Option<&AppName>) -> Result<Json<Vec<Channel>>, ApiError> {
    let mut out = Vec::new();
    for record in state.deployer.store().channels(app).await? {
        out.push(view(state, record).await?);
    }
    Ok(Json(out))
}

async fn add(
    state: &AppState,
    caller: &Caller,
    app: Option<&AppName>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let input = channel_input(body)?;
    if app.is_some()
        && input
            .events
            .iter()
            .flatten()
            .any(|e| e.starts_with("server."))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "events: server events go to global channels only",
        ));
    }
    let (record, signing_secret) = notifier(state)?
        .add(app, input)
        .await
        .map_err(notify_error)?;
    if let Some(app) = app {
        let detail = format!("{} channel {}", record.kind, record.id);
        state
            .deployer
            .store()
            .record_event(app, &caller.actor(), "notification channel added", &detail)
            .await?;
    }
    let mut shown = view(state, record).await?;
    shown.signing_secret = signing_secret;
    Ok((StatusCode::CREATED, Json(shown)))
}

fn channel_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(format!("{raw:?} is not a channel id (a positive integer)"))
    })
}

/// Channel `id`, if the caller may act on it: an app's channel with the deploy scope the
/// route already checked, a global one with the admin scope.
async fn reachable_channel(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<ChannelRecord, ApiError> {
    let record = state.deployer.store().channel(id).await?;
    if record.app.is_none() && !caller.scopes.allows(Scope::Admin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a global notification channel needs the admin scope",
        ));
    }
    Ok(record)
}

#[utoipa::path(get, path = "/apps/{app}/notifications", tag = "notifications",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app's channels", body = Vec<Channel>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// The app's notification channels (global ones are at `/notifications`).
pub async fn list_app(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Channel>>, ApiError> {
    let app = app_name(&app)?;
    state.deployer.store().app(&app).await?;
    list(&state, Some(&app)).await
}

#[utoipa::path(post, path = "/apps/{app}/notifications", tag = "notifications",
    params(("app" = String, Path, description = "the app's name")), request_body = NewChannel,
    responses((status = 201, description = "added; a webhook's signing secret is shown this once", body = Channel),
        (status = "4XX", description = "what was wrong (422 names the field)", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Adds a notification channel for the app's deployments.
pub async fn create_app(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let app = app_name(&app)?;
    add(&state, &caller, Some(&app), body).await
}

#[utoipa::path(get, path = "/notifications", tag = "notifications",
    responses((status = 200, description = "the global channels", body = Vec<Channel>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// The global notification channels: every app's events, and the servers'.
pub async fn list_global(State(state): State<AppState>) -> Result<Json<Vec<Channel>>, ApiError> {
    list(&state, None).await
}

#[utoipa::path(post, path = "/notifications", tag = "notifications", request_body = NewChannel,
    responses((status = 201, description = "added; a webhook's signing secret is shown this once", body = Channel),
        (status = "4XX", description = "what was wrong (422 names the field)", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Adds a global notification channel.
pub async fn create_global(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    add(&state, &caller, None, body).await
}

#[utoipa::path(delete, path = "/notifications/{id}", tag = "notifications",
    params(("id" = String, Path, description = "the channel's id")),
    responses((status = 204, description = "removed, with its queued messages"),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Removes a channel and its outbox.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = channel_id(&id)?;
    let record = reachable_channel(&state, &caller, id).await?;
    state.deployer.store().delete_channel(id).await?;
    if let Some(app) = &record.app {
        let detail = format!("{} channel {id}", record.kind);
        state
            .deployer
            .store()
            .record_event(
                app,
                &caller.actor(),
                "notification channel removed",
                &detail,
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/notifications/{id}/test", tag = "notifications",
    params(("id" = String, Path, description = "the channel's id")),
    responses((status = 200, description = "a test message was sent now (not queued): whether it was delivered, and why not", body = TestResult),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Sends a test message to the channel now and says what came of it (within 10 s).
pub async fn test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TestResult>, ApiError> {
    let id = channel_id(&id)?;
    reachable_channel(&state, &caller, id).await?;
    let result = match notifier(&state)?.send_test(id).await {
        Ok(()) => TestResult {
            delivered: true,
            error: None,
        },
        Err(NotifyError::Send(error)) => TestResult {
            delivered: false,
            error: Some(error),
        },
        Err(err) => return Err(notify_error(err)),
    };
    Ok(Json(result))
}

#[utoipa::path(get, path = "/notifications/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path, description = "the channel's id")),
    responses((status = 200, description = "the channel's 50 newest messages, newest first", body = Vec<Delivery>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// The channel's recent messages with their state, tries and last error.
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let id = channel_id(&id)?;
    reachable_channel(&state, &caller, id).await?;
    let rows = state.deployer.store().channel_deliveries(id, 50).await?;
    Ok(Json(rows.into_iter().map(delivery).collect()))
}
