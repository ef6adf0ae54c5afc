//! The app settings page: the settings form (saved whole or not at all, with each problem
//! next to its field) and the app's secrets (names only: set, replace, delete; a value is
//! never sent back to the browser).

use crate::apps::app_name;
use crate::panel::page::{render, render_with, when, Nav, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::{field_of, FieldErrors, SettingsForm};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use capstan_core::Scope;
use capstan_deploy::ActionError;

struct SecretRow {
    name: String,
    build: bool,
    updated: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    name: String,
    form: SettingsForm,
    errors: FieldErrors,
    secrets: Vec<SecretRow>,
    saved: bool,
}

impl SettingsPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    fn build_type_is(&self, kind: &str) -> bool {
        self.form.build_type == kind
    }
}

async fn page(
    state: &AppState,
    session: &SignedIn,
    app: &capstan_core::AppName,
    form: SettingsForm,
    errors: FieldErrors,
    saved: bool,
) -> Result<SettingsPage, PanelError> {
    let secrets = state
        .deployer
        .secrets(app)
        .await?
        .into_iter()
        .map(|s| SecretRow {
            name: s.name,
            build: s.build,
            updated: when(s.updated_at),
        })
        .collect();
    Ok(SettingsPage {
        nav: Nav::new(session, "apps"),
        name: app.to_string(),
        form,
        errors,
        secrets,
        saved,
    })
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let record = state.deployer.store().app(&name).await?;
    let saved = query.as_deref() == Some("saved");
    let form = SettingsForm::from_spec(&record.spec);
    let page = page(&state, &session, &name, form, FieldErrors::new(), saved).await?;
    Ok(render(&page))
}

pub async fn save(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    let name = app_name(&app)?;
    let record = state.deployer.store().app(&name).await?;
    let form = SettingsForm::from_fields(&posted.fields);
    let errors = match form.to_patch(Some(&record.spec)) {
        Ok(patch) => {
            match state
                .deployer
                .patch_app(&name, &patch, &posted.session.caller())
                .await
            {
                Ok(_) => {
                    return Ok(Redirect::to(&format!("/apps/{name}/settings?saved")).into_response())
                }
                Err(ActionError::Invalid(message) | ActionError::Forbidden(message)) => {
                    FieldErrors::from([(field_of(&message), message)])
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(errors) => errors,
    };
    let page = page(&state, &posted.session, &name, form, errors, false).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn set_secret(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    let name = app_name(&app)?;
    let fields = &posted.fields;
    state
        .deployer
        .set_secret(
            &name,
            fields.get("name").trim(),
            fields.get("value"),
            fields.checked("build"),
            &posted.session.caller(),
        )
        .await?;
    Ok(Redirect::to(&format!("/apps/{name}/settings#secrets")).into_response())
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
    Ok(Redirect::to(&format!("/apps/{name}/settings#secrets")).into_response())
}
