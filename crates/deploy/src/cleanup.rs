//! Cleanup of this instance's own Docker objects, on request and on a timer: stopped
//! containers of finished deployments and of deleted apps, images beyond each app's
//! retention, images of deleted apps (their kept build stages too), untagged images, and
//! the networks of deleted apps.
//! Only objects labelled `capstan.instance=<instance>` are ever listed (see
//! `capstan_engine::cleanup`); nothing is pruned host-wide. Under disk pressure (the
//! engine's data root fuller than the threshold) it cleans harder: each app keeps only its
//! live image and the default rollback target. Every removal is logged.

use crate::{ActionError, Deployer};
use capstan_core::AppName;
pub use capstan_engine::cleanup::DiskUsage;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;

/// What a cleanup removed (and what it could not), or with `dry_run` what it would
/// remove.
#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    /// Whether it kept only two releases per app (disk pressure or asked for).
    pub aggressive: bool,
    /// Whether nothing was removed: the lists say what a cleanup would remove now.
    pub dry_run: bool,
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub networks: Vec<String>,
    /// Bytes of the removed images the engine reported (shared layers counted once per
    /// image, so an upper bound).
    pub image_bytes: i64,
    /// Objects that stayed, with the engine's reason.
    pub errors: Vec<String>,
}

/// When the timer runs cleanup and when it cleans harder.
#[derive(Debug, Clone, Copy)]
pub struct CleanupPolicy {
    pub every: Duration,
    /// Used space (percent) of the engine's data root at which cleanup turns aggressive.
    pub disk_threshold_percent: f64,
}

/// Roles of the daemon's own long-lived containers, never removed by cleanup.
const INFRASTRUCTURE: [&str; 2] = ["proxy", "maintenance-pages"];

impl Deployer {
    /// Removes this instance's leftovers; `aggressive` keeps two releases per app.
    pub async fn cleanup(&self, aggressive: bool) -> Result<CleanupReport, ActionError> {
        self.cleanup_pass(aggressive, false).await
    }

    /// What [`Deployer::cleanup`] would remove now, removing nothing.
    pub async fn cleanup_dry_run(&self, aggressive: bool) -> Result<CleanupReport, ActionError> {
        self.cleanup_pass(aggressive, true).await
    }

    /// Cleans this deployer's server, then every SSH server an app runs on (their objects
    /// named `<server>: <object>` in the report; a server that cannot be reached is named
    /// among the errors, and the others are cleaned all the same).
    async fn cleanup_pass(
        &self,
        aggressive: bool,
        dry_run: bool,
    ) -> Result<CleanupReport, ActionError> {
        let apps = self.app_names().await?;
        let mut report = self.cleanup_here(&apps, aggressive, dry_run).await?;
        for (server, here) in self.remote_deployers().await {
            let theirs = match here {
                Ok(here) => here.cleanup_here(&apps, aggressive, dry_run).await,
                Err(err) => Err(err),
            };
            match theirs {
                Ok(theirs) => report.absorb(&server, theirs),
                Err(err) => report
                    .errors
                    .push(format!("server {server}: not cleaned: {err}")),
            }
        }
        if !dry_run {
            for line in report.summary_lines() {
                tracing::info!("cleanup: {line}");
            }
        }
        Ok(report)
    }

    /// Every app's name.
    async fn app_names(&self) -> Result<HashSet<String>, ActionError> {
        Ok(self
            .store()
            .apps()
            .await?
            .into_iter()
            .map(|a| a.name.to_string())
            .collect())
    }

    /// Cleans this deployer's server only.
    async fn cleanup_here(
        &self,
        apps: &HashSet<String>,
        aggressive: bool,
        dry_run: bool,
    ) -> Result<CleanupReport, ActionError> {
        let mut report = CleanupReport {
            aggressive,
            dry_run,
            ..CleanupReport::default()
        };
        // The classic builder's intermediate containers and not-yet-tagged images carry
        // the build's labels: while anything builds, they are not leftovers.
        let building = self.is_busy();
        if !building {
            self.clean_containers(apps, &mut report).await?;
        }
        self.clean_images(apps, aggressive, building, &mut report)
            .await?;
        for (network, app) in self.target().app_networks_by_app().await? {
            if apps.contains(&app) {
                continue;
            }
            match removing(dry_run, self.target().remove_network_named(&network)).await {
                Ok(()) => report.networks.push(network),
                Err(err) => report.errors.push(format!("network {network}: {err}")),
            }
        }
        Ok(report)
    }

