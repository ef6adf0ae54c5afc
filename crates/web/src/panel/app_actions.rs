//! An app's actions as form posts: deploy (ref, no cache), roll back to an earlier
//! successful release, restart, maintenance mode on and off, and delete after typing the
//! app's name. A success redirects (to the deployment it started, the app page or the
//! dashboard), whose page confirms it once; a refusal shows the app page again with the
//! problem beside its form and what was typed kept.

use crate::panel::app_page::{app_page, Refusal};
use crate::panel::page::{render_with, PanelError};
use crate::panel::problems::in_words;
use crate::panel::session::Posted;
use crate::panel::settings_form::FieldErrors;
use crate::panel::Flash;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use capstan_core::{AppName, MaintenancePage, Scope};
use capstan_deploy::{ActionError, RollbackTarget};

/// The app page again with `refusal`, answering `status`.
async fn refused(
    state: &AppState,
    posted: &Posted,
    name: &AppName,
    status: StatusCode,
    refusal: Refusal,
) -> Result<Response, PanelError> {
    let page = app_page(state, &posted.session, name, refusal).await?;
    Ok(render_with(status, &page))
}

/// What an action that failed answers: the app page with the reason beside `form` when
/// the request was at fault (a conflict, bad input), else the error page.
async fn action_failed(
    state: &AppState,
    posted: &Posted,
    name: &AppName,
    form: &str,
    err: ActionError,
) -> Result<Response, PanelError> {
    let err = ApiError::from(err);
    if !err.status.is_client_error() || err.status == StatusCode::NOT_FOUND {
        return Err(err.into());
    }
    let refusal = Refusal {
        errors: FieldErrors::from([(form.to_string(), err.message)]),
        ..Refusal::default()
    };
    refused(state, posted, name, err.status, refusal).await
}

/// A deployment queued: its page, which says so once.
fn to_deployment(posted: &Posted, id: i64, message: String) -> Response {
    posted
        .session
        .redirect_with(&format!("/deployments/{id}"), Flash::notice(message))
}

pub async fn deploy(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let git_ref = Some(posted.fields.get("ref").trim()).filter(|r| !r.is_empty());
    let no_cache = posted.fields.checked("no_cache");
    match state
        .deployer
        .deploy(&name, git_ref, no_cache, &caller)
        .await
    {
        Ok(d) => Ok(to_deployment(
            &posted,
            d.id,
            format!("Deployment #{} of {name} queued.", d.id),
        )),
        Err(err) => action_failed(&state, &posted, &name, "action", err).await,
    }
}

pub async fn rollback(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let target = match posted.fields.get("deployment") {
        "" => RollbackTarget::Previous,
        id => RollbackTarget::Deployment(
            id.parse()
                .map_err(|_| PanelError::bad_request(format!("{id:?} is not a deployment id")))?,
        ),
    };
    match state.deployer.rollback(&name, target, &caller).await {
        Ok(d) => Ok(to_deployment(
            &posted,
            d.id,
            format!("Rollback of {name} queued as deployment #{}.", d.id),
        )),
        Err(err) => action_failed(&state, &posted, &name, "action", err).await,
    }
}

pub async fn restart(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    match state.deployer.restart(&name, &caller).await {
        Ok(d) => Ok(to_deployment(
            &posted,
            d.id,
            format!("Restart of {name} queued as deployment #{}.", d.id),
        )),
        Err(err) => action_failed(&state, &posted, &name, "action", err).await,
    }
}

/// Queues a deployment again on the servers where it failed.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let id = crate::panel::page::record_id(&id, "deployment")?;
    let record = state.deployer.store().deployment(id).await?;
    let (name, caller) = posted.for_app(Scope::Deploy, record.app.as_str())?;
    match state.deployer.retry(id, &caller).await {
        Ok(d) => Ok(to_deployment(
            &posted,
            d.id,
            format!("Deployment #{id} queued again for the servers where it failed."),
        )),
        Err(err) => action_failed(&state, &posted, &name, "action", err).await,
    }
}

