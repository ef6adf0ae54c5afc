//! What the API can ask of the deployer: app CRUD with its side effects, queueing deploys,
//! rollbacks and restarts. Input is validated here; errors carry a kind for the status code.

use crate::{ActionError, Caller, Deployer};
use capstan_core::app::check_git_ref;
use capstan_core::app_diff::settings_changes;
use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_store::{AppRecord, DeploymentRecord, NewDeployment};

/// An app with its live deployment.
pub struct AppView {
    pub app: AppRecord,
    pub live: Option<DeploymentRecord>,
}

/// `current` with a JSON merge patch applied and checked.
fn merged(current: &AppSpec, patch: &serde_json::Value) -> Result<AppSpec, ActionError> {
    current
        .merge_patch(patch)
        .map_err(|e| ActionError::Invalid(e.to_string()))
}

/// Which release a rollback returns to.
pub enum RollbackTarget {
    /// The most recent successful release before the live one that runs another image.
    Previous,
    Deployment(i64),
}

impl Deployer {
    pub async fn create_app(
        &self,
        name: &AppName,
        spec: AppSpec,
        caller: &Caller,
    ) -> Result<AppView, ActionError> {
        spec.validate()
            .map_err(|e| ActionError::Invalid(e.to_string()))?;
        crate::tls_names::check_tls_names(&spec, self.settings().own_acme_ca)?;
        if self.store().app(name).await.is_ok() {
            return Err(ActionError::Conflict(format!("app {name} already exists")));
        }
        // Who may point at the source comes first, then whether it answers: neither waits
        // for the lock, which other apps' changes need.
        self.check_settings_trust(&spec, None, caller).await?;
        self.check_source_answers(&spec).await?;
        let _settings = self.inner.settings_lock.lock().await;
        self.check_domains_free(name, &spec).await?;
        self.check_servers_exist(&spec).await?;
        self.check_server_change(None, &spec).await?;
        let app = self.store().create_app(name, &spec).await?;
        self.store()
            .record_event(name, &caller.actor(), "app created", "")
            .await?;
        Ok(AppView { app, live: None })
    }

    pub async fn app_view(&self, name: &AppName) -> Result<AppView, ActionError> {
        let app = self.store().app(name).await?;
        let live = match app.live_deployment_id {
            Some(id) => Some(self.store().deployment(id).await?),
            None => None,
        };
        Ok(AppView { app, live })
    }

    pub async fn app_views(&self) -> Result<Vec<AppView>, ActionError> {
        let mut views = Vec::new();
        for app in self.store().apps().await? {
            let live = match app.live_deployment_id {
                Some(id) => Some(self.store().deployment(id).await?),
                None => None,
            };
            views.push(AppView { app, live });
        }
        Ok(views)
    }

    /// Changes settings with a JSON merge patch; they take effect with the next deploy or
    /// restart. The change log names each field that changed (nothing when none did).
    pub async fn patch_app(
        &self,
        name: &AppName,
        patch: &serde_json::Value,
        caller: &Caller,
    ) -> Result<AppView, ActionError> {
        // A changed source is asked before the lock is taken, and again under it only if
        // another change moved it meanwhile.
        let asked = self.changed_source_answers(name, patch, caller).await?;
        let _settings = self.inner.settings_lock.lock().await;
        let current = self.store().app(name).await?;
        let next = merged(&current.spec, patch)?;
        self.check_servers_exist(&next).await?;
        self.check_server_change(Some(&current), &next).await?;
        crate::tls_names::check_tls_names(&next, self.settings().own_acme_ca)?;
        self.check_trust(name, &next, Some(&current.spec), caller)
            .await?;
        if next.source != current.spec.source && Some(&next.source) != asked.as_ref() {
            self.check_source_answers(&next).await?;
        }
        if next == current.spec {
            // Nothing to store, and nothing for the change log to say.
            return self.app_view(name).await;
        }
        self.store().update_app_spec(name, &next).await?;
        // Every field is compared in words; should two values still read alike, the log
        // says the settings changed without naming them rather than drop the change.
        let changes = settings_changes(&current.spec, &next);
        self.store()
            .record_event(
                name,
                &caller.actor(),
                "settings changed",
                &changes.join(", "),
            )
            .await?;
        self.app_view(name).await
    }

    /// If `patch` changes the app's source: its trust checked, then whether it answers;
    /// the source asked about, if any.
    async fn changed_source_answers(
        &self,
        name: &AppName,
        patch: &serde_json::Value,
        caller: &Caller,
    ) -> Result<Option<capstan_core::Source>, ActionError> {
        let current = self.store().app(name).await?;
        let next = merged(&current.spec, patch)?;
        if next.source == current.spec.source {
            return Ok(None);
        }
        self.check_settings_trust(&next, Some(&current.spec), caller)
            .await?;
        self.check_source_answers(&next).await?;
        Ok(Some(next.source))
    }

