//! Producing images: building a plan's recipe through bollard (or reusing an earlier image
//! of the exact same build), and making sure prebuilt images are on the engine.

use crate::logs::DeployLog;
use crate::pipeline::{Artifact, Failure};
use crate::Deployer;
use capstan_build::{pack_context, Recipe};
use capstan_core::AppSpec;
use capstan_engine::images::BuildRequest;
use capstan_store::DeploymentRecord;
use std::collections::HashMap;

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

impl Deployer {
    /// Builds one recipe into `tag`, or tags an earlier image of the same build (same
    /// context, Dockerfile, stage and arguments) unless a clean build was asked for.
    pub(crate) async fn build_recipe(
        &self,
        d: &DeploymentRecord,
        recipe: &Recipe,
        tag: &str,
        app_args: &HashMap<String, String>,
        commit: Option<&str>,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let mut build_args: HashMap<String, String> =
            recipe.build_args.clone().into_iter().collect();
        build_args.extend(app_args.clone());
        let context = {
            let recipe = recipe.clone();
            tokio::task::spawn_blocking(move || {
                pack_context(&recipe.context_dir, &recipe.dockerfile, &recipe.generated)
            })
            .await
            .map_err(|e| Failure::msg(format!("packing the build context panicked: {e}")))??
        };
        log.info(format!("build context: {} KiB", context.len() / 1024))
            .await;
        let build_key = build_key(
            &context,
            &recipe.dockerfile,
            recipe.target.as_deref(),
            &build_args,
        );
        if d.no_cache {
            log.info("clean build requested: no image reuse, no layer cache")
                .await;
        } else if let Some(existing) = self.engine().find_build(d.app.as_str(), &build_key).await? {
            self.engine().tag_image(&existing, tag).await?;
            log.info(format!(
                "reusing image {existing} built from the same source and settings; build skipped"
            ))
            .await;
            return Ok(());
        }
        let labels = HashMap::from([
            (
                capstan_compose::labels::INSTANCE.to_string(),
                self.engine().instance().to_string(),
            ),
            (capstan_compose::labels::APP.to_string(), d.app.to_string()),
            (
                capstan_compose::labels::DEPLOYMENT.to_string(),
                d.id.to_string(),
            ),
            (
                capstan_compose::labels::COMMIT.to_string(),
                commit.unwrap_or_default().to_string(),
            ),
            (capstan_compose::labels::BUILD_KEY.to_string(), build_key),
        ]);
        let _slot = self.build_slot(log).await;
        let request = BuildRequest {
            context_tar: context,
            dockerfile: recipe.dockerfile.clone(),
            target: recipe.target.clone(),
            build_args,
            tag: tag.to_string(),
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
        Ok(())
    }

    /// Makes sure an image is on the engine, pulling it when it is not.
    pub(crate) async fn ensure_image(&self, image: &str, log: &DeployLog) -> Result<(), Failure> {
        if self.engine().image_id(image).await?.is_none() {
            log.info(format!("pulling {image}")).await;
            let pulled = log
                .forward("pull", |lines| async move {
                    self.engine().pull_image(image, &lines).await
                })
                .await;
            pulled?;
        }
        Ok(())
    }

    /// An image source: nothing to fetch or build, only to have the image on the engine.
    pub(crate) async fn use_prebuilt(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        image: &str,
        log: &DeployLog,
    ) -> Result<Artifact, Failure> {
        self.ensure_image(image, log).await?;
        log.info(format!("using prebuilt image {image} (no build)"))
            .await;
        self.store().set_image(d.id, image).await?;
        Ok(Artifact {
            image: image.to_string(),
            commit: None,
            spec: spec.clone(),
            repo_config: None,
            web_template: None,
            companions: Vec::new(),
            declared_port: spec
                .port
                .map(|port| crate::ports::DeclaredPort::new(port, "the app's settings")),
        })
    }
}
