//! First-run setup (the admin account, guarded by the one-time code in the data dir),
//! signing in and out. The setup and sign-in forms carry a pre-session anti-forgery
//! token; every attempt is counted against the address (and the account) before any
//! password is hashed or checked.

use crate::accounts::{self, check_password, check_user_name, FORM_COOKIE};
use crate::panel::page::{render, render_with, PanelError};
use crate::panel::session::{
    cleared_cookie, local_path, session_cookie, ClientAddress, FormFields, SESSION_COOKIE,
};
use crate::panel::settings_form::FieldErrors;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use capstan_core::Role;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    code_path: String,
    /// The setup code as typed, kept only when it matched.
    code: String,
    name: String,
    /// By field: `code`, `name`, `password`, `confirm`.
    errors: FieldErrors,
    form_token: String,
}

impl SetupPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    name: String,
    error: Option<String>,
    form_token: String,
    /// The local path to go on to once signed in (empty: the apps list).
    next: String,
}

/// `?next=` of the sign-in page.
#[derive(serde::Deserialize)]
pub struct NextPage {
    #[serde(default)]
    next: String,
}

/// Where a sign-in goes on to: `next` when it is a local path, else the apps list.
fn after_sign_in(next: &str) -> &str {
    local_path(next).unwrap_or("/")
}

fn code_path(state: &AppState) -> String {
    state
        .accounts
        .setup_code_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(setup is disabled: add users through the API)".into())
}

/// The pre-session cookie of this browser (kept when this daemon signed it, else a new
/// one) and the form token for it; the jar carries the cookie to set.
fn form_token(state: &AppState, jar: CookieJar, headers: &HeaderMap) -> (CookieJar, String) {
    let (value, token) = state
        .accounts
        .form_tokens
        .issue(jar.get(FORM_COOKIE).map(|c| c.value()));
    let cookie = Cookie::build((FORM_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(crate::panel::session::over_https(headers))
        .build();
    (jar.add(cookie), token)
}

/// Refuses a pre-session post whose form token does not match this browser's nonce.
fn check_form_token(
    state: &AppState,
    jar: &CookieJar,
    form: &FormFields,
) -> Result<(), PanelError> {
    let cookie = jar.get(FORM_COOKIE).map_or("", |c| c.value());
    if state.accounts.form_tokens.matches(cookie, form.get("csrf")) {
        Ok(())
    } else {
        Err(crate::panel::session::stale_form())
    }
}

pub async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PanelError> {
    if state.deployer.store().user_count().await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    let (jar, form_token) = form_token(&state, jar, &headers);
    let page = SetupPage {
        code_path: code_path(&state),
        code: String::new(),
        name: String::new(),
        errors: FieldErrors::new(),
        form_token,
    };
    Ok((jar, render(&page)).into_response())
}

/// Every problem of a setup form besides its code.
fn setup_problems(name: &str, form: &FormFields) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(e) = check_user_name(name) {
        errors.insert("name".into(), format!("The name needs {e}."));
    }
    if let Err(e) = check_password(form.get("password")) {
        errors.insert("password".into(), format!("The password needs {e}."));
    }
    if form.get("password") != form.get("confirm") {
        errors.insert(
            "confirm".into(),
            "The two passwords differ: type the same one twice.".into(),
        );
    }
    errors
}

/// Creates the first admin account when the setup code matches, and signs it in. Two
/// setups racing create exactly one account: the loser is sent to sign in.
pub async fn setup(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: FormFields,
) -> Result<Response, PanelError> {
    let store = state.deployer.store();
    if store.user_count().await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    check_form_token(&state, &jar, &form)?;
    let attempt = state.accounts.reserve_attempt(None, address)?;
    let name = form.get("name").trim().to_string();
    let code_matches = state.accounts.setup_code_matches(form.get("code"));
    let mut errors = setup_problems(&name, &form);
    if code_matches {
        // Only a wrong code counts against the address.
        state.accounts.attempt_succeeded(attempt);
    } else {
        errors.insert(
            "code".into(),
            "The setup code does not match the one in the file named above.".into(),
        );
    }
    if !errors.is_empty() {
        let (jar, form_token) = form_token(&state, jar, &headers);
        let page = SetupPage {
            code_path: code_path(&state),
            // A code that matched is kept, so fixing a password does not mean finding it again.
            code: if code_matches {
                form.get("code").to_string()
            } else {
                String::new()
            },
            name,
            errors,
            form_token,
        };
        return Ok((jar, render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response());
    }
    let hash = state.accounts.passwords.hash(form.get("password")).await?;
    let Some(user) = store
        .add_first_user(&name, &hash, Role::Admin.as_str())
        .await?
    else {
        return Ok(Redirect::to("/login").into_response());
    };
    state.accounts.spend_setup_code();
    tracing::info!(user = %user.name, "setup done: the first admin account exists");
    let secret = accounts::start_session(store, &user).await?;
    Ok((jar.add(session_cookie(secret, &headers)), Redirect::to("/")).into_response())
}

pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(wanted): Query<NextPage>,
) -> Result<Response, PanelError> {
    if state.deployer.store().user_count().await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    let (jar, form_token) = form_token(&state, jar, &headers);
    let page = LoginPage {
        name: String::new(),
        error: None,
        form_token,
        next: local_path(&wanted.next).unwrap_or_default().to_string(),
    };
    Ok((jar, render(&page)).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: FormFields,
) -> Result<Response, PanelError> {
    check_form_token(&state, &jar, &form)?;
    let name = form.get("name").trim().to_string();
    let store = state.deployer.store();
    match accounts::sign_in(store, &state.accounts, &name, form.get("password"), address).await {
        Ok(user) => {
            let secret = accounts::start_session(store, &user).await?;
            tracing::info!(user = %user.name, "signed in");
            let next = after_sign_in(form.get("next"));
            Ok((
                jar.add(session_cookie(secret, &headers)),
                Redirect::to(next),
            )
                .into_response())
        }
        Err(err) if err.status.is_client_error() || err.retry_after.is_some() => {
            let next = local_path(form.get("next")).unwrap_or_default().to_string();
            Ok(login_refused(&state, jar, &headers, (name, next), err))
        }
        Err(err) => Err(err.into()),
    }
}

/// The sign-in page again with the reason (and `Retry-After` when told to wait), still
/// going on to `next`.
fn login_refused(
    state: &AppState,
    jar: CookieJar,
    headers: &HeaderMap,
    (name, next): (String, String),
    err: ApiError,
) -> Response {
    let (jar, form_token) = form_token(state, jar, headers);
    let retry_after = err.retry_after_header();
    let page = LoginPage {
        name,
        error: Some(err.message),
        form_token,
        next,
    };
    (jar, retry_after, render_with(err.status, &page)).into_response()
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
    posted.session.forget_flashes();
    tracing::info!(user = %posted.session.user.name, "signed out");
    Ok((jar.remove(cleared_cookie()), Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::after_sign_in;

    #[test]
    fn sign_in_goes_on_only_to_a_path_of_this_site() {
        for local in ["/apps/demo/settings", "/apps/demo?tab=env&x=%2F", "/"] {
            assert_eq!(after_sign_in(local), local);
        }
        for elsewhere in [
            "",
            "//evil.example/",
            "/\\evil.example/",
            "/\\/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "apps/demo",
            "/\t/evil.example",
            "/\n/evil.example",
            " /apps",
            "/apps/x\\..\\y",
        ] {
            assert_eq!(after_sign_in(elsewhere), "/", "{elsewhere:?}");
        }
        assert_eq!(after_sign_in(&format!("/{}", "a".repeat(3000))), "/");
    }
}
