//! An app's page (live version, actions, maintenance, history, changes, delete) and its
//! plan (the dry run shown whole). The actions' posts are in `app_actions`; a refused one
//! shows this page again with its problem beside its form.

use crate::apps::app_name;
use crate::panel::app_domains::{
    domain_links, engine_too_slow, proxy_ports_for, DomainLink, ProxyPorts, ENGINE_WAIT,
};
use crate::panel::app_live::{running_view, RunningView, TAILS};
use crate::panel::app_notifications::{notification_card, ChannelRow};
use crate::panel::app_status::{live_release, newer_deployment, settings_note, NewerDeployment};
use crate::panel::app_webhooks::{page_base, webhook_card, WebhookCard};
use crate::panel::page::{render, Moment, Nav, PanelError};
use crate::panel::rows::{source_text, DeploymentRow};
use crate::panel::session::SignedIn;
use crate::panel::settings_form::FieldErrors;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use capstan_core::{AppName, DeploymentState, Scope};
use capstan_deploy::PlanReport;
use capstan_store::DeploymentRecord;
use std::collections::HashMap;

struct EventRow {
    at: Moment,
    actor: String,
    action: String,
    detail: String,
}

/// What a refused action post typed and what was wrong, shown beside its form.
#[derive(Default)]
pub struct Refusal {
    /// By form: `action` (deploy, roll back, restart), `maintenance`, `retry_after`,
    /// `message`, `confirm`.
    pub errors: FieldErrors,
    pub message: String,
    pub retry_after: String,
    pub confirm: String,
}

#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    nav: Nav,
    name: String,
    /// Every domain: its address through the proxy and its certificate.
    domains: Vec<DomainLink>,
    source: String,
    default_ref: String,
    is_git: bool,
    live: Option<DeploymentRow>,
    /// How the live release's settings differ from the saved ones, if they do.
    live_settings: Option<String>,
    /// The newest deployment when it is newer than the live one and failed or runs.
    newer: Option<NewerDeployment>,
    deployments: Vec<DeploymentRow>,
    /// Ids of successful releases one may roll back to: not the live one, nor any that
    /// runs the live image (a restart or redeploy of it).
    rollback_ids: Vec<i64>,
    /// The deployment each reused release (of a rollback or restart) came from, by release.
    release_origins: HashMap<i64, i64>,
    events: Vec<EventRow>,
    maintenance: Option<MaintenanceRow>,
    refusal: Refusal,
    /// Its running containers, for the live output and use (`app_live`).
    running: RunningView,
    /// The forge webhooks, for a user who may deploy a git app.
    webhooks: Option<WebhookCard>,
    /// The app's notification channels, for a user who may deploy.
    notifications: Option<Vec<ChannelRow>>,
}

/// The app's maintenance mode while it is on.
struct MaintenanceRow {
    message: String,
    retry_after_secs: u32,
    since: Moment,
    actor: String,
}

impl AppPage {
    fn can_roll_back_to(&self, id: &i64) -> bool {
        self.rollback_ids.contains(id)
    }

    /// The deployment whose release a rollback or restart reused.
    fn reused_from(&self, row: &DeploymentRow) -> Option<i64> {
        row.from_release
            .and_then(|release| self.release_origins.get(&release).copied())
    }

    /// Some certificate is Traefik's to say: the page's script asks for it.
    fn asks_certificates(&self) -> bool {
        self.domains.iter().any(|d| d.state.is_empty())
    }

    fn error(&self, form: &str) -> Option<&str> {
        self.refusal.errors.get(form).map(String::as_str)
    }

    /// The maintenance card is shown once something is live (there is a site to put the
    /// page in front of), while maintenance is on, or to say why it was refused.
    fn shows_maintenance(&self) -> bool {
        self.live.is_some()
            || self.maintenance.is_some()
            || ["maintenance", "message", "retry_after"]
                .iter()
                .any(|form| self.error(form).is_some())
    }
}

