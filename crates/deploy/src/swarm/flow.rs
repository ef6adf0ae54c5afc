//! A deployment on a swarm server, after its image is on the manager: the release rendered
//! and stored as on any server, then applied as swarm services (companions first, the web
//! service last) on the app's overlay network, and Swarm's own update watched: `completed`
//! is live once the proxy routes to the new tasks; a rollback by Swarm fails the deployment
//! with Swarm's reason while the previous version keeps serving. A restart forces new
//! tasks; a rollback applies the old release's spec the same way.

use crate::logs::DeployLog;
use crate::pipeline::{Artifact, Failure};
use crate::release::Settled;
use crate::Deployer;
use capstan_compose::stack::{render_stack, StackInput, StackNames, StackSpec, UpdateOrder};
use capstan_core::{AppName, DeploymentState, Trigger};
use capstan_engine::swarm::{ServiceFacts, SwarmError, UpdateProgress};
use capstan_engine::Engine;
use capstan_store::{DeploymentRecord, SecretValue};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often a service's update is looked at.
const POLL: Duration = Duration::from_millis(500);

/// How long the proxy may take to list the new tasks once Swarm is done.
const PROXY_CONFIRM: Duration = Duration::from_secs(20);

impl From<SwarmError> for Failure {
    fn from(err: SwarmError) -> Self {
        match err {
            SwarmError::Engine(err) => Failure::Engine(err),
            other => Failure::msg(other.to_string()),
        }
    }
}

/// Secret placeholders (`${NAME}`) in the stack's environments replaced by their values:
/// the engine keeps them in the service's spec, as it keeps a container's environment.
fn fill_secrets(stack: &mut StackSpec, secrets: &[SecretValue]) {
    for service in stack.services.values_mut() {
        for value in service.environment.values_mut() {
            if let Some(secret) = secrets
                .iter()
                .find(|s| *value == format!("${{{}}}", s.name))
            {
                value.clone_from(&secret.value);
            }
        }
    }
}

/// What the failed tasks of `image` said, as `; new task: ...` (empty when none did).
async fn task_errors(engine: &Engine, service: &str, image: &str) -> String {
    let Ok(tasks) = engine.service_tasks(service).await else {
        return String::new();
    };
    let errors: BTreeSet<String> = tasks
        .into_iter()
        .filter(|t| t.image == image && (t.state == "failed" || t.state == "rejected"))
        .map(|t| format!("{}: {}", t.state, t.message))
        .collect();
    if errors.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = errors.into_iter().take(3).collect();
    format!("; new task: {}", listed.join("; "))
}

impl Deployer {
    /// Starting through live on a swarm server (see the module's note).
    pub(crate) async fn swarm_start_and_switch(
        &self,
        d: &DeploymentRecord,
        artifact: &Artifact,
        settled: &Settled,
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let engine = self
            .target()
            .docker_engine()
            .ok_or_else(|| Failure::msg("this swarm server is not reached through its engine"))?;
        let release = self
            .record_release(d, artifact, settled.image_health.as_deref(), secrets, log)
            .await?;
        if let Some((name, _)) = release
            .compose
            .services
            .iter()
            .find(|(_, s)| !s.secrets.is_empty())
        {
            return Err(Failure::msg(format!(
                "compose service {name} mounts secret files, which swarm servers do not support yet; use environment variables"
            )));
        }
        let namespace = self.target().instance();
        let names = StackNames::new(namespace, &d.app);
        let rendered = render_stack(&StackInput {
            namespace,
            app: &d.app,
            spec: &artifact.spec,
            compose: &release.compose,
        });
        for (service, (order, why)) in &rendered.orders {
            let reason = why
                .as_deref()
                .unwrap_or("start-first: the new task turns healthy before the old one stops");
            let label = match order {
                UpdateOrder::StartFirst => "start-first",
                UpdateOrder::StopFirst => "stop-first",
            };
            log.info(format!(
                "swarm service {service}: update order {label} ({reason})"
            ))
            .await;
        }
        engine
            .ensure_overlay_network(&names.network, d.app.as_str())
            .await?;
        self.target().ensure_volumes(&release.compose).await?;
        engine.connect_proxy(&names.network).await?;
        let mut stack = rendered.stack;
        fill_secrets(&mut stack, secrets);
        self.enter_phase(d, DeploymentState::HealthChecking).await?;
        // Swarm updates the live services in place: past this point a cancel could not put
        // the old version back, so it is refused from here on, as at a switch.
        self.cancel_gate(d.id, DeploymentState::Switching)?;
        let keep = self.apply_companions(engine, &stack, &names, log).await?;
        self.apply_web(d, engine, &stack, &names, artifact, log)
            .await?;
        self.enter_phase(d, DeploymentState::Switching).await?;
        self.confirm_routed(engine, &d.app, &names, artifact.spec.listen_port(), log)
            .await;
        self.go_live(d).await?;
        self.remove_stale_services(engine, d, &keep, log).await;
        Ok(())
    }

