//! Compose apps: the routed ("web") service goes through the blue-green cutover like any
//! app; every other service is a companion (database, cache, worker) that runs once per
//! app as `<instance>-<app>-<service>` on the app's private network, reachable by its
//! service name. A deploy leaves a companion running when its definition is unchanged,
//! replaces it when it changed, and removes the ones the compose file no longer lists, so
//! a database is never run twice on the same volume.

use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::Deployer;
use capstan_build::compose_file::{UserCompose, UserService};
use capstan_compose::labels;
use capstan_compose::model::{
    ComposeSpec, DeploySection, ExternalRef, Healthcheck, NetworkAttachment, Networks,
    ResourceLimits, Resources, SecretMount, Service, VolumeMount,
};
use capstan_compose::render::app_volume_name;
use capstan_core::AppName;
use capstan_engine::containers::Health;
use capstan_store::SecretValue;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use capstan_compose::labels::{DEFINITION, SERVICE};
/// How long a companion with a health check may take to become healthy.
const COMPANION_DEADLINE: Duration = Duration::from_secs(120);

/// The private network of an app.
pub(crate) fn app_network(instance: &str, app: &AppName) -> String {
    capstan_core::InstanceNames::new(instance)
        .app(app)
        .network()
}

/// Compose's default health timings where the user's file leaves them out.
fn duration_or(value: &Option<String>, default: &str) -> String {
    value.clone().unwrap_or_else(|| default.to_string())
}

/// Volume mounts of a compose service: its named volumes, as the app's volumes.
fn mounts(instance: &str, app: &AppName, service: &UserService) -> Vec<VolumeMount> {
    service
        .volumes
        .iter()
        .map(|v| VolumeMount {
            kind: "volume".into(),
            source: app_volume_name(instance, app, &v.name),
            target: v.target.clone(),
            read_only: v.read_only,
        })
        .collect()
}

/// The typed service for a companion, with `image` as its image.
pub(crate) fn companion_service(
    instance: &str,
    app: &AppName,
    service: &UserService,
    image: &str,
) -> Service {
    let network = app_network(instance, app);
    Service {
        image: image.to_string(),
        container_name: capstan_core::InstanceNames::new(instance)
            .app(app)
            .companion(&service.key),
        restart: "unless-stopped".into(),
        stop_grace_period: service
            .stop_grace_period
            .clone()
            .unwrap_or_else(|| "10s".into()),
        init: service.init,
        environment: service.environment.clone(),
        labels: {
            let mut all = service.labels.clone();
            all.extend([
                (labels::INSTANCE.to_string(), instance.to_string()),
                (labels::APP.to_string(), app.to_string()),
                (labels::ROLE.to_string(), "companion".to_string()),
                (SERVICE.to_string(), service.name.clone()),
            ]);
            all
        },
        healthcheck: service.healthcheck.as_ref().map(healthcheck),
        deploy: limits_section(service),
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        volumes: mounts(instance, app, service),
        networks: Networks::Aliased(BTreeMap::from([(
            network,
            NetworkAttachment {
                aliases: vec![service.name.clone()],
            },
        )])),
        stop_signal: service.stop_signal.clone(),
        working_dir: service.working_dir.clone(),
        user: service.user.clone(),
        extra_hosts: service.host_entries(),
        runtime: service.runtime.clone(),
        secrets: secret_mounts(service),
        secret_files: BTreeMap::new(),
    }
}

/// A compose service's own health check, with compose's defaults.
fn healthcheck(h: &capstan_build::compose_file::ServiceHealth) -> Healthcheck {
    Healthcheck {
        test: h.test.clone(),
        interval: duration_or(&h.interval, "30s"),
        timeout: duration_or(&h.timeout, "30s"),
        retries: h.retries.unwrap_or(3),
        start_period: duration_or(&h.start_period, "0s"),
    }
}

