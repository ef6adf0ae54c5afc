//! First-run setup (the admin account, guarded by the one-time code in the data dir),
//! signing in and out.

use crate::accounts::{self, check_password, check_user_name, hash_password};
use crate::panel::page::{render, render_with, PanelError};
use crate::panel::session::{
    cleared_cookie, session_cookie, ClientAddress, FormFields, SESSION_COOKIE,
};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use capstan_core::Role;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    code_path: String,
    name: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    name: String,
    error: Option<String>,
}

fn code_path(state: &AppState) -> String {
    state
        .accounts
        .setup_code_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(setup is disabled: add users through the API)".into())
}

pub async fn setup_form(State(state): State<AppState>) -> Result<Response, PanelError> {
    if state.deployer.store().user_count().await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    Ok(render(&SetupPage {
        code_path: code_path(&state),
        name: String::new(),
        error: None,
    }))
}

/// Creates the first admin account when the setup code matches, and signs it in.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    form: FormFields,
) -> Result<Response, PanelError> {
    let store = state.deployer.store();
    if store.user_count().await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    let name = form.get("name").trim().to_string();
    let problem = if !state.accounts.setup_code_matches(form.get("code")) {
        Some("the setup code does not match the one in the file named above".to_string())
    } else if let Err(e) = check_user_name(&name) {
        Some(format!("user name: {e}"))
    } else if let Err(e) = check_password(form.get("password")) {
        Some(format!("password: {e}"))
    } else if form.get("password") != form.get("confirm") {
        Some("the two passwords differ".to_string())
    } else {
        None
    };
    if let Some(error) = problem {
        let page = SetupPage {
            code_path: code_path(&state),
            name,
            error: Some(error),
        };
        return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let hash = hash_password(form.get("password")).await?;
    let user = store.add_user(&name, &hash, Role::Admin.as_str()).await?;
    state.accounts.spend_setup_code();
    tracing::info!(user = %user.name, "setup done: the first admin account exists");
    let secret = accounts::start_session(store, &user).await?;
    Ok((jar.add(session_cookie(secret, &headers)), Redirect::to("/")).into_response())
}

pub async fn login_form(State(state): State<AppState>) -> Result<Response, PanelError> {
    if state.deployer.store().user_count().await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(render(&LoginPage {
        name: String::new(),
        error: None,
    }))
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: FormFields,
) -> Result<Response, PanelError> {
    let name = form.get("name").trim().to_string();
    let store = state.deployer.store();
    match accounts::sign_in(store, &state.accounts, &name, form.get("password"), address).await {
        Ok(user) => {
            let secret = accounts::start_session(store, &user).await?;
            tracing::info!(user = %user.name, "signed in");
            Ok((jar.add(session_cookie(secret, &headers)), Redirect::to("/")).into_response())
        }
        Err(err) if err.status.is_client_error() => {
            let page = LoginPage {
                name,
                error: Some(err.message),
            };
            Ok(render_with(err.status, &page))
        }
        Err(err) => Err(err.into()),
    }
}

/// Ends the session server-side (the cookie alone no longer works) and clears it.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    posted: crate::panel::session::Posted,
) -> Result<Response, PanelError> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state
            .deployer
            .store()
            .delete_session(cookie.value())
            .await?;
    }
    tracing::info!(user = %posted.session.user.name, "signed out");
    Ok((jar.remove(cleared_cookie()), Redirect::to("/login")).into_response())
}
