//! The daemon's one SSH connection per server, opened on first use and kept (russh,
//! keepalive, reconnect with backoff inside `capstan-remote`): every engine call to the
//! server is a channel over it. A server's connection is keyed by where it points and the
//! host key it pins, so a server removed and added again with another address or key
//! never reuses the old one.

use crate::{ActionError, Deployer};
use capstan_core::{ServerName, ServerSpec};
use capstan_engine::Engine;
use capstan_remote::{Contact, RemoteError, SshConnection, SshOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a connection was opened for: a change to any of it is another connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Endpoint {
    server: ServerName,
    host: String,
    port: u16,
    user: String,
    fingerprint: String,
    socket: Option<String>,
}

/// The open connections, by endpoint.
#[derive(Default)]
pub(crate) struct Connections {
    open: tokio::sync::Mutex<HashMap<Endpoint, Arc<SshConnection>>>,
}

/// Why a server's engine could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No host key is pinned yet: the one the server showed, to be confirmed.
    #[error(
        "the host key of {address} is not confirmed yet: it shows {fingerprint}; check it \
         (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server) and pass it as \
         host_key_fingerprint"
    )]
    Unpinned {
        address: String,
        fingerprint: String,
    },
    #[error(transparent)]
    Ssh(#[from] RemoteError),
    #[error("the Docker engine behind {address} does not answer: {reason}")]
    Engine { address: String, reason: String },
    #[error("{0}")]
    Action(#[from] ActionError),
}

/// How long connecting and each call may take (`capstan-remote`'s bound).
pub const CONNECT_TIMEOUT: Duration = capstan_remote::DEFAULT_TIMEOUT;

impl Deployer {
    /// The engine of an SSH server, scoped to the server's namespace, through the
    /// daemon's one connection to it (opened now if there is none).
    pub async fn server_engine(&self, spec: &ServerSpec) -> Result<Engine, ConnectError> {
        let connection = self.server_connection(spec).await?;
        // A server's objects carry its namespace, by default this instance's name.
        let namespace = spec
            .namespace
            .as_deref()
            .unwrap_or(self.target().instance());
        connection
            .engine(namespace)
            .await
            .map_err(|err| ConnectError::Engine {
                address: connection.address(),
                reason: err.to_string(),
            })
    }

    /// The daemon's connection to an SSH server; a first contact (no pinned key) only
    /// reports the key the server shows.
    pub(crate) async fn server_connection(
        &self,
        spec: &ServerSpec,
    ) -> Result<Arc<SshConnection>, ConnectError> {
        let private = self
            .store()
            .server_private_key(&self.settings().secret_key, &spec.name)
            .await
            .map_err(ActionError::from)?
            .ok_or_else(|| ActionError::Invalid(format!("server {} has no key pair", spec.name)))?;
        let mut options = SshOptions::new(&spec.host, spec.port, &spec.user, private.expose());
        options.timeout = CONNECT_TIMEOUT;
        if let Some(socket) = &spec.docker_socket {
            options.docker_socket = socket.clone();
        }
        let Some(fingerprint) = spec.host_key_fingerprint.clone() else {
            return match capstan_remote::connect(options.clone()).await? {
                Contact::FirstContact { fingerprint } => Err(ConnectError::Unpinned {
                    address: options.address(),
                    fingerprint,
                }),
                Contact::Connected(connection) => Ok(connection),
            };
        };
        let endpoint = Endpoint {
            server: spec.name.clone(),
            host: spec.host.clone(),
            port: spec.port,
            user: spec.user.clone(),
            fingerprint: fingerprint.clone(),
            socket: spec.docker_socket.clone(),
        };
        let mut open = self.inner.connections.open.lock().await;
        if let Some(connection) = open.get(&endpoint) {
            return Ok(connection.clone());
        }
        options.host_key_fingerprint = Some(fingerprint);
        let address = options.address();
        let connection = match capstan_remote::connect(options).await? {
            Contact::Connected(connection) => connection,
            Contact::FirstContact { fingerprint } => {
                return Err(ConnectError::Unpinned {
                    address,
                    fingerprint,
                })
            }
        };
        open.insert(endpoint, connection.clone());
        Ok(connection)
    }

    /// Closes and forgets the connections to a server (it was removed).
    pub(crate) async fn drop_connections(&self, server: &ServerName) {
        let mut open = self.inner.connections.open.lock().await;
        let gone: Vec<Endpoint> = open
            .keys()
            .filter(|e| &e.server == server)
            .cloned()
            .collect();
        for endpoint in gone {
            if let Some(connection) = open.remove(&endpoint) {
                connection.disconnect().await;
            }
        }
    }

    /// How many TCP connections the daemon opened to each server it holds one for.
    pub async fn ssh_connections_opened(&self) -> Vec<(ServerName, u64)> {
        let open = self.inner.connections.open.lock().await;
        open.iter()
            .map(|(e, c)| (e.server.clone(), c.tcp_connections_opened()))
            .collect()
    }
}
