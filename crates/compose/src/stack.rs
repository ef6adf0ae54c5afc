//! A release's compose spec in the form `docker stack deploy` accepts, for a swarm server:
//! each service (the web one and every companion) with a `deploy:` section (replicas,
//! `update_config`/`rollback_config` gated by the health check, restart policy, and for the
//! web service the labels Traefik's swarm provider reads), on the app's external overlay
//! network. Also the update order (`start-first` unless the service writes to a volume two
//! tasks cannot share) and why. Pure: the engine's swarm calls apply what this renders.

use crate::model::{ComposeSpec, ExternalRef, Healthcheck, Resources, Service, VolumeMount};
use capstan_core::{AppName, AppSpec, InstanceNames};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A stack: services, and the external network and volumes they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackSpec {
    pub services: BTreeMap<String, StackService>,
    #[serde(default)]
    pub networks: BTreeMap<String, ExternalRef>,
    #[serde(default)]
    pub volumes: BTreeMap<String, ExternalRef>,
}

/// One swarm service as a stack file writes it. The key in [`StackSpec::services`] is the
/// swarm service's name (`<namespace>_<app>`, companions `<namespace>_<app>_svc_<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackService {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Labels of the tasks' containers (never Capstan's own).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub stop_grace_period: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// The app's overlay network, with the compose service's name as DNS alias.
    pub networks: BTreeMap<String, StackNetwork>,
    pub deploy: StackDeploy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `deploy:` of a stack service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackDeploy {
    pub mode: String,
    pub replicas: u32,
    /// Labels of the service itself: what Traefik's swarm provider reads.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub update_config: UpdateConfig,
    pub rollback_config: UpdateConfig,
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// `update_config` / `rollback_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    pub parallelism: u32,
    pub delay: String,
    pub failure_action: String,
    /// How long each updated task is watched for a failure before the next.
    pub monitor: String,
    pub max_failure_ratio: f64,
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: String,
    pub delay: String,
}

/// In which order Swarm replaces a task during an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOrder {
    /// The new task starts (and turns healthy) before the old one stops: no gap.
    StartFirst,
    /// The old task stops first: for a service whose data two tasks must not share.
    StopFirst,
}

impl UpdateOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StartFirst => "start-first",
            UpdateOrder::StopFirst => "stop-first",
        }
    }
}

/// The update order of a service and, for `stop-first`, why (for the deployment's log).
pub fn update_order(service: &Service) -> (UpdateOrder, Option<String>) {
    let unshareable: Vec<&str> = service
        .volumes
        .iter()
        .filter(|m| !m.read_only && (m.kind == "volume" || m.kind == "bind"))
        .map(|m| m.target.as_str())
        .collect();
    if unshareable.is_empty() {
        return (UpdateOrder::StartFirst, None);
    }
    let why = format!(
        "stop-first: it writes to {} (a volume two tasks cannot share), so the old task stops before the new one starts (a short gap)",
        unshareable.join(", ")
    );
    (UpdateOrder::StopFirst, Some(why))
}

