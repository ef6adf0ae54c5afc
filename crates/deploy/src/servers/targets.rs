//! A server's target made on first use: the daemon's one connection to it, its engine in
//! the server's namespace, and the host prepared through the API (control network, probe,
//! page server, proxy on the server's ports) with what the local host was prepared with.
//! One server at a time is connected and prepared; other servers never wait for it.

use super::ConnectError;
use crate::target::{HostSetup, ProxyPorts, RemoteTarget, Target};
use crate::{ActionError, Deployer};
use capstan_compose::proxy::{render_static_config, ProxySettings};
use capstan_core::{ServerKind, ServerName, ServerSpec};
use std::collections::HashMap;
use std::sync::Arc;

/// The daemon's own proxy settings, rendered again for each server's namespace (the
/// proxy's API binds to an address named after it).
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    pub acme_email: Option<String>,
    pub acme_ca_server: Option<String>,
    pub throttle: String,
}

/// What remote hosts are prepared with, and one lock per server being prepared.
#[derive(Default)]
pub(crate) struct Preparing {
    setup: std::sync::RwLock<Option<(HostSetup, ProxyOptions)>>,
    servers: std::sync::Mutex<HashMap<ServerName, Arc<tokio::sync::Mutex<()>>>>,
}

impl Preparing {
    fn lock_for(&self, server: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut servers = self.servers.lock().expect("preparing lock");
        servers.entry(server.clone()).or_default().clone()
    }
}

impl From<ConnectError> for ActionError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Action(err) => err,
            ConnectError::Unpinned { .. } => ActionError::Conflict(err.to_string()),
            ConnectError::Ssh(ref ssh) if ssh.is_permanent() => {
                ActionError::Conflict(err.to_string())
            }
            _ => ActionError::Unavailable(err.to_string()),
        }
    }
}

impl Deployer {
    /// What every remote host is prepared with (the daemon's probe and proxy, as the
    /// local host was).
    pub fn set_host_setup(&self, setup: HostSetup, options: ProxyOptions) {
        *self.inner.preparing.setup.write().expect("host setup lock") = Some((setup, options));
    }

    /// The deployer of `server`, connecting to it and preparing it the first time.
    pub(crate) async fn connect_target(
        &self,
        server: &ServerName,
    ) -> Result<Deployer, ActionError> {
        if let Some(here) = self.on(server) {
            return Ok(here);
        }
        let record = self.store().server(server).await?;
        if !matches!(record.spec.kind, ServerKind::Ssh | ServerKind::Swarm) {
            return Err(ActionError::Invalid(format!(
                "server {server} is of kind {}: deploying to it is not available yet",
                record.spec.kind.as_str()
            )));
        }
        let lock = self.inner.preparing.lock_for(server);
        let _one_at_a_time = lock.lock().await;
        if let Some(here) = self.on(server) {
            return Ok(here);
        }
        let target = self.prepared_remote(&record.spec).await?;
        self.add_target(server.clone(), Arc::new(target));
        self.on(server)
            .ok_or_else(|| ActionError::Internal(format!("server {server} lost its target")))
    }

    /// What the local host was prepared with (the probe, the proxy), once it was.
    pub(crate) fn local_setup(&self) -> Result<HostSetup, ActionError> {
        let setup = self.inner.preparing.setup.read().expect("host setup lock");
        let (setup, _) = setup.as_ref().ok_or_else(|| {
            ActionError::Unavailable("this daemon has not set up its own host yet".into())
        })?;
        Ok(setup.clone())
    }

    /// What a server is prepared with: the local host's probe and proxy, the proxy's
    /// configuration rendered for the server's namespace.
    pub(crate) fn server_setup(&self, spec: &ServerSpec) -> Result<HostSetup, ActionError> {
        let setup = self
            .inner
            .preparing
            .setup
            .read()
            .expect("host setup lock")
            .clone();
        let (mut setup, options) = setup.ok_or_else(|| {
            ActionError::Unavailable("this daemon has not set up its own host yet".into())
        })?;
        let namespace = spec.namespace_or(self.target().instance());
        let render = match spec.kind {
            ServerKind::Swarm => capstan_compose::proxy::render_swarm_static_config,
            _ => render_static_config,
        };
        setup.proxy.static_config = render(&ProxySettings {
            instance: namespace,
            acme_email: options.acme_email.as_deref(),
            acme_ca_server: options.acme_ca_server.as_deref(),
            throttle: &options.throttle,
        })
        .map_err(|e| ActionError::Internal(format!("the proxy's configuration: {e}")))?;
        Ok(setup)
    }

    async fn prepared_remote(&self, spec: &ServerSpec) -> Result<RemoteTarget, ActionError> {
        let setup = self.server_setup(spec)?;
        let connection = self.server_connection(spec).await?;
        let engine = self.server_engine(spec).await?;
        // Nothing is prepared on a server that fails its preflight: the reason, at once.
        if let Some(failed) = super::checks::deploy_preflight(&engine).await {
            return Err(ActionError::Conflict(format!(
                "server {} fails its preflight ({}): {}",
                spec.name, failed.name, failed.detail
            )));
        }
        let ports = ProxyPorts {
            http: spec.proxy_http_port.unwrap_or(80),
            https: spec.proxy_https_port.unwrap_or(443),
        };
        let swarm = crate::swarm::swarm_host(spec, &engine).await?;
        let target = RemoteTarget::new(connection, engine, ports).with_swarm(swarm);
        target.prepare(&setup).await.map_err(|err| {
            ActionError::Unavailable(format!("cannot prepare server {}: {err}", spec.name))
        })?;
        tracing::info!(server = %spec.name, "server prepared: proxy up");
        Ok(target)
    }
}
