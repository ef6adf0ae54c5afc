//! The new-app form: a name, a source (git URL and ref, or an image), domains and an
//! optional port. Creating it shows the plan before anything is deployed.

use crate::panel::page::{render, render_with, Nav, PanelError};
use crate::panel::problems::{beside_field, every_problem, in_words};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::FieldErrors;
use crate::panel::Flash;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
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

/// The settings the form asks for, or None with every problem of the form in `errors`.
fn spec_of(form: &NewAppForm, errors: &mut FieldErrors) -> Option<AppSpec> {
    let source = match form.source_kind.as_str() {
        "git" => json!({ "git": {
            "url": form.git_url.trim(),
            "ref": Some(form.git_ref.trim()).filter(|r| !r.is_empty()).unwrap_or("main"),
        }}),
        "image" => json!({ "image": form.image.trim() }),
        other => {
            errors.insert(
                "source".into(),
                format!("{other:?} is not a kind of source: choose a git repository or an image."),
            );
            // Checked with a stand-in so the other fields' problems show too.
            json!({ "image": "image" })
        }
    };
    let port = match form.port.trim() {
        "" => None,
        text => text.parse::<u16>().ok().filter(|p| *p > 0).or_else(|| {
            errors.insert(
                "port".into(),
                format!(
                    "{text:?} is not a port: give a number from 1 to 65535, or leave it empty."
                ),
            );
            None
        }),
    };
    let domains: Vec<&str> = form
        .domains
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match serde_json::from_value::<AppSpec>(
        json!({ "source": source, "domains": domains, "port": port }),
    ) {
        Ok(spec) => {
            every_problem(spec.clone(), errors);
            errors.is_empty().then_some(spec)
        }
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
        .map_err(|e| errors.insert("name".into(), in_words(&e)))
        .ok();
    let spec = spec_of(&form, &mut errors);
    if let (Some(name), Some(spec), true) = (name, spec, errors.is_empty()) {
        match state
            .deployer
            .create_app(&name, spec, &posted.session.caller())
            .await
        {
            Ok(_) => {
                let flash = Flash::notice(format!(
                    "App {name} created. This is its plan: nothing is deployed until you say so."
                ));
                return Ok(posted
                    .session
                    .redirect_with(&format!("/apps/{name}/plan"), flash));
            }
            Err(ActionError::Invalid(m) | ActionError::Forbidden(m)) => {
                let (field, message) = beside_field(&m);
                errors.insert(field, message);
            }
            Err(ActionError::Conflict(_)) => {
                errors.insert(
                    "name".into(),
                    format!("There is already an app named {name}."),
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    let page = NewAppPage {
        nav: Nav::at(&posted.session, "new", Some("/new".into())),
        form,
        errors,
    };
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
