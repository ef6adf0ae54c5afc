//! What the deploy layer asks of a host: its runtime (networks, containers, one-off tasks,
//! health, logs, the objects this instance owns), its images (build, tag, facts, remove)
//! and its router (an app's route file, what the proxy serves). The pipeline, cutover,
//! rollback, restart and recovery speak only to a [`Target`]; [`LocalTarget`] is the
//! Docker engine the daemon runs beside, and unit tests drive the same flow against a
//! fake that injects faults (`fake`, tests only).

mod engine_target;
mod local;
mod prepare;
mod remote;

#[cfg(test)]
mod events_tests;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod fanout_tests;
#[cfg(test)]
pub(crate) mod flow_tests;
#[cfg(test)]
mod queue_policy_tests;

pub use local::LocalTarget;
pub use prepare::{HostSetup, PrepareError};
pub use remote::{ProxyPorts, RemoteTarget};

use async_trait::async_trait;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_core::{AppName, InstanceNames};
use capstan_engine::cleanup::OwnedImage;
use capstan_engine::containers::{HealthReport, OwnedContainer};
use capstan_engine::images::{BuildRequest, ImageFacts, ImageLookup};
use capstan_engine::proxy::{ProxySpec, ProxyStatus};
use capstan_engine::server::EngineStatus;
use capstan_engine::usage::Usage;
use capstan_engine::EngineError;
use futures::stream::BoxStream;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// A host's container runtime, scoped to this instance's objects there.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The names of this instance's objects on the host.
    fn names(&self) -> &InstanceNames;

    fn instance(&self) -> &str {
        self.names().instance()
    }

    /// The engine's version, API and what it holds, for status pages.
    async fn status(&self) -> Result<EngineStatus, EngineError>;

    /// Creates the app's network if missing; its name.
    async fn ensure_app_network(&self, app: &AppName) -> Result<String, EngineError>;
    async fn remove_app_network(&self, app: &AppName) -> Result<(), EngineError>;
    /// Every app network of this instance, as (network, app) pairs.
    async fn app_networks_by_app(&self) -> Result<Vec<(String, String)>, EngineError>;
    async fn remove_network_named(&self, name: &str) -> Result<(), EngineError>;
    /// Creates the spec's own volumes if missing.
    async fn ensure_volumes(&self, spec: &ComposeSpec) -> Result<(), EngineError>;

    /// Creates the spec's volumes, then creates and starts its service; the container's id.
    async fn run_spec(&self, spec: &ComposeSpec, service: &Service) -> Result<String, EngineError>;
    /// Creates and starts one container; its id.
    async fn run_service(&self, service: &Service) -> Result<String, EngineError>;
    /// Runs `argv` in a one-off container `name` of `service`'s image; its exit status.
    async fn run_task(
        &self,
        service: &Service,
        name: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError>;
    /// Runs `argv` in a running container; its exit status.
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError>;

    async fn health(&self, container: &str) -> Result<HealthReport, EngineError>;
    /// The image a container runs, if the container exists.
    async fn container_image(&self, container: &str) -> Result<Option<String>, EngineError>;
    async fn tail_logs(&self, container: &str, lines: usize) -> Result<Vec<String>, EngineError>;
    /// A container's output as whole lines: the last `tail`, then new ones while `follow`.
    fn output_lines(
        &self,
        container: &str,
        tail: usize,
        follow: bool,
    ) -> BoxStream<'static, Result<String, EngineError>>;
    async fn usage(&self, container: &str) -> Result<Usage, EngineError>;
    async fn stop_container(&self, container: &str, grace_secs: u32) -> Result<(), EngineError>;
    async fn remove_container(&self, container: &str) -> Result<(), EngineError>;

    /// The web containers of this instance (of one app when given).
    async fn owned_containers(&self, app: Option<&str>)
        -> Result<Vec<OwnedContainer>, EngineError>;
    async fn companion_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError>;
    /// The one-off run containers of this instance.
    async fn run_containers(&self, app: Option<&str>) -> Result<Vec<OwnedContainer>, EngineError>;
    async fn stopped_containers(&self) -> Result<Vec<OwnedContainer>, EngineError>;
    async fn remove_stopped_container(&self, id: &str) -> Result<(), EngineError>;
    /// The directory the engine keeps its state in, for the disk check.
    async fn data_root(&self) -> Result<Option<String>, EngineError>;

    /// The proxy container's state, networks and ports (`None`: no proxy container).
    async fn proxy_status(&self) -> Result<Option<ProxyStatus>, EngineError>;
    /// Connects the proxy to an app network; whether it had to.
    async fn join_proxy(&self, network: &str) -> Result<bool, EngineError>;
    /// The Docker engine underneath, for a server's preflight checks (`servers::checks`).
    fn docker_engine(&self) -> Option<&capstan_engine::Engine> {
        None
    }
}

