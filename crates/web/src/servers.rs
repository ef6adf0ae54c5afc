//! `/api/v1/servers`: the hosts apps run on. Add one (the answer carries the public key
//! for its `authorized_keys`), list, show, remove (refused for `local` and while apps
//! target it), and run its preflight checks.

use crate::error::ApiError;
use crate::views::{ErrorBody, Server, ServerCheck, ServerCheckItem};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use capstan_core::{ServerName, ServerSpec};
use capstan_deploy::Caller;
use capstan_store::ServerRecord;
use serde_json::Value;

/// Parses a server name from the path, with the same rules as creation.
fn server_name(raw: &str) -> Result<ServerName, ApiError> {
    ServerName::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A server as the API shows it: its settings with the namespace resolved, its public
/// key and the apps that target it.
async fn view(state: &AppState, record: ServerRecord) -> Result<Server, ApiError> {
    let apps = state.deployer.apps_on_server(&record.spec.name).await?;
    let instance = state.deployer.target().instance().to_string();
    let reachability = state.deployer.server_reachability(&record.spec.name).state;
    let spec = record.spec;
    Ok(Server {
        namespace: spec.namespace_or(&instance).to_string(),
        docker_socket: spec.docker_socket,
        reachability: reachability.to_string(),
        name: spec.name.to_string(),
        kind: spec.kind,
        host: spec.host,
        port: spec.port,
        user: spec.user,
        host_key_fingerprint: spec.host_key_fingerprint,
        build_slots: spec.build_slots,
        proxy_http_port: spec.proxy_http_port,
        proxy_https_port: spec.proxy_https_port,
        labels: spec.labels,
        public_key: record.public_key,
        apps: apps.iter().map(ToString::to_string).collect(),
        created_at: crate::views::time(record.created_at),
        updated_at: crate::views::time(record.updated_at),
    })
}

#[utoipa::path(post, path = "/servers", tag = "servers", request_body = ServerSpec,
    responses((status = 201, description = "added, with the public key to put in the server's authorized_keys", body = Server), (status = "4XX", description = "what was wrong (422 names the field, 409 when the name is taken)", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Adds a server and makes an ed25519 key pair for it: the answer's `public_key` is the
/// line for the server's `authorized_keys`; the private key is stored encrypted and never
/// shown.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Server>), ApiError> {
    let Json(body) = body?;
    let spec: ServerSpec = serde_path_to_error::deserialize(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid server: {e}"),
        )
    })?;
    let record = state.deployer.create_server(spec, &caller).await?;
    Ok((StatusCode::CREATED, Json(view(&state, record).await?)))
}

#[utoipa::path(get, path = "/servers", tag = "servers",
    responses((status = 200, description = "every server, local first", body = Vec<Server>), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Server>>, ApiError> {
    let mut out = Vec::new();
    for record in state.deployer.servers().await? {
        out.push(view(&state, record).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/servers/{name}", tag = "servers", params(("name" = String, Path, description = "the server's name")),
    responses((status = 200, description = "the server", body = Server), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Server>, ApiError> {
    let record = state.deployer.server_record(&server_name(&name)?).await?;
    Ok(Json(view(&state, record).await?))
}

#[utoipa::path(delete, path = "/servers/{name}", tag = "servers", params(("name" = String, Path, description = "the server's name")),
    responses((status = 204, description = "removed with its key pair"), (status = "4XX", description = "what was wrong (409: local, or apps still target it, named)", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .deployer
        .delete_server(&server_name(&name)?, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The host key a server must present.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostKey {
    /// As OpenSSH prints it: `SHA256:` and 43 base64 characters.
    pub fingerprint: String,
}

#[utoipa::path(put, path = "/servers/{name}/host-key", tag = "servers", params(("name" = String, Path, description = "the server's name")), request_body = HostKey,
    responses((status = 200, description = "pinned; the server's key pair is kept", body = Server), (status = "4XX", description = "what was wrong (422: not a fingerprint, or the server presents another key, both named; 409: local)", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Pins the host key the server must present, e.g. the one its first check showed once
/// compared with `ssh-keygen -lf` on the server. A server that answers must present it.
pub async fn pin_host_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Server>, ApiError> {
    let Json(body) = body?;
    let key: HostKey = serde_path_to_error::deserialize(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid host key: {e}"),
        )
    })?;
    let name = server_name(&name)?;
    let record = state
        .deployer
        .confirm_host_key(&name, &key.fingerprint, &caller)
        .await?;
    Ok(Json(view(&state, record).await?))
}

#[utoipa::path(post, path = "/servers/{name}/check", tag = "servers", params(("name" = String, Path, description = "the server's name")),
    responses((status = 200, description = "each preflight check and whether all passed (a failed check is not an error)", body = ServerCheck), (status = "4XX", description = "what was wrong", body = ErrorBody), (status = 503, description = "the database is unavailable", body = ErrorBody)))]
/// Runs the server's preflight checks: reachable, engine version and API, architecture,
/// free disk, proxy, clock skew. Each says what it found.
pub async fn check(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServerCheck>, ApiError> {
    let preflight = state.deployer.check_server(&server_name(&name)?).await?;
    Ok(Json(ServerCheck {
        ok: preflight.ok,
        checks: preflight
            .checks
            .into_iter()
            .map(|c| ServerCheckItem {
                name: c.name,
                ok: c.ok,
                detail: c.detail,
            })
            .collect(),
    }))
}
