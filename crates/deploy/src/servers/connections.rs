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

/// One endpoint's connection, made by the first caller that needs it while the others
/// wait for it (and only for it: other servers are never held up by a slow one).
type Slot = Arc<tokio::sync::OnceCell<Arc<SshConnection>>>;

/// The open connections, by endpoint. The map's lock is never held across an await.
#[derive(Default)]
pub(crate) struct Connections {
    open: std::sync::Mutex<HashMap<Endpoint, Slot>>,
}

impl Connections {
    fn slot(&self, endpoint: Endpoint) -> Slot {
        let mut open = self.open.lock().expect("connections lock");
        open.entry(endpoint).or_default().clone()
    }

    /// Takes the server's connections out of the map.
    fn take(&self, server: &ServerName) -> Vec<Slot> {
        let mut open = self.open.lock().expect("connections lock");
        let gone: Vec<Endpoint> = open
            .keys()
            .filter(|e| &e.server == server)
            .cloned()
            .collect();
        gone.iter()
            .filter_map(|endpoint| open.remove(endpoint))
            .collect()
    }
}

/// How long closing a removed server's connection may take.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
        options.timeout = self.settings().ssh_timeout;
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
        options.host_key_fingerprint = Some(fingerprint);
        let slot = self.inner.connections.slot(endpoint);
        let connection = slot
            .get_or_try_init(|| async {
                let address = options.address();
                match capstan_remote::connect(options).await? {
                    Contact::Connected(connection) => Ok(connection),
                    Contact::FirstContact { fingerprint } => Err(ConnectError::Unpinned {
                        address,
                        fingerprint,
                    }),
                }
            })
            .await?;
        Ok(connection.clone())
    }

    /// Closes and forgets the connections to a server (it was removed).
    pub(crate) async fn drop_connections(&self, server: &ServerName) {
        for slot in self.inner.connections.take(server) {
            if let Some(connection) = slot.get() {
                let closed = tokio::time::timeout(DISCONNECT_TIMEOUT, connection.disconnect());
                if closed.await.is_err() {
                    tracing::warn!(server = %server, "the SSH connection did not close in time");
                }
            }
        }
    }

    /// How many TCP connections the daemon opened to each server it holds one for.
    pub async fn ssh_connections_opened(&self) -> Vec<(ServerName, u64)> {
        let open = self
            .inner
            .connections
            .open
            .lock()
            .expect("connections lock");
        open.iter()
            .filter_map(|(e, slot)| Some((e.server.clone(), slot.get()?.tcp_connections_opened())))
            .collect()
    }
}