/// A host's images.
#[async_trait]
pub trait Images: Send + Sync {
    /// Whether builds go through BuildKit (else the classic builder).
    fn builds_with_buildkit(&self) -> bool;
    /// Builds an image, every output line sent to `log`; its id.
    async fn build_image(
        &self,
        request: BuildRequest,
        log: &UnboundedSender<String>,
    ) -> Result<String, EngineError>;
    /// An image of `app` built earlier from the same inputs.
    async fn find_build(&self, app: &str, build_key: &str) -> Result<Option<String>, EngineError>;
    /// The id of an image reference, if the host has it.
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError>;
    async fn image_facts(&self, reference: &str) -> Result<ImageFacts, EngineError>;
    async fn look_up_image(&self, reference: &str) -> Result<ImageLookup, EngineError>;
    async fn pull_image(
        &self,
        reference: &str,
        log: &UnboundedSender<String>,
    ) -> Result<(), EngineError>;
    async fn tag_image(&self, image: &str, reference: &str) -> Result<(), EngineError>;
    /// Build-stage images left under a repository pattern.
    async fn stage_images(&self, repository_glob: &str) -> Result<Vec<String>, EngineError>;
    /// The app's image references, newest first.
    async fn app_images(&self, app: &str) -> Result<Vec<String>, EngineError>;
    async fn owned_images(&self, dangling: bool) -> Result<Vec<OwnedImage>, EngineError>;
    async fn remove_image(&self, reference: &str) -> Result<(), EngineError>;
    async fn remove_image_id(&self, id: &str) -> Result<(), EngineError>;
}

/// A host's proxy as the deploy layer drives it: route files in, confirmation out.
#[async_trait]
pub trait Router: Send + Sync {
    /// Writes (atomically replaces) the route file `name`.
    async fn write_route(&self, name: &str, text: &str) -> Result<(), EngineError>;
    async fn remove_route(&self, name: &str) -> Result<(), EngineError>;
    /// The server URLs the proxy serves for a service now (`None`: it does not say).
    async fn served_urls(&self, service: &str) -> Option<Vec<String>>;
    /// Whether the proxy reports a router enabled.
    async fn router_enabled(&self, router: &str) -> bool;
    /// The proxy's ACME store as it wrote it (`None` before it has one).
    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError>;
    /// The proxy's last `lines` log lines, oldest first.
    async fn proxy_log(&self, lines: usize) -> Result<Vec<String>, EngineError>;
    /// Whether the proxy's API answers.
    async fn proxy_answers(&self) -> bool;
    /// Makes sure the proxy container runs with exactly `spec` (replacing one that does
    /// not); the address of its API.
    async fn ensure_proxy(&self, spec: &ProxySpec) -> Result<String, EngineError>;
    /// The address of the proxy's API.
    fn proxy_address(&self) -> String;
    /// Points the API client at a new address (the proxy was recreated).
    fn set_proxy_address(&self, address: String);
}

/// One host Capstan deploys to: its runtime, images and router together.
#[async_trait]
pub trait Target: Runtime + Images + Router {
    /// Makes the host ready for deployments (its own objects: control network, probe,
    /// page server, proxy), keeping what already matches; returns once the proxy answers.
    async fn prepare(&self, setup: &HostSetup) -> Result<(), PrepareError>;

    /// On a swarm manager, what the swarm flow needs (`crate::swarm`); `None` elsewhere,
    /// where the pipeline's own blue-green cutover runs.
    fn swarm(&self) -> Option<&SwarmHost> {
        None
    }
}

/// A server that is a swarm manager: apps run there as swarm services behind the proxy's
/// swarm provider, which reads the manager's engine through its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmHost {
    /// The engine's socket on the manager, mounted into the proxy.
    pub socket: String,
}
