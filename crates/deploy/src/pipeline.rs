//! One deployment's phases (its start and end are `run`'s): produce the image (source,
//! plan, build) or reuse a release's, render and store the release, then hand over to the
//! cutover.

use crate::companions::{companions_in, stored_web_template};
use crate::cutover::{Attempt, Cutover};
use crate::logs::DeployLog;
use crate::planning::Planned;
use crate::ports::DeclaredPort;
use crate::sources::plans_from_root;
use crate::Deployer;
use capstan_build::apply_repo_config;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_compose::render::DeploymentNames;
use capstan_core::{AppSpec, DeploymentState, Source, Trigger};
use capstan_store::{DeploymentRecord, SecretValue};
use std::collections::HashMap;
use std::path::Path;

/// Why a deployment failed: a typed cause, shown in words in its log and `error` field.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    RepoConfig(#[from] capstan_core::RepoConfigError),
    #[error(transparent)]
    Store(#[from] capstan_store::StoreError),
    #[error(transparent)]
    Engine(#[from] capstan_engine::EngineError),
    #[error(transparent)]
    Source(#[from] capstan_build::BuildError),
    #[error(transparent)]
    Render(#[from] capstan_compose::RenderError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A phase of the deployment itself did not work out (health, hooks, proxy, ...).
    #[error("{0}")]
    Phase(String),
    /// The switch failed and the route could not be put back: the new containers stay.
    #[error("{0}")]
    Stranded(String),
    /// Someone (named) cancelled the deployment before it switched.
    #[error("cancelled by {0}")]
    Cancelled(String),
}

impl Failure {
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Failure::Phase(message.into())
    }

    /// A fault of the environment worth another try before anything was started: git
    /// could not reach the remote, or the engine could not be reached.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Failure::Source(err) => err.is_network(),
            Failure::Engine(capstan_engine::EngineError::Connect { .. }) => true,
            Failure::Engine(capstan_engine::EngineError::Docker(err)) => {
                capstan_engine::is_unreachable(err)
            }
            _ => false,
        }
    }
}

/// The image a deployment will run and where it came from.
#[derive(Clone)]
pub(crate) struct Artifact {
    pub image: String,
    pub commit: Option<String>,
    /// The effective settings: the app's, with the repo's `capstan.toml` applied.
    pub spec: AppSpec,
    /// The repo's `capstan.toml` (file name, text), if it had one.
    pub repo_config: Option<(String, String)>,
    /// Compose apps: what the web service adds to the rendered one, and the companions.
    pub web_template: Option<Service>,
    pub companions: Vec<Service>,
    /// The port named by the settings, `capstan.toml` or the compose file, if any; else
    /// the image's `EXPOSE` decides.
    pub declared_port: Option<DeclaredPort>,
}

impl Deployer {
    pub(crate) async fn execute(
        &self,
        d: &DeploymentRecord,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let app = self.store().app(&d.app).await?;
        let secrets = self.secret_values(&d.app).await?;
        // The registry's password too: an image may move through it in this deployment.
        let registry_password = self.registry_mask_value().await;
        log.mask_values(
            secrets
                .iter()
                .map(|s| s.value.as_str())
                .chain(registry_password.as_deref()),
        );
        let retried = self.store().release_of(d.id).await?;
        let (source, mut artifact) = match (retried, d.trigger) {
            (Some(release), _) => self.retried_release(d, release, log).await?,
            (None, Trigger::Deploy) => {
                let artifact = self
                    .produce_image(d, &app.spec, &secrets, workspace, log)
                    .await?;
                (self.clone(), artifact)
            }
            (None, Trigger::Rollback | Trigger::Restart) => {
                let artifact = self.reuse_release(d, &app.spec, log).await?;
                let source = self.server_with_image(d, &artifact.image).await?;
                (source, artifact)
            }
        };
        let settled = source.settle_port_and_health(&mut artifact, log).await?;
        // The settings this deployment runs (an old release's) cross the same trust
        // boundary as when they were saved; a deploy's were checked before its build.
        if d.trigger != Trigger::Deploy {
            self.check_trust(&d.app, &artifact.spec, None, &crate::Caller::daemon())
                .await
                .map_err(|e| Failure::msg(e.to_string()))?;
        }
        if let Some(pending) = self.fanout_servers(d).await? {
            return source
                .fan_out(d, pending, artifact, settled, &secrets, log)
                .await;
        }
        self.enter_state(d, DeploymentState::Starting).await?;
        self.store()
            .set_target_state(
                d.id,
                self.server().as_str(),
                DeploymentState::Starting,
                None,
            )
            .await?;
        self.start_and_switch(d, &mut artifact, &settled, &secrets, log)
            .await?;
        let keep: Vec<String> = artifact
            .companions
            .iter()
            .map(|c| c.container_name.clone())
            .collect();
        self.remove_stale_companions(&d.app, &keep, log).await;
        Ok(())
    }

