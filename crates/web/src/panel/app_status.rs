//! What the app page's Live card says beside the live deployment: the newest deployment
//! when it came after the live one and failed or still runs, and the settings the live
//! release runs when they are not the saved ones (after a rollback, or settings saved
//! since the last deploy). The live release's settings, not the saved ones, also decide
//! which domains the page links (they are what the proxy routes).

use crate::panel::deployment_view::{banner, phase_label, Serving};
use capstan_core::app_diff::settings_changes;
use capstan_core::{AppSpec, DeploymentState, Trigger};
use capstan_store::{DeploymentRecord, ReleaseRecord, Store, StoreError};

/// A deployment newer than the live one that did not go live (yet).
pub struct NewerDeployment {
    pub id: i64,
    /// "Deployment #7 failed while building: COPY failed", "Deployment #8 is building…".
    pub text: String,
    /// Whether it failed (else it still runs).
    pub failed: bool,
}

/// The newest deployment (`records` newest first) when it is newer than the live one and
/// failed or still runs; a cancelled one, or one that went live, says nothing here.
pub async fn newer_deployment(
    store: &Store,
    records: &[DeploymentRecord],
    live: Option<i64>,
) -> Result<Option<NewerDeployment>, StoreError> {
    let Some(newest) = records.first() else {
        return Ok(None);
    };
    if live.is_some_and(|live| newest.id <= live) {
        return Ok(None);
    }
    let phases = match newest.state {
        DeploymentState::Failed => store.phases(newest.id).await?,
        _ => Vec::new(),
    };
    Ok(newer_text(newest, &phases).map(|text| NewerDeployment {
        id: newest.id,
        text,
        failed: newest.state == DeploymentState::Failed,
    }))
}

/// The words for a newer deployment: where it failed and the first line of why, or the
/// phase it is in.
fn newer_text(record: &DeploymentRecord, phases: &[capstan_store::Phase]) -> Option<String> {
    match record.state {
        DeploymentState::Failed => {
            let text = banner(record, phases, Serving::Unknown);
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        DeploymentState::Queued => Some(format!("Deployment #{} is queued…", record.id)),
        state if !state.is_finished() => Some(format!(
            "Deployment #{} is {}…",
            record.id,
            running_words(state)
        )),
        _ => None,
    }
}

/// A running phase as the verb of a sentence: `building`, `at the health check`.
fn running_words(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::HealthChecking => "at the health check",
        other => phase_label(other),
    }
}

/// The release the live deployment runs, when something is live and its release is
/// recorded.
pub async fn live_release(
    store: &Store,
    live: Option<i64>,
) -> Result<Option<ReleaseRecord>, StoreError> {
    match live {
        Some(live) => store.release_of(live).await,
        None => Ok(None),
    }
}

/// What the live release runs that the saved settings do not say, in words, or `None`
/// when they agree. The saved settings are compared as the live release's build made them
/// effective (with the repo's `capstan.toml` it was built with applied), so a repo file
/// does not read as a difference.
pub fn settings_note(saved: &AppSpec, live: &ReleaseRecord, trigger: Trigger) -> Option<String> {
    let mut effective_saved = match &live.repo_config {
        Some((file, text)) => capstan_core::repo_config::RepoConfig::parse(text, file)
            .ok()
            .and_then(|config| config.apply(saved, file).ok())
            .map_or_else(|| saved.clone(), |(spec, _)| spec),
        None => saved.clone(),
    };
    // A release records the port its deployment settled on; with none saved, that port
    // came from the image, not from a setting.
    if effective_saved.port.is_none() {
        effective_saved.port = live.app_spec.port;
    }
    let changes = settings_changes(&effective_saved, &live.app_spec);
    if changes.is_empty() {
        return None;
    }
    let why = if trigger == Trigger::Rollback {
        " (rolled back)"
    } else {
        ""
    };
    Some(format!(
        "Runs other settings than the saved ones{why}: {}. The saved ones apply at the next deploy.",
        changes.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::deployment_view::deployment_fixture;
    use capstan_store::Phase;

    fn release(spec: AppSpec) -> ReleaseRecord {
        ReleaseRecord {
            id: 1,
            app: capstan_core::AppName::parse("shop").unwrap(),
            deployment_id: 3,
            image: "capstan-shop:3".into(),
            commit_sha: None,
            compose_spec: String::new(),
            app_spec: spec,
            repo_config: None,
            created_at: 0,
        }
    }

    fn spec(json: &str) -> AppSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_rolled_back_release_says_how_its_settings_differ_from_the_saved_ones() {
        let saved = spec(r#"{"source":{"path":"/s"},"replicas":2,"env":{"GREETING":"hi"}}"#);
        let live = release(spec(r#"{"source":{"path":"/s"},"replicas":1}"#));
        let note = settings_note(&saved, &live, Trigger::Rollback).unwrap();
        assert!(
            note.starts_with("Runs other settings than the saved ones (rolled back): "),
            "{note}"
        );
        assert!(
            note.contains("replicas 2 → 1") && note.contains("variable GREETING removed"),
            "{note}"
        );
        assert!(
            note.ends_with("The saved ones apply at the next deploy."),
            "{note}"
        );
        assert_eq!(
            settings_note(&saved, &release(saved.clone()), Trigger::Rollback),
            None
        );
    }

    #[test]
    fn the_port_a_release_settled_on_is_no_difference_when_none_is_saved() {
        let saved = spec(r#"{"source":{"path":"/s"}}"#);
        let live = release(spec(r#"{"source":{"path":"/s"},"port":8080}"#));
        assert_eq!(settings_note(&saved, &live, Trigger::Rollback), None);
        let named = spec(r#"{"source":{"path":"/s"},"port":3000}"#);
        assert!(settings_note(&named, &live, Trigger::Rollback).is_some());
    }

    #[test]
    fn a_repo_file_the_release_was_built_with_is_no_difference() {
        let saved = spec(r#"{"source":{"path":"/s"}}"#);
        let mut live = release(spec(r#"{"source":{"path":"/s"},"replicas":3}"#));
        live.repo_config = Some(("capstan.toml".into(), "replicas = 3\n".into()));
        assert_eq!(settings_note(&saved, &live, Trigger::Deploy), None);
    }

    #[test]
    fn a_newer_failed_deployment_says_where_and_why_in_one_line() {
        let failed = DeploymentRecord {
            error: Some("COPY failed: no such file\nmore detail".into()),
            ..deployment_fixture(7, DeploymentState::Failed)
        };
        let phases = [
            Phase {
                state: DeploymentState::Building,
                at: 2_000,
            },
            Phase {
                state: DeploymentState::Failed,
                at: 3_000,
            },
        ];
        assert_eq!(
            newer_text(&failed, &phases).unwrap(),
            "Deployment #7 failed while building: COPY failed: no such file"
        );
        let building = deployment_fixture(8, DeploymentState::Building);
        assert_eq!(
            newer_text(&building, &[]).unwrap(),
            "Deployment #8 is building…"
        );
        let cancelled = deployment_fixture(9, DeploymentState::Cancelled);
        assert_eq!(newer_text(&cancelled, &[]), None);
    }
}
