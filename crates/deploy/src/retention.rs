//! Release retention: after a deployment goes live, keep the images of the newest
//! `keep_images` successful releases of the app (always including the live one and the
//! default rollback target) and remove the other images this instance built for it.

use crate::logs::DeployLog;
use crate::Deployer;
use capstan_core::{AppName, DeploymentState};
use std::collections::HashSet;

impl Deployer {
    pub(crate) async fn prune_images(&self, app: &AppName, log: &DeployLog) {
        let keep = match self.images_to_keep(app).await {
            Ok(keep) => keep,
            Err(err) => {
                log.info(format!("image cleanup skipped: {err}")).await;
                return;
            }
        };
        let built = match self.engine().app_images(app.as_str()).await {
            Ok(images) => images,
            Err(err) => {
                log.info(format!("image cleanup skipped: {err}")).await;
                return;
            }
        };
        let ours = format!("{}/{}:", self.engine().instance(), app);
        for image in built
            .into_iter()
            .filter(|i| i.starts_with(&ours) && !keep.contains(i))
        {
            match self.engine().remove_image(&image).await {
                Ok(()) => log.info(format!("removed old image {image}")).await,
                Err(err) => {
                    log.info(format!("cannot remove old image {image}: {err}"))
                        .await
                }
            }
        }
    }

    /// The live image, the newest superseded one (the default rollback target), and the
    /// images of the newest `keep_images` successful releases.
    async fn images_to_keep(&self, app: &AppName) -> Result<HashSet<String>, crate::ActionError> {
        let successful: Vec<String> = self
            .store()
            .deployments_of(app, 1000)
            .await?
            .into_iter()
            .filter(|d| matches!(d.state, DeploymentState::Live | DeploymentState::Superseded))
            .filter_map(|d| d.image)
            .collect();
        let mut keep: HashSet<String> = successful
            .iter()
            .take(self.settings().keep_images.max(2))
            .cloned()
            .collect();
        // Queued rollbacks and restarts need their release's image too.
        for d in self.store().deployments_of(app, 1000).await? {
            if !d.state.is_finished() {
                if let Some(release) = d.from_release {
                    keep.insert(self.store().release(release).await?.image);
                }
            }
        }
        Ok(keep)
    }
}
