//! The JSON shapes the API returns, as typed structs: the handlers serialize these, and
//! the OpenAPI document describes the same types, so the two cannot drift apart.

use capstan_deploy::AppView;
use capstan_store::{DeploymentRecord, Phase};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// An error: what was wrong, in one sentence.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A deployment and, when shown alone, when it entered each state.
#[derive(Serialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    /// The server it targets (`local`).
    pub server: String,
    /// `production` (previews come later).
    pub environment: String,
    /// `deploy`, `rollback` or `restart`.
    pub trigger: String,
    /// `queued`, `preparing`, `building`, `starting`, `health_checking`, `switching`,
    /// `live`, `superseded`, `failed` or `cancelled`.
    pub state: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    /// The commit's subject line, when known.
    pub commit_message: Option<String>,
    pub image: Option<String>,
    /// For rollbacks and restarts: the deployment whose release it reuses.
    pub from_release: Option<i64>,
    pub no_cache: bool,
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Who asked for it: `token:<name>`, `user:<name>` or `capstan`.
    pub actor: Option<String>,
    /// When shown alone: the port its containers serve on, as its release records it
    /// (named by the settings, the repo or the image, or found listening; the log says
    /// which).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// State → when it was entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<BTreeMap<String, String>>,
    /// When shown alone: each server it runs on, in the app's order, with its own state
    /// there (a deployment is live when it went live on at least one; `error` then notes
    /// the servers where it failed, which a retry runs again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<DeploymentServer>>,
    /// When shown alone: the last commit status reported to the app's forge (or tried),
    /// when the app has forge settings and the commit was known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_status: Option<CommitStatus>,
}

/// The last commit status of a deployment, as reported to the forge.
#[derive(Serialize, ToSchema)]
pub struct CommitStatus {
    /// `github`, `gitlab`, `gitea` or `bitbucket`.
    pub provider: String,
    pub sha: String,
    /// The state as the forge names it (`pending`, `failed`, `SUCCESSFUL`, ...).
    pub state: String,
    /// Whether the forge accepted it.
    pub delivered: bool,
    pub tries: i64,
    /// Why it did not go through (the forge's answer, never the token).
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn commit_status(c: &capstan_store::CommitStatusRecord) -> CommitStatus {
    CommitStatus {
        provider: c.provider.clone(),
        sha: c.sha.clone(),
        state: c.state.clone(),
        delivered: c.delivered,
        tries: c.tries,
        error: c.error.clone(),
        updated_at: time(c.updated_at),
    }
}

/// A deployment on one of its servers.
#[derive(Serialize, ToSchema)]
pub struct DeploymentServer {
    pub server: String,
    /// `queued`, `starting`, `health_checking`, `switching`, `live`, `superseded` or
    /// `failed`.
    pub state: String,
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn deployment_server(t: &capstan_store::TargetRecord) -> DeploymentServer {
    DeploymentServer {
        server: t.server.clone(),
        state: t.state.as_str().to_string(),
        error: t.error.clone(),
        updated_at: time(t.updated_at),
    }
}

/// What a deploy, rollback or restart answers: the queued deployment.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub id: i64,
    pub state: String,
    pub trigger: String,
    pub app: String,
}

/// One change to an app: who, what, and which fields or names.
#[derive(Serialize, ToSchema)]
pub struct AppEvent {
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub fn deployment_view(d: &DeploymentRecord, phases: Option<&[Phase]>) -> Deployment {
    Deployment {
        id: d.id,
        app: d.app.to_string(),
        server: d.server.clone(),
        environment: d.environment.clone(),
        trigger: d.trigger.as_str().to_string(),
        state: d.state.as_str().to_string(),
        git_ref: d.git_ref.clone(),
        commit: d.commit_sha.clone(),
        commit_message: d.commit_message.clone(),
        image: d.image.clone(),
        from_release: d.from_release,
        no_cache: d.no_cache,
        error: d.error.clone(),
        created_at: time(d.created_at),
        started_at: d.started_at.map(time),
        finished_at: d.finished_at.map(time),
        actor: d.actor.clone(),
        port: None,
        phases: phases.map(|phases| {
            phases
                .iter()
                .map(|p| (p.state.as_str().to_string(), time(p.at)))
                .collect()
        }),
        servers: None,
        commit_status: None,
    }
}

pub fn deployment(d: &DeploymentRecord, phases: Option<&[Phase]>) -> Value {
    serde_json::to_value(deployment_view(d, phases)).expect("a deployment always serializes")
}

/// An app: its settings (the `AppSpec` fields) with its name, times and live deployment;
/// described in the OpenAPI document by `openapi::app_schema`.
pub fn app(view: &AppView) -> Value {
    let mut value = serde_json::to_value(&view.app.spec).expect("an AppSpec always serializes");
    // Credentials in a git URL are shown as `****`, like every other secret.
    if let Some(url) = value.pointer_mut("/source/git/url") {
        if let Some(text) = url.as_str() {
            *url = json!(capstan_core::redact::redact_url(text));
        }
    }
    let object = value.as_object_mut().expect("an AppSpec is an object");
    object.insert("name".into(), json!(view.app.name));
    object.insert("created_at".into(), json!(time(view.app.created_at)));
    object.insert("updated_at".into(), json!(time(view.app.updated_at)));
    object.insert(
        "live".into(),
        view.live
            .as_ref()
            .map(|d| deployment(d, None))
            .unwrap_or(Value::Null),
    );
    value
}

/// A server: its settings (the namespace resolved), the public key Capstan logs in with
/// and the apps that target it.
#[derive(Serialize, ToSchema)]
pub struct Server {
    pub name: String,
    pub kind: capstan_core::ServerKind,
    /// The SSH address (empty for `local`).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The pinned host key (`SHA256:...`); `null` until pinned.
    pub host_key_fingerprint: Option<String>,
    pub build_slots: Option<u32>,
    pub proxy_http_port: Option<u16>,
    pub proxy_https_port: Option<u16>,
    /// The prefix of the Docker objects Capstan owns there.
    pub namespace: String,
    /// The engine's socket there (`null`: `/var/run/docker.sock`).
    pub docker_socket: Option<String>,
    /// What the background check last found: `unknown`, `reachable`, `unreachable`
    /// (3 failures in a row) or `unconfirmed` (its host key is not pinned yet).
    pub reachability: String,
    pub labels: BTreeMap<String, String>,
    /// The line for the server's `authorized_keys` (`null` for `local`).
    pub public_key: Option<String>,
    /// The apps whose settings name this server.
    pub apps: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A server's preflight: every check and whether all passed.
#[derive(Serialize, ToSchema)]
pub struct ServerCheck {
    pub ok: bool,
    pub checks: Vec<ServerCheckItem>,
}

/// One preflight check: `reachable`, `engine_version`, `architecture`, `disk`, `proxy`,
/// `clock` (and `swarm_manager` for a swarm server).
#[derive(Serialize, ToSchema)]
pub struct ServerCheckItem {
    pub name: String,
    pub ok: bool,
    /// What was found, or why the check failed.
    pub detail: String,
}
