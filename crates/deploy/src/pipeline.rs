//! One deployment from claim to finish: produce the image (source, plan, build) or reuse a
//! release's, render and store the release, then hand over to the cutover.

use crate::logs::DeployLog;
use crate::planning::plan_tree;
use crate::Deployer;
use capstan_build::{apply_repo_config, fetch_git, local_commit, pack_context, Plan};
use capstan_compose::render::{render_deployment, DeploymentNames, RenderInput};
use capstan_core::{AppSpec, DeploymentState, Source, Trigger};
use capstan_engine::images::BuildRequest;
use capstan_store::{DeploymentRecord, NewRelease, SecretValue};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a deployment failed, in words for its log and its `error` field.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(err: $t) -> Self {
                Failure(err.to_string())
            }
        }
    )*};
}
failure_from!(
    capstan_core::RepoConfigError,
    capstan_store::StoreError,
    capstan_engine::EngineError,
    capstan_build::BuildError,
    capstan_compose::RenderError,
    std::io::Error
);

/// A key for "the same build": the hash of the (deterministic) context tar, the
/// Dockerfile path, the stage and the build arguments. Equal keys build equal images, so
/// the earlier one can be reused.
fn build_key(
    context: &[u8],
    dockerfile: &str,
    target: Option<&str>,
    args: &HashMap<String, String>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(dockerfile.as_bytes());
    hash.update([0]);
    hash.update(target.unwrap_or("").as_bytes());
    hash.update([0]);
    let mut sorted: Vec<_> = args.iter().collect();
    sorted.sort();
    for (key, value) in sorted {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(value.as_bytes());
        hash.update([0]);
    }
    hash.update(context);
    hex::encode(&hash.finalize()[..16])
}

/// The image a deployment will run and where it came from.
pub(crate) struct Artifact {
    pub image: String,
    pub commit: Option<String>,
    /// The effective settings: the app's, with the repo's `capstan.toml` applied.
    pub spec: AppSpec,
    /// The repo's `capstan.toml` (file name, text), if it had one.
    pub repo_config: Option<(String, String)>,
}

impl Deployer {
    /// Runs a claimed deployment to its end and records the outcome.
    pub(crate) async fn run_deployment(&self, deployment: DeploymentRecord) {
        let id = deployment.id;
        self.set_running(id, true);
        // Wait for the app's previous deployment to finish its cleanup.
        let app_lock = self.app_lock(deployment.app.as_str());
        let _app_guard = app_lock.lock().await;
        let log = DeployLog::new(self, id);
        log.info(format!(
            "deployment {id} of {} ({}) started",
            deployment.app,
            deployment.trigger.as_str()
        ))
        .await;
        let workspace = self.settings().workspace_dir.join(id.to_string());
        let outcome = self.execute(&deployment, &workspace, &log).await;
        if workspace.exists() {
            if let Err(err) = tokio::fs::remove_dir_all(&workspace).await {
                tracing::warn!(deployment = id, %err, "cannot remove workspace");
            }
        }
        let final_state = match outcome {
            Ok(()) => {
                log.info("deployment is live").await;
                DeploymentState::Live
            }
            Err(failure) => {
                log.info(format!("deployment failed: {failure}")).await;
                let reason = log.masked(&failure.0);
                if let Err(err) = self
                    .store()
                    .transition(id, DeploymentState::Failed, Some(&reason))
                    .await
                {
                    tracing::error!(deployment = id, %err, "cannot record failure");
                }
                DeploymentState::Failed
            }
        };
        self.set_running(id, false);
        log.end(final_state);
    }

