//! A deployment's release: the port and health test it runs with, the compose spec
//! rendered from its settings (with a compose app's web service and companions), stored
//! before any container starts, and the container definition made from that spec (secret
//! values only there; Docker's own check of the test stretched to its runtime interval).
//! When the app names no port and its containers listen on another one, the release is
//! rendered and stored again with that port.

use crate::companions::{complete_compose_spec, with_secrets};
use crate::logs::DeployLog;
use crate::pipeline::{Artifact, Failure};
use crate::ports::choose_port;
use crate::Deployer;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_compose::render::{render_deployment, RenderInput, RUNTIME_HEALTH_INTERVAL_SECS};
use capstan_core::duration::parse_duration;
use capstan_store::{DeploymentRecord, NewRelease, SecretValue};
use std::time::Duration;

/// The port and health test a deployment settled on before rendering.
#[derive(Clone)]
pub(crate) struct Settled {
    /// The image's own `HEALTHCHECK` test (or the compose service's), used when the app's
    /// settings define no health check.
    pub image_health: Option<Vec<String>>,
    /// The port the containers start with when nothing named one.
    pub open_port: Option<u16>,
}

/// A release as stored, and the container it runs.
pub(crate) struct Rendered {
    pub compose: ComposeSpec,
    /// The app's service with the secrets' values, ready to be created.
    pub service: Service,
}

/// Docker runs the app's health test itself only every [`RUNTIME_HEALTH_INTERVAL_SECS`]
/// or more once the container is up: the daemon runs the same test at the app's own
/// interval while a deployment waits (the spec keeps the app's interval).
pub(crate) fn for_docker(service: &mut Service) {
    let Some(check) = service.healthcheck.as_mut() else {
        return;
    };
    let runtime = Duration::from_secs_f64(RUNTIME_HEALTH_INTERVAL_SECS);
    if parse_duration(&check.interval).is_none_or(|interval| interval < runtime) {
        check.interval = format!("{}s", runtime.as_secs());
    }
}

impl Deployer {
    /// Settles the port the deployment uses (logged with its source) and the image's own
    /// `HEALTHCHECK` test when the app's settings define no health check.
    pub(crate) async fn settle_port_and_health(
        &self,
        artifact: &mut Artifact,
        log: &DeployLog,
    ) -> Result<Settled, Failure> {
        let facts = self.target().image_facts(&artifact.image).await?;
        let choice = choose_port(artifact.declared_port.as_ref(), &facts.exposed_ports);
        log.info(choice.why).await;
        artifact.spec.port = Some(choice.port);
        let open_port = choice.open.then_some(choice.port);
        // The compose web service's own check (a stored template's is the probe Capstan
        // rendered, which is what runs anyway), then the image's HEALTHCHECK.
        let compose_check = artifact
            .web_template
            .as_ref()
            .and_then(|t| t.healthcheck.as_ref())
            .map(|h| h.test.clone())
            .filter(|test| {
                !test
                    .iter()
                    .any(|a| a == capstan_compose::render::PROBE_PATH)
            });
        let (test, source) = match (compose_check, facts.healthcheck) {
            (Some(test), _) => (test, "the compose service's healthcheck"),
            (None, Some(image)) => (image.test, "the image's HEALTHCHECK"),
            (None, None) => {
                return Ok(Settled {
                    image_health: None,
                    open_port,
                })
            }
        };
        let image_health = if artifact.spec.health != capstan_core::HealthSpec::default() {
            log.info(format!(
                "{source} is not used: the app's own health settings are"
            ))
            .await;
            None
        } else {
            log.info(format!(
                "health check: {source} ({}), since the app's settings define none",
                test.join(" ")
            ))
            .await;
            Some(test)
        };
        Ok(Settled {
            image_health,
            open_port,
        })
    }

    /// Renders the deployment's spec from `artifact`'s settings, stores it as the
    /// deployment's release, and returns it with the container definition to create.
    pub(crate) async fn record_release(
        &self,
        d: &DeploymentRecord,
        artifact: &Artifact,
        image_health: Option<&[String]>,
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> Result<Rendered, Failure> {
        let runtime_secrets: Vec<String> = secrets.iter().map(|s| s.name.clone()).collect();
        let (mut compose, mut text) = render_deployment(&RenderInput {
            instance: self.target().instance(),
            app: &d.app,
            deployment: d.id,
            image: &artifact.image,
            spec: &artifact.spec,
            secrets: &runtime_secrets,
            image_health,
        })?;
        if let Some(template) = &artifact.web_template {
            text = complete_compose_spec(
                self.target().instance(),
                &d.app,
                &mut compose,
                template,
                &artifact.companions,
                artifact.spec.env.contains_key("PORT"),
            )
            .map_err(Failure::msg)?;
        }
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
        log.info(format!(
            "release recorded (compose spec stored with the deployment; port {})",
            artifact.spec.listen_port()
        ))
        .await;
        let service = compose
            .services
            .get(d.app.as_str())
            .ok_or_else(|| Failure::msg("rendered spec has no service"))?;
        // The stored spec holds `${NAME}`; only the container gets the values.
        let mut service = with_secrets(service, secrets).map_err(Failure::msg)?;
        for secret in secrets {
            service
                .environment
                .insert(secret.name.clone(), secret.value.clone());
        }
        for_docker(&mut service);
        Ok(Rendered { compose, service })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_compose::model::Healthcheck;

    #[test]
    fn dockers_own_check_runs_at_the_runtime_interval_at_most_as_often() {
        let mut service: Service = serde_norway::from_str(
            "image: x\ncontainer_name: x\nrestart: \"no\"\nstop_grace_period: 1s\n",
        )
        .expect("a minimal service parses");
        let check = |interval: &str| Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: interval.into(),
            timeout: "2s".into(),
            retries: 3,
            start_period: "0s".into(),
        };
        for (given, run) in [
            ("1s", "30s"),
            ("250ms", "30s"),
            ("45s", "45s"),
            ("?", "30s"),
        ] {
            service.healthcheck = Some(check(given));
            for_docker(&mut service);
            assert_eq!(
                service.healthcheck.as_ref().unwrap().interval,
                run,
                "{given}"
            );
        }
        service.healthcheck = None;
        for_docker(&mut service);
        assert!(service.healthcheck.is_none());
    }
}
