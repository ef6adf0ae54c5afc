//! The app settings page: the settings form (saved whole or not at all, every problem
//! beside its field at once; "Save and deploy" queues a deployment once they are saved)
//! and the app's secrets (names only: set, replace, delete; a value is never sent back to
//! the browser). A success redirects to the page, which confirms it once.

use crate::apps::app_name;
use crate::panel::page::{render, render_with, Moment, Nav, PanelError};
use crate::panel::problems::{beside_field, in_words, settings_patch};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::{FieldErrors, SettingsForm};
use crate::panel::Flash;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use capstan_core::{AppName, Scope};
use capstan_deploy::ActionError;

struct SecretRow {
    name: String,
    build: bool,
    updated: Moment,
}

/// What the secret form holds after a refused post (never the value).
#[derive(Default)]
struct SecretTyped {
    name: String,
    build: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    name: String,
    form: SettingsForm,
    /// By settings field, and `secret_name`, `secret_value`, `secret` for the secret form.
    errors: FieldErrors,
    secrets: Vec<SecretRow>,
    secret: SecretTyped,
}

impl SettingsPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    fn build_type_is(&self, kind: &str) -> bool {
        self.form.build_type == kind
    }

    /// Whether the settings form (not the secret form) has a problem.
    fn settings_refused(&self) -> bool {
        self.errors.keys().any(|k| !k.starts_with("secret"))
    }
}

async fn page(
    state: &AppState,
    session: &SignedIn,
    app: &AppName,
    form: Option<SettingsForm>,
    errors: FieldErrors,
    secret: SecretTyped,
) -> Result<SettingsPage, PanelError> {
    let form = match form {
        Some(form) => form,
        None => SettingsForm::from_spec(&state.deployer.store().app(app).await?.spec),
    };
    let now = capstan_store::now_ms();
    let secrets = state
        .deployer
        .secrets(app)
        .await?
        .into_iter()
        .map(|s| SecretRow {
            name: s.name,
            build: s.build,
            updated: Moment::new(s.updated_at, now),
        })
        .collect();
    Ok(SettingsPage {
        nav: Nav::at(session, "apps", Some(format!("/apps/{app}/settings"))),
        name: app.to_string(),
        form,
        errors,
        secrets,
        secret,
    })
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let page = page(
        &state,
        &session,
        &name,
        None,
        FieldErrors::new(),
        SecretTyped::default(),
    )
    .await?;
    Ok(render(&page))
}

pub async fn save(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    save_settings(&state, &app, &posted, false).await
}

/// "Save and deploy": the settings saved as by Save, then a deployment with them queued;
/// when they cannot be saved nothing is deployed and the problems show as for Save.
pub async fn save_and_deploy(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    save_settings(&state, &app, &posted, true).await
}

async fn save_settings(
    state: &AppState,
    app: &str,
    posted: &Posted,
    then_deploy: bool,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    if then_deploy {
        posted.session.require(Scope::Deploy)?;
    }
    let name = app_name(app)?;
    let record = state.deployer.store().app(&name).await?;
    let form = SettingsForm::from_fields(&posted.fields);
    let caller = posted.session.caller();
    let errors = match settings_patch(&form, &record.spec) {
        Ok(patch) => match state.deployer.patch_app(&name, &patch, &caller).await {
            Ok(_) if then_deploy => {
                let (to, flash) = match state.deployer.deploy(&name, None, false, &caller).await {
                    Ok(queued) => (
                        format!("/deployments/{}", queued.id),
                        format!(
                            "Settings saved; deployment #{} of {name} queued with them.",
                            queued.id
                        ),
                    ),
                    Err(err) => (
                        format!("/apps/{name}"),
                        format!("Settings saved, but no deployment was queued: {err}"),
                    ),
                };
                return Ok(posted.session.redirect_with(&to, Flash::notice(flash)));
            }
            Ok(_) => {
                let flash = Flash::notice(
                    "Settings saved. They take effect with the next deploy or restart.",
                );
                return Ok(posted
                    .session
                    .redirect_with(&format!("/apps/{name}/settings"), flash));
            }
            Err(ActionError::Invalid(message) | ActionError::Forbidden(message)) => {
                FieldErrors::from([beside_field(&message)])
            }
            Err(other) => return Err(other.into()),
        },
        Err(errors) => errors,
    };
    let secret = SecretTyped::default();
    let page = page(state, &posted.session, &name, Some(form), errors, secret).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// Every problem of the secret form at once (the deployer checks again).
fn secret_problems(name: &str, value: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if name.is_empty() {
        errors.insert("secret_name".into(), "Give the secret a name.".into());
    } else if let Err(problem) = capstan_core::validate::check_env_key(name) {
        errors.insert("secret_name".into(), in_words(&problem));
    }
    let min = capstan_deploy::logs::MIN_SECRET_LEN;
    if value.chars().count() < min {
        errors.insert(
            "secret_value".into(),
            format!(
                "The value needs at least {min} characters (shorter ones cannot be hidden in \
                 logs; put them in the variables above)."
            ),
        );
    }
    errors
}

pub async fn set_secret(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    let name = app_name(&app)?;
    let fields = &posted.fields;
    let typed = SecretTyped {
        name: fields.get("name").trim().to_string(),
        build: fields.checked("build"),
    };
    let value = fields.get("value");
    let mut errors = secret_problems(&typed.name, value);
    if errors.is_empty() {
        match state
            .deployer
            .set_secret(
                &name,
                &typed.name,
                value,
                typed.build,
                &posted.session.caller(),
            )
            .await
        {
            Ok(_) => {
                let when = if typed.build {
                    "deploys and builds"
                } else {
                    "deploys"
                };
                let flash = Flash::notice(format!(
                    "Secret {} set. The next {when} use it.",
                    typed.name
                ));
                return Ok(posted
                    .session
                    .redirect_with(&format!("/apps/{name}/settings#secrets"), flash));
            }
            Err(ActionError::Invalid(message)) => {
                errors.insert("secret".into(), message);
            }
            Err(other) => return Err(other.into()),
        }
    }
    let page = page(&state, &posted.session, &name, None, errors, typed).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn delete_secret(
    State(state): State<AppState>,
    Path((app, secret)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    let name = app_name(&app)?;
    state
        .deployer
        .delete_secret(&name, &secret, &posted.session.caller())
        .await?;
    let flash = Flash::notice(format!(
        "Secret {secret} deleted. Running containers keep it until the next deploy or restart."
    ));
    Ok(posted
        .session
        .redirect_with(&format!("/apps/{name}/settings#secrets"), flash))
}
