//! A deployment's page: its phases with timings, the error when it failed, and its log —
//! whole when finished, followed live (server-sent events from the line after the last one
//! rendered) while it runs, the state turning `live` or `failed` without a reload.

use crate::panel::page::{render, took, Clock, Nav, PanelError};
use crate::panel::rows::DeploymentRow;
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

struct PhaseRow {
    name: &'static str,
    /// When the phase began, as a time of day.
    at: Clock,
    took: String,
}

struct LogRow {
    stream: String,
    text: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    nav: Nav,
    d: DeploymentRow,
    phases: Vec<PhaseRow>,
    lines: Vec<LogRow>,
    last_seq: i64,
    has_spec: bool,
}

fn deployment_id(raw: &str) -> Result<i64, PanelError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PanelError::not_found(format!("{raw:?} is not a deployment id")))
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    let id = deployment_id(&id)?;
    let store = state.deployer.store();
    let record = store.deployment(id).await?;
    let now = capstan_store::now_ms();
    let stored = store.phases(id).await?;
    let phases = stored
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let end = stored
                .get(i + 1)
                .map(|next| next.at)
                .or(record.finished_at.filter(|_| !phase.state.is_finished()));
            PhaseRow {
                name: phase.state.as_str(),
                at: Clock::new(phase.at),
                took: match end {
                    Some(end) => took(end - phase.at),
                    None if !phase.state.is_finished() => {
                        format!("{} so far", took(now - phase.at))
                    }
                    None => String::new(),
                },
            }
        })
        .collect();
    let log = store.logs_after(id, 0).await?;
    let last_seq = log.last().map_or(0, |l| l.seq);
    let has_spec = store.release_of(id).await?.is_some();
    Ok(render(&DeploymentPage {
        nav: Nav::new(&session, "apps"),
        d: DeploymentRow::new(&record, now),
        phases,
        lines: log
            .into_iter()
            .map(|l| LogRow {
                stream: l.stream,
                text: l.line,
            })
            .collect(),
        last_seq,
        has_spec,
    }))
}

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    after: i64,
}

/// The live log for the page's script: `log` events, then one `end` with the final state
/// and error.
pub async fn stream(
    State(state): State<AppState>,
    _session: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PanelError> {
    let Query(query) = query?;
    let id = deployment_id(&id)?;
    state.deployer.store().deployment(id).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(256);
    let deployer = state.deployer.clone();
    tokio::spawn(async move {
        crate::deployments::follow(deployer, id, query.after.max(0), sender).await;
    });
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}
