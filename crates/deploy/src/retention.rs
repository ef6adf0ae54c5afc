//! Release retention: after a deployment goes live (and at each cleanup), keep the images
//! of the newest `keep_images` successful releases of the app (always including the live one and the
//! default rollback target) and remove the other images this instance built for it.

use crate::logs::DeployLog;
use crate::Deployer;
use capstan_core::{AppName, DeploymentState};
use std::collections::HashSet;

impl Deployer {
    pub(crate) async fn prune_images(&self, app: &AppName, log: &DeployLog) {
        match self
            .prune_app_images(app, self.settings().keep_images, true)
            .await
        {
            Ok(removals) => {
                for (image, outcome) in removals {
                    match outcome {
                        Ok(()) => log.info(format!("removed old image {image}")).await,
                        Err(err) => {
                            log.info(format!("cannot remove old image {image}: {err}"))
                                .await
                        }
                    }
                }
            }
            Err(err) => log.info(format!("image cleanup skipped: {err}")).await,
        }
    }

    /// Removes the images this instance built for `app` beyond the newest `keep` releases
    /// (at least 2: the live one and the default rollback target); each removal with its
    /// outcome. Without `remove`, only lists them (a dry run).
    pub(crate) async fn prune_app_images(
        &self,
        app: &AppName,
        keep: usize,
        remove: bool,
    ) -> Result<Vec<(String, Result<(), String>)>, crate::ActionError> {
        let built = self.target().app_images(app.as_str()).await?;
        // Nothing of the app on this server (it runs on another): nothing to ask the
        // store and the engine about.
        if built.is_empty() {
            return Ok(Vec::new());
        }
        let keep = self.images_to_keep(app, keep).await?;
        let ours = self.target().names().app(app).image_prefix();
        let mut removals = Vec::new();
        for image in built
            .into_iter()
            .filter(|i| i.starts_with(&ours) && !keep.contains(i))
        {
            let outcome = if remove {
                self.target()
                    .remove_image(&image)
                    .await
                    .map_err(|e| e.to_string())
            } else {
                Ok(())
            };
            removals.push((image, outcome));
        }
        Ok(removals)
    }

    /// The images of the newest `keep_images` successful releases (distinct images: a
    /// rollback or a reused build shares its image with an earlier release), which always
    /// include the live one and the default rollback target, plus the image of every
    /// deployment of the app that has not finished (and the tag it builds into).
    async fn images_to_keep(
        &self,
        app: &AppName,
        keep_releases: usize,
    ) -> Result<HashSet<String>, crate::ActionError> {
        let deployments = self.store().deployments_of(app, 1000).await?;
        let mut newest_distinct: Vec<String> = Vec::new();
        for d in &deployments {
            let successful = matches!(d.state, DeploymentState::Live | DeploymentState::Superseded);
            let Some(image) = d.image.as_ref().filter(|_| successful) else {
                continue;
            };
            let id = self
                .target()
                .image_id(image)
                .await?
                .unwrap_or_else(|| image.clone());
            if !newest_distinct.contains(&id) {
                if newest_distinct.len() >= keep_releases.max(2) {
                    break;
                }
                newest_distinct.push(id);
            }
        }
        let mut keep = HashSet::new();
        let names = self.target().names().app(app);
        for d in &deployments {
            // The tag a running deployment builds into, from before the store records it
            // (a build reused from the cache is tagged first).
            if !d.state.is_finished() {
                keep.insert(names.image(&d.id.to_string()));
            }
            let Some(image) = &d.image else { continue };
            let id = self
                .target()
                .image_id(image)
                .await?
                .unwrap_or_else(|| image.clone());
            if newest_distinct.contains(&id) || !d.state.is_finished() {
                keep.insert(image.clone());
            }
            if !d.state.is_finished() {
                if let Some(release) = d.from_release {
                    keep.insert(self.store().release(release).await?.image);
                }
            }
        }
        Ok(keep)
    }
}
