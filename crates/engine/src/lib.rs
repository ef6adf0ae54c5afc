//! Everything that talks to a Docker engine: connecting, building images, running and
//! health-watching containers, and bootstrapping the proxy and its route files. Only this
//! crate knows bollard.

pub mod app_logs;
pub mod buildkit;
pub mod cleanup;
pub mod containers;
pub mod dial;
pub mod host_facts;
pub mod images;
pub mod lines;
pub mod pages;
pub mod proxy;
pub mod proxy_certs;
pub mod proxy_routes;
pub mod proxy_tunnel;
pub mod purge;
pub mod registry;
pub mod server;
pub mod setup;
pub mod swarm;
pub mod tasks;
pub mod transfer;
mod transfer_archive;
pub mod usage;
pub mod volumes;

use bollard::Docker;

/// A failure while talking to the Docker engine or the proxy.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("image build failed: {0}")]
    Build(String),
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("image transfer: {0}")]
    Transfer(#[from] transfer::TransferError),
}

/// A handle on one Docker engine, scoped to one Capstan instance: every object it creates
/// carries `capstan.instance=<instance>` and a name prefixed with the instance.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    names: capstan_core::InstanceNames,
    address: buildkit::EngineAddress,
    /// Whether builds go through the engine's BuildKit (see [`Builder`]).
    buildkit: bool,
}

/// Which of the engine's builders Capstan's builds use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// BuildKit where the engine offers it (Linux, API 1.39 or later, a session opens),
    /// else the classic one.
    #[default]
    Auto,
    Buildkit,
    Classic,
}

impl Engine {
    /// Connects to `docker_host` (a `unix://` path, `tcp://` or `http://` address), or the
    /// local socket when `None`, and negotiates the API version the engine speaks.
    pub async fn connect(docker_host: Option<&str>, instance: &str) -> Result<Self, EngineError> {
        let target = docker_host
            .unwrap_or("unix:///var/run/docker.sock")
            .to_string();
        let connect_err = |source| EngineError::Connect {
            target: target.clone(),
            source,
        };
        let docker = match docker_host {
            None => Docker::connect_with_local_defaults(),
            Some(host) if host.starts_with("unix://") || host.starts_with('/') => {
                let path = host.trim_start_matches("unix://");
                Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(host) => Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION),
        }
        .map_err(connect_err)?;
        let address = buildkit::EngineAddress::parse(docker_host);
        Self::handshake(docker, address, instance, &target).await
    }

    /// Connects to an engine through streams `dialer` opens (one per HTTP connection,
    /// e.g. channels of one SSH connection to a remote engine's socket): bollard's calls,
    /// exec and attach upgrades and BuildKit sessions all go through it.
    pub async fn connect_over(dialer: dial::Dialer, instance: &str) -> Result<Self, EngineError> {
        let target = dialer.to_string();
        let docker =
            dial::docker_over(dialer.clone(), 120).map_err(|source| EngineError::Connect {
                target: target.clone(),
                source,
            })?;
        let address = buildkit::EngineAddress::Dialer(dialer);
        Self::handshake(docker, address, instance, &target).await
    }

    /// Negotiates the API version, checks the engine answers and whether it offers
    /// BuildKit.
    async fn handshake(
        docker: Docker,
        address: buildkit::EngineAddress,
        instance: &str,
        target: &str,
    ) -> Result<Self, EngineError> {
        let connect_err = |source| EngineError::Connect {
            target: target.to_string(),
            source,
        };
        let docker = docker.negotiate_version().await.map_err(connect_err)?;
        docker.ping().await.map_err(connect_err)?;
        let version = docker.version().await.map_err(connect_err)?;
        let buildkit = version.os.as_deref() == Some("linux")
            && version
                .api_version
                .as_deref()
                .and_then(|v| v.split_once('.'))
                .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
                .is_some_and(|api: (u32, u32)| api >= (1, 39));
        let buildkit =
            buildkit && buildkit::offers_sessions(&address, &api_version_of(&docker)).await;
        Ok(Self {
            docker,
            names: capstan_core::InstanceNames::new(instance),
            address,
            buildkit,
        })
    }

    /// Chooses the builder: `Auto` keeps what the engine offers; `Buildkit` on an engine
    /// without it is an error.
    pub fn use_builder(&mut self, builder: Builder) -> Result<(), EngineError> {
        match builder {
            Builder::Auto => {}
            Builder::Classic => self.buildkit = false,
            Builder::Buildkit if self.buildkit => {}
            Builder::Buildkit => {
                return Err(EngineError::Build(
                    "builder = \"buildkit\", but this engine does not offer BuildKit (it needs Linux, API 1.39 or later, and the /session endpoint)".into(),
                ))
            }
        }
        Ok(())
    }

    /// Whether builds go through BuildKit (else the classic builder).
    pub fn builds_with_buildkit(&self) -> bool {
        self.buildkit
    }

    pub(crate) fn address(&self) -> &buildkit::EngineAddress {
        &self.address
    }

    /// The API version negotiated with the engine, as `1.41`.
    pub(crate) fn api_version(&self) -> String {
        api_version_of(&self.docker)
    }

    /// A handle on the engine at the unix socket `socket` that does not connect until it
    /// is first used (and then fails like an engine that went away). For running the
    /// router in-process without an engine.
    pub fn unconnected(socket: &std::path::Path, instance: &str) -> Result<Self, EngineError> {
        let target = socket.to_string_lossy().into_owned();
        let docker = Docker::connect_with_unix(&target, 5, bollard::API_DEFAULT_VERSION)
            .map_err(|source| EngineError::Connect { target, source })?;
        Ok(Self {
            docker,
            names: capstan_core::InstanceNames::new(instance),
            address: buildkit::EngineAddress::Unix(socket.to_path_buf()),
            buildkit: false,
        })
    }

    pub fn instance(&self) -> &str {
        self.names.instance()
    }

    /// The names of every object this instance owns.
    pub fn names(&self) -> &capstan_core::InstanceNames {
        &self.names
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// The API version a client negotiated, as `1.41`.
fn api_version_of(docker: &Docker) -> String {
    let v = docker.client_version();
    format!("{}.{}", v.major_version, v.minor_version)
}

/// Whether a bollard error is the engine's 404.
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether a bollard error means the engine could not be reached at all (socket gone,
/// connection refused or reset, timeout), as opposed to the engine refusing a request.
pub fn is_unreachable(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::HyperResponseError { .. }
            // The client could not connect or lost the connection: a transport failure,
            // never an answer from the engine.
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}
