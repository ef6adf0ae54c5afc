//! `/api/v1/apps/{app}/runs`: one-off commands in a fresh container of the app's live
//! release: start one (argv and a time limit), list them, show one (state, exit code,
//! who), and read or follow its output (masked like deployment logs).

use crate::apps::app_name;
use crate::error::ApiError;
use crate::views::{time, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use capstan_core::AppName;
use capstan_deploy::{Caller, Deployer, RunEvent, RunRequest};
use capstan_store::{RunLine, RunRecord, RunState};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::Sender;
use tokio_stream::wrappers::ReceiverStream;

/// A command to run once in a fresh container of the live release.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// The program and its arguments, run as they are (no shell: for one, give
    /// `["sh", "-c", "..."]`).
    pub command: Vec<String>,
    /// Seconds before the container is killed and the run is `timed_out` (default 600, at
    /// most the server's `run_timeout_max_secs`).
    pub timeout_secs: Option<u32>,
}

/// How a run is doing or ended.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStateView {
    Running,
    Succeeded,
    Failed,
    TimedOut,
}

impl From<RunState> for RunStateView {
    fn from(state: RunState) -> Self {
        match state {
            RunState::Running => Self::Running,
            RunState::Succeeded => Self::Succeeded,
            RunState::Failed => Self::Failed,
            RunState::TimedOut => Self::TimedOut,
        }
    }
}

/// A one-off command and how it went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: i64,
    pub app: String,
    /// The argv as run (secret values shown as `****`).
    pub command: Vec<String>,
    pub state: RunStateView,
    /// The command's exit status, once it exited.
    pub exit_code: Option<i64>,
    /// Why it did not run or was stopped.
    pub error: Option<String>,
    pub timeout_secs: u32,
    /// Who started it: `token:<name>` or `user:<name>`.
    pub actor: String,
    /// The live deployment whose release (image, settings) it ran.
    pub deployment: i64,
    pub image: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl From<&RunRecord> for Run {
    fn from(run: &RunRecord) -> Self {
        Self {
            id: run.id,
            app: run.app.to_string(),
            command: run.command.clone(),
            state: run.state.into(),
            exit_code: run.exit_code,
            error: run.error.clone(),
            timeout_secs: run.timeout_secs,
            actor: run.actor.clone(),
            deployment: run.deployment_id,
            image: run.image.clone(),
            started_at: time(run.started_at),
            finished_at: run.finished_at.map(time),
        }
    }
}

fn run_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(format!("{raw:?} is not a run id (a positive integer)"))
    })
}

#[utoipa::path(post, path = "/apps/{app}/runs", tag = "runs",
    params(("app" = String, Path, description = "the app's name")),
    request_body(content = NewRun, description = "the argv and an optional time limit"),
    responses((status = 202, description = "started: follow its output at /apps/{app}/runs/{id}/output", body = Run),
        (status = "4XX", description = "what was wrong (409: nothing is live, or too many commands run)", body = ErrorBody),
        (status = 503, description = "the Docker engine or the database is unavailable", body = ErrorBody)))]
/// Runs a command once in a fresh container of the live release: its image, environment,
/// secrets (as they are now), volumes, network and limits; never in a serving container.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let name = app_name(&app)?;
    let request: NewRun = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let run = state
        .deployer
        .start_run(
            &name,
            &RunRequest {
                command: request.command,
                timeout_secs: request.timeout_secs,
            },
            &caller,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Run::from(&run))))
}

#[utoipa::path(get, path = "/apps/{app}/runs", tag = "runs",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app's last 100 runs, newest first", body = Vec<Run>),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<Run>>, ApiError> {
    let runs = state.deployer.runs(&app_name(&app)?, 100).await?;
    Ok(Json(runs.iter().map(Run::from).collect()))
}

