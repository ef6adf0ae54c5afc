//! The health-gated blue-green cutover: start the new containers (one per replica) beside
//! the live ones, wait until every one passes its health check (`health`), point the app's route file
//! at them, confirm through Traefik's API, watch them while the old ones drain, then retire
//! the old ones. Any failure before the new version is marked live puts the route back and
//! removes the new containers, so the live version (if there is one) keeps serving.

use crate::health::Gate;
use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::release::Rendered;
use crate::routing::route_target;
use crate::Deployer;
use capstan_compose::render::DeploymentNames;
use capstan_compose::Service;
use capstan_core::{AppName, AppSpec, DeploymentState, HookCommand};
use capstan_engine::containers::Health;
use capstan_store::DeploymentRecord;
use std::time::{Duration, Instant};

pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How many times a route is put back after a failed switch before the new containers are
/// left running instead.
const RESTORE_TRIES: u32 = 3;
/// The last line of a deployment that went live, once the version it replaced is retired.
pub(crate) const CLEANUP_DONE: &str = "cleanup done (old containers retired, old images pruned)";

/// One try at a cutover: the port the containers start with when nothing named one
/// (`open_port`: what they listen on may decide another), and whether it is the first
/// try (`first`: the pre-deploy command runs and the deployment enters health checking;
/// a second try, on the port the first one's containers listened on, does neither again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub open_port: Option<u16>,
    pub first: bool,
}

/// How a cutover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cutover {
    Live,
    /// The app named no port and its containers listen on this one only: they were
    /// removed, to be rendered and started again on it.
    ListensOn(u16),
}

/// What serves the app once a failed deployment's containers are removed, from whether
/// it had a live version (`None`: the store could not say).
fn after_failure(serving: Option<bool>) -> &'static str {
    match serving {
        Some(true) => "the live version keeps serving",
        Some(false) => "nothing was serving before, so the app is not up",
        None => "the version that was live, if any, keeps serving",
    }
}

impl Deployer {
    pub(crate) async fn cutover(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        release: &Rendered,
        names: &DeploymentNames,
        attempt: Attempt,
        log: &DeployLog,
    ) -> Result<Cutover, Failure> {
        let (compose, service) = (&release.compose, &release.service);
        self.target().ensure_app_network(&d.app).await?;
        if let Some(hook) = spec
            .pre_deploy
            .as_ref()
            .filter(|_| attempt.first && self.runs_hooks())
        {
            self.run_pre_deploy(hook, service, names, log).await?;
        }
        let containers = names.replica_containers(spec.replicas);
        for (index, name) in containers.iter().enumerate() {
            let mut replica = service.clone();
            replica.container_name = name.clone();
            let started = if index == 0 {
                self.target().run_spec(compose, &replica).await
            } else {
                self.target().run_service(&replica).await
            };
            if let Err(err) = started {
                self.remove_failed(&d.app, &containers, log).await;
                return Err(err.into());
            }
            log.info(format!("started container {name}")).await;
        }
        let outcome = self
            .switch_to_new(d, spec, service, &containers, attempt, log)
            .await;
        match outcome {
            // The proxy may still route to them: they are left for the next deployment.
            Err(failure @ Failure::Stranded(_)) => return Err(failure),
            Err(failure) => {
                self.remove_failed(&d.app, &containers, log).await;
                return Err(failure);
            }
            Ok(Cutover::ListensOn(port)) => {
                for container in &containers {
                    match self.target().remove_container(container).await {
                        Ok(()) => {
                            log.info(format!(
                                "removed {container}; it starts again on port {port}"
                            ))
                            .await
                        }
                        Err(err) => log.info(format!("cannot remove {container}: {err}")).await,
                    }
                }
                return Ok(Cutover::ListensOn(port));
            }
            Ok(Cutover::Live) => {}
        }
        if let Some(hook) = spec.post_deploy.as_ref().filter(|_| self.runs_hooks()) {
            // Once per deployment, like a migration: in the first replica.
            self.run_post_deploy(hook, &containers[0], log).await;
        }
        self.retire_in_background(d, &containers, spec, log).await;
        Ok(Cutover::Live)
    }

