//! How a deployment reads on its page, whether rendered with the page or sent live while it
//! runs: its phases with their durations (a running one's so far), the tab title, and the
//! failure banner, which says what serves now as the store records it.

use crate::panel::page::{took, Clock};
use crate::panel::rows::tone;
use capstan_core::DeploymentState;
use capstan_store::{DeploymentRecord, Phase, Store, StoreError};
use serde::Serialize;

/// A phase as a person reads it: `health check` rather than `health_checking`.
pub fn phase_label(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::HealthChecking => "health check",
        other => other.as_str(),
    }
}

/// One row of the phases table.
pub struct PhaseRow {
    pub name: &'static str,
    /// When the phase began, in milliseconds since the epoch.
    pub at_ms: i64,
    /// When the phase began, as a time of day.
    pub at: Clock,
    /// How long it took, `12.4 s so far` while it runs, or "" for the final state.
    pub took: String,
    /// Whether the deployment is in this phase now (its duration keeps growing).
    pub running: bool,
}

/// The phases as rows: each lasts until the next begins; the last one, while the
/// deployment runs, until `now`.
pub fn phase_rows(record: &DeploymentRecord, phases: &[Phase], now: i64) -> Vec<PhaseRow> {
    phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let end = phases
                .get(i + 1)
                .map(|next| next.at)
                .or(record.finished_at.filter(|_| !phase.state.is_finished()));
            let running = end.is_none() && !phase.state.is_finished();
            PhaseRow {
                name: phase_label(phase.state),
                at_ms: phase.at,
                at: Clock::new(phase.at),
                took: match end {
                    Some(end) => took(end - phase.at),
                    None if running => format!("{} so far", took(now - phase.at)),
                    None => String::new(),
                },
                running,
            }
        })
        .collect()
}

/// The browser tab's title (before ` · Capstan`): a mark for running, live or failed, the
/// phase, and the deployment, e.g. `⏳ health check · Deployment #12`.
pub fn tab_title(id: i64, state: DeploymentState) -> String {
    let mark = match state {
        DeploymentState::Live => "✓ ",
        DeploymentState::Failed => "✗ ",
        DeploymentState::Superseded | DeploymentState::Cancelled => "",
        _ => "⏳ ",
    };
    format!("{mark}{} · Deployment #{id}", phase_label(state))
}

/// What serves the app now, from the store's record of its live deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// This deployment (or one still running) is live.
    Live(i64),
    /// The app has no live deployment.
    Nothing,
    /// The app is gone, or its record could not be read: nothing is claimed.
    Unknown,
}

/// Where a deployment that failed in `state` stopped, in words.
fn failed_during(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::Queued => " before it started",
        DeploymentState::Preparing => " while preparing the source",
        DeploymentState::Building => " while building",
        DeploymentState::Starting => " while starting",
        DeploymentState::HealthChecking => " at the health check",
        DeploymentState::Switching => " while switching",
        _ => "",
    }
}

/// The sentence that says what serves the app after deployment `id` failed.
pub fn serving_sentence(id: i64, serving: Serving) -> String {
    match serving {
        Serving::Live(live) if live < id => {
            format!("The previous version (#{live}) is still serving.")
        }
        Serving::Live(live) if live > id => {
            format!("Deployment #{live}, made since, is serving.")
        }
        Serving::Live(_) | Serving::Unknown => String::new(),
        Serving::Nothing => "Nothing was serving before; the app is not up.".into(),
    }
}

/// The banner of a failed deployment: where it stopped, why, and what serves now. Any
/// other deployment shows its error (if any) as it is.
pub fn banner(record: &DeploymentRecord, phases: &[Phase], serving: Serving) -> String {
    let error = record.error.clone().unwrap_or_default();
    if record.state != DeploymentState::Failed {
        return error;
    }
    let stopped_in = phases
        .iter()
        .rev()
        .map(|p| p.state)
        .find(|state| !state.is_finished())
        .map_or("", failed_during);
    let mut text = format!("Deployment #{} failed{stopped_in}", record.id);
    if !error.is_empty() {
        text.push_str(": ");
        text.push_str(&error);
    }
    let sentence = serving_sentence(record.id, serving);
    if !sentence.is_empty() {
        text.push('\n');
        text.push_str(&sentence);
    }
    text
}

/// What serves `record`'s app now, as the store records it.
pub async fn serving(store: &Store, record: &DeploymentRecord) -> Serving {
    match store.app(&record.app).await {
        Ok(app) => app
            .live_deployment_id
            .map_or(Serving::Nothing, Serving::Live),
        Err(StoreError::NotFound(_)) => Serving::Unknown,
        Err(err) => {
            tracing::warn!(deployment = record.id, %err, "cannot read what serves the app");
            Serving::Unknown
        }
    }
}

/// One phase as the page's script receives it.
#[derive(Serialize)]
pub struct PhaseNews {
    pub name: &'static str,
    /// RFC 3339, for the `<time>` element.
    pub at: String,
    pub at_ms: i64,
    pub took: String,
    pub running: bool,
}

/// Everything the page shows about the deployment's progress, sent as a `phase` event
/// whenever its state changes; `now` lets the script tick a running phase's duration on
/// the server's clock.
#[derive(Serialize)]
pub struct Progress {
    pub state: &'static str,
    pub tone: &'static str,
    pub title: String,
    pub banner: String,
    pub phases: Vec<PhaseNews>,
    pub now: i64,
}