    async fn clean_containers(
        &self,
        apps: &HashSet<String>,
        report: &mut CleanupReport,
    ) -> Result<(), ActionError> {
        for container in self.target().stopped_containers().await? {
            let label = |key| container.labels.get(key).map(String::as_str);
            let role = label(capstan_compose::labels::ROLE).unwrap_or("");
            if INFRASTRUCTURE.contains(&role) {
                continue;
            }
            let app = label(capstan_compose::labels::APP);
            let app_exists = app.is_some_and(|a| apps.contains(a));
            // A stopped companion of an existing app is its service, to be restarted, not
            // a leftover; a stopped container of the live or an unfinished deployment
            // likewise.
            if app_exists && role == "companion" {
                continue;
            }
            if app_exists {
                let deployment =
                    label(capstan_compose::labels::DEPLOYMENT).and_then(|d| d.parse::<i64>().ok());
                if let Some(id) = deployment {
                    if !self.deployment_is_over(app.unwrap_or(""), id).await? {
                        continue;
                    }
                }
            }
            let removal = self.target().remove_stopped_container(&container.id);
            match removing(report.dry_run, removal).await {
                Ok(()) => report.containers.push(container.name),
                Err(err) => report
                    .errors
                    .push(format!("container {}: {err}", container.name)),
            }
        }
        Ok(())
    }

    /// Whether deployment `id` has finished and is not live on any of the app's servers.
    async fn deployment_is_over(&self, app: &str, id: i64) -> Result<bool, ActionError> {
        let Ok(name) = AppName::parse(app) else {
            return Ok(true);
        };
        let live = self.store().app(&name).await?.live_deployment_id;
        if live == Some(id) || self.store().live_anywhere(&name).await?.contains(&id) {
            return Ok(false);
        }
        match self.store().deployment(id).await {
            Ok(d) => Ok(d.state.is_finished()),
            Err(capstan_store::StoreError::NotFound(_)) => Ok(true),
            Err(err) => Err(err.into()),
        }
    }

    async fn clean_images(
        &self,
        apps: &HashSet<String>,
        aggressive: bool,
        building: bool,
        report: &mut CleanupReport,
    ) -> Result<(), ActionError> {
        let keep = if aggressive {
            2
        } else {
            self.settings().keep_images
        };
        for app in apps {
            let Ok(name) = AppName::parse(app) else {
                continue;
            };
            // A deployment under way may have built an image it has not recorded yet.
            if self.has_running(&name) {
                continue;
            }
            let pruned = self.prune_app_images(&name, keep, !report.dry_run).await?;
            for (image, outcome) in pruned {
                match outcome {
                    Ok(()) => report.images.push(image),
                    Err(err) => report.errors.push(format!("image {image}: {err}")),
                }
            }
        }
        // The kept stages of multi-stage builds (`<instance>/<app>[/<service>]:stage-<n>`)
        // of apps that no longer exist.
        let instance = self.target().instance().to_string();
        for pattern in [format!("{instance}/*"), format!("{instance}/*/*")] {
            for reference in self.target().stage_images(&pattern).await? {
                let rest = reference
                    .strip_prefix(&format!("{instance}/"))
                    .unwrap_or("");
                let app = rest.split(['/', ':']).next().unwrap_or("");
                if apps.contains(app) {
                    continue;
                }
                match removing(report.dry_run, self.target().remove_image(&reference)).await {
                    Ok(()) => report.images.push(reference),
                    Err(err) => report.errors.push(format!("image {reference}: {err}")),
                }
            }
        }
        // A preview removed nothing above, so the images it already named would be listed
        // (and counted) again here; a real run no longer finds them.
        let named: std::collections::HashSet<String> = report.images.iter().cloned().collect();
        for image in self.target().owned_images(false).await? {
            if report.dry_run
                && !image.tags.is_empty()
                && image.tags.iter().all(|t| named.contains(t))
            {
                continue;
            }
            let orphan = image.app.as_ref().is_some_and(|a| !apps.contains(a));
            let removable_dangling = image.tags.is_empty() && !building;
            if !orphan && !removable_dangling {
                continue;
            }
            let mut outcome = Ok(());
            for tag in &image.tags {
                outcome =
                    outcome.and(removing(report.dry_run, self.target().remove_image(tag)).await);
            }
            if image.tags.is_empty() {
                outcome = removing(report.dry_run, self.target().remove_image_id(&image.id)).await;
            }
            let shown = image.tags.first().cloned().unwrap_or(image.id.clone());
            match outcome {
                Ok(()) => {
                    report.image_bytes += image.size;
                    report.images.push(shown);
                }
                Err(err) => report.errors.push(format!("image {shown}: {err}")),
            }
        }
        Ok(())
    }