    /// Creates or updates every companion service; their names.
    async fn apply_companions(
        &self,
        engine: &Engine,
        stack: &StackSpec,
        names: &StackNames,
        log: &DeployLog,
    ) -> Result<BTreeSet<String>, Failure> {
        let mut keep = BTreeSet::from([names.web.clone()]);
        for (name, service) in stack.services.iter().filter(|(n, _)| **n != names.web) {
            let created = engine.apply_service(name, service, false).await?;
            let verb = if created { "created" } else { "updated" };
            log.info(format!("companion service {name} {verb}")).await;
            keep.insert(name.clone());
        }
        Ok(keep)
    }

    /// Creates or updates the web service and follows Swarm until every task runs the new
    /// spec (healthy), or Swarm rolled it back.
    async fn apply_web(
        &self,
        d: &DeploymentRecord,
        engine: &Engine,
        stack: &StackSpec,
        names: &StackNames,
        artifact: &Artifact,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let web = stack
            .services
            .get(&names.web)
            .ok_or_else(|| Failure::msg("the rendered stack has no web service"))?;
        let before = engine.service_facts(&names.web).await?;
        // The same image and spec again would start no update: a restart, or a rollback
        // to what already runs, replaces the tasks.
        let same_image = before.as_ref().and_then(|b| b.image.as_deref()) == Some(&web.image);
        let force = d.trigger == Trigger::Restart || same_image;
        let created = engine.apply_service(&names.web, web, force).await?;
        log.info(format!(
            "swarm service {} {} ({} replica(s) of {}); Swarm is rolling it out",
            names.web,
            if created { "created" } else { "updated" },
            web.deploy.replicas,
            web.image
        ))
        .await;
        let deadline = Duration::from_secs(
            u64::from(artifact.spec.health.deadline_secs) * u64::from(web.deploy.replicas.max(1))
                + 30,
        );
        let outcome = match before {
            Some(before) => {
                self.follow_update(engine, &names.web, &web.image, &before, deadline, log)
                    .await
            }
            None => {
                self.follow_creation(engine, &names.web, web.deploy.replicas, deadline, log)
                    .await
            }
        };
        if outcome.is_err() && created {
            // Nothing served before: the service that never came up goes.
            if let Err(err) = engine.remove_service(&names.web).await {
                tracing::warn!(service = %names.web, %err, "cannot remove the failed service");
            }
        }
        outcome
    }

    /// Waits for Swarm's verdict on the update started after `before`.
    async fn follow_update(
        &self,
        engine: &Engine,
        name: &str,
        image: &str,
        before: &ServiceFacts,
        deadline: Duration,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let mut rolling_back: Option<String> = None;
        while started.elapsed() < deadline {
            tokio::time::sleep(POLL).await;
            let Some(now) = engine.service_facts(name).await? else {
                return Err(Failure::msg(format!("service {name} is gone")));
            };
            if now.update_started == before.update_started {
                continue;
            }
            match now.progress {
                UpdateProgress::Completed => {
                    log.info(format!("swarm: update of {name} completed")).await;
                    return Ok(());
                }
                UpdateProgress::RollingBack(why) if rolling_back.is_none() => {
                    log.info(format!("swarm: {why}; Swarm is rolling back"))
                        .await;
                    rolling_back = Some(why);
                }
                UpdateProgress::RolledBack(why) => {
                    let tasks = task_errors(engine, name, image).await;
                    let why = rolling_back.unwrap_or(why);
                    return Err(Failure::msg(format!(
                        "Swarm rolled the update back ({why}{tasks}); the previous version still serves"
                    )));
                }
                UpdateProgress::RollbackPaused(why) => {
                    return Err(Failure::msg(format!(
                        "Swarm's rollback of {name} paused ({why}): tasks of the new version may still run; see `docker service ps {name}` on the manager"
                    )));
                }
                UpdateProgress::Paused(why) => {
                    let undone = undo_update(engine, name, log).await;
                    return Err(Failure::msg(format!(
                        "Swarm paused the update of {name} ({why}); {undone}"
                    )));
                }
                _ => {}
            }
        }
        let undone = undo_update(engine, name, log).await;
        Err(Failure::msg(format!(
            "Swarm did not finish updating {name} within {} s; {undone}",
            deadline.as_secs()
        )))
    }