    /// Deletes an app with its containers, route and images on every server it runs on.
    /// Refused while a deployment of it is queued or running, so nothing is half-removed;
    /// queueing waits while a delete runs (and then finds no app), so the two never both
    /// succeed.
    pub async fn delete_app(&self, name: &AppName, caller: &Caller) -> Result<(), ActionError> {
        let _settings = self.inner.settings_lock.lock().await;
        let app = self.store().app(name).await?;
        if self.store().has_pending(name).await? || self.has_running(name) {
            return Err(ActionError::Conflict(format!(
                "app {name} has a deployment queued or running; wait for it to finish"
            )));
        }
        // Every server is reached before anything is removed: with one unreachable that
        // runs the app, the delete fails (503) and the app keeps serving everywhere.
        let mut servers = Vec::new();
        for server in &app.spec.servers {
            match self.connect_target(server).await {
                Ok(here) => servers.push(here),
                // Nothing of the app is live there.
                Err(_) if self.store().live_on(name, server.as_str()).await?.is_none() => {}
                Err(refused) => return Err(refused),
            }
        }
        for here in servers {
            here.remove_app_here(name).await?;
        }
        self.store().delete_app(name).await?;
        self.store()
            .record_event(name, &caller.actor(), "app deleted", "")
            .await?;
        Ok(())
    }

    /// Removes the app's containers, route, network and images from this server.
    async fn remove_app_here(&self, name: &AppName) -> Result<(), ActionError> {
        let here = self;
        // Everything the engine holds is listed before anything is removed: with the
        // engine unreachable the delete fails (503) and the app keeps serving.
        let mut containers = here.target().owned_containers(Some(name.as_str())).await?;
        containers.extend(
            here.target()
                .companion_containers(Some(name.as_str()))
                .await?,
        );
        // A one-off command still running ends with its app.
        containers.extend(here.target().run_containers(Some(name.as_str())).await?);
        here.remove_route(name)
            .await
            .map_err(|e| ActionError::Internal(e.to_string()))?;
        for container in containers {
            here.target().remove_container(&container.id).await?;
        }
        here.remove_swarm_app(name).await?;
        here.target().remove_app_network(name).await?;
        let repository = here.target().names().app(name).image_prefix();
        let repository = repository.trim_end_matches(':');
        let mut images = here.target().app_images(name.as_str()).await?;
        images.extend(here.target().stage_images(repository).await?);
        images.extend(
            here.target()
                .stage_images(&format!("{repository}/*"))
                .await?,
        );
        for image in images {
            if let Err(err) = here.target().remove_image(&image).await {
                tracing::warn!(%image, %err, "cannot remove image of deleted app");
            }
        }
        Ok(())
    }

    /// Who changed the app and what, newest first (kept after the app is deleted).
    pub async fn app_events(
        &self,
        name: &AppName,
        limit: i64,
    ) -> Result<Vec<capstan_store::AppEvent>, ActionError> {
        Ok(self.store().app_events(name, limit.clamp(1, 1000)).await?)
    }

    /// Queues a build-and-deploy of the app, optionally at another git ref; `no_cache`
    /// forces a clean build.
    pub async fn deploy(
        &self,
        name: &AppName,
        git_ref: Option<&str>,
        no_cache: bool,
        caller: &Caller,
    ) -> Result<DeploymentRecord, ActionError> {
        let app = self.store().app(name).await?;
        if let Some(reference) = git_ref {
            check_git_ref(reference).map_err(|e| ActionError::Invalid(e.to_string()))?;
            if !matches!(app.spec.source, capstan_core::Source::Git { .. }) {
                return Err(ActionError::Invalid(format!(
                    "ref: app {name} does not deploy from git, so a ref means nothing"
                )));
            }
        }
        self.queue(name, Trigger::Deploy, git_ref, None, no_cache, caller)
            .await
    }

