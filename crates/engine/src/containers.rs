//! App containers: creating one from a rendered compose service, watching its health,
//! reading its logs, stopping and removing it, and finding the ones this instance owns.

use crate::{is_not_found, Engine, EngineError};
use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, LogOutput, LogsOptions,
    NetworkingConfig, RemoveContainerOptions, StopContainerOptions,
};
use bollard::models::{
    ContainerStateStatusEnum, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, Mount,
    MountTypeEnum, RestartPolicy, RestartPolicyNameEnum,
};
use capstan_compose::model::{parse_duration, ComposeSpec, Service};
use futures::StreamExt;
use std::collections::HashMap;

fn nanos(duration: std::time::Duration) -> i64 {
    duration.as_nanos() as i64
}

/// What the engine says about a container's readiness right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Running; the health check has not passed yet.
    Starting,
    Healthy,
    /// Running, but the health check failed `retries` times in a row.
    Unhealthy,
    /// Not running (exited, dead, restarting) — the detail says how it ended.
    Down(String),
}

/// A health snapshot with the last probe output, for the deployment log.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub health: Health,
    pub last_probe: Option<String>,
    pub restart_count: i64,
}

/// A container this instance owns.
#[derive(Debug, Clone)]
pub struct OwnedContainer {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
}

impl Engine {
    /// Creates the spec's own (non-external) volumes with their labels if missing, then
    /// creates and starts its service.
    pub async fn run_spec(
        &self,
        spec: &ComposeSpec,
        service: &Service,
    ) -> Result<String, EngineError> {
        self.ensure_volumes(spec).await?;
        self.run_service(service).await
    }

    /// Creates the spec's own (non-external) volumes with their labels; existing ones are
    /// left as they are.
    pub async fn ensure_volumes(&self, spec: &ComposeSpec) -> Result<(), EngineError> {
        for volume in spec.volumes.values().filter(|v| !v.external) {
            self.docker()
                .create_volume(bollard::volume::CreateVolumeOptions {
                    name: volume.name.clone(),
                    labels: volume.labels.clone().into_iter().collect(),
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    /// Creates and starts the container described by a rendered compose `service`.
    /// An existing container of the same name (a leftover of a crashed attempt) is replaced.
    pub async fn run_service(&self, service: &Service) -> Result<String, EngineError> {
        self.remove_container(&service.container_name).await?;
        let config = self.container_config(service);
        let attachments = service.networks.attachments();
        self.create_and_start(
            &service.container_name,
            config,
            attachments.get(1..).unwrap_or_default(),
            &service.secret_files,
        )
        .await
    }

    /// Creates a container, writes its secret files into `/run/secrets` (through the API,
    /// before it starts: no host path is involved), connects its other networks and starts it.
    pub(crate) async fn create_and_start(
        &self,
        name: &str,
        config: Config<String>,
        extra_networks: &[(String, Vec<String>)],
        secret_files: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        let options = CreateContainerOptions {
            name: name.to_string(),
            platform: None,
        };
        let created = self
            .docker()
            .create_container(Some(options), config)
            .await?;
        if !secret_files.is_empty() {
            let archive = secrets_tar(secret_files)?;
            self.docker()
                .upload_to_container(
                    &created.id,
                    Some(bollard::container::UploadToContainerOptions {
                        path: "/".to_string(),
                        ..Default::default()
                    }),
                    archive.into(),
                )
                .await?;
        }
        for (network, aliases) in extra_networks {
            self.docker()
                .connect_network(
                    network,
                    bollard::network::ConnectNetworkOptions {
                        container: created.id.clone(),
                        endpoint_config: endpoint(aliases),
                    },
                )
                .await?;
        }
        self.docker()
            .start_container::<String>(&created.id, None)
            .await?;
        Ok(created.id)
    }

    /// The engine's container configuration for a rendered compose service.
    pub(crate) fn container_config(&self, service: &Service) -> Config<String> {
        // API 1.41 attaches one network at create; the others are connected before start.
        let attachments = service.networks.attachments();
        let mut endpoints = HashMap::new();
        if let Some((network, aliases)) = attachments.first() {
            endpoints.insert(network.clone(), endpoint(aliases));
        }
        let network_mode = attachments.first().map(|(n, _)| n.clone());
        let health = service.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: parse_duration(&h.interval).map(nanos),
            timeout: parse_duration(&h.timeout).map(nanos),
            retries: Some(h.retries as i64),
            start_period: parse_duration(&h.start_period).map(nanos),
            start_interval: None,
        });
        let mounts = service
            .volumes
            .iter()
            .map(|v| Mount {
                target: Some(v.target.clone()),
                source: Some(v.source.clone()),
                typ: Some(if v.kind == "bind" {
                    MountTypeEnum::BIND
                } else {
                    MountTypeEnum::VOLUME
                }),
                read_only: Some(v.read_only),
                ..Default::default()
            })
            .collect();
        let restart = match service.restart.as_str() {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "no" => RestartPolicyNameEnum::NO,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::UNLESS_STOPPED,
        };
        let limits = service
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .map(|r| &r.limits);
        let memory = limits
            .and_then(|l| l.memory.as_deref())
            .and_then(memory_bytes);
        let nano_cpus = limits
            .and_then(|l| l.cpus.as_deref())
            .and_then(|c| c.parse::<f64>().ok())
            .map(|cpus| (cpus * 1e9) as i64);
        Config {
            image: Some(service.image.clone()),
            cmd: service.command.clone(),
            entrypoint: service.entrypoint.clone(),
            env: Some(
                service
                    .environment
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(service.labels.clone().into_iter().collect()),
            healthcheck: health,
            stop_timeout: parse_duration(&service.stop_grace_period).map(|d| d.as_secs() as i64),
            stop_signal: service.stop_signal.clone(),
            working_dir: service.working_dir.clone(),
            user: service.user.clone(),
            host_config: Some(HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(restart),
                    maximum_retry_count: None,
                }),
                mounts: Some(mounts),
                memory,
                nano_cpus,
                network_mode,
                init: Some(service.init.unwrap_or(false)),
                extra_hosts: Some(service.extra_hosts.clone()).filter(|h| !h.is_empty()),
                runtime: service.runtime.clone(),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: endpoints,
            }),
            ..Default::default()
        }
    }

