//! A server reached over SSH, as a [`Target`](super::Target): every engine call is a
//! channel to the server's Docker socket over the one connection; nothing of the daemon's
//! filesystem or networks is there, so the proxy's route files live in a volume on the
//! server, written through the Docker API into the proxy container, and Traefik's API
//! (published on the server's loopback) is asked over `direct-tcpip` channels.

use super::engine_target::{delegate_to_engine, prepare_engine_host};
use super::{HostSetup, PrepareError, Router, SwarmHost, Target};
use async_trait::async_trait;
use capstan_engine::proxy::{ProxySpec, RoutesSource};
use capstan_engine::proxy_tunnel::TunneledProxyApi;
use capstan_engine::{Engine, EngineError};
use capstan_remote::SshConnection;
use std::sync::{Arc, RwLock};

/// The host ports a server's proxy publishes HTTP and HTTPS on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPorts {
    pub http: u16,
    pub https: u16,
}

/// A server's engine over SSH, its proxy's routes volume and its proxy's API.
pub struct RemoteTarget {
    engine: Engine,
    connection: Arc<SshConnection>,
    ports: ProxyPorts,
    /// Where the proxy's file provider watches, inside its container.
    routes_mount: RwLock<String>,
    /// Route writes one at a time (see `capstan_engine::proxy_routes`).
    route_writes: tokio::sync::Mutex<()>,
    api: RwLock<ProxyAddress>,
    /// Set when the server is a swarm manager.
    swarm: Option<SwarmHost>,
}

/// Traefik's API address as the server reaches it, and a client going there.
struct ProxyAddress {
    address: String,
    client: Option<TunneledProxyApi>,
}

impl RemoteTarget {
    /// `engine` is `connection`'s engine for this instance
    /// ([`SshConnection::engine`]); `ports` are the server's proxy ports.
    pub fn new(connection: Arc<SshConnection>, engine: Engine, ports: ProxyPorts) -> Self {
        Self {
            engine,
            connection,
            ports,
            routes_mount: RwLock::new(capstan_compose::proxy::DYNAMIC_DIR.to_string()),
            route_writes: tokio::sync::Mutex::new(()),
            api: RwLock::new(ProxyAddress {
                address: String::new(),
                client: None,
            }),
            swarm: None,
        }
    }

    /// The server as a swarm manager: its proxy gets the engine's socket (the swarm
    /// provider) and apps run as swarm services.
    pub fn with_swarm(mut self, swarm: Option<SwarmHost>) -> Self {
        self.swarm = swarm;
        self
    }

    /// The engine underneath (host set-up, certificates, purge).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The volume on the server holding the proxy's route files.
    pub fn routes_volume(&self) -> String {
        format!("{}-proxy-routes", self.engine.instance())
    }

    /// The daemon's proxy spec as this server runs it: the route files in the server's
    /// routes volume, HTTP and HTTPS on the server's ports.
    pub fn server_proxy_spec(&self, spec: &ProxySpec) -> ProxySpec {
        ProxySpec {
            routes: RoutesSource::Volume(self.routes_volume()),
            http_port: self.ports.http,
            https_port: self.ports.https,
            ..spec.clone()
        }
    }

    fn routes_mount(&self) -> String {
        self.routes_mount
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The API client for the address now, if it names a host and a port.
    fn api(&self) -> Option<TunneledProxyApi> {
        match self.api.read() {
            Ok(api) => api.client.clone(),
            Err(poisoned) => poisoned.into_inner().client.clone(),
        }
    }
}

/// `http://host:port` (what [`Engine::ensure_proxy`] returns) as host and port.
fn host_and_port(address: &str) -> Option<(String, u16)> {
    let rest = address.strip_prefix("http://").unwrap_or(address);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

delegate_to_engine!(RemoteTarget);

#[async_trait]
impl Router for RemoteTarget {
    async fn write_route(&self, name: &str, text: &str) -> Result<(), EngineError> {
        let dir = self.routes_mount();
        let _one_at_a_time = self.route_writes.lock().await;
        self.engine.write_proxy_route(&dir, name, text).await
    }

    async fn remove_route(&self, name: &str) -> Result<(), EngineError> {
        let dir = self.routes_mount();
        let _one_at_a_time = self.route_writes.lock().await;
        self.engine.clear_proxy_route(&dir, name).await
    }

    async fn served_urls(&self, service: &str) -> Option<Vec<String>> {
        self.api()?.server_urls(service).await
    }

    async fn router_enabled(&self, router: &str) -> bool {
        match self.api() {
            Some(api) => api.router_enabled(router).await,
            None => false,
        }
    }

    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        self.engine.proxy_acme_store().await
    }

    async fn proxy_log(&self, lines: usize) -> Result<Vec<String>, EngineError> {
        self.engine.proxy_log_tail(lines).await
    }

    async fn proxy_answers(&self) -> bool {
        match self.api() {
            Some(api) => api.is_up().await,
            None => false,
        }
    }

    /// Runs the proxy as the server does (see [`RemoteTarget::server_proxy_spec`]).
    async fn ensure_proxy(&self, spec: &ProxySpec) -> Result<String, EngineError> {
        let spec = self.server_proxy_spec(spec);
        let socket = self.swarm.as_ref().map(|s| s.socket.as_str());
        let address = self.engine.ensure_proxy_with(&spec, socket).await?;
        if let Ok(mut mount) = self.routes_mount.write() {
            mount.clone_from(&spec.routes_mount);
        }
        Ok(address)
    }

    fn proxy_address(&self) -> String {
        match self.api.read() {
            Ok(api) => api.address.clone(),
            Err(poisoned) => poisoned.into_inner().address.clone(),
        }
    }

    fn set_proxy_address(&self, address: String) {
        let client = host_and_port(&address)
            .map(|(host, port)| TunneledProxyApi::new(self.connection.tcp_dialer(&host, port)));
        let mut api = match self.api.write() {
            Ok(api) => api,
            Err(poisoned) => poisoned.into_inner(),
        };
        *api = ProxyAddress { address, client };
    }
}

#[async_trait]
impl Target for RemoteTarget {
    /// The server's control network, probe volume, page server and proxy, all through
    /// its engine's API; returns once the proxy's API answers over SSH.
    async fn prepare(&self, setup: &HostSetup) -> Result<(), PrepareError> {
        let place = format!(" on {}", self.connection.address());
        prepare_engine_host(&self.engine, self, setup, &place).await
    }

    fn swarm(&self) -> Option<&SwarmHost> {
        self.swarm.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn the_proxy_address_is_read_as_host_and_port() {
        assert_eq!(
            host_and_port("http://127.0.0.1:49153"),
            Some(("127.0.0.1".to_string(), 49153))
        );
        assert_eq!(
            host_and_port("http://[::1]:8080/"),
            Some(("::1".to_string(), 8080))
        );
        assert_eq!(host_and_port(""), None);
        assert_eq!(host_and_port("http://host"), None);
        assert_eq!(host_and_port("http://:80"), None);
    }
}
