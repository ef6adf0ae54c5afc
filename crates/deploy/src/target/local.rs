//! The Docker engine the daemon runs beside, as a [`Target`](super::Target): every call
//! goes to the engine, route files to the proxy's watched directory, and confirmation
//! to Traefik's API on the control network.

use super::prepare::PROXY_START;
use super::{HostSetup, Images, PrepareError, Router, Runtime, Target};
use async_trait::async_trait;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_core::{AppName, InstanceNames};
use capstan_engine::cleanup::OwnedImage;
use capstan_engine::containers::{HealthReport, OwnedContainer};
use capstan_engine::images::{BuildRequest, ImageFacts, ImageLookup};
use capstan_engine::proxy::{ProxyApi, ProxySpec, ProxyStatus, RouteFiles};
use capstan_engine::server::EngineStatus;
use capstan_engine::usage::Usage;
use capstan_engine::{Engine, EngineError};
use futures::stream::BoxStream;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// The local engine, its proxy's route directory and its proxy's API.
#[derive(Clone)]
pub struct LocalTarget {
    engine: Engine,
    files: RouteFiles,
    api: ProxyApi,
}

impl LocalTarget {
    pub fn new(engine: Engine, files: RouteFiles, api: ProxyApi) -> Self {
        Self { engine, files, api }
    }

    /// The engine underneath (host set-up, certificates, purge).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

#[async_trait]
impl Runtime for LocalTarget {
    fn docker_engine(&self) -> Option<&Engine> {
        Some(&self.engine)
    }

    fn names(&self) -> &InstanceNames {
        self.engine.names()
    }

    async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.engine.status().await
    }

    async fn ensure_app_network(&self, app: &AppName) -> Result<String, EngineError> {
        self.engine.ensure_app_network(app).await
    }

    async fn remove_app_network(&self, app: &AppName) -> Result<(), EngineError> {
        self.engine.remove_app_network(app).await
    }

    async fn app_networks_by_app(&self) -> Result<Vec<(String, String)>, EngineError> {
        self.engine.app_networks_by_app().await
    }

    async fn remove_network_named(&self, name: &str) -> Result<(), EngineError> {
        self.engine.remove_network_named(name).await
    }

    async fn ensure_volumes(&self, spec: &ComposeSpec) -> Result<(), EngineError> {
        self.engine.ensure_volumes(spec).await
    }

    async fn run_spec(&self, spec: &ComposeSpec, service: &Service) -> Result<String, EngineError> {
        self.engine.run_spec(spec, service).await
    }

    async fn run_service(&self, service: &Service) -> Result<String, EngineError> {
        self.engine.run_service(service).await
    }

    async fn run_task(
        &self,
        service: &Service,
        name: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        self.engine
            .run_task(service, name, argv, timeout, log)
            .await
    }

    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        self.engine.exec(container, argv, timeout, log).await
    }

    async fn health(&self, container: &str) -> Result<HealthReport, EngineError> {
        self.engine.health(container).await
    }

    async fn container_image(&self, container: &str) -> Result<Option<String>, EngineError> {
        self.engine.container_image(container).await
    }

    async fn tail_logs(&self, container: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        self.engine.tail_logs(container, lines).await
    }

    fn output_lines(
        &self,
        container: &str,
        tail: usize,
        follow: bool,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        self.engine.output_lines(container, tail, follow)
    }

    async fn usage(&self, container: &str) -> Result<Usage, EngineError> {
        self.engine.usage(container).await
    }

    async fn stop_container(&self, container: &str, grace_secs: u32) -> Result<(), EngineError> {
        self.engine.stop_container(container, grace_secs).await
    }

    async fn remove_container(&self, container: &str) -> Result<(), EngineError> {
        self.engine.remove_container(container).await
    }

    async fn owned_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        self.engine.owned_containers(app).await
    }

    async fn companion_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        self.engine.companion_containers(app).await
    }

    async fn run_containers(&self, app: Option<&str>) -> Result<Vec<OwnedContainer>, EngineError> {
        self.engine.run_containers(app).await
    }

    async fn stopped_containers(&self) -> Result<Vec<OwnedContainer>, EngineError> {
        self.engine.stopped_containers().await
    }

    async fn remove_stopped_container(&self, id: &str) -> Result<(), EngineError> {
        self.engine.remove_stopped_container(id).await
    }

    async fn data_root(&self) -> Result<Option<String>, EngineError> {
        self.engine.data_root().await
    }

    async fn proxy_status(&self) -> Result<Option<ProxyStatus>, EngineError> {
        self.engine.proxy_status().await
    }

    async fn join_proxy(&self, network: &str) -> Result<bool, EngineError> {
        self.engine.join_proxy(network).await
    }
}