/// A companion's `deploy.resources.limits` (its replicas stay one: it is not routed).
fn limits_section(service: &UserService) -> Option<DeploySection> {
    (service.memory.is_some() || service.cpus.is_some()).then(|| DeploySection {
        replicas: None,
        resources: Some(Resources {
            limits: ResourceLimits {
                memory: service.memory.clone(),
                cpus: service.cpus.clone(),
            },
        }),
    })
}

fn secret_mounts(service: &UserService) -> Vec<SecretMount> {
    service
        .secrets
        .iter()
        .map(|s| SecretMount {
            source: s.capstan_name.clone(),
            target: s.target.clone(),
        })
        .collect()
}

/// What the compose web service adds to the rendered web service: its command,
/// entrypoint, environment, named volumes, and the app network with its service name as
/// alias. Kept as a partial service so rollbacks can carry it from the stored spec.
pub(crate) fn web_template(instance: &str, app: &AppName, web: &UserService) -> Service {
    Service {
        image: String::new(),
        container_name: String::new(),
        restart: String::new(),
        stop_grace_period: String::new(),
        init: web.init,
        environment: web.environment.clone(),
        labels: web.labels.clone(),
        // Used for the app when its own health settings are the defaults (see the
        // pipeline); never copied onto the rendered service as it is.
        healthcheck: web.healthcheck.as_ref().map(healthcheck),
        deploy: None,
        command: web.command.clone(),
        entrypoint: web.entrypoint.clone(),
        volumes: mounts(instance, app, web),
        networks: Networks::Aliased(BTreeMap::from([(
            app_network(instance, app),
            NetworkAttachment {
                aliases: vec![web.name.clone()],
            },
        )])),
        stop_signal: web.stop_signal.clone(),
        working_dir: web.working_dir.clone(),
        user: web.user.clone(),
        extra_hosts: web.host_entries(),
        runtime: web.runtime.clone(),
        secrets: secret_mounts(web),
        secret_files: BTreeMap::new(),
    }
}

/// Applies a web template to the rendered web service: the app's own command, variables
/// and volumes win over the template's, and the template's `PORT` wins over the one Capstan
/// sets by default (`app_sets_port` says whether the app's own variables set it).
fn apply_web_template(template: &Service, service: &mut Service, app_sets_port: bool) {
    if service.command.is_none() {
        service.command = template.command.clone();
    }
    for (key, value) in &template.labels {
        service.labels.entry(key.clone()).or_insert(value.clone());
    }
    service.stop_signal = template.stop_signal.clone();
    service.working_dir = template.working_dir.clone();
    service.user = template.user.clone();
    service.extra_hosts = template.extra_hosts.clone();
    service.runtime = template.runtime.clone();
    service.secrets = template.secrets.clone();
    if template.init.is_some() {
        service.init = template.init;
    }
    if template.entrypoint.is_some() {
        service.entrypoint = template.entrypoint.clone();
    }
    for (key, value) in &template.environment {
        if key == "PORT" && !app_sets_port {
            service.environment.insert(key.clone(), value.clone());
            continue;
        }
        service
            .environment
            .entry(key.clone())
            .or_insert(value.clone());
    }
    for volume in &template.volumes {
        if !service.volumes.iter().any(|v| v.target == volume.target) {
            service.volumes.push(volume.clone());
        }
    }
    let mut networks: BTreeMap<String, NetworkAttachment> = service
        .networks
        .attachments()
        .into_iter()
        .map(|(name, aliases)| (name, NetworkAttachment { aliases }))
        .collect();
    for (name, aliases) in template.networks.attachments() {
        let attachment = networks.entry(name).or_default();
        for alias in aliases {
            if !attachment.aliases.contains(&alias) {
                attachment.aliases.push(alias);
            }
        }
    }
    service.networks = Networks::Aliased(networks);
}

/// The rendered web service of a stored compose-app spec, used as the template when the
/// release is run again.
pub(crate) fn stored_web_template(spec: &ComposeSpec) -> Option<Service> {
    // Only a compose app's web service has a DNS alias (its service name).
    let has_service_alias = |s: &Service| {
        s.networks
            .attachments()
            .iter()
            .any(|(_, aliases)| !aliases.is_empty())
    };
    spec.services
        .values()
        .find(|s| {
            s.labels.get(labels::ROLE).map(String::as_str) == Some("app") && has_service_alias(s)
        })
        .cloned()
}