#[utoipa::path(get, path = "/apps/{app}/runs/{id}", tag = "runs",
    params(("app" = String, Path, description = "the app's name"), ("id" = i64, Path, description = "the run's id")),
    responses((status = 200, description = "the run: state, exit code, who, when", body = Run),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Run>, ApiError> {
    let run = state
        .deployer
        .run_record(&app_name(&app)?, run_id(&id)?)
        .await?;
    Ok(Json(Run::from(&run)))
}

#[derive(Deserialize)]
pub struct OutputQuery {
    #[serde(default)]
    follow: bool,
}

/// A line as text: the command's own as it is, Capstan's notes marked.
fn text_of(line: &RunLine) -> String {
    let text = line.line.replace('\r', "");
    if line.stream == "output" {
        text
    } else {
        format!("[{}] {text}", line.stream)
    }
}

#[utoipa::path(get, path = "/apps/{app}/runs/{id}/output", tag = "runs",
    params(("app" = String, Path, description = "the app's name"), ("id" = i64, Path, description = "the run's id"),
           ("follow" = Option<bool>, Query, description = "stream as server-sent events until the run ends")),
    responses((status = 200, description = "the output (secret values masked)", content((String = "text/plain"), (serde_json::Value = "text/event-stream"))),
        (status = "4XX", description = "what was wrong", body = ErrorBody),
        (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// The output as text, or with `?follow=true` as server-sent events until the run ends
/// (`event: log` per line with its number as id, then one `event: end` with the state,
/// exit code and error as JSON).
pub async fn output(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
    query: Result<Query<OutputQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = app_name(&app)?;
    let id = run_id(&id)?;
    let Query(query) = query?;
    state.deployer.run_record(&name, id).await?;
    if !query.follow {
        let lines = state.deployer.store().run_lines_after(id, 0).await?;
        let text: String = lines.iter().map(|l| text_of(l) + "\n").collect();
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(256);
    tokio::spawn(follow(
        state.deployer.clone(),
        name,
        id,
        resume_after,
        sender,
    ));
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Streams stored lines after `last`, then live ones, until the run ends (shared by the
/// API and the panel's run page). Subscribing before reading the store means no line
/// can fall between the two; lines are always sent from the store.
pub(crate) async fn follow(
    deployer: Deployer,
    app: AppName,
    id: i64,
    last: i64,
    sender: Sender<Result<Event, Infallible>>,
) {
    follow_until_end(&deployer, &app, id, last, &sender).await;
    deployer.run_logs().release(id);
}

async fn follow_until_end(
    deployer: &Deployer,
    app: &AppName,
    id: i64,
    mut last: i64,
    sender: &Sender<Result<Event, Infallible>>,
) {
    let mut live = deployer.run_logs().subscribe(id);
    loop {
        // The run's end is recorded after its last line, so a run read as ended here has
        // every line stored by now.
        if sender.is_closed() {
            return;
        }
        let Ok(run) = deployer.run_record(app, id).await else {
            return;
        };
        if !send_stored(deployer, id, &mut last, sender).await {
            return;
        }
        if run.state.is_finished() {
            let end = serde_json::json!({
                "state": RunStateView::from(run.state),
                "exit_code": run.exit_code,
                "error": run.error,
            });
            let _ = sender
                .send(Ok(Event::default().event("end").data(end.to_string())))
                .await;
            return;
        }
        // Wait for news or re-check every 2 s, unless the reader leaves first (an
        // abandoned stream stops now, not when a send to it would fail).
        tokio::select! {
            () = sender.closed() => return,
            news = tokio::time::timeout(Duration::from_secs(2), live.recv()) => match news {
                Ok(Err(RecvError::Closed)) => live = deployer.run_logs().subscribe(id),
                Ok(Ok(RunEvent::Line(_) | RunEvent::End(_)))
                | Ok(Err(RecvError::Lagged(_)))
                | Err(_) => {}
            },
        }
    }
}

/// Sends stored lines after `*last`, advancing it; false when the follower is gone or the
/// store cannot be read.
async fn send_stored(
    deployer: &Deployer,
    id: i64,
    last: &mut i64,
    sender: &Sender<Result<Event, Infallible>>,
) -> bool {
    match deployer.store().run_lines_after(id, *last).await {
        Ok(lines) => {
            for line in lines {
                *last = line.seq;
                let event = Event::default()
                    .event("log")
                    .id(line.seq.to_string())
                    .data(text_of(&line));
                if sender.send(Ok(event)).await.is_err() {
                    return false;
                }
            }
            true
        }
        Err(err) => {
            tracing::warn!(run = id, %err, "cannot read a run's output");
            false
        }
    }
}
