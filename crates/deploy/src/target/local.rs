//! The Docker engine the daemon runs beside, as a [`Target`](super::Target): every call
//! goes to the engine, route files to the proxy's watched directory, and confirmation
//! to Traefik's API on the control network.

use super::engine_target::{delegate_to_engine, prepare_engine_host};
use super::{HostSetup, PrepareError, Router, Target};
use async_trait::async_trait;
use capstan_engine::proxy::{ProxyApi, ProxySpec, RouteFiles};
use capstan_engine::{Engine, EngineError};

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

delegate_to_engine!(LocalTarget);

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
        prepare_engine_host(&self.engine, self, setup, "").await
    }
}