    /// The image reference a container was created from (`None` if it is gone).
    pub async fn container_image(&self, container: &str) -> Result<Option<String>, EngineError> {
        match self.docker().inspect_container(container, None).await {
            Ok(info) => Ok(info.config.and_then(|c| c.image)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The container's state and health check status; a missing container is `Down`.
    pub async fn health(&self, container: &str) -> Result<HealthReport, EngineError> {
        let info = match self.docker().inspect_container(container, None).await {
            Ok(info) => info,
            Err(err) if is_not_found(&err) => {
                return Ok(HealthReport {
                    health: Health::Down("the container no longer exists".into()),
                    last_probe: None,
                    restart_count: 0,
                })
            }
            Err(err) => return Err(err.into()),
        };
        let restart_count = info.restart_count.unwrap_or(0);
        let state = info.state.unwrap_or_default();
        let last_probe = state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.last())
            .map(|r| {
                format!(
                    "exit {}: {}",
                    r.exit_code.unwrap_or(-1),
                    r.output.as_deref().unwrap_or("").trim()
                )
            });
        let running = state.status == Some(ContainerStateStatusEnum::RUNNING);
        let health = if !running {
            let status = state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            Health::Down(format!(
                "container is {status} (exit code {}{})",
                state.exit_code.unwrap_or(-1),
                state
                    .error
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            ))
        } else {
            match state.health.and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
                // No health check configured: running is the best we know.
                Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) | None => {
                    Health::Healthy
                }
                Some(HealthStatusEnum::STARTING) => Health::Starting,
            }
        };
        Ok(HealthReport {
            health,
            last_probe,
            restart_count,
        })
    }

    /// The last `lines` lines of a container's stdout and stderr.
    pub async fn tail_logs(
        &self,
        container: &str,
        lines: usize,
    ) -> Result<Vec<String>, EngineError> {
        let options = LogsOptions::<String> {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker().logs(container, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message }) => {
                    let text = String::from_utf8_lossy(&message);
                    out.extend(text.lines().map(str::to_string));
                }
                Ok(_) => {}
                Err(err) if is_not_found(&err) => break,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(out)
    }

    /// Stops a container (SIGTERM, then SIGKILL after `grace_secs`); missing is fine.
    pub async fn stop_container(
        &self,
        container: &str,
        grace_secs: u32,
    ) -> Result<(), EngineError> {
        let options = StopContainerOptions {
            t: grace_secs as i64,
        };
        match self.docker().stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Force-removes a container and its anonymous volumes; missing is fine.
    pub async fn remove_container(&self, container: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .docker()
            .remove_container(container, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// App containers of this instance, optionally of one app only.
    pub async fn owned_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        self.owned_with_role(app, "app").await
    }

    /// The companion containers (a compose app's services other than the routed one).
    pub async fn companion_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        self.owned_with_role(app, "companion").await
    }

    /// The containers of one-off runs (`capstan.role=run`), of one app or all.
    pub async fn run_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        self.owned_with_role(app, capstan_compose::labels::ROLE_RUN)
            .await
    }

    async fn owned_with_role(
        &self,
        app: Option<&str>,
        role: &str,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        let mut label_filters = vec![
            capstan_compose::labels::filter(capstan_compose::labels::INSTANCE, self.instance()),
            capstan_compose::labels::filter(capstan_compose::labels::ROLE, role),
        ];
        if let Some(app) = app {
            label_filters.push(capstan_compose::labels::filter(
                capstan_compose::labels::APP,
                app,
            ));
        }
        let options = ListContainersOptions {
            all: true,
            filters: HashMap::from([("label".to_string(), label_filters)]),
            ..Default::default()
        };
        let list = self.docker().list_containers(Some(options)).await?;
        Ok(list.into_iter().map(OwnedContainer::from).collect())
    }
}

impl From<bollard::models::ContainerSummary> for OwnedContainer {
    fn from(c: bollard::models::ContainerSummary) -> Self {
        OwnedContainer {
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels: c.labels.unwrap_or_default(),
            running: c.state.as_deref() == Some("running"),
        }
    }
}

/// Compose's memory notation (`256M`, `1g`, `512mb`, `1048576`) in bytes.
pub fn memory_bytes(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = digits.trim().parse().ok()?;
    (value > 0.0).then_some((value * factor) as i64)
}

/// The tar that puts secret files at `run/secrets/<name>`, readable by any user of the
/// container (its app may not run as root), as compose does.
fn secrets_tar(files: &std::collections::BTreeMap<String, String>) -> Result<Vec<u8>, EngineError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    builder.append_data(&mut dir, "run/secrets/", std::io::empty())?;
    for (name, value) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(value.len() as u64);
        header.set_mode(0o444);
        header.set_mtime(0);
        builder.append_data(&mut header, format!("run/secrets/{name}"), value.as_bytes())?;
    }
    Ok(builder.into_inner()?)
}

fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
        ..Default::default()
    }
}