    /// A deployment run again where it failed: its own release, from a server that has
    /// its image (this one, or one where it went live).
    async fn retried_release(
        &self,
        d: &DeploymentRecord,
        release: capstan_store::ReleaseRecord,
        log: &DeployLog,
    ) -> Result<(Deployer, Artifact), Failure> {
        log.info(format!(
            "running release {} of this deployment again where it failed",
            release.id
        ))
        .await;
        let source = self.server_with_image(d, &release.image).await?;
        let stored = ComposeSpec::from_yaml(&release.compose_spec).map_err(|e| {
            Failure::msg(format!(
                "the stored spec of release {} does not parse: {e}",
                release.id
            ))
        })?;
        let declared_port = release
            .app_spec
            .port
            .map(|port| DeclaredPort::new(port, "the release's settings"));
        let artifact = Artifact {
            image: release.image,
            commit: release.commit_sha,
            spec: release.app_spec,
            repo_config: release.repo_config,
            web_template: stored_web_template(&stored),
            companions: companions_in(&stored),
            declared_port,
        };
        Ok((source, artifact))
    }

    /// This server when it has `image`, else a server where deployment `d` went live.
    async fn server_with_image(
        &self,
        d: &DeploymentRecord,
        image: &str,
    ) -> Result<Deployer, Failure> {
        if self.target().image_id(image).await?.is_some() {
            return Ok(self.clone());
        }
        // Where it went live first (a retry), then any server it runs on (a rollback or
        // restart on several servers); one that cannot be reached or asked is passed over.
        let mut targets = self.store().targets_of(d.id).await?;
        targets.sort_by_key(|t| t.state != DeploymentState::Live);
        for target in targets {
            let Ok(server) = capstan_core::ServerName::parse(&target.server) else {
                continue;
            };
            let Ok(there) = self.connect_target(&server).await else {
                continue;
            };
            if let Ok(Some(_)) = there.target().image_id(image).await {
                return Ok(there);
            }
        }
        Err(Failure::msg(format!(
            "image {image} is on none of the servers this deployment runs on (it was removed; deploy again to build it)"
        )))
    }

    /// A rollback or restart: the image of the release it reuses (which must still be on
    /// one of the app's servers: `server_with_image`), with the old release's settings (rollback) or the app's current ones
    /// with the release's `capstan.toml` (restart).
    async fn reuse_release(
        &self,
        d: &DeploymentRecord,
        current: &AppSpec,
        log: &DeployLog,
    ) -> Result<Artifact, Failure> {
        let release_id = d
            .from_release
            .ok_or_else(|| Failure::msg("no release to reuse was recorded"))?;
        let release = self.store().release(release_id).await?;
        let stored = ComposeSpec::from_yaml(&release.compose_spec).map_err(|e| {
            Failure::msg(format!(
                "the stored spec of release {release_id} does not parse: {e}"
            ))
        })?;
        let spec = match (d.trigger, &release.repo_config) {
            (Trigger::Rollback, _) => release.app_spec.clone(),
            (_, Some((file, text))) => apply_repo_config(current, file, text)?.0,
            (_, None) => current.clone(),
        };
        // The release's port was resolved when it was deployed.
        let declared_port = match spec.port {
            Some(port) if d.trigger == Trigger::Restart => {
                Some(DeclaredPort::new(port, "the app's settings"))
            }
            _ => release
                .app_spec
                .port
                .map(|port| DeclaredPort::new(port, "the release's settings")),
        };
        log.info(format!(
            "reusing image {} from deployment {} (no fetch, no build)",
            release.image, release.deployment_id
        ))
        .await;
        self.store().set_image(d.id, &release.image).await?;
        if let Some(commit) = &release.commit_sha {
            let built = self.store().deployment(release.deployment_id).await?;
            self.store()
                .set_commit(d.id, commit, built.commit_message.as_deref())
                .await?;
        }
        Ok(Artifact {
            image: release.image,
            commit: release.commit_sha,
            spec,
            repo_config: release.repo_config,
            web_template: stored_web_template(&stored),
            companions: companions_in(&stored),
            declared_port,
        })
    }