/// Cancels a deployment: a queued one at once, a running one at its next step.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let id = crate::panel::page::record_id(&id, "deployment")?;
    let record = state.deployer.store().deployment(id).await?;
    let (name, caller) = posted.for_app(Scope::Deploy, record.app.as_str())?;
    match state.deployer.cancel(id, &caller).await {
        Ok(capstan_deploy::Cancelled::Now(_)) => Ok(to_deployment(
            &posted,
            id,
            format!("Deployment #{id} cancelled before it started."),
        )),
        Ok(capstan_deploy::Cancelled::Requested(_)) => Ok(to_deployment(
            &posted,
            id,
            format!("Deployment #{id} stops at its next step; the live version keeps serving."),
        )),
        Err(err) => action_failed(&state, &posted, &name, "action", err).await,
    }
}

/// Deletes the app when the typed confirmation is its name.
pub async fn delete(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Write, &app)?;
    let typed = posted.fields.get("confirm").trim().to_string();
    if typed != name.as_str() {
        let refusal = Refusal {
            errors: FieldErrors::from([(
                "confirm".to_string(),
                format!("Nothing was deleted: type the app's name, {name}, to confirm."),
            )]),
            confirm: typed,
            ..Refusal::default()
        };
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return refused(&state, &posted, &name, status, refusal).await;
    }
    if let Err(err) = state.deployer.delete_app(&name, &caller).await {
        return action_failed(&state, &posted, &name, "confirm", err).await;
    }
    let flash = Flash::notice(format!(
        "App {name} deleted with its containers, route, images and history. Its volumes are kept."
    ));
    Ok(posted.session.redirect_with("/", flash))
}

/// The maintenance page a form asks for, or every problem of it.
fn maintenance_page(message: &str, retry: &str) -> Result<MaintenancePage, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut page = MaintenancePage::default();
    if !message.is_empty() {
        page.message = message.to_string();
    }
    if !retry.is_empty() {
        match retry.parse() {
            Ok(secs) => page.retry_after_secs = secs,
            Err(_) => {
                errors.insert(
                    "retry_after".into(),
                    format!(
                        "{retry:?} is not a number of seconds: give a whole number such as 300."
                    ),
                );
            }
        }
    }
    let defaults = MaintenancePage::default();
    for _ in 0..2 {
        let Err(problem) = page.validate() else { break };
        if problem.field == "message" {
            errors.entry("message".into()).or_insert(in_words(&problem));
            page.message = defaults.message.clone();
        } else {
            errors
                .entry("retry_after".into())
                .or_insert(in_words(&problem));
            page.retry_after_secs = defaults.retry_after_secs;
        }
    }
    if errors.is_empty() {
        Ok(page)
    } else {
        Err(errors)
    }
}

/// Turns maintenance mode on (with the form's message and Retry-After) or off.
pub async fn maintenance(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let message = posted.fields.get("message").trim();
    let retry = posted.fields.get("retry_after").trim();
    let page = match posted.fields.get("switch") {
        "on" => match maintenance_page(message, retry) {
            Ok(page) => Some(page),
            Err(errors) => {
                let refusal = Refusal {
                    errors,
                    message: message.to_string(),
                    retry_after: retry.to_string(),
                    ..Refusal::default()
                };
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                return refused(&state, &posted, &name, status, refusal).await;
            }
        },
        "off" => None,
        other => {
            return Err(PanelError::bad_request(format!(
                "nothing changed: {other:?} is neither on nor off"
            )))
        }
    };
    let on = page.is_some();
    if let Err(err) = state.deployer.set_maintenance(&name, page, &caller).await {
        return action_failed(&state, &posted, &name, "maintenance", err).await;
    }
    let flash = Flash::notice(if on {
        format!("Maintenance is on: visitors of {name} get the maintenance page.")
    } else {
        format!("Maintenance is off: traffic goes to {name} again.")
    });
    Ok(posted
        .session
        .redirect_with(&format!("/apps/{name}"), flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maintenance_form_names_each_wrong_field() {
        let errors = maintenance_page(&"x".repeat(5000), "soon").unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["message", "retry_after"], "{errors:?}");
        let errors = maintenance_page("", "0").unwrap_err();
        assert!(errors["retry_after"].starts_with("Must be between 1 and"));
        let page = maintenance_page("", "").unwrap();
        assert_eq!(page, MaintenancePage::default());
    }
}