impl Progress {
    pub async fn read(store: &Store, record: &DeploymentRecord) -> Result<Self, StoreError> {
        let phases = store.phases(record.id).await?;
        let serving = if record.state == DeploymentState::Failed {
            serving(store, record).await
        } else {
            Serving::Unknown
        };
        let now = capstan_store::now_ms();
        Ok(Progress {
            state: record.state.as_str(),
            tone: tone(record.state),
            title: tab_title(record.id, record.state),
            banner: banner(record, &phases, serving),
            phases: phase_rows(record, &phases, now)
                .into_iter()
                .map(|row| PhaseNews {
                    name: row.name,
                    at: row.at.0.iso.clone(),
                    at_ms: row.at_ms,
                    took: row.took,
                    running: row.running,
                })
                .collect(),
            now,
        })
    }
}

/// A deployment of app `shop` for unit tests of the panel's views: created at 1 s,
/// started at 1.5 s, finished at 20 s when its state is a final one.
#[cfg(test)]
pub(crate) fn deployment_fixture(id: i64, state: DeploymentState) -> DeploymentRecord {
    DeploymentRecord {
        id,
        app: capstan_core::AppName::parse("shop").unwrap(),
        server: "local".into(),
        environment: "production".into(),
        trigger: capstan_core::Trigger::Deploy,
        state,
        git_ref: None,
        commit_sha: None,
        commit_message: None,
        image: None,
        from_release: None,
        no_cache: false,
        error: None,
        created_at: 1_000,
        started_at: Some(1_500),
        finished_at: state.is_finished().then_some(20_000),
        actor: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentState::*;

    fn record(id: i64, state: DeploymentState, error: Option<&str>) -> DeploymentRecord {
        DeploymentRecord {
            error: error.map(String::from),
            ..deployment_fixture(id, state)
        }
    }

    fn phases(states: &[(DeploymentState, i64)]) -> Vec<Phase> {
        states
            .iter()
            .map(|&(state, at)| Phase { state, at })
            .collect()
    }

    #[test]
    fn a_failed_deployment_says_where_it_stopped_and_that_the_previous_version_serves() {
        let failed = record(12, Failed, Some("health check timed out after 30 s"));
        let steps = phases(&[
            (Queued, 1_000),
            (Preparing, 1_500),
            (Building, 2_000),
            (Starting, 5_000),
            (HealthChecking, 6_000),
            (Failed, 20_000),
        ]);
        assert_eq!(
            banner(&failed, &steps, Serving::Live(11)),
            "Deployment #12 failed at the health check: health check timed out after 30 s\n\
             The previous version (#11) is still serving."
        );
        assert_eq!(
            banner(&failed, &steps, Serving::Live(14)),
            "Deployment #12 failed at the health check: health check timed out after 30 s\n\
             Deployment #14, made since, is serving."
        );
    }

    #[test]
    fn a_failed_first_deployment_never_claims_a_version_serves() {
        let failed = record(1, Failed, Some("COPY failed"));
        let steps = phases(&[
            (Queued, 1_000),
            (Preparing, 1_500),
            (Building, 2_000),
            (Failed, 3_000),
        ]);
        let text = banner(&failed, &steps, Serving::Nothing);
        assert_eq!(
            text,
            "Deployment #1 failed while building: COPY failed\n\
             Nothing was serving before; the app is not up."
        );
        assert!(!text.contains("still serving"));
        let unknown = banner(&failed, &steps, Serving::Unknown);
        assert_eq!(unknown, "Deployment #1 failed while building: COPY failed");
    }

    #[test]
    fn other_deployments_show_their_error_as_it_is() {
        let live = record(3, Live, None);
        assert_eq!(banner(&live, &[], Serving::Live(3)), "");
        let cancelled = record(4, Cancelled, Some("cancelled by ada"));
        assert_eq!(
            banner(&cancelled, &[], Serving::Nothing),
            "cancelled by ada"
        );
    }

    #[test]
    fn the_tab_title_marks_running_live_and_failed() {
        assert_eq!(
            tab_title(12, HealthChecking),
            "⏳ health check · Deployment #12"
        );
        assert_eq!(tab_title(12, Queued), "⏳ queued · Deployment #12");
        assert_eq!(tab_title(12, Live), "✓ live · Deployment #12");
        assert_eq!(tab_title(12, Failed), "✗ failed · Deployment #12");
        assert_eq!(tab_title(12, Superseded), "superseded · Deployment #12");
    }

    #[test]
    fn each_phase_lasts_until_the_next_and_a_running_one_until_now() {
        let running = record(5, HealthChecking, None);
        let steps = phases(&[(Starting, 1_000), (HealthChecking, 3_500)]);
        let rows = phase_rows(&running, &steps, 15_900);
        assert_eq!(rows[0].took, "2.5 s");
        assert!(!rows[0].running);
        assert_eq!(rows[1].name, "health check");
        assert_eq!(rows[1].took, "12.4 s so far");
        assert!(rows[1].running);

        let live = record(6, Live, None);
        let steps = phases(&[(Switching, 1_000), (Live, 1_850)]);
        let rows = phase_rows(&live, &steps, 99_000);
        assert_eq!(rows[0].took, "850 ms");
        assert_eq!((rows[1].took.as_str(), rows[1].running), ("", false));
    }
}
