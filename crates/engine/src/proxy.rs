//! The proxy: making sure this instance's Traefik container runs with the rendered static
//! config, rewriting per-app route files atomically, and asking Traefik's API whether a
//! change is in force.

pub use crate::proxy_routes::RoutesSource;
use crate::setup::single_file_tar;
use crate::{is_not_found, Engine, EngineError};
use bollard::container::{Config, CreateContainerOptions, UploadToContainerOptions};
use bollard::models::{
    HostConfig, Mount, MountTypeEnum, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
pub use capstan_compose::proxy::API_PORT;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How this instance's proxy should run.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    pub image: String,
    pub static_config: String,
    pub http_port: u16,
    pub https_port: u16,
    /// Where the per-app route files live, mounted where the file provider watches.
    pub routes: RoutesSource,
    /// Where the file provider watches inside the container.
    pub routes_mount: String,
    /// PEM certificates the ACME client trusts besides the system's (an operator's own
    /// ACME server); put in the container and named by `LEGO_CA_CERTIFICATES`.
    pub acme_ca_certificates: Option<Vec<u8>>,
}

/// Where the proxy container holds [`ProxySpec::acme_ca_certificates`].
const ACME_CA_PATH: &str = "etc/traefik/acme-ca.pem";

impl ProxySpec {
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.image.as_str(),
            self.static_config.as_str(),
            &self.http_port.to_string(),
            &self.https_port.to_string(),
            &self.routes.fingerprint_part(),
            self.routes_mount.as_str(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        if let Some(pem) = &self.acme_ca_certificates {
            hash.update(b"acme-ca");
            hash.update(pem);
        }
        hex::encode(&hash.finalize()[..8])
    }
}

/// What one inspect of the proxy container says.
#[derive(Debug, Clone, Default)]
pub struct ProxyStatus {
    pub running: bool,
    /// The names of the networks it is connected to.
    pub networks: BTreeSet<String>,
    /// The ports it publishes on the host, as the engine reports them (none while it is
    /// stopped).
    pub ports: Vec<PublishedPort>,
}

/// A port of the proxy container published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The container's port and protocol, e.g. `80/tcp`.
    pub container_port: String,
    /// The host address it listens on (`0.0.0.0`, `127.0.0.1`, `::`).
    pub host_ip: String,
    pub host_port: u16,
}

impl ProxyStatus {
    /// The host port published for the container's `port` (TCP), on any address but
    /// loopback first.
    pub fn host_port(&self, port: u16) -> Option<u16> {
        let key = format!("{port}/tcp");
        let mut matching: Vec<&PublishedPort> = self
            .ports
            .iter()
            .filter(|p| p.container_port == key)
            .collect();
        matching.sort_by_key(|p| p.host_ip.starts_with("127.") || p.host_ip == "::1");
        matching.first().map(|p| p.host_port)
    }
}

fn published_ports(ports: Option<bollard::models::PortMap>) -> Vec<PublishedPort> {
    let mut out: Vec<PublishedPort> = ports
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(container_port, bindings)| {
            bindings
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |b| {
                    Some(PublishedPort {
                        container_port: container_port.clone(),
                        host_ip: b.host_ip.unwrap_or_default(),
                        host_port: b.host_port?.parse().ok()?,
                    })
                })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.host_port, &a.host_ip, &a.container_port).cmp(&(
            b.host_port,
            &b.host_ip,
            &b.container_port,
        ))
    });
    out
}

/// Container port → host bindings, as the engine takes them.
type PortBindings = HashMap<String, Option<Vec<PortBinding>>>;
/// The container's exposed ports, as the engine takes them.
type ExposedPorts = HashMap<String, HashMap<(), ()>>;