    async fn execute(
        &self,
        d: &DeploymentRecord,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let app = self.store().app(&d.app).await?;
        let secrets = self.secret_values(&d.app).await?;
        log.mask_values(secrets.iter().map(|s| s.value.as_str()));
        let artifact = match d.trigger {
            Trigger::Deploy => {
                self.produce_image(d, &app.spec, &secrets, workspace, log)
                    .await?
            }
            Trigger::Rollback | Trigger::Restart => {
                let release_id = d
                    .from_release
                    .ok_or_else(|| Failure("no release to reuse was recorded".into()))?;
                let release = self.store().release(release_id).await?;
                if self.engine().image_id(&release.image).await?.is_none() {
                    return Err(Failure(format!(
                        "image {} of release {} is gone from the engine",
                        release.image, release.id
                    )));
                }
                // A rollback runs the old release as it was; a restart runs the live image
                // with the app's current settings and the release's capstan.toml.
                let spec = match (d.trigger, &release.repo_config) {
                    (Trigger::Rollback, _) => release.app_spec,
                    (_, Some((file, text))) => apply_repo_config(&app.spec, file, text)?.0,
                    (_, None) => app.spec.clone(),
                };
                log.info(format!(
                    "reusing image {} from deployment {} (no fetch, no build)",
                    release.image, release.deployment_id
                ))
                .await;
                self.store().set_image(d.id, &release.image).await?;
                if let Some(commit) = &release.commit_sha {
                    self.store().set_commit(d.id, commit).await?;
                }
                Artifact {
                    image: release.image,
                    commit: release.commit_sha,
                    spec,
                    repo_config: release.repo_config,
                }
            }
        };
        let runtime_secrets: Vec<String> = secrets.iter().map(|s| s.name.clone()).collect();
        self.store()
            .transition(d.id, DeploymentState::Starting, None)
            .await?;
        let (compose, text) = render_deployment(&RenderInput {
            instance: self.engine().instance(),
            app: &d.app,
            deployment: d.id,
            image: &artifact.image,
            spec: &artifact.spec,
            secrets: &runtime_secrets,
        })?;
        self.store()
            .save_release(&NewRelease {
                app: &d.app,
                deployment_id: d.id,
                image: &artifact.image,
                commit_sha: artifact.commit.as_deref(),
                compose_spec: &text,
                app_spec: &artifact.spec,
                repo_config: artifact
                    .repo_config
                    .as_ref()
                    .map(|(f, t)| (f.as_str(), t.as_str())),
            })
            .await?;
        log.info("release recorded (compose spec stored with the deployment)")
            .await;
        let (_, service) = compose
            .main_service()
            .ok_or_else(|| Failure("rendered spec has no service".into()))?;
        // The stored spec holds `${NAME}`; only the container gets the values.
        let mut service = service.clone();
        for secret in &secrets {
            service
                .environment
                .insert(secret.name.clone(), secret.value.clone());
        }
        let service = &service;
        let names = DeploymentNames::new(self.engine().instance(), &d.app, d.id);
        self.cutover(d, &artifact.spec, &compose, service, &names, log)
            .await
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
            return self.use_prebuilt(d, spec, image, log).await;
        }
        let (root, commit) = self.fetch_source(d, spec, workspace, log).await?;
        if let Some(commit) = &commit {
            self.store().set_commit(d.id, commit).await?;
        }
        let (settings, recipe) = {
            let (root, spec) = (root.clone(), spec.clone());
            tokio::task::spawn_blocking(move || plan_tree(&root, &spec))
                .await
                .map_err(|e| Failure(format!("planning the build panicked: {e}")))??
        };
        for line in &settings.applied {
            log.info(format!("setting {line}")).await;
        }
        log.info(format!(
            "build plan: {} ({})",
            recipe.plan.describe(),
            recipe.reason
        ))
        .await;
        if let Plan::Compose { file, .. } = &recipe.plan {
            return Err(Failure(format!(
                "{file} was found and checked, but deploying compose apps is not supported \
                 yet; add a Dockerfile or set build.type to dockerfile, nixpacks or static"
            )));
        }
        let spec = settings.spec;
        self.store()
            .transition(d.id, DeploymentState::Building, None)
            .await?;
        let mut build_args: HashMap<String, String> =
            recipe.build_args.clone().into_iter().collect();
        build_args.extend(spec.build.args.clone());
        for secret in secrets.iter().filter(|s| s.build) {
            build_args.insert(secret.name.clone(), secret.value.clone());
        }
        let context = {
            let recipe = recipe.clone();
            tokio::task::spawn_blocking(move || {
                pack_context(&recipe.context_dir, &recipe.dockerfile, &recipe.generated)
            })
            .await
            .map_err(|e| Failure(format!("packing the build context panicked: {e}")))??
        };
        log.info(format!("build context: {} KiB", context.len() / 1024))
            .await;
        let tag = format!("{}/{}:{}", self.engine().instance(), d.app, d.id);
        let build_key = build_key(
            &context,
            &recipe.dockerfile,
            recipe.target.as_deref(),
            &build_args,
        );
        let artifact = |image: String| Artifact {
            image,
            commit: commit.clone(),
            spec: spec.clone(),
            repo_config: settings.file.clone(),
        };
        if d.no_cache {
            log.info("clean build requested: no image reuse, no layer cache")
                .await;
        } else if let Some(existing) = self.engine().find_build(d.app.as_str(), &build_key).await? {
            self.engine().tag_image(&existing, &tag).await?;
            log.info(format!(
                "reusing image {existing} built from the same source and settings; build skipped"
            ))
            .await;
            self.store().set_image(d.id, &tag).await?;
            return Ok(artifact(tag));
        }
        let labels = HashMap::from([
            (
                "capstan.instance".to_string(),
                self.engine().instance().to_string(),
            ),
            ("capstan.app".to_string(), d.app.to_string()),
            ("capstan.deployment".to_string(), d.id.to_string()),
            (
                "capstan.commit".to_string(),
                commit.clone().unwrap_or_default(),
            ),
            ("capstan.build-key".to_string(), build_key),
        ]);
        let request = BuildRequest {
            context_tar: context,
            dockerfile: recipe.dockerfile.clone(),
            target: recipe.target.clone(),
            build_args,
            tag: tag.clone(),
            labels,
            no_cache: d.no_cache,
        };
        let built = log
            .forward("build", |lines| async move {
                self.engine().build_image(request, &lines).await
            })
            .await;
        let image_id = built?;
        log.info(format!("built {tag} ({image_id})")).await;
        self.store().set_image(d.id, &tag).await?;
        Ok(artifact(tag))
    }

    /// Fetches a git source into the workspace, or checks a local directory.
    async fn fetch_source(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<(PathBuf, Option<String>), Failure> {
        match &spec.source {
            Source::Git { url, reference } => {
                let reference = d.git_ref.as_deref().unwrap_or(reference);
                log.info(format!("fetching {url} at {reference}")).await;
                let checkout = fetch_git(url, reference, &workspace.join("src")).await?;
                log.info(format!("checked out commit {}", checkout.commit))
                    .await;
                Ok((checkout.dir, Some(checkout.commit)))
            }
            Source::Path(path) => {
                let root = PathBuf::from(path);
                if !root.is_dir() {
                    return Err(Failure(format!("source directory {path} does not exist")));
                }
                let commit = local_commit(&root).await;
                log.info(format!(
                    "using local directory {path}{}",
                    commit
                        .as_deref()
                        .map(|c| format!(" at commit {c}"))
                        .unwrap_or_default()
                ))
                .await;
                Ok((root, commit))
            }
            Source::Image(image) => Err(Failure(format!("image {image} has no source to fetch"))),
        }
    }

    async fn use_prebuilt(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        image: &str,
        log: &DeployLog,
    ) -> Result<Artifact, Failure> {
        if self.engine().image_id(image).await?.is_none() {
            log.info(format!("pulling {image}")).await;
            let pulled = log
                .forward("pull", |lines| async move {
                    self.engine().pull_image(image, &lines).await
                })
                .await;
            pulled?;
        }
        log.info(format!("using prebuilt image {image} (no build)"))
            .await;
        self.store().set_image(d.id, image).await?;
        Ok(Artifact {
            image: image.to_string(),
            commit: None,
            spec: spec.clone(),
            repo_config: None,
        })
    }
}
