//! One-off commands: a command (argv, never a shell string) run in a fresh container of
//! the app's live release, never in a serving one. The container is the live release's
//! stored service (its image, environment, volumes, networks, limits, user and working
//! directory) with the app's secrets as they are now, no health check, no restart, no
//! network alias, and the role `run`, so no retirement, route, usage or runtime log of
//! the app counts it. Its output is masked and stored like a deployment log (bounded), its
//! exit code kept, and its time limit kills it. Each run is in the app's change log with
//! its actor, when it starts and when it ends (`run_exec`).

use crate::companions::with_secrets;
use crate::logs::{HubEvent, LogHub, Masker};
use crate::{ActionError, Caller, Deployer};
use capstan_compose::model::{ComposeSpec, Networks, Service};
use capstan_core::AppName;
use capstan_store::{NewRun, RunLine, RunRecord, RunState};

/// The time limit of a run that names none.
pub const DEFAULT_RUN_TIMEOUT_SECS: u32 = 600;
/// The most arguments a command may have, and the most bytes they may hold together.
const MAX_ARGS: usize = 1024;
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// How long runs may take and how many may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The longest time limit a run may ask for (`run_timeout_max_secs`).
    pub max_timeout_secs: u32,
    /// Runs of one app at once.
    pub per_app: i64,
    /// Runs of all apps at once.
    pub total: i64,
    /// Finished runs kept per app (with their output); older ones are removed.
    pub keep_per_app: i64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_timeout_secs: 3600,
            per_app: 4,
            total: 16,
            keep_per_app: 100,
        }
    }
}

/// What a follower of a run's output receives.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Line(RunLine),
    /// The run ended; no more lines will come.
    End(RunState),
}

impl HubEvent for RunEvent {
    fn is_end(&self) -> bool {
        matches!(self, RunEvent::End(_))
    }
}

/// The deployer's share of runs: their live output, their limits, and the lock that makes
/// "count the running ones, then start one" a single step.
#[derive(Default)]
pub(crate) struct Runs {
    pub(crate) hub: LogHub<RunEvent>,
    limits: std::sync::RwLock<RunLimits>,
    starting: tokio::sync::Mutex<()>,
}

/// A command to run and its time limit (default [`DEFAULT_RUN_TIMEOUT_SECS`], at most the
/// daemon's `run_timeout_max_secs`).
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub command: Vec<String>,
    pub timeout_secs: Option<u32>,
}

/// Refuses an argv that cannot be run as it is: empty, a blank program, a NUL byte, or
/// larger than the engine should be handed.
pub fn check_command(command: &[String]) -> Result<(), String> {
    let Some(program) = command.first() else {
        return Err("command: give the program and its arguments, e.g. [\"ls\", \"-l\"]".into());
    };
    if program.trim().is_empty() {
        return Err("command: the program (the first element) is blank".into());
    }
    if command.iter().any(|a| a.contains('\0')) {
        return Err("command: an argument contains a NUL byte".into());
    }
    let bytes: usize = command.iter().map(String::len).sum();
    if command.len() > MAX_ARGS || bytes > MAX_COMMAND_BYTES {
        return Err(format!(
            "command: at most {MAX_ARGS} arguments and {} KiB in all",
            MAX_COMMAND_BYTES / 1024
        ));
    }
    Ok(())
}

impl Deployer {
    /// The limits runs are held to.
    pub fn run_limits(&self) -> RunLimits {
        *self.inner.runs.limits.read().expect("run limits lock")
    }

    /// Sets the limits runs are held to (the daemon's configuration).
    pub fn set_run_limits(&self, limits: RunLimits) {
        *self.inner.runs.limits.write().expect("run limits lock") = limits;
    }

    /// Live fan-out of runs' output.
    pub fn run_logs(&self) -> &LogHub<RunEvent> {
        &self.inner.runs.hub
    }

