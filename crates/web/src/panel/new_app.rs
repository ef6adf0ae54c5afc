//! The new-app form: a name, a source (git URL and ref, or an image), domains and an
//! optional port. Creating it shows the plan before anything is deployed.

use crate::panel::page::{render, render_with, Nav, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::{field_of, FieldErrors};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use capstan_core::{AppName, AppSpec, Scope};
use capstan_deploy::ActionError;
use serde_json::json;

#[derive(Default)]
struct NewAppForm {
    name: String,
    source_kind: String,
    git_url: String,
    git_ref: String,
    image: String,
    domains: String,
    port: String,
}

#[derive(Template)]
#[template(path = "new_app.html")]
struct NewAppPage {
    nav: Nav,
    form: NewAppForm,
    errors: FieldErrors,
}

impl NewAppPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

pub async fn show(session: SignedIn) -> Result<Response, PanelError> {
    session.require(Scope::Write)?;
    Ok(render(&NewAppPage {
        nav: Nav::new(&session, "new"),
        form: NewAppForm {
            source_kind: "git".into(),
            git_ref: "main".into(),
            ..NewAppForm::default()
        },
        errors: FieldErrors::new(),
    }))
}

fn spec_of(form: &NewAppForm, errors: &mut FieldErrors) -> Option<AppSpec> {
    let source = match form.source_kind.as_str() {
        "git" => json!({ "git": {
            "url": form.git_url.trim(),
            "ref": Some(form.git_ref.trim()).filter(|r| !r.is_empty()).unwrap_or("main"),
        }}),
        "image" => json!({ "image": form.image.trim() }),
        other => {
            errors.insert("source".into(), format!("{other:?} is not git or image"));
            return None;
        }
    };
    let port = match form.port.trim() {
        "" => None,
        text => match text.parse::<u16>() {
            Ok(port) => Some(port),
            Err(_) => {
                errors.insert(
                    "port".into(),
                    format!("{text:?} is not a port from 1 to 65535"),
                );
                return None;
            }
        },
    };
    let domains: Vec<&str> = form
        .domains
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match serde_json::from_value(json!({ "source": source, "domains": domains, "port": port })) {
        Ok(spec) => Some(spec),
        Err(err) => {
            errors.insert("settings".into(), err.to_string());
            None
        }
    }
}

pub async fn create(State(state): State<AppState>, posted: Posted) -> Result<Response, PanelError> {
    posted.session.require(Scope::Write)?;
    let fields = &posted.fields;
    let form = NewAppForm {
        name: fields.get("name").trim().to_string(),
        source_kind: fields.get("source_kind").to_string(),
        git_url: fields.get("git_url").to_string(),
        git_ref: fields.get("git_ref").to_string(),
        image: fields.get("image").to_string(),
        domains: fields.get("domains").to_string(),
        port: fields.get("port").to_string(),
    };
    let mut errors = FieldErrors::new();
    let name = AppName::parse(&form.name)
        .map_err(|e| errors.insert("name".into(), e.to_string()))
        .ok();
    let spec = spec_of(&form, &mut errors);
    if let (Some(name), Some(spec)) = (name, spec) {
        match state
            .deployer
            .create_app(&name, spec, &posted.session.caller())
            .await
        {
            Ok(_) => return Ok(Redirect::to(&format!("/apps/{name}/plan")).into_response()),
            Err(ActionError::Invalid(m) | ActionError::Forbidden(m)) => {
                errors.insert(field_of(&m), m);
            }
            Err(ActionError::Conflict(m)) => {
                errors.insert("name".into(), m);
            }
            Err(other) => return Err(other.into()),
        }
    }
    let page = NewAppPage {
        nav: Nav::new(&posted.session, "new"),
        form,
        errors,
    };
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