    /// Starting through switching: the release rendered and stored, companions brought
    /// up to date, then the cutover; once more on the port the containers were found
    /// listening on when the app named none.
    pub(crate) async fn start_and_switch(
        &self,
        d: &DeploymentRecord,
        artifact: &mut Artifact,
        settled: &crate::release::Settled,
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> Result<(), Failure> {
        if self.target().swarm().is_some() {
            return self
                .swarm_start_and_switch(d, artifact, settled, secrets, log)
                .await;
        }
        let names = DeploymentNames::new(self.target().instance(), &d.app, d.id);
        let mut attempt = Attempt {
            open_port: settled.open_port,
            first: true,
        };
        loop {
            let release = self
                .record_release(d, artifact, settled.image_health.as_deref(), secrets, log)
                .await?;
            if attempt.first && artifact.web_template.is_some() {
                self.ensure_companions(
                    &d.app,
                    &release.compose,
                    &artifact.companions,
                    secrets,
                    log,
                )
                .await?;
            }
            let ended = self
                .cutover(d, &artifact.spec, &release, &names, attempt, log)
                .await?;
            match ended {
                Cutover::Live => return Ok(()),
                // Once: the second try has the port settled.
                Cutover::ListensOn(port) => {
                    artifact.spec.port = Some(port);
                    attempt = Attempt {
                        open_port: None,
                        first: false,
                    };
                }
            }
        }
    }

    /// Preparing and building: fetch the source, apply its `capstan.toml`, detect the
    /// plan, build and tag the image.
    async fn produce_image(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        secrets: &[SecretValue],
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<Artifact, Failure> {
        if let Source::Image(image) = &spec.source {
            self.check_trust(&d.app, spec, None, &crate::Caller::daemon())
                .await
                .map_err(|e| Failure::msg(e.to_string()))?;
            return self.use_prebuilt(d, spec, image, log).await;
        }
        let (commit, planned) = self
            .fetch_and_plan(d, spec, secrets, workspace, log)
            .await?;
        let Planned {
            settings,
            recipe,
            declared_port,
        } = planned;
        for line in &settings.applied {
            log.info(format!("setting {line}")).await;
        }
        log.info(format!(
            "build plan: {} ({})",
            recipe.plan.describe(),
            recipe.reason
        ))
        .await;
        for note in &recipe.notes {
            log.info(format!("dockerfile: {note}")).await;
        }
        // The settings this deploy runs (the app's with the repo's file applied) cross
        // the same trust boundary as when they were saved, before anything is built.
        self.check_trust(&d.app, &settings.spec, None, &crate::Caller::daemon())
            .await
            .map_err(|e| Failure::msg(e.to_string()))?;
        let spec = settings.spec;
        self.enter_state(d, DeploymentState::Building).await?;
        let build_args: HashMap<String, String> = spec.build.args.clone().into_iter().collect();
        let build_secrets = self.build_secrets(secrets, log).await;
        if let Some((compose, _)) = &recipe.compose {
            check_service_names(compose, self.target().instance())?;
        }
        let (image, web_template, companions) = self
            .with_transient_retries(d.id, "the build", log, || {
                self.produce_images(
                    d,
                    &recipe,
                    &build_args,
                    &build_secrets,
                    commit.as_deref(),
                    log,
                )
            })
            .await?;
        self.store().set_image(d.id, &image).await?;
        Ok(Artifact {
            image,
            commit,
            spec,
            repo_config: settings.file,
            web_template,
            companions,
            declared_port,
        })
    }

    /// Preparing: the source fetched (or copied) into the workspace, its commit recorded,
    /// and the build planned, from a full copy of a local directory when what its
    /// `.dockerignore` left out turns out to be needed.
    async fn fetch_and_plan(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        secrets: &[SecretValue],
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<(Option<String>, Planned), Failure> {
        let mut fetched = self
            .with_transient_retries(d.id, "fetching the source", log, || async {
                // A try that failed part way leaves no half-fetched tree for the next.
                let dest = workspace.join("src");
                if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                    tokio::fs::remove_dir_all(&dest).await?;
                }
                self.fetch_source(d, spec, workspace, log).await
            })
            .await?;
        let commit = fetched.commit.clone();
        if let Some(commit) = &commit {
            let subject =
                capstan_build::source::commit_subject(&fetched.history_dir(), commit).await;
            self.store()
                .set_commit(d.id, commit, subject.as_deref())
                .await?;
        }
        let names: Vec<String> = secrets.iter().map(|s| s.name.clone()).collect();
        let mut planned = self.plan_source(&fetched.root, spec, &names).await?;
        let pruned = fetched.local.as_ref().is_some_and(|l| !l.pruned.is_empty());
        if pruned && !plans_from_root(&planned, &fetched.root) {
            log.info("planning again from a full copy of the directory (what .dockerignore left out may be needed)")
                .await;
            self.copy_in_full(&mut fetched)
                .await
                .map_err(|e| Failure::msg(e.to_string()))?;
            planned = self.plan_source(&fetched.root, spec, &names).await?;
        }
        Ok((commit, planned?))
    }

    /// The secrets marked for the build, by name; without BuildKit they can only be
    /// build arguments, which the image's history keeps, and the log says so.
    async fn build_secrets(
        &self,
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> HashMap<String, String> {
        let build_secrets: HashMap<String, String> = secrets
            .iter()
            .filter(|s| s.build)
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect();
        if !self.target().builds_with_buildkit() {
            for name in build_secrets.keys() {
                log.info(format!(
                    "warning: build secret {name} is passed as a build argument (this engine has no BuildKit); the image's history (docker history) keeps its value"
                ))
                .await;
            }
        }
        build_secrets
    }
}

/// A compose service's name is a DNS alias on the app network, which the proxy shares:
/// it must never look like the name of a container of this instance (`<instance>_`, in
/// any case, as DNS compares names).
fn check_service_names(
    compose: &capstan_build::compose_file::UserCompose,
    instance: &str,
) -> Result<(), Failure> {
    let reserved = format!("{instance}_");
    let reserved_like = |n: &&String| n.to_ascii_lowercase().starts_with(&reserved);
    match compose.services.keys().find(reserved_like) {
        Some(name) => Err(Failure::msg(format!(
            "compose service name {name:?} starts with {reserved:?}, which is reserved for Capstan's containers; rename the service"
        ))),
        None => Ok(()),
    }
}