    /// Starts `request` in a fresh container of the app's live release and returns the
    /// run, `running`; the command goes on in a task of its own. 409 when nothing is live
    /// or too many runs are running.
    pub async fn start_run(
        &self,
        app: &AppName,
        request: &RunRequest,
        caller: &Caller,
    ) -> Result<RunRecord, ActionError> {
        let here = self.for_app_named(app).await?;
        here.start_run_here(app, request, caller).await
    }

    /// [`Self::start_run`] on this deployer's server.
    async fn start_run_here(
        &self,
        app: &AppName,
        request: &RunRequest,
        caller: &Caller,
    ) -> Result<RunRecord, ActionError> {
        check_command(&request.command).map_err(ActionError::Invalid)?;
        let limits = self.run_limits();
        let timeout_secs = match request.timeout_secs {
            None => DEFAULT_RUN_TIMEOUT_SECS.min(limits.max_timeout_secs),
            Some(secs) if (1..=limits.max_timeout_secs).contains(&secs) => secs,
            Some(_) => {
                return Err(ActionError::Invalid(format!(
                    "timeout_secs: between 1 and {} (this server's run_timeout_max_secs)",
                    limits.max_timeout_secs
                )))
            }
        };
        let record = self.store().app(app).await?;
        let live = record.live_deployment_id.ok_or_else(|| {
            ActionError::Conflict(format!(
                "app {app} has nothing live to run a command in; deploy it first"
            ))
        })?;
        let secrets = self.secret_values(app).await?;
        let (spec, service, image) = self.live_service(app, live, &secrets).await?;
        let masker = Masker::new(secrets.iter().map(|s| s.value.as_str()));
        let command: Vec<String> = request.command.iter().map(|a| masker.mask(a)).collect();
        let run = {
            let _starting = self.inner.runs.starting.lock().await;
            self.check_room(app, &limits).await?;
            self.store()
                .create_run(&NewRun {
                    app,
                    deployment_id: live,
                    image: &image,
                    command: &command,
                    timeout_secs,
                    actor: &caller.actor(),
                })
                .await?
        };
        let detail = format!(
            "run {}: {}",
            run.id,
            capstan_core::shell_words::shell_line(&command)
        );
        // The run is recorded: whatever happens now, it runs and ends (a run left
        // `running` without a task would count against the limits until a restart).
        if let Err(err) = self
            .store()
            .record_event(app, &run.actor, "command run", &detail)
            .await
        {
            tracing::warn!(%app, run = run.id, %err, "cannot record a run in the change log");
        }
        if let Err(err) = self.store().prune_runs(app, limits.keep_per_app).await {
            tracing::warn!(%app, %err, "cannot remove old runs");
        }
        let service = self.run_container(app, run.id, service);
        let deployer = self.clone();
        let (argv, started) = (request.command.clone(), run.clone());
        tokio::spawn(async move {
            deployer
                .execute_run(started, spec, service, argv, masker)
                .await
        });
        Ok(run)
    }

    /// Refuses a run beyond the limits on runs at once.
    async fn check_room(&self, app: &AppName, limits: &RunLimits) -> Result<(), ActionError> {
        if self.store().running_runs(Some(app)).await? >= limits.per_app {
            return Err(ActionError::Conflict(format!(
                "app {app} already has {} commands running; wait for one to end",
                limits.per_app
            )));
        }
        if self.store().running_runs(None).await? >= limits.total {
            return Err(ActionError::Conflict(format!(
                "{} commands are running on this server; wait for one to end",
                limits.total
            )));
        }
        Ok(())
    }