    /// Runs cleanup every `policy.every` until `stop`, on this server and every SSH server
    /// an app runs on; on each, aggressive when its engine's data root is at least
    /// `disk_threshold_percent` full (and says so).
    pub async fn run_cleanup(&self, policy: CleanupPolicy, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(policy.every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let apps = match self.app_names().await {
                Ok(apps) => apps,
                Err(err) => {
                    tracing::warn!(%err, "scheduled cleanup: cannot list apps");
                    continue;
                }
            };
            self.scheduled_cleanup_here(&apps, &policy).await;
            for (server, here) in self.remote_deployers().await {
                match here {
                    Ok(here) => here.scheduled_cleanup_here(&apps, &policy).await,
                    Err(err) => {
                        tracing::warn!(server = %server, %err, "scheduled cleanup: server not reachable")
                    }
                }
            }
        }
    }

    /// One scheduled cleanup of this deployer's server.
    async fn scheduled_cleanup_here(&self, apps: &HashSet<String>, policy: &CleanupPolicy) {
        let used = self.server_disk().await.ok().map(|(_, u)| u.used_percent());
        let aggressive = used.is_some_and(|u| u >= policy.disk_threshold_percent);
        if aggressive {
            tracing::warn!(
                server = %self.server(),
                used_percent = format!("{:.1}", used.unwrap_or_default()),
                threshold = policy.disk_threshold_percent,
                "disk pressure: the engine's data root is fuller than the threshold; cleaning harder (two releases per app)"
            );
        }
        match self.cleanup_here(apps, aggressive, false).await {
            Ok(report) => {
                for line in report.summary_lines() {
                    tracing::info!(server = %self.server(), "cleanup: {line}");
                }
            }
            Err(err) => tracing::warn!(server = %self.server(), %err, "scheduled cleanup failed"),
        }
    }

    /// How full the disk under the engine's data root is, when the engine is local.
    pub async fn disk_used_percent(&self) -> Option<f64> {
        self.engine_disk()
            .await
            .map(|(_, usage)| usage.used_percent())
    }

    /// The engine's data root and its disk's usage, when the engine is local (a remote
    /// engine's root is not a path here).
    pub async fn engine_disk(&self) -> Option<(String, DiskUsage)> {
        let root = self.target().data_root().await.ok()??;
        let usage = capstan_engine::cleanup::disk_usage(std::path::Path::new(&root))?;
        Some((root, usage))
    }
}

/// Runs `removal` unless this is a dry run (a future does nothing until it is awaited).
async fn removing<E>(
    dry_run: bool,
    removal: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), E> {
    if dry_run {
        Ok(())
    } else {
        removal.await
    }
}

impl CleanupReport {
    /// Adds what a cleanup of `server` found, each object named `<server>: <object>`.
    fn absorb(&mut self, server: &capstan_core::ServerName, theirs: CleanupReport) {
        let named = |list: Vec<String>| list.into_iter().map(move |o| format!("{server}: {o}"));
        self.containers.extend(named(theirs.containers));
        self.images.extend(named(theirs.images));
        self.networks.extend(named(theirs.networks));
        self.errors.extend(named(theirs.errors));
        self.image_bytes += theirs.image_bytes;
    }

    /// One line per kind of object removed (or, in a dry run, that would be), and one
    /// per object that stayed.
    pub fn summary_lines(&self) -> Vec<String> {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut lines = Vec::new();
        for (kind, list) in [
            ("container", &self.containers),
            ("image", &self.images),
            ("network", &self.networks),
        ] {
            for name in list {
                lines.push(format!("{verb} {kind} {name}"));
            }
        }
        for error in &self.errors {
            lines.push(format!("kept {error}"));
        }
        if lines.is_empty() {
            lines.push("nothing to remove".to_string());
        }
        lines
    }
}