/// Seconds of a compose duration (`"2s"`, `"250ms"`, `"1m"`); 0 when unreadable.
fn secs(text: &str) -> f64 {
    crate::model::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The window Swarm watches each updated task for: as long as the health check needs to
/// call it unhealthy (its start period, then `retries` checks), at least 3 s.
pub fn monitor_secs(health: Option<&Healthcheck>) -> u64 {
    let window = health
        .map(|h| {
            secs(&h.start_period) + (secs(&h.interval) + secs(&h.timeout)) * f64::from(h.retries)
        })
        .unwrap_or(0.0);
    (window.ceil() as u64).max(3)
}

/// Names a swarm server gives an app's objects.
pub struct StackNames {
    /// The app's overlay network (attachable: the proxy container joins it).
    pub network: String,
    /// The web service.
    pub web: String,
    names: capstan_core::names::AppNames,
}

impl StackNames {
    pub fn new(namespace: &str, app: &AppName) -> Self {
        let names = InstanceNames::new(namespace).app(app);
        Self {
            network: names.network(),
            web: names.project(),
            names,
        }
    }

    /// The swarm service of a compose companion.
    pub fn companion(&self, service: &str) -> String {
        self.names.companion(service)
    }
}

/// The retry middleware every swarm app router goes through: a task that has just stopped
/// but is still in the proxy's list is retried on another one.
const RETRY_ATTEMPTS: &str = "3";

/// The labels of the web service Traefik's swarm provider reads: the app's routers (its
/// domains, HTTPS with the resolver when TLS is on), its port, the overlay network,
/// `lbswarm=false` (tasks addressed directly), an active health check that drops a stopped
/// task at once, and Capstan's ownership labels that the provider's constraint requires.
pub fn traefik_labels(
    namespace: &str,
    app: &AppName,
    spec: &AppSpec,
    network: &str,
) -> BTreeMap<String, String> {
    let names = InstanceNames::new(namespace).app(app);
    let service = names.traefik_service();
    let retry = format!("{}-retry", names.traefik_service());
    let mut labels = BTreeMap::new();
    let mut put = |k: String, v: String| {
        labels.insert(k, v);
    };
    put("traefik.enable".into(), "true".into());
    put("traefik.swarm.network".into(), network.to_string());
    put("traefik.swarm.lbswarm".into(), "false".into());
    let lb = format!("traefik.http.services.{service}.loadbalancer");
    put(format!("{lb}.server.port"), spec.listen_port().to_string());
    put(format!("{lb}.passhostheader"), "true".into());
    put(format!("{lb}.healthcheck.path"), spec.health.path.clone());
    put(format!("{lb}.healthcheck.interval"), "1s".into());
    put(format!("{lb}.healthcheck.timeout"), "1s".into());
    put(
        format!("traefik.http.middlewares.{retry}.retry.attempts"),
        RETRY_ATTEMPTS.into(),
    );
    let rule = spec
        .domains
        .iter()
        .map(|d| format!("Host(`{}`)", d.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(" || ");
    if rule.is_empty() {
        return labels;
    }
    let http = format!("traefik.http.routers.{}", names.http_router());
    put(format!("{http}.rule"), rule.clone());
    put(format!("{http}.entrypoints"), "web".into());
    put(format!("{http}.service"), service.clone());
    put(format!("{http}.middlewares"), retry.clone());
    if spec.tls {
        let https = format!("traefik.http.routers.{}", names.https_router());
        put(format!("{https}.rule"), rule);
        put(format!("{https}.entrypoints"), "websecure".into());
        put(format!("{https}.service"), service);
        put(format!("{https}.middlewares"), retry);
        put(
            format!("{https}.tls.certresolver"),
            crate::routes::CERT_RESOLVER.into(),
        );
    }
    labels
}

/// What a stack is rendered from: the release's rendered compose spec (the web service
/// under the app's name, companions beside it) and the settings it runs.
pub struct StackInput<'a> {
    pub namespace: &'a str,
    pub app: &'a AppName,
    pub spec: &'a AppSpec,
    pub compose: &'a ComposeSpec,
}

/// The stack of a release, and the update order chosen for each service (by swarm name)
/// with the reason when it is `stop-first`.
pub struct RenderedStack {
    pub stack: StackSpec,
    pub orders: BTreeMap<String, (UpdateOrder, Option<String>)>,
}

/// Renders the stack of a release. The probe volume and the app's own volumes keep their
/// engine names; the container-form network is replaced by the app's overlay network.
pub fn render_stack(input: &StackInput<'_>) -> RenderedStack {
    let names = StackNames::new(input.namespace, input.app);
    let mut services = BTreeMap::new();
    let mut orders = BTreeMap::new();
    for (key, service) in &input.compose.services {
        let web = key == input.app.as_str();
        let (swarm_name, alias, replicas) = if web {
            (names.web.clone(), key.clone(), input.spec.replicas.max(1))
        } else {
            let alias = service
                .labels
                .get(crate::labels::SERVICE)
                .cloned()
                .unwrap_or_else(|| key.clone());
            (names.companion(&alias), alias, 1)
        };
        let order = update_order(service);
        let mut deploy_labels = ownership_of(service);
        if web {
            deploy_labels.extend(traefik_labels(
                input.namespace,
                input.app,
                input.spec,
                &names.network,
            ));
        }
        let stack_service = stack_service(service, &names.network, alias, replicas, order.0);
        let mut stack_service = stack_service;
        stack_service.deploy.labels = deploy_labels;
        orders.insert(swarm_name.clone(), order);
        services.insert(swarm_name, stack_service);
    }
    let networks = BTreeMap::from([(
        names.network.clone(),
        ExternalRef {
            name: names.network.clone(),
            external: true,
            labels: BTreeMap::new(),
        },
    )]);
    RenderedStack {
        stack: StackSpec {
            services,
            networks,
            volumes: input.compose.volumes.clone(),
        },
        orders,
    }
}

/// Capstan's ownership labels of a container, as the service's own labels too.
fn ownership_of(service: &Service) -> BTreeMap<String, String> {
    service
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("capstan."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn stack_service(
    service: &Service,
    network: &str,
    alias: String,
    replicas: u32,
    order: UpdateOrder,
) -> StackService {
    let monitor = format!("{}s", monitor_secs(service.healthcheck.as_ref()));
    let update = |failure_action: &str| UpdateConfig {
        parallelism: 1,
        delay: "0s".into(),
        failure_action: failure_action.into(),
        monitor: monitor.clone(),
        max_failure_ratio: 0.0,
        order: order.as_str().into(),
    };
    StackService {
        image: service.image.clone(),
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        environment: service.environment.clone(),
        // Ownership is on the service (`deploy.labels`): the tasks' containers carry none
        // of Capstan's labels, so nothing that lists Capstan's containers (retirement,
        // recovery, cleanup) ever touches a container Swarm manages.
        labels: service
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("capstan."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        healthcheck: service.healthcheck.clone(),
        stop_grace_period: service.stop_grace_period.clone(),
        stop_signal: service.stop_signal.clone(),
        init: service.init,
        working_dir: service.working_dir.clone(),
        user: service.user.clone(),
        volumes: service.volumes.clone(),
        networks: BTreeMap::from([(
            network.to_string(),
            StackNetwork {
                aliases: vec![alias],
            },
        )]),
        deploy: StackDeploy {
            mode: "replicated".into(),
            replicas,
            labels: BTreeMap::new(),
            update_config: update("rollback"),
            rollback_config: update("pause"),
            restart_policy: RestartPolicy {
                condition: "any".into(),
                delay: "1s".into(),
            },
            resources: service.deploy.as_ref().and_then(|d| d.resources.clone()),
        },
    }
}

/// A swarm app's route file in maintenance: `text` (a rendered route file) without the
/// app's own routers, redirect and service (its service's labels route it); `None` when
/// no maintenance router is left (the app has no domain to route).
pub fn maintenance_only(
    text: &str,
    names: &capstan_core::names::AppNames,
) -> Result<Option<String>, serde_norway::Error> {
    let mut doc: serde_norway::Value = serde_norway::from_str(text)?;
    let Some(http) = doc
        .get_mut("http")
        .and_then(serde_norway::Value::as_mapping_mut)
    else {
        return Ok(None);
    };
    let drop = |section: &mut serde_norway::Value, keys: &[String]| {
        if let Some(map) = section.as_mapping_mut() {
            for key in keys {
                map.remove(key.as_str());
            }
        }
    };
    if let Some(routers) = http.get_mut("routers") {
        drop(routers, &[names.http_router(), names.https_router()]);
    }
    if let Some(middlewares) = http.get_mut("middlewares") {
        drop(middlewares, &[names.https_redirect()]);
    }
    if let Some(services) = http.get_mut("services") {
        drop(services, &[names.traefik_service()]);
    }
    let has_router = http
        .get("routers")
        .and_then(serde_norway::Value::as_mapping)
        .is_some_and(|r| r.contains_key(names.maintenance_router().as_str()));
    if !has_router {
        return Ok(None);
    }
    serde_norway::to_string(&doc).map(Some)
}

impl StackSpec {
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }
}

#[cfg(test)]
#[path = "stack_tests.rs"]
mod tests;
