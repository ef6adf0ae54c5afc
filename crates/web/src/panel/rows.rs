//! View models shared by several pages: a deployment as one row, and how an app's address
//! and state read.

use crate::panel::page::{took, Moment};
use capstan_core::{AppSpec, DeploymentState};
use capstan_store::DeploymentRecord;

/// One deployment, ready to show.
pub struct DeploymentRow {
    pub id: i64,
    pub app: String,
    pub state: &'static str,
    /// The CSS class of the state badge: `ok`, `bad`, `busy` or `idle`.
    pub tone: &'static str,
    pub trigger: &'static str,
    pub actor: String,
    pub commit: String,
    /// The commit's subject line, or "".
    pub message: String,
    pub git_ref: String,
    /// When it was queued.
    pub created: Moment,
    pub duration: String,
    pub finished: bool,
    pub from_release: Option<i64>,
}

pub fn tone(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::Live => "ok",
        DeploymentState::Failed => "bad",
        DeploymentState::Superseded | DeploymentState::Cancelled => "idle",
        _ => "busy",
    }
}

impl DeploymentRow {
    pub fn new(d: &DeploymentRecord, now_ms: i64) -> Self {
        let duration = match (d.started_at, d.finished_at) {
            (Some(start), Some(end)) => took(end - start),
            (Some(start), None) if !d.state.is_finished() => {
                format!("{} so far", took(now_ms - start))
            }
            _ => String::new(),
        };
        DeploymentRow {
            id: d.id,
            app: d.app.to_string(),
            state: d.state.as_str(),
            tone: tone(d.state),
            trigger: d.trigger.as_str(),
            actor: d.actor.clone().unwrap_or_else(|| "—".into()),
            commit: d
                .commit_sha
                .as_deref()
                .map(|c| c.chars().take(8).collect())
                .unwrap_or_default(),
            message: d.commit_message.clone().unwrap_or_default(),
            git_ref: d.git_ref.clone().unwrap_or_default(),
            created: Moment::new(d.created_at, now_ms),
            duration,
            finished: d.state.is_finished(),
            from_release: d.from_release,
        }
    }
}

/// Where the app's source comes from, in a few words.
pub fn source_text(spec: &AppSpec) -> String {
    match &spec.source {
        capstan_core::Source::Git { url, reference } => {
            format!("{} @ {reference}", capstan_core::redact::redact_url(url))
        }
        capstan_core::Source::Path(path) => format!("directory {path}"),
        capstan_core::Source::Image(image) => format!("image {image}"),
    }
}
