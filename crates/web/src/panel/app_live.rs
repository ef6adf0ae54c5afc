//! The app page's live view of the app running, for its script (`static/app_live.js`):
//! the running app's output followed as server-sent events (all its containers, one, or
//! those a new deployment started, a tail the user picks), each container's CPU and
//! memory use as JSON, and the containers running now (the page follows on to those of
//! the next deployment). The first two are the API's own (`GET
//! /api/v1/apps/{app}/logs?follow=true`, `/usage`) behind the session instead of a token,
//! and all need what the API needs: the read scope, which every role has.

use crate::apps::app_name;
use crate::panel::session::SignedIn;
use crate::usage::ContainerUse;
use crate::{ApiError, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use capstan_core::{AppName, Scope};
use capstan_deploy::RunningContainer;
use serde::{Deserialize, Serialize};

/// The tail sizes the page offers; any other is refused.
pub const TAILS: [usize; 3] = [100, 500, 2000];

/// What the app page shows of the app running: its running containers to choose from, or
/// why it cannot tell.
pub struct RunningView {
    pub containers: Vec<ContainerChoice>,
    /// The engine did not answer: what it said.
    pub problem: Option<String>,
    pub tails: [usize; 3],
}

/// One running container in the output's choice (and as the page's script asks for the
/// containers running now).
#[derive(Serialize)]
pub struct ContainerChoice {
    /// As its output lines are prefixed (the value chosen).
    pub shown: String,
    /// The engine's name, as the use figures name it.
    pub name: String,
    /// `replica` or `companion`.
    pub kind: &'static str,
    /// The deployment that started it.
    pub deployment: Option<i64>,
}

impl From<RunningContainer> for ContainerChoice {
    fn from(c: RunningContainer) -> Self {
        ContainerChoice {
            kind: if c.role == "companion" {
                "companion"
            } else {
                "replica"
            },
            shown: c.shown,
            name: c.name,
            deployment: c.deployment,
        }
    }
}

/// The app's running containers for its page; the page still shows when the engine does
/// not answer, saying so.
pub async fn running_view(state: &AppState, app: &AppName) -> RunningView {
    let (containers, problem) = match state.deployer.running_containers(app).await {
        Ok(running) => (running, None),
        Err(err) => (Vec::new(), Some(ApiError::from(err).message)),
    };
    RunningView {
        containers: containers.into_iter().map(ContainerChoice::from).collect(),
        problem,
        tails: TAILS,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    tail: Option<usize>,
    /// Running containers of the app, separated by commas (which no container name
    /// holds); absent or empty: all of them.
    container: Option<String>,
}

/// The app's output from the last `tail` lines per container on, followed live: `log`
/// events (each line prefixed with its container), then `end` when every container
/// followed has stopped. A refusal is the API's JSON error (the script reads it to say why).
pub async fn output(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
    query: Result<Query<LiveQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    may_read(&session)?;
    let name = app_name(&app)?;
    let Query(query) = query?;
    let tail = query.tail.unwrap_or(TAILS[0]);
    if !TAILS.contains(&tail) {
        return Err(ApiError::bad_request(format!(
            "tail: one of {TAILS:?} lines per container"
        )));
    }
    let wanted: Vec<&str> = query
        .container
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.is_empty())
        .collect();
    let lines = state
        .deployer
        .app_output(&name, &wanted, tail, true)
        .await?;
    Ok(crate::app_output::followed(lines))
}

/// The app's running containers now, as the output's choice lists them: the page asks
/// when the containers it follows end or its use graphs see others (a new deployment's),
/// and follows on to them.
pub async fn containers(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Json<Vec<ContainerChoice>>, ApiError> {
    may_read(&session)?;
    let name = app_name(&app)?;
    let running = state.deployer.running_containers(&name).await?;
    Ok(Json(
        running.into_iter().map(ContainerChoice::from).collect(),
    ))
}

/// Every running container of the app with its CPU and memory use now (about a second:
/// the engine samples twice), as `GET /api/v1/apps/{app}/usage` answers; a problem is the
/// API's JSON error.
pub async fn usage(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Json<Vec<ContainerUse>>, ApiError> {
    may_read(&session)?;
    let name = app_name(&app)?;
    Ok(Json(crate::usage::uses(&state, &name).await?))
}

/// The read scope, as the API's routes need it (every role has it today).
fn may_read(session: &SignedIn) -> Result<(), ApiError> {
    if session.can(Scope::Read) {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        format!(
            "your role, {}, does not allow this (it needs the read scope)",
            session.role.as_str()
        ),
    ))
}