/// The proxy's port bindings and exposed ports: HTTP and HTTPS on every address at the
/// configured host ports, Traefik's API on loopback only, on a port the engine picks.
fn proxy_ports(spec: &ProxySpec) -> (PortBindings, ExposedPorts) {
    let api_port = format!("{API_PORT}/tcp");
    let binding = |ip: &str, port: u16| {
        Some(vec![PortBinding {
            host_ip: Some(ip.to_string()),
            host_port: Some(port.to_string()),
        }])
    };
    let exposed = ["80/tcp", "443/tcp", api_port.as_str()]
        .into_iter()
        .map(|p| (p.to_string(), HashMap::new()))
        .collect();
    let bindings = HashMap::from([
        ("80/tcp".to_string(), binding("0.0.0.0", spec.http_port)),
        ("443/tcp".to_string(), binding("0.0.0.0", spec.https_port)),
        (api_port, binding("127.0.0.1", 0)),
    ]);
    (bindings, exposed)
}

impl Engine {
    pub fn proxy_container_name(&self) -> String {
        self.names().proxy_container()
    }

    /// Whether the proxy container exists and runs.
    pub async fn proxy_running(&self) -> Result<bool, EngineError> {
        Ok(self.proxy_status().await?.is_some_and(|s| s.running))
    }

