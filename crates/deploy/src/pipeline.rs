//! One deployment from claim to finish: produce the image (source, plan, build) or reuse a
//! release's, render and store the release, then hand over to the cutover.

use crate::logs::DeployLog;
use crate::Deployer;
use capstan_build::{detect_plan, fetch_git, local_commit, pack_context};
use capstan_compose::render::{render_deployment, DeploymentNames, RenderInput};
use capstan_core::{AppSpec, DeploymentState, Source, Trigger};
use capstan_engine::images::BuildRequest;
use capstan_store::DeploymentRecord;
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
    capstan_store::StoreError,
    capstan_engine::EngineError,
    capstan_build::BuildError,
    capstan_compose::RenderError,
    std::io::Error
);

/// A key for "the same build": the hash of the (deterministic) context tar and the
/// Dockerfile path. Equal keys build equal images, so the earlier one can be reused.
fn build_key(context: &[u8], dockerfile: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(dockerfile.as_bytes());
    hash.update([0]);
    hash.update(context);
    hex::encode(&hash.finalize()[..16])
}

/// The image a deployment will run and where it came from.
pub(crate) struct Artifact {
    pub image: String,
    pub commit: Option<String>,
    pub spec: AppSpec,
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
                if let Err(err) = self
                    .store()
                    .transition(id, DeploymentState::Failed, Some(&failure.0))
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
        let artifact = match d.trigger {
            Trigger::Deploy => self.produce_image(d, &app.spec, workspace, log).await?,
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
                // with the app's current settings.
                let spec = match d.trigger {
                    Trigger::Rollback => release.app_spec,
                    _ => app.spec.clone(),
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
                }
            }
        };
        self.store()
            .transition(d.id, DeploymentState::Starting, None)
            .await?;
        let (compose, text) = render_deployment(&RenderInput {
            instance: self.engine().instance(),
            app: &d.app,
            deployment: d.id,
            image: &artifact.image,
            spec: &artifact.spec,
        })?;
        self.store()
            .save_release(
                &d.app,
                d.id,
                &artifact.image,
                artifact.commit.as_deref(),
                &text,
                &artifact.spec,
            )
            .await?;
        log.info("release recorded (compose spec stored with the deployment)")
            .await;
        let (_, service) = compose
            .main_service()
            .ok_or_else(|| Failure("rendered spec has no service".into()))?;
        let names = DeploymentNames::new(self.engine().instance(), &d.app, d.id);
        self.cutover(d, &artifact.spec, &compose, service, &names, log)
            .await
    }

    /// Preparing and building: fetch the source, detect the plan, build and tag the image.
    async fn produce_image(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        workspace: &Path,
        log: &DeployLog,
    ) -> Result<Artifact, Failure> {
        let (root, commit): (PathBuf, Option<String>) = match &spec.source {
            Source::Image(image) => return self.use_prebuilt(d, spec, image, log).await,
            Source::Git { url, reference } => {
                let reference = d.git_ref.as_deref().unwrap_or(reference);
                log.info(format!("fetching {url} at {reference}")).await;
                let checkout = fetch_git(url, reference, &workspace.join("src")).await?;
                log.info(format!("checked out commit {}", checkout.commit))
                    .await;
                (checkout.dir, Some(checkout.commit))
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
                (root, commit)
            }
        };
        if let Some(commit) = &commit {
            self.store().set_commit(d.id, commit).await?;
        }
        let plan = detect_plan(&root, &spec.dockerfile)?;
        log.info(format!("build plan: {}", plan.describe())).await;
        self.store()
            .transition(d.id, DeploymentState::Building, None)
            .await?;
        let dockerfile = spec.dockerfile.clone();
        let context = tokio::task::spawn_blocking(move || pack_context(&root, &dockerfile))
            .await
            .map_err(|e| Failure(format!("packing the build context panicked: {e}")))??;
        log.info(format!("build context: {} KiB", context.len() / 1024))
            .await;
        let tag = format!("{}/{}:{}", self.engine().instance(), d.app, d.id);
        let build_key = build_key(&context, &spec.dockerfile);
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
            return Ok(Artifact {
                image: tag,
                commit,
                spec: spec.clone(),
            });
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
            dockerfile: spec.dockerfile.clone(),
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
        Ok(Artifact {
            image: tag,
            commit,
            spec: spec.clone(),
        })
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
        })
    }
}