/// Adds the companions, the app network and the app's volumes to a deployment's spec, so
/// the stored spec describes everything the app runs.
fn add_to_spec(instance: &str, app: &AppName, spec: &mut ComposeSpec, companions: &[Service]) {
    let network = app_network(instance, app);
    spec.networks.insert(
        network.clone(),
        ExternalRef {
            name: network,
            external: true,
            labels: BTreeMap::new(),
        },
    );
    for companion in companions {
        let name = companion
            .labels
            .get(SERVICE)
            .cloned()
            .unwrap_or_else(|| companion.container_name.clone());
        spec.services.insert(name, companion.clone());
    }
    let prefix = capstan_core::InstanceNames::new(instance)
        .app(app)
        .volume("");
    let volumes: Vec<String> = spec
        .services
        .values()
        .flat_map(|s| s.volumes.iter())
        .filter(|v| v.kind == "volume" && v.source.starts_with(&prefix))
        .map(|v| v.source.clone())
        .collect();
    for name in volumes {
        spec.volumes.entry(name.clone()).or_insert(ExternalRef {
            name,
            external: false,
            labels: labels::volume(instance, app.as_str()),
        });
    }
}

/// Completes a rendered single-service spec into a compose app's spec: the web template
/// applied to the app's service, the companions, network and volumes added. Returns the
/// YAML that is stored with the deployment.
pub(crate) fn complete_compose_spec(
    instance: &str,
    app: &AppName,
    spec: &mut ComposeSpec,
    template: &Service,
    companions: &[Service],
    app_sets_port: bool,
) -> Result<String, String> {
    let web = spec
        .services
        .get_mut(app.as_str())
        .ok_or("the rendered spec has no web service")?;
    apply_web_template(template, web, app_sets_port);
    add_to_spec(instance, app, spec, companions);
    spec.to_yaml()
        .map_err(|e| format!("cannot write the compose spec: {e}"))
}

/// The companions recorded in a stored spec (for rollbacks and restarts).
pub(crate) fn companions_in(spec: &ComposeSpec) -> Vec<Service> {
    spec.services
        .values()
        .filter(|s| s.labels.get(labels::ROLE).map(String::as_str) == Some("companion"))
        .cloned()
        .collect()
}

/// Puts the app's secrets into a service about to be created: each `${NAME}` in its
/// environment, command and entrypoint becomes the value (the stored spec keeps the
/// placeholder), and each secret it mounts as a file gets its contents. A mounted secret
/// the app does not have is an error that names it.
pub(crate) fn with_secrets(service: &Service, secrets: &[SecretValue]) -> Result<Service, String> {
    let mut service = service.clone();
    let fill = |text: &mut String| {
        if !text.contains("${") {
            return;
        }
        for secret in secrets {
            let placeholder = format!("${{{}}}", secret.name);
            if text.contains(&placeholder) {
                *text = text.replace(&placeholder, &secret.value);
            }
        }
    };
    service.environment.values_mut().for_each(fill);
    for argv in [&mut service.command, &mut service.entrypoint]
        .into_iter()
        .flatten()
    {
        argv.iter_mut().for_each(fill);
    }
    for mount in &service.secrets {
        let secret = secrets.iter().find(|s| s.name == mount.source).ok_or_else(|| {
            format!(
                "the compose file mounts the secret {} as {}/{}, but the app has no secret {}; set it with the secrets API",
                mount.source,
                capstan_compose::model::SECRETS_DIR,
                mount.target,
                mount.source
            )
        })?;
        service
            .secret_files
            .insert(mount.target.clone(), secret.value.clone());
    }
    Ok(service)
}

fn definition_hash(service: &Service) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(service).expect("a service always serializes");
    let files = serde_json::to_vec(&service.secret_files).expect("a map always serializes");
    let mut hash = Sha256::new();
    hash.update(json);
    hash.update(files);
    hex::encode(&hash.finalize()[..16])
}