    /// The proxy container as one inspect sees it: whether it runs and the networks it
    /// is connected to; `None` when there is no proxy container.
    pub async fn proxy_status(&self) -> Result<Option<ProxyStatus>, EngineError> {
        match self
            .docker()
            .inspect_container(&self.proxy_container_name(), None)
            .await
        {
            Ok(info) => {
                let settings = info.network_settings.unwrap_or_default();
                Ok(Some(ProxyStatus {
                    running: info.state.and_then(|s| s.running) == Some(true),
                    networks: settings
                        .networks
                        .map(|n| n.into_keys().collect())
                        .unwrap_or_default(),
                    ports: published_ports(settings.ports),
                }))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Connects the proxy to a network (an app's), so it can reach the app's containers
    /// by name. Already connected, or no proxy yet (it joins every app network when it is
    /// created), is fine.
    pub async fn connect_proxy(&self, network: &str) -> Result<(), EngineError> {
        self.join_proxy(network).await.map(|_| ())
    }

    /// Like [`Engine::connect_proxy`], and says whether the proxy was connected just now
    /// (`false`: it already was, or the network or the proxy does not exist).
    pub async fn join_proxy(&self, network: &str) -> Result<bool, EngineError> {
        let options = bollard::network::ConnectNetworkOptions {
            container: self.proxy_container_name(),
            endpoint_config: bollard::models::EndpointSettings::default(),
        };
        match self.docker().connect_network(network, options).await {
            Ok(()) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            // "endpoint ... already exists in network"
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 403 | 409,
                ..
            }) => Ok(false),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("already exists") =>
            {
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Makes sure the proxy runs with exactly `spec`: an existing proxy with the same
    /// fingerprint is kept (apps keep serving across daemon restarts); a different one is
    /// replaced. Returns the base URL of Traefik's API as reachable from the daemon.
    pub async fn ensure_proxy(&self, spec: &ProxySpec) -> Result<String, EngineError> {
        self.ensure_proxy_with(spec, None).await
    }

    /// Like [`Engine::ensure_proxy`], with the engine's own socket (its path on the host,
    /// `engine_socket`) mounted at `/var/run/docker.sock` in the proxy: a swarm manager's
    /// proxy reads the services to route from it (Traefik's swarm provider).
    pub async fn ensure_proxy_with(
        &self,
        spec: &ProxySpec,
        engine_socket: Option<&str>,
    ) -> Result<String, EngineError> {
        let name = self.proxy_container_name();
        let mut fingerprint = spec.fingerprint();
        if let Some(socket) = engine_socket {
            fingerprint = format!("{fingerprint}-{}", socket_digest(socket));
        }
        match self.docker().inspect_container(&name, None).await {
            Ok(info) => {
                let same = info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(capstan_compose::labels::FINGERPRINT))
                    == Some(&fingerprint);
                let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
                if same {
                    for network in self.app_networks().await? {
                        self.connect_proxy(&network).await?;
                    }
                    if !running {
                        self.docker().start_container::<String>(&name, None).await?;
                    }
                    return self.proxy_api_url().await;
                }
                tracing::info!(%name, "proxy configuration changed; recreating the proxy");
                self.remove_container(&name).await?;
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
        if let RoutesSource::Volume(volume) = &spec.routes {
            self.create_owned_volume(volume, "proxy-routes").await?;
        }
        if self.image_id(&spec.image).await?.is_none() {
            return Err(EngineError::Proxy(format!(
                "proxy image {} is not on the engine and cannot be pulled here; build it \
                 with scripts/build-test-images.sh or pull it on a connected host",
                spec.image
            )));
        }
        let mut config = self.proxy_config(spec, &fingerprint);
        if let Some(socket) = engine_socket {
            if let Some(mounts) = config.host_config.as_mut().and_then(|h| h.mounts.as_mut()) {
                mounts.push(Mount {
                    source: Some(socket.to_string()),
                    target: Some("/var/run/docker.sock".to_string()),
                    typ: Some(MountTypeEnum::BIND),
                    read_only: Some(true),
                    ..Default::default()
                });
            }
        }
        self.create_proxy(&name, spec, config).await?;
        self.proxy_api_url().await
    }

    async fn create_proxy(
        &self,
        name: &str,
        spec: &ProxySpec,
        config: Config<String>,
    ) -> Result<(), EngineError> {
        self.docker()
            .create_container(
                Some(CreateContainerOptions {
                    name: name.to_string(),
                    platform: None,
                }),
                config,
            )
            .await?;
        self.upload_proxy_files(name, spec).await?;
        for network in self.app_networks().await? {
            self.connect_proxy(&network).await?;
        }
        self.docker().start_container::<String>(name, None).await?;
        Ok(())
    }

    /// The proxy container's definition: Traefik with its ports (the API on loopback
    /// only), the route files (read-only from a host directory), its data volume, on the control network.
    fn proxy_config(&self, spec: &ProxySpec, fingerprint: &str) -> Config<String> {
        let (port_bindings, exposed) = proxy_ports(spec);
        let mount = |source: String, target: &str, typ, read_only| Mount {
            source: Some(source),
            target: Some(target.to_string()),
            typ: Some(typ),
            read_only: Some(read_only),
            ..Default::default()
        };
        let labels = HashMap::from([
            (
                capstan_compose::labels::INSTANCE.to_string(),
                self.instance().to_string(),
            ),
            (
                capstan_compose::labels::ROLE.to_string(),
                "proxy".to_string(),
            ),
            (
                capstan_compose::labels::FINGERPRINT.to_string(),
                fingerprint.to_string(),
            ),
        ]);
        Config {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["--configfile=/etc/traefik/traefik.yml".to_string()]),
            env: spec
                .acme_ca_certificates
                .as_ref()
                .map(|_| vec![format!("LEGO_CA_CERTIFICATES=/{ACME_CA_PATH}")]),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                // The control network first: it carries the API alias and the published
                // ports; app networks are connected before the proxy starts.
                network_mode: Some(self.names().control_network()),
                mounts: Some(vec![
                    spec.routes.mount(&spec.routes_mount),
                    mount(
                        format!("{}-proxy-data", self.instance()),
                        "/data",
                        MountTypeEnum::VOLUME,
                        false,
                    ),
                ]),
                ..Default::default()
            }),
            networking_config: Some(bollard::container::NetworkingConfig {
                endpoints_config: HashMap::from([(
                    self.names().control_network(),
                    bollard::models::EndpointSettings {
                        aliases: Some(vec![self.names().proxy_api_alias()]),
                        ..Default::default()
                    },
                )]),
            }),
            ..Default::default()
        }
    }

    /// Writes Traefik's static configuration (and the ACME CA certificates, when set) into
    /// the created proxy container.
    async fn upload_proxy_files(&self, name: &str, spec: &ProxySpec) -> Result<(), EngineError> {
        let mut files = vec![("etc/traefik/traefik.yml", spec.static_config.as_bytes())];
        if let Some(pem) = &spec.acme_ca_certificates {
            files.push((ACME_CA_PATH, pem.as_slice()));
        }
        for (path, contents) in files {
            let archive = single_file_tar(path, contents, 0o644)?;
            self.docker()
                .upload_to_container(
                    name,
                    Some(UploadToContainerOptions {
                        path: "/".to_string(),
                        ..Default::default()
                    }),
                    archive.into(),
                )
                .await?;
        }
        Ok(())
    }

    /// Traefik's API base URL, from the loopback port the engine published.
    async fn proxy_api_url(&self) -> Result<String, EngineError> {
        let name = self.proxy_container_name();
        for _ in 0..50 {
            let info = self.docker().inspect_container(&name, None).await?;
            let port = info
                .network_settings
                .and_then(|n| n.ports)
                .and_then(|p| p.get(&format!("{API_PORT}/tcp")).cloned().flatten())
                .and_then(|b| b.into_iter().find_map(|b| b.host_port))
                .filter(|p| !p.is_empty());
            if let Some(port) = port {
                return Ok(format!("http://127.0.0.1:{port}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EngineError::Proxy(format!("{name} publishes no API port")))
    }
}

/// A short digest of the engine socket's path, part of the proxy's fingerprint.
fn socket_digest(socket: &str) -> String {
    hex::encode(&Sha256::digest(socket.as_bytes())[..4])
}

/// The directory of per-app route files the proxy's file provider watches.
#[derive(Debug, Clone)]
pub struct RouteFiles {
    dir: PathBuf,
    staging: PathBuf,
}

impl RouteFiles {
    /// `dir` is watched by the proxy; `staging` must be on the same filesystem but outside
    /// it, so a half-written file is never seen.
    pub fn new(dir: PathBuf, staging: PathBuf) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&staging)?;
        Ok(Self { dir, staging })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces `<name>.yml` atomically (write to staging, fsync, rename into place).
    pub fn write(&self, name: &str, content: &str) -> Result<(), EngineError> {
        use std::io::Write;
        let tmp = self.staging.join(format!("{name}.yml.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(format!("{name}.yml")))?;
        Ok(())
    }

    /// Removes `<name>.yml`; missing is fine.
    pub fn remove(&self, name: &str) -> Result<(), EngineError> {
        match std::fs::remove_file(self.dir.join(format!("{name}.yml"))) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    pub fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("{name}.yml"))).ok()
    }
}

/// A client of Traefik's API entrypoint. Clones share the address, which changes when the
/// proxy is recreated (its loopback port is picked by the engine).
#[derive(Debug, Clone)]
pub struct ProxyApi {
    base: std::sync::Arc<std::sync::RwLock<String>>,
    http: reqwest::Client,
}

impl ProxyApi {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            base: std::sync::Arc::new(std::sync::RwLock::new(base)),
            http,
        }
    }

    pub fn base(&self) -> String {
        self.base.read().expect("proxy address lock").clone()
    }

    /// Points this client (and its clones) at a new address.
    pub fn set_base(&self, base: String) {
        *self.base.write().expect("proxy address lock") = base;
    }

    /// Whether Traefik answers its ping.
    pub async fn is_up(&self) -> bool {
        matches!(self.http.get(format!("{}/ping", self.base())).send().await, Ok(r) if r.status().is_success())
    }

    async fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The server URLs of the load-balanced service `name` (e.g. `web@file`), as Traefik
    /// has them in force; `None` when Traefik does not know the service.
    pub async fn server_urls(&self, name: &str) -> Option<Vec<String>> {
        let value = self.get_json(&format!("/api/http/services/{name}")).await?;
        crate::proxy_tunnel::service_urls(&value)
    }

    /// Whether Traefik has the router `name` (e.g. `web_http@file`) enabled.
    pub async fn router_enabled(&self, name: &str) -> bool {
        self.get_json(&format!("/api/http/routers/{name}"))
            .await
            .is_some_and(|v| crate::proxy_tunnel::router_is_enabled(&v))
    }
}
