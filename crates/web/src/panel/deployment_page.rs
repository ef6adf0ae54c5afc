//! A deployment's page: its phases with timings, the error when it failed with what
//! serves now, and its log — whole when finished, followed live (server-sent events from
//! the line after the last one rendered) while it runs, the state, the phases and the
//! tab's title moving without a reload; and the compose spec it rendered, as a page.

use crate::deployments::ProgressFeed;
use crate::panel::deployment_view::{self, PhaseRow, Progress};
use crate::panel::page::{render, Nav, PanelError};
use crate::panel::rows::DeploymentRow;
use crate::panel::session::SignedIn;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use capstan_core::DeploymentState;
use capstan_store::{DeploymentRecord, Store};
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

struct LogRow {
    stream: String,
    text: String,
}

/// One server of a deployment on several, as its card lists it.
struct ServerRow {
    name: String,
    state: String,
    tone: &'static str,
    error: String,
}

fn server_rows(targets: &[capstan_store::TargetRecord]) -> Vec<ServerRow> {
    if targets.len() < 2 {
        return Vec::new();
    }
    targets
        .iter()
        .map(|t| ServerRow {
            name: t.server.clone(),
            state: deployment_view::phase_label(t.state).to_string(),
            tone: crate::panel::rows::tone(t.state),
            error: t.error.clone().unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    nav: Nav,
    d: DeploymentRow,
    /// The tab's title, e.g. `⏳ health check · Deployment #12`.
    title: String,
    /// What failed and what serves now (see `deployment_view::banner`).
    banner: String,
    phases: Vec<PhaseRow>,
    /// The server's clock when the page was made, for the script's running durations.
    now: i64,
    lines: Vec<LogRow>,
    last_seq: i64,
    has_spec: bool,
    /// Each server of a deployment on several (empty for one server).
    servers: Vec<ServerRow>,
    /// It ended with servers where it failed: the page offers to run it again there.
    can_retry: bool,
    /// It is queued or runs and has not begun switching traffic: the page offers to
    /// cancel it.
    can_cancel: bool,
}

#[derive(Template)]
#[template(path = "spec.html")]
struct SpecPage {
    nav: Nav,
    id: i64,
    app: String,
    spec: String,
}

fn deployment_id(raw: &str) -> Result<i64, PanelError> {
    crate::panel::page::record_id(raw, "deployment")
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
    let serving = if record.state == DeploymentState::Failed {
        deployment_view::serving(store, &record).await
    } else {
        deployment_view::Serving::Unknown
    };
    let log = store.logs_after(id, 0).await?;
    let last_seq = log.last().map_or(0, |l| l.seq);
    let has_spec = store.release_of(id).await?.is_some();
    let targets = store.targets_of(id).await?;
    let can_retry = record.state.is_finished()
        && has_spec
        && targets.iter().any(|t| t.state == DeploymentState::Failed);
    let can_cancel = record.state == DeploymentState::Queued
        || (record.state.is_in_progress() && record.state != DeploymentState::Switching);
    Ok(render(&DeploymentPage {
        nav: Nav::new(&session, "apps"),
        d: DeploymentRow::new(&record, now),
        title: deployment_view::tab_title(id, record.state),
        banner: deployment_view::banner(&record, &stored, serving),
        phases: deployment_view::phase_rows(&record, &stored, now),
        now,
        lines: log
            .into_iter()
            .map(|l| LogRow {
                stream: l.stream,
                text: l.line,
            })
            .collect(),
        last_seq,
        has_spec,
        servers: server_rows(&targets),
        can_retry,
        can_cancel,
    }))
}

/// The compose spec a deployment rendered, as a page of the panel (the API's copy needs a
/// token a browser does not send). Secrets appear as `${NAME}`: the stored spec never
/// holds their values.
pub async fn spec(
    State(state): State<AppState>,
    session: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    let id = deployment_id(&id)?;
    let store = state.deployer.store();
    let record = store.deployment(id).await?;
    let release = store.release_of(id).await?.ok_or_else(|| {
        PanelError::not_found(format!(
            "deployment #{id} has no compose spec: it stopped before its release was rendered"
        ))
    })?;
    Ok(render(&SpecPage {
        nav: Nav::new(&session, "apps"),
        id,
        app: record.app.to_string(),
        spec: release.compose_spec,
    }))
}

/// The page's live view of the phases: a `phase` event each time the state changes (and
/// once at the start, so a page made a moment before the stream opened catches up).
#[derive(Default)]
struct PhaseFeed {
    sent: Option<DeploymentState>,
}

impl ProgressFeed for PhaseFeed {
    async fn news(&mut self, store: &Store, record: &DeploymentRecord) -> Option<Event> {
        if self.sent == Some(record.state) {
            return None;
        }
        let progress = match Progress::read(store, record).await {
            Ok(progress) => progress,
            Err(err) => {
                tracing::warn!(deployment = record.id, %err, "cannot read the phases");
                return None;
            }
        };
        // Sent again at the next wake if the phase row of this state was not there yet.
        let complete = progress.phases.last().map(|phase| phase.name)
            == Some(deployment_view::phase_label(record.state));
        if complete {
            self.sent = Some(record.state);
        }
        let data = serde_json::to_string(&progress).ok()?;
        Some(Event::default().event("phase").data(data))
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    after: i64,
}

/// The live log for the page's script: `log` events and a `phase` event whenever the
/// state changes, then one `end` with the final state and error.
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
        crate::deployments::follow(
            deployer,
            id,
            query.after.max(0),
            PhaseFeed::default(),
            sender,
        )
        .await;
    });
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}
