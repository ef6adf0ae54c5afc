//! The servers page (`/servers`, admins, as the API's `/servers` routes): every host apps
//! deploy to, with its kind, address, namespace, pinned host key, the apps that target it
//! and what the background check last found; the form that adds one (`server_form`) and
//! each server's Check and Remove. Not to be confused with the server page (`/server`),
//! which is about the host this daemon runs on.

use crate::panel::page::{render_with, Moment, Nav, PanelError};
use crate::panel::session::SignedIn;
use crate::panel::settings_form::FieldErrors;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use capstan_core::{Scope, ServerKind};
use capstan_store::ServerRecord;

/// One server as the page shows it.
pub struct ServerRow {
    pub name: String,
    pub kind: &'static str,
    pub local: bool,
    /// `user@host:port`, or what `local` is.
    pub address: String,
    pub namespace: String,
    /// The pinned host key, or `None` while it is not confirmed.
    pub fingerprint: Option<String>,
    /// The line for its `authorized_keys` (none for `local`).
    pub public_key: Option<String>,
    pub apps: Vec<String>,
    /// `unknown`, `reachable`, `unreachable` or `unconfirmed` (host key not pinned).
    pub state: &'static str,
    pub checked: Option<Moment>,
    pub failures: u32,
    pub last_error: Option<String>,
}

impl ServerRow {
    /// The badge class of its reachability.
    pub fn badge(&self) -> &'static str {
        match self.state {
            "reachable" => "ok",
            "unreachable" => "bad",
            "unconfirmed" => "busy",
            _ => "",
        }
    }
}

/// What the add form holds: the defaults, or what was posted.
pub struct Typed {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: String,
    pub user: String,
    pub host_key_fingerprint: String,
    pub docker_socket: String,
    pub proxy_http_port: String,
    pub proxy_https_port: String,
    pub namespace: String,
}

impl Default for Typed {
    fn default() -> Self {
        Typed {
            name: String::new(),
            kind: "ssh".into(),
            host: String::new(),
            port: "22".into(),
            user: "root".into(),
            host_key_fingerprint: String::new(),
            docker_socket: String::new(),
            proxy_http_port: String::new(),
            proxy_https_port: String::new(),
            namespace: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    nav: Nav,
    instance: String,
    servers: Vec<ServerRow>,
    typed: Typed,
    /// By form field, `server` for the form as a whole, or `remove-{name}` for a refused
    /// removal.
    errors: FieldErrors,
}

impl ServersPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    fn removal_error(&self, server: &str) -> Option<&str> {
        self.error(&format!("remove-{server}"))
    }

    /// Why pinning the server's host key was refused, shown in its card.
    fn pin_error(&self, server: &str) -> Option<&str> {
        self.error(&format!("pin-{server}"))
    }
}

/// A stored server as a row, with its apps and reachability.
async fn row(state: &AppState, record: ServerRecord, now: i64) -> Result<ServerRow, PanelError> {
    let deployer = &state.deployer;
    let spec = record.spec;
    let apps = deployer.apps_on_server(&spec.name).await?;
    let seen = deployer.server_reachability(&spec.name);
    let local = spec.kind == ServerKind::Local;
    let instance = deployer.target().instance();
    Ok(ServerRow {
        address: if local {
            "this daemon's own Docker engine".into()
        } else {
            format!("{}@{}:{}", spec.user, spec.host, spec.port)
        },
        namespace: spec.namespace_or(instance).to_string(),
        name: spec.name.to_string(),
        kind: spec.kind.as_str(),
        local,
        fingerprint: spec.host_key_fingerprint,
        public_key: record.public_key,
        apps: apps.iter().map(ToString::to_string).collect(),
        state: seen.state,
        checked: seen.checked_at.map(|at| Moment::new(at, now)),
        failures: seen.failures,
        last_error: seen.last_error,
    })
}

/// The page with `typed` in the form and `errors` beside their fields, answered with
/// `status`.
pub async fn servers_page(
    state: &AppState,
    session: &SignedIn,
    status: StatusCode,
    typed: Typed,
    errors: FieldErrors,
) -> Result<Response, PanelError> {
    let now = capstan_store::now_ms();
    let mut servers = Vec::new();
    for record in state.deployer.servers().await? {
        servers.push(row(state, record, now).await?);
    }
    let page = ServersPage {
        nav: Nav::at(session, "servers", Some("/servers".into())),
        instance: state.deployer.target().instance().to_string(),
        servers,
        typed,
        errors,
    };
    Ok(render_with(status, &page))
}

pub async fn servers(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    session.require(Scope::Admin)?;
    servers_page(
        &state,
        &session,
        StatusCode::OK,
        Typed::default(),
        FieldErrors::new(),
    )
    .await
}