#[async_trait]
impl Images for LocalTarget {
    fn builds_with_buildkit(&self) -> bool {
        self.engine.builds_with_buildkit()
    }

    async fn build_image(
        &self,
        request: BuildRequest,
        log: &UnboundedSender<String>,
    ) -> Result<String, EngineError> {
        self.engine.build_image(request, log).await
    }

    async fn find_build(&self, app: &str, build_key: &str) -> Result<Option<String>, EngineError> {
        self.engine.find_build(app, build_key).await
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.engine.image_id(reference).await
    }

    async fn image_facts(&self, reference: &str) -> Result<ImageFacts, EngineError> {
        self.engine.image_facts(reference).await
    }

    async fn look_up_image(&self, reference: &str) -> Result<ImageLookup, EngineError> {
        self.engine.look_up_image(reference).await
    }

    async fn pull_image(
        &self,
        reference: &str,
        log: &UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        self.engine.pull_image(reference, log).await
    }

    async fn tag_image(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        self.engine.tag_image(image, reference).await
    }

    async fn stage_images(&self, repository_glob: &str) -> Result<Vec<String>, EngineError> {
        self.engine.stage_images(repository_glob).await
    }

    async fn app_images(&self, app: &str) -> Result<Vec<String>, EngineError> {
        self.engine.app_images(app).await
    }

    async fn owned_images(&self, dangling: bool) -> Result<Vec<OwnedImage>, EngineError> {
        self.engine.owned_images(dangling).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        self.engine.remove_image(reference).await
    }

    async fn remove_image_id(&self, id: &str) -> Result<(), EngineError> {
        self.engine.remove_image_id(id).await
    }
}

#[async_trait]
impl Router for LocalTarget {
    async fn write_route(&self, name: &str, text: &str) -> Result<(), EngineError> {
        self.files.write(name, text)
    }

    async fn remove_route(&self, name: &str) -> Result<(), EngineError> {
        self.files.remove(name)
    }

    async fn served_urls(&self, service: &str) -> Option<Vec<String>> {
        self.api.server_urls(service).await
    }

    async fn router_enabled(&self, router: &str) -> bool {
        self.api.router_enabled(router).await
    }

    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        self.engine.proxy_acme_store().await
    }

    async fn proxy_log(&self, lines: usize) -> Result<Vec<String>, EngineError> {
        self.engine.proxy_log_tail(lines).await
    }

    async fn proxy_answers(&self) -> bool {
        self.api.is_up().await
    }

    async fn ensure_proxy(&self, spec: &ProxySpec) -> Result<String, EngineError> {
        self.engine.ensure_proxy(spec).await
    }

    fn proxy_address(&self) -> String {
        self.api.base()
    }

    fn set_proxy_address(&self, address: String) {
        self.api.set_base(address)
    }
}

#[async_trait]
impl Target for LocalTarget {
    async fn prepare(&self, setup: &HostSetup) -> Result<(), PrepareError> {
        let engine = &self.engine;
        engine.ensure_control_network().await?;
        let image = &setup.proxy.image;
        if engine.image_id(image).await?.is_none() {
            return Err(PrepareError::MissingProxyImage(image.clone()));
        }
        engine.install_probe(&setup.probe, image).await?;
        engine.ensure_maintenance_pages(image, &setup.probe).await?;
        let address = engine.ensure_proxy(&setup.proxy).await?;
        self.api.set_base(address);
        let started = std::time::Instant::now();
        while started.elapsed() < PROXY_START {
            if self.api.is_up().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(PrepareError::ProxySilent {
            address: self.api.base(),
            waited: PROXY_START,
        })
    }
}
