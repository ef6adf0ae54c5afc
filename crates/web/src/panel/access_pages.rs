//! The server page (engine, proxy, disk use of Capstan's images, daemon) and, for admins,
//! users and API tokens: add and remove users with a role, create tokens with scopes (the
//! secret shown once) and revoke them.

use crate::panel::page::{render, render_with, when, Nav, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::users::NewUser;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use capstan_core::{Role, Scope, Scopes};

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    nav: Nav,
    version: &'static str,
    instance: String,
    rss_mib: String,
    engine: Result<capstan_engine::server::EngineStatus, String>,
    image_mib: String,
    proxy: &'static str,
    /// The disk under the engine's data root: path, percent used, free (local engine).
    disk: Option<(String, String, String)>,
    apps: usize,
    queued: i64,
    running: i64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub async fn server(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    let deployer = &state.deployer;
    let (queued, running) = deployer.store().queue_depth().await?;
    let engine = deployer.engine().status().await.map_err(|e| e.to_string());
    let image_mib = engine
        .as_ref()
        .map(|e| mib(u64::try_from(e.image_bytes).unwrap_or(0)))
        .unwrap_or_default();
    Ok(render(&ServerPage {
        nav: Nav::new(&session, "server"),
        version: env!("CARGO_PKG_VERSION"),
        instance: deployer.engine().instance().to_string(),
        rss_mib: crate::server::rss_bytes()
            .map(mib)
            .unwrap_or_else(|| "unknown".into()),
        engine,
        image_mib,
        proxy: deployer.proxy_state().as_str(),
        disk: deployer.engine_disk().await.map(|(root, usage)| {
            (
                root,
                format!("{:.1}%", usage.used_percent()),
                mib(usage.free_bytes),
            )
        }),
        apps: deployer.store().apps().await?.len(),
        queued,
        running,
    }))
}

struct UserRow {
    name: String,
    role: String,
    created: String,
    last_login: String,
}

struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    nav: Nav,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    /// A token just created: its secret, shown this once.
    new_token: Option<(String, String)>,
    error: Option<String>,
    roles: [Role; 3],
    scopes: [Scope; 4],
}

async fn access_page(
    state: &AppState,
    session: &SignedIn,
    new_token: Option<(String, String)>,
    error: Option<String>,
) -> Result<AccessPage, PanelError> {
    let store = state.deployer.store();
    let users = store
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            name: u.name,
            role: u.role,
            created: when(u.created_at),
            last_login: u.last_login_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let tokens = store
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            scopes: t.scopes.replace(',', ", "),
            created: when(t.created_at),
            last_used: t.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    Ok(AccessPage {
        nav: Nav::new(session, "access"),
        users,
        tokens,
        new_token,
        error,
        roles: Role::ALL,
        scopes: Scope::ALL,
    })
}

pub async fn access(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    session.require(Scope::Admin)?;
    Ok(render(&access_page(&state, &session, None, None).await?))
}

/// Shows the access page again with a problem, status 422.
async fn refused(
    state: &AppState,
    session: &SignedIn,
    error: String,
) -> Result<Response, PanelError> {
    let page = access_page(state, session, None, Some(error)).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn add_user(
    State(state): State<AppState>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let new = NewUser {
        name: posted.fields.get("name").to_string(),
        password: posted.fields.get("password").to_string(),
        role: posted.fields.get("role").to_string(),
    };
    match crate::users::add_user(&state, &posted.session.caller(), &new).await {
        Ok(_) => Ok(Redirect::to("/access").into_response()),
        Err(err) if err.status.is_client_error() => {
            refused(&state, &posted.session, err.message).await
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn delete_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    match crate::users::remove_user(&state, &posted.session.caller(), &name).await {
        Ok(()) => Ok(Redirect::to("/access").into_response()),
        Err(err) if err.status.is_client_error() => {
            refused(&state, &posted.session, err.message).await
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn add_token(
    State(state): State<AppState>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let name = posted.fields.get("name").trim().to_string();
    let chosen: Vec<&str> = Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| posted.fields.checked(&format!("scope_{s}")))
        .collect();
    let problem = if name.is_empty() || name.len() > 64 {
        Some("token name: 1 to 64 characters".to_string())
    } else if chosen.is_empty() {
        Some("scopes: tick at least one".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        return refused(&state, &posted.session, problem).await;
    }
    let scopes = Scopes::parse_list(&chosen.join(",")).map_err(PanelError::bad_request)?;
    let secret = capstan_store::new_token();
    state
        .deployer
        .store()
        .add_token(&name, &secret, &scopes.to_string())
        .await?;
    tracing::info!(token = %name, %scopes, by = %posted.session.caller().actor(), "token created");
    let page = access_page(&state, &posted.session, Some((name, secret)), None).await?;
    Ok(render_with(StatusCode::CREATED, &page))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    match crate::tokens::revoke_by_id(&state, &id).await {
        Ok(()) => Ok(Redirect::to("/access").into_response()),
        Err(err) if err.status.is_client_error() => {
            refused(&state, &posted.session, err.message).await
        }
        Err(err) => Err(err.into()),
    }
}