    /// The live release's stored spec and its web service with the app's secrets put in,
    /// and its image (which must still be on the engine).
    async fn live_service(
        &self,
        app: &AppName,
        live: i64,
        secrets: &[capstan_store::SecretValue],
    ) -> Result<(ComposeSpec, Service, String), ActionError> {
        let release = self.store().release_of(live).await?.ok_or_else(|| {
            ActionError::Conflict(format!("live deployment {live} has no recorded release"))
        })?;
        let spec = ComposeSpec::from_yaml(&release.compose_spec).map_err(|e| {
            ActionError::Internal(format!("the stored spec of deployment {live}: {e}"))
        })?;
        let service = spec.services.get(app.as_str()).ok_or_else(|| {
            ActionError::Internal(format!("the stored spec of deployment {live} has no {app}"))
        })?;
        let mut service = with_secrets(service, secrets).map_err(ActionError::Conflict)?;
        for secret in secrets {
            service
                .environment
                .insert(secret.name.clone(), secret.value.clone());
        }
        if self.target().image_id(&release.image).await?.is_none() {
            return Err(ActionError::Conflict(format!(
                "the live image {} is no longer on the engine; deploy again",
                release.image
            )));
        }
        Ok((spec, service, release.image))
    }

    /// The service as run `id`'s container: its own name and labels, on the same networks
    /// without the service's aliases (nothing resolves the app's name to it), no health
    /// check, never restarted.
    fn run_container(&self, app: &AppName, id: i64, mut service: Service) -> Service {
        use capstan_compose::labels;
        service.container_name = self.target().names().app(app).run_container(id);
        service
            .labels
            .insert(labels::ROLE.into(), labels::ROLE_RUN.into());
        service.labels.insert(labels::RUN.into(), id.to_string());
        let networks = service.networks.attachments();
        service.networks = Networks::List(networks.into_iter().map(|(n, _)| n).collect());
        service.healthcheck = None;
        service.restart = "no".into();
        service
    }

    /// Run `id` of `app` (404 when it is another app's).
    pub async fn run_record(&self, app: &AppName, id: i64) -> Result<RunRecord, ActionError> {
        let run = self.store().run(id).await?;
        if &run.app != app {
            return Err(ActionError::NotFound(format!(
                "run {id} of app {app} not found"
            )));
        }
        Ok(run)
    }

    /// The app's newest runs, newest first.
    pub async fn runs(&self, app: &AppName, limit: i64) -> Result<Vec<RunRecord>, ActionError> {
        self.store().app(app).await?;
        Ok(self.store().runs_of(app, limit.clamp(1, 1000)).await?)
    }

    /// After a restart of the daemon: runs that were running failed as interrupted, and
    /// every run container of this instance removed.
    pub(crate) async fn recover_runs(&self) {
        let reason = "interrupted: the daemon stopped while the command ran";
        match self.store().fail_running_runs(reason).await {
            Ok(runs) => {
                for run in runs {
                    tracing::warn!(run = run.id, app = %run.app, "run was interrupted by a daemon stop; marked failed");
                }
            }
            Err(err) => tracing::error!(%err, "cannot fail interrupted runs"),
        }
        match self.target().run_containers(None).await {
            Ok(containers) => {
                for container in containers {
                    tracing::info!(container = %container.name, "removing leftover run container");
                    if let Err(err) = self.target().remove_container(&container.id).await {
                        tracing::warn!(container = %container.name, %err, "cannot remove run container");
                    }
                }
            }
            Err(err) => tracing::error!(%err, "cannot list run containers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn commands_are_argv_with_a_program() {
        assert!(check_command(&argv(&["ls", "-l"])).is_ok());
        assert!(check_command(&argv(&["sh", "-c", "echo $HOME; exit 3"])).is_ok());
        assert!(check_command(&[]).unwrap_err().contains("program"));
        assert!(check_command(&argv(&[" ", "x"]))
            .unwrap_err()
            .contains("blank"));
        assert!(check_command(&argv(&["ls", "a\0b"]))
            .unwrap_err()
            .contains("NUL"));
        let huge = vec!["x".to_string(); MAX_ARGS + 1];
        assert!(check_command(&huge).unwrap_err().contains("at most"));
        let long = vec!["x".repeat(MAX_COMMAND_BYTES + 1)];
        assert!(check_command(&long).is_err());
    }
}