    async fn switch_to_new(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        service: &Service,
        containers: &[String],
        attempt: Attempt,
        log: &DeployLog,
    ) -> Result<Cutover, Failure> {
        if attempt.first {
            self.enter_phase(d, DeploymentState::HealthChecking).await?;
        }
        let check = crate::health::GateCheck::of(service, spec);
        for (index, container) in containers.iter().enumerate() {
            // The first replica settles an open port; the others start on the same one.
            let open = attempt.open_port.filter(|_| index == 0);
            let gate = self
                .unless_cancelled(d.id, self.wait_healthy(container, &check, open, log))
                .await?;
            if let Gate::ListensOn(port) = gate {
                return Ok(Cutover::ListensOn(port));
            }
        }
        self.enter_phase(d, DeploymentState::Switching).await?;
        let previous = self.live_here_before(d).await?;
        let switched = self
            .switch_and_settle(d, spec, containers, previous, log)
            .await;
        if let Err(failure) = switched {
            // A route file that was never rewritten still names the live version.
            let new_route = route_target(spec, containers);
            if self.route_in_force(&d.app).await.as_ref() != Some(&new_route) {
                return Err(failure);
            }
            // Whatever failed after the flip, the route goes back to the live version
            // before the new container is removed; if it cannot, the new containers stay,
            // since the proxy may still send traffic to them.
            if !self.restore_route(&d.app, previous, log).await {
                return Err(Failure::Stranded(format!(
                    "{failure}; the route could not be put back, so the new containers keep running (the proxy may still send traffic to them) until the next deployment replaces them"
                )));
            }
            return Err(failure);
        }
        Ok(Cutover::Live)
    }

    /// Flips the route, watches the new container while the old one drains, and records
    /// the new deployment live.
    async fn switch_and_settle(
        &self,
        d: &DeploymentRecord,
        spec: &AppSpec,
        containers: &[String],
        previous: Option<i64>,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        self.point_route(&d.app, &route_target(spec, containers))
            .await?;
        log.info(format!("traffic switched to {}", containers.join(", ")))
            .await;
        if previous.is_some() {
            // The old version stays up while in-flight requests finish; if the new one
            // falls over in that window, traffic goes straight back.
            let drain = Duration::from_secs(spec.drain_secs as u64);
            if let Err(failure) = self.watch_while_draining(containers, drain).await {
                log.info(format!("{failure}; switching traffic back")).await;
                return Err(failure);
            }
        }
        self.go_live(d).await?;
        Ok(())
    }

    /// Points the route back at the previous deployment, or removes it if there was none,
    /// trying [`RESTORE_TRIES`] times; whether it is back.
    async fn restore_route(&self, app: &AppName, previous: Option<i64>, log: &DeployLog) -> bool {
        for attempt in 1..=RESTORE_TRIES {
            let restored = match previous {
                Some(previous) => match self.route_of_deployment(app, previous).await {
                    Ok(target) => self.point_route(app, &target).await,
                    Err(failure) => Err(failure),
                },
                None => self.remove_route(app).await,
            };
            match restored {
                Ok(()) if previous.is_some() => {
                    log.info("route restored to the live version").await;
                    return true;
                }
                Ok(()) => {
                    log.info("route removed: nothing was live before").await;
                    return true;
                }
                Err(err) => {
                    log.info(format!(
                        "cannot restore the route (try {attempt} of {RESTORE_TRIES}): {err}"
                    ))
                    .await
                }
            }
            tokio::time::sleep(POLL * 5).await;
        }
        false
    }

    /// Runs the pre-deploy command in a one-off container of the new image; a non-zero exit
    /// or a timeout fails the deployment before anything is started or switched.
    async fn run_pre_deploy(
        &self,
        hook: &HookCommand,
        service: &Service,
        names: &DeploymentNames,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        log.info(format!(
            "pre-deploy: running {:?} in a one-off container of the new image",
            hook.command
        ))
        .await;
        let name = names.pre_deploy_container();
        let timeout = Duration::from_secs(hook.timeout_secs as u64);
        let exit = log
            .forward("pre-deploy", |lines| async move {
                self.target()
                    .run_task(service, &name, &hook.command, timeout, &lines)
                    .await
            })
            .await?;
        if exit != 0 {
            return Err(Failure::msg(format!(
                "pre-deploy command exited with status {exit}; nothing was started or switched"
            )));
        }
        log.info("pre-deploy command succeeded").await;
        Ok(())
    }

