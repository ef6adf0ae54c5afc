//! What a target that is one Docker [`Engine`] does the same whether the engine is the
//! local one or a server's over SSH: its runtime and images are the engine's calls as they
//! are (`delegate_to_engine!(Type)` implements [`Runtime`](super::Runtime) and
//! [`Images`](super::Images) for a type with `fn engine(&self) -> &Engine`), and a host is
//! prepared through the engine's API and the target's router ([`prepare_engine_host`]).

use super::prepare::PROXY_START;
use super::{HostSetup, PrepareError, Router};
use capstan_engine::Engine;
use std::time::Duration;

/// Implements `Runtime` and `Images` for `$target` by calling `self.engine()`.
macro_rules! delegate_to_engine {
    ($target:ty) => {
        #[::async_trait::async_trait]
        impl $crate::target::Runtime for $target {
            fn docker_engine(&self) -> Option<&::capstan_engine::Engine> {
                Some(self.engine())
            }

            fn names(&self) -> &::capstan_core::InstanceNames {
                self.engine().names()
            }

            async fn status(&self) -> Result<::capstan_engine::server::EngineStatus, ::capstan_engine::EngineError> {
                self.engine().status().await
            }

            async fn ensure_app_network(&self, app: &::capstan_core::AppName) -> Result<String, ::capstan_engine::EngineError> {
                self.engine().ensure_app_network(app).await
            }

            async fn remove_app_network(&self, app: &::capstan_core::AppName) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_app_network(app).await
            }

            async fn app_networks_by_app(&self) -> Result<Vec<(String, String)>, ::capstan_engine::EngineError> {
                self.engine().app_networks_by_app().await
            }

            async fn remove_network_named(&self, name: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_network_named(name).await
            }

            async fn ensure_volumes(&self, spec: &::capstan_compose::model::ComposeSpec) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().ensure_volumes(spec).await
            }

            async fn run_spec(&self, spec: &::capstan_compose::model::ComposeSpec, service: &::capstan_compose::model::Service) -> Result<String, ::capstan_engine::EngineError> {
                self.engine().run_spec(spec, service).await
            }

            async fn run_service(&self, service: &::capstan_compose::model::Service) -> Result<String, ::capstan_engine::EngineError> {
                self.engine().run_service(service).await
            }

            async fn run_task(
                &self,
                service: &::capstan_compose::model::Service,
                name: &str,
                argv: &[String],
                timeout: ::std::time::Duration,
                log: &::tokio::sync::mpsc::UnboundedSender<String>,
            ) -> Result<i64, ::capstan_engine::EngineError> {
                self.engine()
                    .run_task(service, name, argv, timeout, log)
                    .await
            }

            async fn exec(
                &self,
                container: &str,
                argv: &[String],
                timeout: ::std::time::Duration,
                log: &::tokio::sync::mpsc::UnboundedSender<String>,
            ) -> Result<i64, ::capstan_engine::EngineError> {
                self.engine().exec(container, argv, timeout, log).await
            }

            async fn health(&self, container: &str) -> Result<::capstan_engine::containers::HealthReport, ::capstan_engine::EngineError> {
                self.engine().health(container).await
            }

            async fn container_image(&self, container: &str) -> Result<Option<String>, ::capstan_engine::EngineError> {
                self.engine().container_image(container).await
            }

            async fn tail_logs(&self, container: &str, lines: usize) -> Result<Vec<String>, ::capstan_engine::EngineError> {
                self.engine().tail_logs(container, lines).await
            }

            fn output_lines(
                &self,
                container: &str,
                tail: usize,
                follow: bool,
            ) -> ::futures::stream::BoxStream<'static, Result<String, ::capstan_engine::EngineError>> {
                self.engine().output_lines(container, tail, follow)
            }

            async fn usage(&self, container: &str) -> Result<::capstan_engine::usage::Usage, ::capstan_engine::EngineError> {
                self.engine().usage(container).await
            }

            async fn stop_container(&self, container: &str, grace_secs: u32) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().stop_container(container, grace_secs).await
            }

            async fn remove_container(&self, container: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_container(container).await
            }

            async fn owned_containers(
                &self,
                app: Option<&str>,
            ) -> Result<Vec<::capstan_engine::containers::OwnedContainer>, ::capstan_engine::EngineError> {
                self.engine().owned_containers(app).await
            }

            async fn companion_containers(
                &self,
                app: Option<&str>,
            ) -> Result<Vec<::capstan_engine::containers::OwnedContainer>, ::capstan_engine::EngineError> {
                self.engine().companion_containers(app).await
            }

            async fn run_containers(&self, app: Option<&str>) -> Result<Vec<::capstan_engine::containers::OwnedContainer>, ::capstan_engine::EngineError> {
                self.engine().run_containers(app).await
            }

            async fn stopped_containers(&self) -> Result<Vec<::capstan_engine::containers::OwnedContainer>, ::capstan_engine::EngineError> {
                self.engine().stopped_containers().await
            }

            async fn remove_stopped_container(&self, id: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_stopped_container(id).await
            }

            async fn data_root(&self) -> Result<Option<String>, ::capstan_engine::EngineError> {
                self.engine().data_root().await
            }

            async fn proxy_status(&self) -> Result<Option<::capstan_engine::proxy::ProxyStatus>, ::capstan_engine::EngineError> {
                self.engine().proxy_status().await
            }

            async fn join_proxy(&self, network: &str) -> Result<bool, ::capstan_engine::EngineError> {
                self.engine().join_proxy(network).await
            }
        }

        #[::async_trait::async_trait]
        impl $crate::target::Images for $target {
            fn builds_with_buildkit(&self) -> bool {
                self.engine().builds_with_buildkit()
            }

            async fn build_image(
                &self,
                request: ::capstan_engine::images::BuildRequest,
                log: &::tokio::sync::mpsc::UnboundedSender<String>,
            ) -> Result<String, ::capstan_engine::EngineError> {
                self.engine().build_image(request, log).await
            }

            async fn find_build(&self, app: &str, build_key: &str) -> Result<Option<String>, ::capstan_engine::EngineError> {
                self.engine().find_build(app, build_key).await
            }

            async fn image_id(&self, reference: &str) -> Result<Option<String>, ::capstan_engine::EngineError> {
                self.engine().image_id(reference).await
            }

            async fn image_facts(&self, reference: &str) -> Result<::capstan_engine::images::ImageFacts, ::capstan_engine::EngineError> {
                self.engine().image_facts(reference).await
            }

            async fn look_up_image(&self, reference: &str) -> Result<::capstan_engine::images::ImageLookup, ::capstan_engine::EngineError> {
                self.engine().look_up_image(reference).await
            }

            async fn pull_image(
                &self,
                reference: &str,
                log: &::tokio::sync::mpsc::UnboundedSender<String>,
            ) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().pull_image(reference, log).await
            }

            async fn tag_image(&self, image: &str, reference: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().tag_image(image, reference).await
            }

            async fn stage_images(&self, repository_glob: &str) -> Result<Vec<String>, ::capstan_engine::EngineError> {
                self.engine().stage_images(repository_glob).await
            }

            async fn app_images(&self, app: &str) -> Result<Vec<String>, ::capstan_engine::EngineError> {
                self.engine().app_images(app).await
            }

            async fn owned_images(&self, dangling: bool) -> Result<Vec<::capstan_engine::cleanup::OwnedImage>, ::capstan_engine::EngineError> {
                self.engine().owned_images(dangling).await
            }

            async fn remove_image(&self, reference: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_image(reference).await
            }

            async fn remove_image_id(&self, id: &str) -> Result<(), ::capstan_engine::EngineError> {
                self.engine().remove_image_id(id).await
            }
        }
    };
}

pub(crate) use delegate_to_engine;

/// Prepares `engine`'s host for `router` (the same host's proxy): the control network,
/// the probe volume, the maintenance page server and the proxy, all through the engine's
/// API, keeping what already matches; returns once the proxy answers. `place` names the
/// host in the error when it does not.
pub(crate) async fn prepare_engine_host(
    engine: &Engine,
    router: &(impl Router + ?Sized),
    setup: &HostSetup,
    place: &str,
) -> Result<(), PrepareError> {
    engine.ensure_control_network().await?;
    let image = &setup.proxy.image;
    if engine.image_id(image).await?.is_none() {
        return Err(PrepareError::MissingProxyImage(image.clone()));
    }
    engine.install_probe(&setup.probe, image).await?;
    engine.ensure_maintenance_pages(image, &setup.probe).await?;
    let address = router.ensure_proxy(&setup.proxy).await?;
    router.set_proxy_address(address);
    let started = std::time::Instant::now();
    while started.elapsed() < PROXY_START {
        if router.proxy_answers().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(PrepareError::ProxySilent {
        address: format!("{}{place}", router.proxy_address()),
        waited: PROXY_START,
    })
}