    /// Waits until a new service runs `replicas` healthy tasks.
    async fn follow_creation(
        &self,
        engine: &Engine,
        name: &str,
        replicas: u32,
        deadline: Duration,
        log: &DeployLog,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let mut failures = BTreeSet::new();
        while started.elapsed() < deadline {
            tokio::time::sleep(POLL).await;
            let tasks = engine.service_tasks(name).await?;
            let running = tasks
                .iter()
                .filter(|t| t.desired_state == "running" && t.state == "running")
                .count();
            for task in tasks
                .iter()
                .filter(|t| t.state == "failed" || t.state == "rejected")
            {
                if failures.insert(task.id.clone()) {
                    log.info(format!(
                        "swarm: task {} {}: {}",
                        task.id, task.state, task.message
                    ))
                    .await;
                }
            }
            if running >= replicas as usize {
                log.info(format!(
                    "swarm: {running} task(s) of {name} running and healthy"
                ))
                .await;
                return Ok(());
            }
        }
        Err(Failure::msg(format!(
            "service {name} did not get {replicas} healthy task(s) within {} s ({} task(s) failed)",
            deadline.as_secs(),
            failures.len()
        )))
    }

    /// Waits (bounded) until the proxy's swarm provider lists exactly the running tasks; it
    /// is logged, not failed: Swarm has already switched.
    async fn confirm_routed(
        &self,
        engine: &Engine,
        app: &AppName,
        names: &StackNames,
        port: u16,
        log: &DeployLog,
    ) {
        let service = format!("{}@swarm", self.target().names().app(app).traefik_service());
        let started = Instant::now();
        while started.elapsed() < PROXY_CONFIRM {
            let expected: BTreeSet<String> = match engine.service_tasks(&names.web).await {
                Ok(tasks) => tasks
                    .iter()
                    .filter(|t| t.desired_state == "running" && t.state == "running")
                    .flat_map(|t| t.addresses.iter().map(|a| format!("http://{a}:{port}")))
                    .collect(),
                Err(_) => BTreeSet::new(),
            };
            let served: Option<BTreeSet<String>> = self
                .target()
                .served_urls(&service)
                .await
                .map(|urls| urls.into_iter().collect());
            if !expected.is_empty() && served.as_ref() == Some(&expected) {
                log.info(format!(
                    "the proxy routes to {} task(s): {}",
                    expected.len(),
                    expected.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
                .await;
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        log.info(format!(
            "warning: the proxy did not confirm routing to the new tasks of {} within {} s",
            names.web,
            PROXY_CONFIRM.as_secs()
        ))
        .await;
    }

    /// Removes the app's services this release no longer has (a companion dropped).
    async fn remove_stale_services(
        &self,
        engine: &Engine,
        d: &DeploymentRecord,
        keep: &BTreeSet<String>,
        log: &DeployLog,
    ) {
        let Ok(services) = engine.owned_services(Some(d.app.as_str())).await else {
            return;
        };
        for service in services.iter().filter(|s| !keep.contains(*s)) {
            match engine.remove_service(service).await {
                Ok(()) => {
                    log.info(format!(
                        "service {service} removed (no longer in the release)"
                    ))
                    .await
                }
                Err(err) => tracing::warn!(%service, %err, "cannot remove a stale service"),
            }
        }
    }
}

/// Asks Swarm to put the previous spec back after an update that paused or ran out of
/// time (else Swarm could finish it later, or leave the versions mixed); what happened,
/// for the failure's message.
async fn undo_update(engine: &Engine, name: &str, log: &DeployLog) -> String {
    match engine.roll_back_service(name).await {
        Ok(()) => {
            log.info(format!("swarm: asked Swarm to roll {name} back to the previous version"))
                .await;
            "Swarm was asked to roll back to the previous version".to_string()
        }
        Err(err) => format!(
            "rolling it back failed too ({err}): tasks of the new version may run; run `docker service rollback {name}` on the manager"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_compose::render::{render_deployment, RenderInput};
    use capstan_compose::stack::render_stack;
    use capstan_core::{AppName, AppSpec};

    #[test]
    fn secret_placeholders_get_their_values_and_nothing_else_changes() {
        let app = AppName::parse("shop").unwrap();
        let spec: AppSpec =
            serde_json::from_str(r#"{"source":{"path":"/s"},"env":{"MODE":"${DB_PASSWORD}x"}}"#)
                .unwrap();
        let (compose, _) = render_deployment(&RenderInput {
            instance: "ns",
            app: &app,
            deployment: 1,
            image: "img:1",
            spec: &spec,
            secrets: &["DB_PASSWORD".to_string()],
            image_health: None,
        })
        .unwrap();
        let mut stack = render_stack(&StackInput {
            namespace: "ns",
            app: &app,
            spec: &spec,
            compose: &compose,
        })
        .stack;
        let secrets = [SecretValue {
            name: "DB_PASSWORD".into(),
            value: "hunter2".into(),
            build: false,
        }];
        fill_secrets(&mut stack, &secrets);
        let env = &stack.services["ns_shop"].environment;
        assert_eq!(env["DB_PASSWORD"], "hunter2");
        assert_eq!(env["MODE"], "${DB_PASSWORD}x");
    }
}
