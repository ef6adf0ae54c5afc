//! Rendering one deployment's compose spec from `compose-templates/app.yml.j2`.

use crate::{labels, model::ComposeSpec, render_template, RenderError};
use capstan_core::{AppName, AppSpec, InstanceNames};
use minijinja::context;

const APP_TEMPLATE: &str = include_str!("../../../compose-templates/app.yml.j2");

/// Where the static health probe is mounted inside every app container.
pub const PROBE_MOUNT: &str = "/.capstan";
/// The probe binary inside that mount.
pub const PROBE_PATH: &str = "/.capstan/capstan-probe";

/// The Docker names of one deployment, all derived from the instance, the app and the
/// deployment id by `capstan_core::names`, so they never clash across apps or daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentNames {
    pub project: String,
    pub container: String,
    /// The app's private network (the proxy is on it too).
    pub network: String,
    pub probe_volume: String,
    objects: capstan_core::names::DeploymentObjectNames,
}

impl DeploymentNames {
    pub fn new(instance: &str, app: &AppName, deployment: i64) -> Self {
        let daemon = InstanceNames::new(instance);
        let names = daemon.app(app);
        let objects = names.deployment(deployment);
        Self {
            project: names.project(),
            container: objects.container().to_string(),
            network: names.network(),
            probe_volume: daemon.probe_volume(),
            objects,
        }
    }

    /// The container names of a deployment with `replicas` containers.
    pub fn replica_containers(&self, replicas: u32) -> Vec<String> {
        self.objects.replicas(replicas)
    }

    /// The one-off container of the pre-deploy command.
    pub fn pre_deploy_container(&self) -> String {
        self.objects.pre_deploy()
    }
}

/// The engine name of an app's named volume.
pub fn app_volume_name(instance: &str, app: &AppName, volume: &str) -> String {
    InstanceNames::new(instance).app(app).volume(volume)
}

/// A compose duration: whole seconds as `"2s"`, anything finer in milliseconds.
fn duration(secs: f64) -> String {
    let millis = (secs * 1000.0).round() as u64;
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// What a deployment's spec is rendered from.
pub struct RenderInput<'a> {
    pub instance: &'a str,
    pub app: &'a AppName,
    pub deployment: i64,
    pub image: &'a str,
    pub spec: &'a AppSpec,
    /// Names of the app's runtime secrets. The stored spec holds `${NAME}` for each; the
    /// deployment puts the values into the container's environment only when it creates it.
    pub secrets: &'a [String],
    /// The image's own `HEALTHCHECK` test, used instead of Capstan's probe when the app's
    /// settings define no health check.
    pub image_health: Option<&'a [String]>,
}

/// Docker runs an app container's health check at least this far apart once it is up:
/// the daemon runs the same test itself, at the app's interval, while a deployment waits.
/// The spec keeps the app's interval; the deployment stretches Docker's copy of it when it
/// creates the container.
pub const RUNTIME_HEALTH_INTERVAL_SECS: f64 = 30.0;

/// Renders the compose spec for one deployment and reads it back into the typed model,
/// so a template that renders nonsense fails here and not at `docker create`.
pub fn render_deployment(input: &RenderInput<'_>) -> Result<(ComposeSpec, String), RenderError> {
    let names = DeploymentNames::new(input.instance, input.app, input.deployment);
    let spec = input.spec;
    let all_labels = labels::ownership(input.instance, input.app.as_str(), input.deployment);
    let health = &spec.health;
    let url = format!("http://127.0.0.1:{}{}", spec.listen_port(), health.path);
    let volumes: Vec<_> = spec
        .volumes
        .iter()
        .map(|v| {
            let (kind, source) = if v.is_host_path() {
                ("bind", v.source.clone())
            } else {
                (
                    "volume",
                    app_volume_name(input.instance, input.app, &v.source),
                )
            };
            context! {
                type => kind,
                source => source,
                target => v.target,
                read_only => v.read_only,
                labels => labels::volume(input.instance, input.app.as_str()),
            }
        })
        .collect();
    let mut limits = std::collections::BTreeMap::new();
    if let Some(memory) = spec.limits.memory_mb {
        limits.insert("memory", format!("{memory}M"));
    }
    if let Some(cpus) = spec.limits.cpus {
        limits.insert("cpus", format!("{cpus}"));
    }
    let mut environment = spec.env.clone();
    for name in input.secrets {
        environment.insert(name.clone(), format!("${{{name}}}"));
    }
    // Heroku's convention: the app learns its port from PORT, unless it sets PORT itself.
    environment
        .entry("PORT".to_string())
        .or_insert_with(|| spec.listen_port().to_string());
    let health_test = match input.image_health {
        Some(test) => test.to_vec(),
        None => vec![
            "CMD".to_string(),
            PROBE_PATH.to_string(),
            url,
            format!("{}", health.timeout_secs),
        ],
    };
    let ctx = context! {
        replicas => if spec.replicas > 1 { Some(spec.replicas) } else { None },
        volumes => volumes,
        limits => if limits.is_empty() { None } else { Some(limits) },
        project => names.project,
        service => input.app.as_str(),
        image => input.image,
        container_name => names.container,
        stop_grace_period => format!("{}s", spec.stop_grace_secs),
        init => spec.init,
        command => spec.command,
        environment => environment,
        labels => all_labels,
        health_test => health_test,
        health => context! {
            interval => duration(health.interval_secs),
            timeout => duration(health.timeout_secs),
            retries => health.retries,
            start_period => duration(health.start_period_secs),
        },
        // Keys equal names, so a service's `networks`/`volumes` entries are the real names.
        probe_volume_key => names.probe_volume.clone(),
        probe_volume => names.probe_volume,
        probe_mount => PROBE_MOUNT,
        network_key => names.network.clone(),
        network => names.network,
    };
    let text = render_template("app.yml.j2", APP_TEMPLATE, ctx)?;
    let parsed = ComposeSpec::from_yaml(&text).map_err(|source| RenderError::Yaml {
        name: "app.yml.j2",
        source,
    })?;
    Ok((parsed, text))
}
