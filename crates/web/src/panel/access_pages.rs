//! Users and API tokens (admins): add and remove users with a role (the least, viewer,
//! unless another is chosen), create tokens with scopes and revoke them. A new token's
//! secret reaches the browser once, on the page the post redirects to; a form with
//! problems comes back with each beside its field and what was typed kept (never a
//! password).

use crate::accounts::{check_password, check_user_name};
use crate::panel::page::{render_with, Moment, Nav, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::FieldErrors;
use crate::panel::Flash;
use crate::users::NewUser;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use capstan_core::{Role, Scope, Scopes};

struct UserRow {
    name: String,
    role: String,
    created: Moment,
    last_login: Option<Moment>,
}

struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created: Moment,
    last_used: Option<Moment>,
}

/// What the two forms hold: empty, or what was posted.
#[derive(Default)]
struct Typed {
    user_name: String,
    role: String,
    token_name: String,
    scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    nav: Nav,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    typed: Typed,
    /// By field (`user_name`, `user_password`, `role`, `token_name`, `scopes`), or
    /// `access` for a refused delete or revoke.
    errors: FieldErrors,
    roles: [Role; 3],
    scopes: [Scope; 4],
}

impl AccessPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    /// The role the user form shows chosen: the one posted, else the least (viewer).
    fn role_chosen(&self, role: &Role) -> bool {
        match Role::parse(&self.typed.role) {
            Some(chosen) => chosen == *role,
            None => *role == Role::Viewer,
        }
    }

    fn scope_ticked(&self, scope: &Scope) -> bool {
        self.typed.scopes.contains(&scope.as_str())
    }
}

async fn access_page(
    state: &AppState,
    session: &SignedIn,
    typed: Typed,
    errors: FieldErrors,
) -> Result<AccessPage, PanelError> {
    let store = state.deployer.store();
    let now = capstan_store::now_ms();
    let users = store
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            name: u.name,
            role: u.role,
            created: Moment::new(u.created_at, now),
            last_login: u.last_login_at.map(|at| Moment::new(at, now)),
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
            created: Moment::new(t.created_at, now),
            last_used: t.last_used_at.map(|at| Moment::new(at, now)),
        })
        .collect();
    Ok(AccessPage {
        nav: Nav::at(session, "access", Some("/access".into())),
        users,
        tokens,
        typed,
        errors,
        roles: Role::ALL,
        scopes: Scope::ALL,
    })
}

pub async fn access(
    State(state): State<AppState>,
    session: SignedIn,
) -> Result<Response, PanelError> {
    session.require(Scope::Admin)?;
    let page = access_page(&state, &session, Typed::default(), FieldErrors::new()).await?;
    Ok(render_with(StatusCode::OK, &page))
}

/// The access page again, with what was typed and every problem, with `status`.
async fn refused(
    state: &AppState,
    session: &SignedIn,
    status: StatusCode,
    typed: Typed,
    errors: FieldErrors,
) -> Result<Response, PanelError> {
    let page = access_page(state, session, typed, errors).await?;
    Ok(render_with(status, &page))
}

/// Every problem of the user form at once.
fn user_problems(new: &NewUser) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(e) = check_user_name(new.name.trim()) {
        errors.insert("user_name".into(), format!("The name needs {e}."));
    }
    if let Err(e) = check_password(&new.password) {
        errors.insert("user_password".into(), format!("The password needs {e}."));
    }
    if Role::parse(&new.role).is_none() {
        errors.insert("role".into(), "Choose admin, deployer or viewer.".into());
    }
    errors
}

pub async fn add_user(
    State(state): State<AppState>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let new = NewUser {
        name: posted.fields.get("name").trim().to_string(),
        password: posted.fields.get("password").to_string(),
        role: posted.fields.get("role").to_string(),
    };
    let typed = Typed {
        user_name: new.name.clone(),
        role: new.role.clone(),
        ..Typed::default()
    };
    let mut errors = user_problems(&new);
    if errors.is_empty() {
        match crate::users::add_user(&state, &posted.session.caller(), &new).await {
            Ok(user) => {
                let flash = Flash::notice(format!("User {} added as {}.", user.name, user.role));
                return Ok(posted.session.redirect_with("/access", flash));
            }
            Err(err) if err.status == StatusCode::CONFLICT => {
                errors.insert(
                    "user_name".into(),
                    format!("There is already a user named {}.", new.name),
                );
            }
            Err(err) if err.status.is_client_error() => {
                errors.insert("user".into(), err.message);
            }
            Err(err) => return Err(err.into()),
        }
    }
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    refused(&state, &posted.session, status, typed, errors).await
}

pub async fn delete_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    match crate::users::remove_user(&state, &posted.session.caller(), &name).await {
        Ok(()) => {
            let flash = Flash::notice(format!("User {name} deleted; their sessions ended."));
            Ok(posted.session.redirect_with("/access", flash))
        }
        Err(err) if err.status.is_client_error() => {
            let errors = FieldErrors::from([("access".to_string(), err.message)]);
            refused(
                &state,
                &posted.session,
                err.status,
                Typed::default(),
                errors,
            )
            .await
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
    let chosen: Vec<&'static str> = Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| posted.fields.checked(&format!("scope_{s}")))
        .collect();
    let mut errors = FieldErrors::new();
    if name.is_empty() || name.chars().count() > 64 {
        errors.insert(
            "token_name".into(),
            "Give the token a name of 1 to 64 characters (what uses it, e.g. ci).".into(),
        );
    }
    let scopes = Scopes::parse_list(&chosen.join(","));
    if chosen.is_empty() || scopes.is_err() {
        errors.insert("scopes".into(), "Tick at least one scope.".into());
    }
    let scopes = match scopes {
        Ok(scopes) if errors.is_empty() => scopes,
        _ => {
            let typed = Typed {
                token_name: name,
                scopes: chosen,
                ..Typed::default()
            };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return refused(&state, &posted.session, status, typed, errors).await;
        }
    };
    let secret = capstan_store::new_token();
    state
        .deployer
        .store()
        .add_token(&name, &secret, &scopes.to_string())
        .await?;
    tracing::info!(token = %name, %scopes, by = %posted.session.caller().actor(), "token created");
    let flash = Flash::with_secret(format!("Token “{name}” created ({scopes})."), secret);
    Ok(posted.session.redirect_with("/access", flash))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    match crate::tokens::revoke_by_id(&state, &id).await {
        Ok(()) => {
            let flash = Flash::notice("Token revoked: whatever used it is refused from now on.");
            Ok(posted.session.redirect_with("/access", flash))
        }
        Err(err) if err.status.is_client_error() => {
            let errors = FieldErrors::from([("access".to_string(), err.message)]);
            refused(
                &state,
                &posted.session,
                err.status,
                Typed::default(),
                errors,
            )
            .await
        }
        Err(err) => Err(err.into()),
    }
}