/// The deployments one may roll back to: those that went live, except the live one and
/// every other that runs the same image (rolling back to it would change nothing that runs).
/// Images compare by the engine's ID (`image_ids`, tag → ID) where it is known, so two tags
/// of one build are one image; a tag the engine did not resolve compares as itself.
fn rollback_targets(
    records: &[DeploymentRecord],
    live: Option<&DeploymentRecord>,
    image_ids: &HashMap<String, String>,
) -> Vec<i64> {
    fn image_of<'a>(d: &'a DeploymentRecord, ids: &'a HashMap<String, String>) -> Option<&'a str> {
        d.image
            .as_deref()
            .map(|tag| ids.get(tag).map(String::as_str).unwrap_or(tag))
    }
    let live_id = live.map(|d| d.id);
    let live_image = live.and_then(|d| image_of(d, image_ids));
    records
        .iter()
        .filter(|d| {
            Some(d.id) != live_id
                && matches!(d.state, DeploymentState::Live | DeploymentState::Superseded)
                && (live_image.is_none() || image_of(d, image_ids) != live_image)
        })
        .map(|d| d.id)
        .collect()
}

/// The engine's image ID of each tag the deployments ran, asked at once within
/// [`ENGINE_WAIT`]; a tag gone from the engine, or one it was too slow for, is left out.
async fn image_ids(
    state: &AppState,
    name: &AppName,
    records: &[DeploymentRecord],
) -> HashMap<String, String> {
    let mut tags: Vec<&str> = records.iter().filter_map(|d| d.image.as_deref()).collect();
    tags.sort_unstable();
    tags.dedup();
    // The images are on the app's server.
    let here = tokio::time::timeout(ENGINE_WAIT, state.deployer.app_server(name)).await;
    let Ok(Ok(here)) = here else {
        return HashMap::new();
    };
    let engine = here.target();
    let lookups = tags.into_iter().map(|tag| async move {
        let id = tokio::time::timeout(ENGINE_WAIT, engine.image_id(tag)).await;
        match id {
            Ok(Ok(Some(id))) => Some((tag.to_string(), id)),
            _ => None,
        }
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What the engine says for the page, asked at once and each within [`ENGINE_WAIT`]: the
/// proxy's ports (for the links; none needed without domains) and what of the app runs.
async fn engine_view(
    state: &AppState,
    name: &AppName,
    routed: &capstan_core::AppSpec,
) -> (ProxyPorts, RunningView) {
    let ports = async {
        if !routed.domains.is_empty() {
            proxy_ports_for(state, routed).await
        } else {
            ProxyPorts::default()
        }
    };
    let running = async {
        tokio::time::timeout(ENGINE_WAIT, running_view(state, name))
            .await
            .unwrap_or_else(|_| RunningView {
                containers: Vec::new(),
                problem: Some(engine_too_slow()),
                tails: TAILS,
            })
    };
    tokio::join!(ports, running)
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let mut page = app_page(&state, &session, &name, Refusal::default()).await?;
    if let Some(card) = page.webhooks.as_mut() {
        card.under(&page_base(&headers));
    }
    Ok(render(&page))
}

/// The app's page, with a refused action's problem when there is one.
pub async fn app_page(
    state: &AppState,
    session: &SignedIn,
    name: &AppName,
    refusal: Refusal,
) -> Result<AppPage, PanelError> {
    let view = state.deployer.app_view(name).await?;
    let store = state.deployer.store();
    let live_release = live_release(store, view.app.live_deployment_id).await?;
    // The domains and HTTPS the proxy routes: the live release's, else the saved ones.
    let routed = live_release
        .as_ref()
        .map_or(&view.app.spec, |release| &release.app_spec);
    let (ports, running) = engine_view(state, name, routed).await;
    let now = capstan_store::now_ms();
    let records = store.deployments_of(name, 50).await?;
    let newer = newer_deployment(store, &records, view.app.live_deployment_id).await?;
    let live_settings = match (&live_release, &view.live) {
        (Some(release), Some(live)) => settings_note(&view.app.spec, release, live.trigger),
        _ => None,
    };
    let image_ids = image_ids(state, name, &records).await;
    let rollback_ids = rollback_targets(&records, view.live.as_ref(), &image_ids);
    let mut release_origins = HashMap::new();
    for release in records.iter().filter_map(|d| d.from_release) {
        if let std::collections::hash_map::Entry::Vacant(entry) = release_origins.entry(release) {
            // A release no longer stored is simply not named.
            if let Ok(record) = store.release(release).await {
                entry.insert(record.deployment_id);
            }
        }
    }
    let events = state
        .deployer
        .app_events(name, 10)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: Moment::new(e.at, now),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        })
        .collect();
    let maintenance = store.maintenance(name).await?.map(|m| MaintenanceRow {
        message: m.page.message,
        retry_after_secs: m.page.retry_after_secs,
        since: Moment::new(m.since, now),
        actor: m.actor,
    });
    let (is_git, default_ref) = match &view.app.spec.source {
        capstan_core::Source::Git { reference, .. } => (true, reference.clone()),
        _ => (false, String::new()),
    };
    let webhooks = webhook_card(state, session, name, is_git).await?;
    let notifications = notification_card(state, session, name).await?;
    Ok(AppPage {
        nav: Nav::at(session, "apps", Some(format!("/apps/{name}"))),
        name: name.to_string(),
        domains: domain_links(
            &routed.domains,
            routed.tls,
            view.app.live_deployment_id.is_some(),
            ports.for_scheme(routed.tls),
        ),
        source: source_text(&view.app.spec),
        default_ref,
        is_git,
        live: view.live.as_ref().map(|d| DeploymentRow::new(d, now)),
        live_settings,
        newer,
        deployments: records.iter().map(|d| DeploymentRow::new(d, now)).collect(),
        rollback_ids,
        release_origins,
        events,
        maintenance,
        refusal,
        running,
        webhooks,
        notifications,
    })
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    nav: Nav,
    name: String,
    git_ref: String,
    report: PlanReport,
    settings: String,
}

#[derive(serde::Deserialize)]
pub struct PlanQuery {
    #[serde(default, rename = "ref")]
    git_ref: String,
}

/// The dry run: fetch, detect, render; nothing is built, started or stored.
pub async fn plan(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
    query: Result<axum::extract::Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PanelError> {
    let axum::extract::Query(query) = query?;
    session.require(Scope::Deploy)?;
    let name = app_name(&app)?;
    let git_ref = query.git_ref.trim().to_string();
    let report = state
        .deployer
        .plan_app(&name, Some(git_ref.as_str()).filter(|r| !r.is_empty()))
        .await?;
    let mut settings = serde_json::to_value(&report.settings).unwrap_or_default();
    if let Some(url) = settings.pointer_mut("/source/git/url") {
        if let Some(text) = url.as_str() {
            *url = serde_json::json!(capstan_core::redact::redact_url(text));
        }
    }
    let settings = serde_json::to_string_pretty(&settings).unwrap_or_default();
    Ok(render(&PlanPage {
        nav: Nav::new(&session, "apps"),
        name: name.to_string(),
        git_ref,
        report,
        settings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: i64, state: DeploymentState, image: Option<&str>) -> DeploymentRecord {
        DeploymentRecord {
            image: image.map(str::to_string),
            ..crate::panel::deployment_view::deployment_fixture(id, state)
        }
    }

    #[test]
    fn roll_back_is_offered_only_to_other_images_that_went_live() {
        use DeploymentState::{Failed, Live, Superseded};
        let records = [
            deployment(6, Live, Some("i/shop:5")),
            deployment(5, Superseded, Some("i/shop:5")),
            deployment(4, Failed, Some("i/shop:4")),
            deployment(3, Superseded, Some("i/shop:1")),
            deployment(2, Superseded, Some("i/shop:2")),
            deployment(1, Superseded, Some("i/shop:1")),
        ];
        let no_ids = HashMap::new();
        assert_eq!(
            rollback_targets(&records, Some(&records[0]), &no_ids),
            [3, 2, 1],
            "not the live one, nor one running its image, nor one that failed"
        );
        assert_eq!(rollback_targets(&records[3..], None, &no_ids), [3, 2, 1]);
        let unknown = [
            deployment(2, Live, None),
            deployment(1, Superseded, Some("i/shop:1")),
        ];
        assert_eq!(rollback_targets(&unknown, Some(&unknown[0]), &no_ids), [1]);
    }

    #[test]
    fn another_tag_of_the_live_image_is_not_offered() {
        use DeploymentState::{Live, Superseded};
        let records = [
            deployment(10, Live, Some("i/shop:10")),
            deployment(8, Superseded, Some("i/shop:8")),
            deployment(7, Superseded, Some("i/shop:7")),
        ];
        let ids: HashMap<String, String> = [
            ("i/shop:10", "sha256:aaa"),
            ("i/shop:8", "sha256:aaa"),
            ("i/shop:7", "sha256:bbb"),
        ]
        .into_iter()
        .map(|(tag, id)| (tag.to_string(), id.to_string()))
        .collect();
        assert_eq!(rollback_targets(&records, Some(&records[0]), &ids), [7]);
    }
}