    /// Queues a rollback: the target release's image and settings, with no fetch or build.
    pub async fn rollback(
        &self,
        name: &AppName,
        target: RollbackTarget,
        caller: &Caller,
    ) -> Result<DeploymentRecord, ActionError> {
        let app = self.store().app(name).await?;
        let here = self.first_reachable(&app.spec).await?;
        let target = match target {
            RollbackTarget::Deployment(id) => {
                let d = self.store().deployment(id).await?;
                if &d.app != name {
                    return Err(ActionError::Invalid(format!(
                        "deployment {id} belongs to app {}, not {name}",
                        d.app
                    )));
                }
                if Some(id) == app.live_deployment_id {
                    return Err(ActionError::Conflict(format!(
                        "deployment {id} is already live"
                    )));
                }
                if !matches!(d.state, DeploymentState::Live | DeploymentState::Superseded) {
                    return Err(ActionError::Conflict(format!(
                        "deployment {id} never went live (it is {}), so there is no release to roll back to",
                        d.state
                    )));
                }
                d
            }
            RollbackTarget::Previous => here.previous_release(name, app.live_deployment_id).await?,
        };
        let release = self.store().release_of(target.id).await?.ok_or_else(|| {
            ActionError::Conflict(format!("deployment {} has no recorded release", target.id))
        })?;
        if here.target().image_id(&release.image).await?.is_none() {
            return Err(ActionError::Conflict(format!(
                "the image {} of deployment {} is no longer on the engine",
                release.image, target.id
            )));
        }
        self.queue(
            name,
            Trigger::Rollback,
            None,
            Some(release.id),
            false,
            caller,
        )
        .await
    }

    /// The newest release that went live and runs another image than the live one, compared
    /// by the engine's image ID: two tags of one build (a redeploy of the same commit) are
    /// the same image, and rolling back to either would change nothing that runs. One whose
    /// image is gone from the engine cannot be rolled back to, so it is passed over.
    async fn previous_release(
        &self,
        name: &AppName,
        live: Option<i64>,
    ) -> Result<DeploymentRecord, ActionError> {
        let live_image = match live {
            Some(live) => match self.store().deployment(live).await?.image {
                Some(tag) => self.target().image_id(&tag).await?,
                None => None,
            },
            None => None,
        };
        for candidate in self.store().deployments_of(name, 1000).await? {
            let Some(tag) = candidate.image.as_deref() else {
                continue;
            };
            if candidate.state != DeploymentState::Superseded {
                continue;
            }
            match self.target().image_id(tag).await? {
                Some(id) if Some(&id) != live_image.as_ref() => return Ok(candidate),
                _ => continue,
            }
        }
        Err(ActionError::Conflict(format!(
            "app {name} has no earlier successful release of another image still on the engine to roll back to"
        )))
    }

    /// Queues a finished deployment again on the servers where it failed only (its own
    /// release, no build); 409 when it failed nowhere, was replaced by a later deployment
    /// of the app, or never got as far as a release.
    pub async fn retry(&self, id: i64, caller: &Caller) -> Result<DeploymentRecord, ActionError> {
        let _settings = self.inner.settings_lock.lock().await;
        let servers = self
            .store()
            .reopen_failed(id)
            .await?
            .map_err(|refused| ActionError::Conflict(refused.to_string()))?;
        tracing::info!(deployment = id, actor = %caller.actor(), servers = %servers.join(","), "retry queued");
        self.wake_workers();
        Ok(self.store().deployment(id).await?)
    }

    /// Queues a restart: new containers from the live release with the current settings.
    pub async fn restart(
        &self,
        name: &AppName,
        caller: &Caller,
    ) -> Result<DeploymentRecord, ActionError> {
        let app = self.store().app(name).await?;
        let live = app.live_deployment_id.ok_or_else(|| {
            ActionError::Conflict(format!(
                "nothing is deployed yet: deploy {name} first; a restart starts the live version again"
            ))
        })?;
        let release = self.store().release_of(live).await?.ok_or_else(|| {
            ActionError::Conflict(format!("live deployment {live} has no recorded release"))
        })?;
        self.queue(
            name,
            Trigger::Restart,
            None,
            Some(release.id),
            false,
            caller,
        )
        .await
    }

    async fn queue(
        &self,
        name: &AppName,
        trigger: Trigger,
        git_ref: Option<&str>,
        from_release: Option<i64>,
        no_cache: bool,
        caller: &Caller,
    ) -> Result<DeploymentRecord, ActionError> {
        // Refused before it is queued when the app's server cannot be deployed to.
        let spec = self.store().app(name).await?.spec;
        self.check_deployable(&spec).await?;
        let servers: Vec<&str> = spec.servers.iter().map(|s| s.as_str()).collect();
        let _settings = self.inner.settings_lock.lock().await;
        let actor = caller.actor();
        let new = NewDeployment {
            app: name,
            trigger,
            git_ref,
            from_release,
            no_cache,
            actor: &actor,
            servers: &servers,
        };
        self.enqueue_under_policy(new, spec.deploys_per_hour, caller)
            .await
    }
}