impl Deployer {
    /// Starts or replaces the companions whose definition changed, in order, waiting for
    /// those with a health check to be healthy. Unchanged ones keep running untouched.
    pub(crate) async fn ensure_companions(
        &self,
        app: &AppName,
        spec: &ComposeSpec,
        companions: &[Service],
        secrets: &[SecretValue],
        log: &DeployLog,
    ) -> Result<(), Failure> {
        self.target().ensure_app_network(app).await?;
        self.target().ensure_volumes(spec).await?;
        let existing = self
            .target()
            .companion_containers(Some(app.as_str()))
            .await?;
        for companion in companions {
            let mut service = with_secrets(companion, secrets).map_err(Failure::msg)?;
            let hash = definition_hash(&service);
            service.labels.insert(DEFINITION.into(), hash.clone());
            let name = service.container_name.clone();
            let current = existing.iter().find(|c| c.name == name);
            if let Some(current) = current {
                if current.running && current.labels.get(DEFINITION) == Some(&hash) {
                    log.info(format!("companion {name} is unchanged; left running"))
                        .await;
                    continue;
                }
                log.info(format!("companion {name} changed; replacing it"))
                    .await;
                self.target().stop_container(&current.id, 10).await?;
                self.target().remove_container(&current.id).await?;
            }
            self.target().run_service(&service).await?;
            log.info(format!("started companion {name}")).await;
            if service.healthcheck.is_some() {
                log.info(format!(
                    "waiting for companion {name} to be healthy (up to {}s)",
                    COMPANION_DEADLINE.as_secs()
                ))
                .await;
                self.wait_companion_healthy(&name, log).await?;
            }
        }
        Ok(())
    }

    async fn wait_companion_healthy(&self, name: &str, log: &DeployLog) -> Result<(), Failure> {
        let deadline = Instant::now() + COMPANION_DEADLINE;
        loop {
            let report = self.target().health(name).await?;
            match report.health {
                Health::Healthy => {
                    log.info(format!("companion {name} is healthy")).await;
                    return Ok(());
                }
                Health::Unhealthy | Health::Down(_) => {
                    return Err(Failure::msg(format!(
                        "companion {name} is not healthy: {:?}; last result: {}",
                        report.health,
                        report.last_probe.unwrap_or_default()
                    )))
                }
                Health::Starting if Instant::now() >= deadline => {
                    return Err(Failure::msg(format!(
                        "companion {name} not healthy after {}s",
                        COMPANION_DEADLINE.as_secs()
                    )))
                }
                Health::Starting => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Removes the app's companions that are not in `keep` (container names).
    pub(crate) async fn remove_stale_companions(
        &self,
        app: &AppName,
        keep: &[String],
        log: &DeployLog,
    ) {
        let existing = match self.target().companion_containers(Some(app.as_str())).await {
            Ok(list) => list,
            Err(err) => {
                log.info(format!("cannot list companions: {err}")).await;
                return;
            }
        };
        for old in existing.into_iter().filter(|c| !keep.contains(&c.name)) {
            let stopped = self.target().stop_container(&old.id, 10).await;
            let removed = self.target().remove_container(&old.id).await;
            match stopped.and(removed) {
                Ok(()) => {
                    log.info(format!(
                        "removed companion {} (no longer in the compose file)",
                        old.name
                    ))
                    .await
                }
                Err(err) => log.info(format!("cannot remove {}: {err}", old.name)).await,
            }
        }
    }
}

/// Builds the companion services of a compose plan from each one's image.
pub(crate) fn companions_for(
    instance: &str,
    app: &AppName,
    compose: &UserCompose,
    web: &str,
    images: &BTreeMap<String, String>,
) -> Vec<Service> {
    compose
        .start_order()
        .into_iter()
        .filter(|s| s.name != web)
        .filter_map(|s| {
            images
                .get(&s.name)
                .map(|image| companion_service(instance, app, s, image))
        })
        .collect()
}
