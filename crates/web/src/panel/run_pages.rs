//! One-off commands in the panel: the form (one line, split as a shell splits words with
//! `shlex` but run without a shell, and an optional time limit) with the app's recent
//! runs, and a run's page: the argv it ran, who started it, its state and exit code, and
//! its output, followed live while it runs. Starting one needs the deploy scope (the
//! deployer role); the same action as `POST /api/v1/apps/{app}/runs`.

use crate::apps::app_name;
use crate::panel::page::{render, render_with, took, Moment, Nav, PanelError};
use crate::panel::session::{Posted, SignedIn};
use crate::panel::settings_form::FieldErrors;
use crate::panel::Flash;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use capstan_core::{AppName, Scope};
use capstan_deploy::{check_command, RunRequest};
use capstan_store::{RunRecord, RunState};
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

/// One run, ready to show.
struct RunRow {
    id: i64,
    /// The argv as one line a shell would split back the same.
    line: String,
    argv: Vec<String>,
    state: &'static str,
    /// The CSS class of the state badge.
    tone: &'static str,
    exit_code: String,
    error: String,
    actor: String,
    deployment: i64,
    image: String,
    timeout_secs: u32,
    started: Moment,
    took: String,
    finished: bool,
}

impl RunRow {
    fn new(run: &RunRecord, now: i64) -> Self {
        let line = shlex::try_join(run.command.iter().map(String::as_str))
            .unwrap_or_else(|_| format!("{:?}", run.command));
        RunRow {
            id: run.id,
            line,
            argv: run.command.clone(),
            state: run.state.as_str(),
            tone: match run.state {
                RunState::Succeeded => "ok",
                RunState::Failed | RunState::TimedOut => "bad",
                RunState::Running => "busy",
            },
            exit_code: run.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            error: run.error.clone().unwrap_or_default(),
            actor: run.actor.clone(),
            deployment: run.deployment_id,
            image: run.image.clone(),
            timeout_secs: run.timeout_secs,
            started: Moment::new(run.started_at, now),
            took: match run.finished_at {
                Some(end) => took(end - run.started_at),
                None => format!("{} so far", took(now - run.started_at)),
            },
            finished: run.state.is_finished(),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Nav,
    app: String,
    has_live: bool,
    max_timeout_secs: u32,
    runs: Vec<RunRow>,
    /// What a refused form typed, and its problems by field (`command`, `timeout`, `run`).
    command: String,
    timeout: String,
    errors: FieldErrors,
}

impl RunsPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

/// The form with the app's recent runs; `typed` and `errors` when a post was refused.
async fn runs_page(
    state: &AppState,
    session: &SignedIn,
    app: &AppName,
    typed: (String, String),
    errors: FieldErrors,
) -> Result<RunsPage, PanelError> {
    let record = state.deployer.store().app(app).await?;
    let now = capstan_store::now_ms();
    let runs = state.deployer.runs(app, 50).await?;
    Ok(RunsPage {
        nav: Nav::at(session, "apps", Some(format!("/apps/{app}/runs"))),
        app: app.to_string(),
        has_live: record.live_deployment_id.is_some(),
        max_timeout_secs: state.deployer.run_limits().max_timeout_secs,
        runs: runs.iter().map(|r| RunRow::new(r, now)).collect(),
        command: typed.0,
        timeout: typed.1,
        errors,
    })
}

pub async fn list(
    State(state): State<AppState>,
    session: SignedIn,
    Path(app): Path<String>,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let page = runs_page(
        &state,
        &session,
        &name,
        Default::default(),
        FieldErrors::new(),
    )
    .await?;
    Ok(render(&page))
}

/// The argv and time limit a form asks for, or every problem of it, in the user's words.
fn run_request(command: &str, timeout: &str, max_secs: u32) -> Result<RunRequest, FieldErrors> {
    let mut errors = FieldErrors::new();
    let argv = match shlex::split(command) {
        Some(argv) if argv.is_empty() => {
            errors.insert(
                "command".into(),
                "Type the command to run, e.g. ls -l /data".into(),
            );
            Vec::new()
        }
        Some(argv) => argv,
        None => {
            errors.insert(
                "command".into(),
                "A quote is not closed (or the line ends in a backslash): close it and try again."
                    .into(),
            );
            Vec::new()
        }
    };
    if let (false, Err(problem)) = (argv.is_empty(), check_command(&argv)) {
        let problem = problem.trim_start_matches("command: ");
        errors.insert("command".into(), capitalized(problem));
    }
    let timeout_secs = match timeout {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(secs) if (1..=max_secs).contains(&secs) => Some(secs),
            _ => {
                errors.insert(
                    "timeout".into(),
                    format!("Give a whole number of seconds between 1 and {max_secs}."),
                );
                None
            }
        },
    };
    if errors.is_empty() {
        Ok(RunRequest {
            command: argv,
            timeout_secs,
        })
    } else {
        Err(errors)
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Starts the command: its page, which says so once; a refusal shows the form again with
/// the problem beside it and what was typed kept.
pub async fn start(
    State(state): State<AppState>,
    Path(app): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    let (name, caller) = posted.for_app(Scope::Deploy, &app)?;
    let command = posted.fields.get("command").trim().to_string();
    let timeout = posted.fields.get("timeout").trim().to_string();
    let max = state.deployer.run_limits().max_timeout_secs;
    let outcome = match run_request(&command, &timeout, max) {
        Ok(request) => state
            .deployer
            .start_run(&name, &request, &caller)
            .await
            .map_err(|err| {
                let err = ApiError::from(err);
                (
                    err.status,
                    FieldErrors::from([("run".to_string(), err.message)]),
                )
            }),
        Err(errors) => Err((StatusCode::UNPROCESSABLE_ENTITY, errors)),
    };
    match outcome {
        Ok(run) => {
            let flash = Flash::notice(format!("Command started as run #{} of {name}.", run.id));
            let to = format!("/apps/{name}/runs/{}", run.id);
            Ok(posted.session.redirect_with(&to, flash))
        }
        Err((status, errors)) if status.is_client_error() && status != StatusCode::NOT_FOUND => {
            let page =
                runs_page(&state, &posted.session, &name, (command, timeout), errors).await?;
            Ok(render_with(status, &page))
        }
        Err((status, errors)) => {
            let message = errors.into_values().next().unwrap_or_default();
            Err(PanelError::Failed(ApiError::new(status, message)))
        }
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    app: String,
    run: RunRow,
    lines: Vec<LineRow>,
    last_seq: i64,
}

struct LineRow {
    stream: String,
    text: String,
}

fn run_id(raw: &str) -> Result<i64, PanelError> {
    crate::panel::page::record_id(raw, "run")
}

pub async fn show(
    State(state): State<AppState>,
    session: SignedIn,
    Path((app, id)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    let name = app_name(&app)?;
    let run = state.deployer.run_record(&name, run_id(&id)?).await?;
    let lines = state.deployer.store().run_lines_after(run.id, 0).await?;
    let last_seq = lines.last().map_or(0, |l| l.seq);
    Ok(render(&RunPage {
        nav: Nav::new(&session, "apps"),
        app: name.to_string(),
        run: RunRow::new(&run, capstan_store::now_ms()),
        lines: lines
            .into_iter()
            .map(|l| LineRow {
                stream: l.stream,
                text: l.line,
            })
            .collect(),
        last_seq,
    }))
}

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    after: i64,
}

/// The live output for the page's script: `log` events, then one `end` with the state,
/// exit code and error.
pub async fn stream(
    State(state): State<AppState>,
    _session: SignedIn,
    Path((app, id)): Path<(String, String)>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, PanelError> {
    let Query(query) = query?;
    let name = app_name(&app)?;
    let run = state.deployer.run_record(&name, run_id(&id)?).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(256);
    let deployer = state.deployer.clone();
    tokio::spawn(crate::runs::follow(
        deployer,
        name,
        run.id,
        query.after.max(0),
        sender,
    ));
    Ok(Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_split_as_a_shell_splits_words_and_every_problem_named() {
        let request = run_request("sh -c 'echo $HOME; exit 3'", "30", 600).unwrap();
        assert_eq!(request.command, ["sh", "-c", "echo $HOME; exit 3"]);
        assert_eq!(request.timeout_secs, Some(30));
        assert_eq!(run_request("ls", "", 600).unwrap().timeout_secs, None);
        let errors = run_request("echo 'open", "soon", 600).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["command", "timeout"], "{errors:?}");
        assert!(errors["command"].contains("quote"), "{errors:?}");
        assert!(
            errors["timeout"].contains("between 1 and 600"),
            "{errors:?}"
        );
        assert!(run_request("", "", 600).unwrap_err()["command"].starts_with("Type"));
        assert!(run_request("'' x", "", 600).unwrap_err()["command"].starts_with("The program"));
        assert!(run_request("ls", "601", 600).is_err());
        assert!(run_request("ls", "0", 600).is_err());
    }
}