    /// Runs the post-deploy command in the new container. The new version is already live:
    /// a failure is reported in the log, not rolled back.
    async fn run_post_deploy(&self, hook: &HookCommand, container: &str, log: &DeployLog) {
        log.info(format!(
            "post-deploy: running {:?} in {container}",
            hook.command
        ))
        .await;
        let timeout = Duration::from_secs(hook.timeout_secs as u64);
        let outcome = log
            .forward("post-deploy", |lines| async move {
                self.target()
                    .exec(container, &hook.command, timeout, &lines)
                    .await
            })
            .await;
        match outcome {
            Ok(0) => log.info("post-deploy command succeeded").await,
            Ok(exit) => {
                log.info(format!(
                    "post-deploy command FAILED with status {exit}; the new version stays live"
                ))
                .await
            }
            Err(err) => {
                log.info(format!(
                    "post-deploy command FAILED: {err}; the new version stays live"
                ))
                .await
            }
        }
    }

    async fn watch_while_draining(
        &self,
        containers: &[String],
        drain: Duration,
    ) -> Result<(), Failure> {
        let until = Instant::now() + drain;
        loop {
            for container in containers {
                self.check_still_healthy(container).await?;
            }
            if Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails when a container that passed its health check has since crashed, turned
    /// unhealthy or been restarted by Docker.
    async fn check_still_healthy(&self, container: &str) -> Result<(), Failure> {
        let report = self.target().health(container).await?;
        let problem = match report.health {
            Health::Down(detail) => {
                Some(format!("crashed after passing its health check: {detail}"))
            }
            Health::Unhealthy => Some(format!(
                "turned unhealthy after passing its health check: {}",
                report.last_probe.unwrap_or_default()
            )),
            _ if report.restart_count > 0 => {
                Some("restarted after passing its health check".to_string())
            }
            _ => None,
        };
        match problem {
            Some(problem) => Err(Failure::msg(format!("{container} {problem}"))),
            None => Ok(()),
        }
    }

    async fn remove_failed(&self, app: &AppName, containers: &[String], log: &DeployLog) {
        // What serves on this server: the version live here, if any.
        let serving = match self.store().live_on(app, self.server().as_str()).await {
            Ok(live) => Some(live.is_some()),
            Err(_) => None,
        };
        for container in containers {
            let proxy_up = self.proxy_state() == crate::ProxyState::Running;
            match self.target().remove_container(container).await {
                Ok(()) if proxy_up => {
                    log.info(format!("removed {container}; {}", after_failure(serving)))
                        .await
                }
                Ok(()) => {
                    log.info(format!(
                        "removed {container}; the proxy is down and being brought back, after which the live version serves again"
                    ))
                    .await
                }
                Err(err) => log.info(format!("cannot remove {container}: {err}")).await,
            }
        }
    }

    /// Retires the app's other containers (the version that served until now, and any
    /// leftover) and prunes old images in a task of its own: they are no longer routed,
    /// so the next deployment of the app (a rollback right after this deploy, say) never
    /// waits behind an old container's stop grace period. The list is taken now, so the
    /// task never touches containers a later deployment starts.
    async fn retire_in_background(
        &self,
        d: &DeploymentRecord,
        keep: &[String],
        spec: &AppSpec,
        log: &DeployLog,
    ) {
        let old = match self.target().owned_containers(Some(d.app.as_str())).await {
            Ok(list) => list
                .into_iter()
                .filter(|c| !keep.contains(&c.name))
                .collect::<Vec<_>>(),
            Err(err) => {
                log.info(format!("cannot list old containers: {err}")).await;
                return;
            }
        };
        let deployer = self.clone();
        let (app, grace, log) = (d.app.clone(), spec.stop_grace_secs, log.clone());
        let retirement = async move {
            for container in old {
                let stopped = deployer.target().stop_container(&container.id, grace).await;
                let removed = deployer.target().remove_container(&container.id).await;
                match stopped.and(removed) {
                    Ok(()) => log.info(format!("retired {}", container.name)).await,
                    Err(err) => {
                        log.info(format!("cannot retire {}: {err}", container.name))
                            .await
                    }
                }
            }
            deployer.prune_images(&app, &log).await;
            log.info(CLEANUP_DONE).await;
        };
        self.track_retirement(d.id, retirement);
    }
}

#[cfg(test)]
mod tests {
    use super::after_failure;

    #[test]
    fn a_failure_claims_a_live_version_only_when_there_was_one() {
        assert_eq!(after_failure(Some(true)), "the live version keeps serving");
        let first = after_failure(Some(false));
        assert!(first.contains("nothing was serving") && !first.contains("keeps serving"));
        assert!(after_failure(None).contains("if any"));
    }
}
