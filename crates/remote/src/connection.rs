//! One SSH connection per server: public-key auth, the host key pinned to a fingerprint,
//! keepalive, a bound on every connect and channel open, and a reconnect with backoff
//! when the connection dropped. Callers share it (`Arc`) and open channels on it.

use crate::channel::ChannelIo;
use crate::keys::{fingerprint_of, parse_private};
use crate::watched::Watched;
use crate::RemoteError;
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The Docker engine's socket on a server unless configured otherwise.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The bound on connecting, opening a channel and noticing a dead connection.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How to reach one server.
#[derive(Clone)]
pub struct SshOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Capstan's private key, in OpenSSH PEM form, already decrypted.
    pub private_key_pem: String,
    /// The pinned host key (`SHA256:…`); `None` for a first contact, which only reports
    /// the server's fingerprint.
    pub host_key_fingerprint: Option<String>,
    /// Bounds connecting (TCP, handshake, auth), each channel open, and how long a dead
    /// connection goes unnoticed (keepalive).
    pub timeout: Duration,
    /// The remote engine's socket.
    pub docker_socket: String,
}

impl SshOptions {
    pub fn new(host: &str, port: u16, user: &str, private_key_pem: &str) -> Self {
        Self {
            host: host.to_string(),
            port,
            user: user.to_string(),
            private_key_pem: private_key_pem.to_string(),
            host_key_fingerprint: None,
            timeout: DEFAULT_TIMEOUT,
            docker_socket: DEFAULT_DOCKER_SOCKET.to_string(),
        }
    }

    /// `user@host:port`, as errors name the server.
    pub fn address(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("address", &self.address())
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .field("timeout", &self.timeout)
            .field("docker_socket", &self.docker_socket)
            .finish_non_exhaustive()
    }
}

/// What [`connect`] found.
#[derive(Debug)]
pub enum Contact {
    /// The host key matched the pinned fingerprint and the key was accepted.
    Connected(Arc<SshConnection>),
    /// No fingerprint was pinned: the server's, to be confirmed. Nothing was
    /// authenticated or sent over that connection.
    FirstContact { fingerprint: String },
}

/// Connects to a server: with a pinned fingerprint, returns the shared connection;
/// without one, only reports the server's fingerprint.
pub async fn connect(options: SshOptions) -> Result<Contact, RemoteError> {
    let key = Arc::new(parse_private(&options.private_key_pem)?);
    let connection = SshConnection::new(options, key);
    let Some(_) = connection.options.host_key_fingerprint else {
        let seen = Arc::new(Mutex::new(None));
        let attempt = connection.dial(Instant::now() + connection.options.timeout, &seen);
        return match attempt.await {
            Err(RemoteError::HostKeyChanged { found, .. }) => {
                Ok(Contact::FirstContact { fingerprint: found })
            }
            Err(err) => Err(err),
            Ok(_) => Err(connection.protocol("the server was accepted without a pinned key")),
        };
    };
    let connection = Arc::new(connection);
    connection.session().await?;
    Ok(Contact::Connected(connection))
}

/// The connection's state: the live session, if any, and the last failed reconnect
/// (until when callers get its error at once instead of trying again).
#[derive(Default)]
struct State {
    live: Option<Session>,
    failed: Option<(Instant, RemoteError)>,
    failures: u32,
}

/// A channel being opened on a session.
type OpenFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<russh::Channel<client::Msg>, russh::Error>> + Send>,
>;

/// A live session and the token cancelled when its TCP connection ends.
struct Session {
    handle: Arc<Handle<Pinning>>,
    lost: CancellationToken,
}

impl Session {
    fn is_alive(&self) -> bool {
        !self.lost.is_cancelled() && !self.handle.is_closed()
    }
}

/// The single SSH connection to one server, reconnected when it dropped.
pub struct SshConnection {
    options: SshOptions,
    key: Arc<PrivateKey>,
    config: Arc<client::Config>,
    state: tokio::sync::Mutex<State>,
    tcp_connections: AtomicU64,
    channels: AtomicU64,
}

impl SshConnection {
    fn new(options: SshOptions, key: Arc<PrivateKey>) -> Self {
        let keepalive = (options.timeout / 3).max(Duration::from_secs(1));
        let config = client::Config {
            keepalive_interval: Some(keepalive),
            keepalive_max: 2,
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        Self {
            options,
            key,
            config: Arc::new(config),
            state: tokio::sync::Mutex::new(State::default()),
            tcp_connections: AtomicU64::new(0),
            channels: AtomicU64::new(0),
        }
    }

    pub fn options(&self) -> &SshOptions {
        &self.options
    }

    /// `user@host:port`.
    pub fn address(&self) -> String {
        self.options.address()
    }

    /// How many TCP connections this handle has opened to the server (1 unless the
    /// connection dropped and was re-established).
    pub fn tcp_connections_opened(&self) -> u64 {
        self.tcp_connections.load(Ordering::Relaxed)
    }

    /// How many channels were opened over the connection (one per engine call).
    pub fn channels_opened(&self) -> u64 {
        self.channels.load(Ordering::Relaxed)
    }

    /// Whether the connection is up right now (it reconnects on the next use if not);
    /// `false` while a reconnect is under way.
    pub async fn is_connected(&self) -> bool {
        self.state
            .try_lock()
            .is_ok_and(|state| state.live.as_ref().is_some_and(Session::is_alive))
    }

    /// Closes the connection; the next use reconnects.
    pub async fn disconnect(&self) {
        if let Some(session) = self.state.lock().await.live.take() {
            let _ = session
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            session.lost.cancel();
        }
    }

    /// Opens a channel to the unix socket `path` on the server (`direct-streamlocal`),
    /// reconnecting first if the connection dropped; bounded by the timeout.
    pub async fn open_socket(&self, path: &str) -> Result<ChannelIo, RemoteError> {
        let socket = path.to_string();
        self.open_channel(path, move |handle| {
            Box::pin(async move { handle.channel_open_direct_streamlocal(socket).await })
        })
        .await
    }

    /// Opens a channel to TCP `host:port` as the server reaches it (`direct-tcpip`: the
    /// server connects, so a loopback address is the server's own), reconnecting first
    /// if the connection dropped; bounded by the timeout.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<ChannelIo, RemoteError> {
        let host_name = host.to_string();
        self.open_channel(&format!("{host}:{port}"), move |handle| {
            Box::pin(async move {
                handle
                    .channel_open_direct_tcpip(host_name, port.into(), "127.0.0.1", 0)
                    .await
            })
        })
        .await
    }

    /// Opens one channel with `open` on the live session; `target` names where it goes.
    async fn open_channel(
        &self,
        target: &str,
        open: impl FnOnce(Arc<Handle<Pinning>>) -> OpenFuture,
    ) -> Result<ChannelIo, RemoteError> {
        let (handle, lost) = self.session().await?;
        let opened = tokio::time::timeout(self.options.timeout, open(handle.clone()))
            .await
            .map_err(|_| self.timeout("opening a channel"))?;
        let channel = opened.map_err(|err| match err {
            _ if lost.is_cancelled() || handle.is_closed() => RemoteError::ConnectionLost {
                address: self.address(),
            },
            russh::Error::ChannelOpenFailure(reason) => RemoteError::Channel {
                address: self.address(),
                socket: target.to_string(),
                reason: format!("{reason:?}"),
            },
            other => self.protocol(&other.to_string()),
        })?;
        self.channels.fetch_add(1, Ordering::Relaxed);
        Ok(ChannelIo::new(channel, lost, self.address()))
    }

    /// The live session, reconnecting (with backoff, within the timeout) if it dropped.
    /// Every caller is bounded by its own timeout, waiting for another's reconnect
    /// included; after a failed reconnect, callers get its error at once until the
    /// backoff (doubling with each failure, up to the timeout) has passed.
    async fn session(&self) -> Result<(Arc<Handle<Pinning>>, CancellationToken), RemoteError> {
        let deadline = Instant::now() + self.options.timeout;
        let mut state = tokio::time::timeout_at(deadline, self.state.lock())
            .await
            .map_err(|_| self.timeout("waiting for a reconnect"))?;
        if let Some(session) = state.live.as_ref().filter(|s| s.is_alive()) {
            return Ok((session.handle.clone(), session.lost.clone()));
        }
        if let Some((until, err)) = &state.failed {
            if Instant::now() < *until {
                return Err(err.clone());
            }
        }
        match self.reconnect(deadline).await {
            Ok(session) => {
                let pair = (session.handle.clone(), session.lost.clone());
                *state = State {
                    live: Some(session),
                    ..State::default()
                };
                Ok(pair)
            }
            Err(err) => {
                state.failures = state.failures.saturating_add(1);
                let exponent = state.failures.min(8) - 1;
                let backoff =
                    (Duration::from_millis(500) * 2u32.pow(exponent)).min(self.options.timeout);
                state.failed = Some((Instant::now() + backoff, err.clone()));
                Err(err)
            }
        }
    }

    /// Attempts until one succeeds, the error is permanent, or `deadline` comes.
    async fn reconnect(&self, deadline: Instant) -> Result<Session, RemoteError> {
        let mut delay = Duration::from_millis(200);
        let seen = Arc::new(Mutex::new(None));
        loop {
            match self.dial(deadline, &seen).await {
                Ok(session) => return Ok(session),
                Err(err) if err.is_permanent() || Instant::now() + delay >= deadline => {
                    return Err(err)
                }
                Err(err) => {
                    tracing::warn!("SSH to {}: {err}; retrying in {delay:?}", self.address());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt: TCP, handshake with the host key checked, public-key auth; all before
    /// `deadline`.
    async fn dial(
        &self,
        deadline: Instant,
        seen: &Arc<Mutex<Option<String>>>,
    ) -> Result<Session, RemoteError> {
        let attempt = tokio::time::timeout_at(deadline, self.dial_unbounded(seen));
        attempt.await.map_err(|_| self.timeout("connecting"))?
    }

    async fn dial_unbounded(
        &self,
        seen: &Arc<Mutex<Option<String>>>,
    ) -> Result<Session, RemoteError> {
        let address = (self.options.host.as_str(), self.options.port);
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| self.unreachable(&e.to_string()))?;
        self.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let lost = CancellationToken::new();
        let handler = Pinning {
            expected: self.options.host_key_fingerprint.clone(),
            seen: seen.clone(),
        };
        let stream = Watched::new(tcp, lost.clone());
        let connected = client::connect_stream(self.config.clone(), stream, handler).await;
        let mut handle = connected.map_err(|err| self.handshake_error(err, seen))?;
        let key = PrivateKeyWithHashAlg::new(self.key.clone(), None);
        let auth = handle
            .authenticate_publickey(self.options.user.clone(), key)
            .await
            .map_err(|err| self.handshake_error(err, seen))?;
        if !auth.success() {
            return Err(RemoteError::AuthRefused {
                address: self.address(),
                user: self.options.user.clone(),
            });
        }
        Ok(Session {
            handle: Arc::new(handle),
            lost,
        })
    }

    fn handshake_error(&self, err: russh::Error, seen: &Mutex<Option<String>>) -> RemoteError {
        match err {
            russh::Error::UnknownKey => {
                let found = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
                RemoteError::HostKeyChanged {
                    address: self.address(),
                    expected: self
                        .options
                        .host_key_fingerprint
                        .clone()
                        .unwrap_or_default(),
                    found,
                }
            }
            russh::Error::IO(e) => self.unreachable(&e.to_string()),
            russh::Error::Disconnect | russh::Error::HUP => {
                self.unreachable("the server closed the connection")
            }
            other => self.protocol(&other.to_string()),
        }
    }

    fn timeout(&self, during: &'static str) -> RemoteError {
        RemoteError::Timeout {
            address: self.address(),
            during,
            seconds: self.options.timeout.as_secs(),
        }
    }

    fn unreachable(&self, reason: &str) -> RemoteError {
        RemoteError::Unreachable {
            address: self.address(),
            reason: reason.to_string(),
        }
    }

    fn protocol(&self, reason: &str) -> RemoteError {
        RemoteError::Protocol {
            address: self.address(),
            reason: reason.to_string(),
        }
    }
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection")
            .field("options", &self.options)
            .field("tcp_connections", &self.tcp_connections_opened())
            .field("channels", &self.channels_opened())
            .finish_non_exhaustive()
    }
}

/// Accepts the server only if its host key has the pinned fingerprint; records the
/// fingerprint it saw either way.
struct Pinning {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let found = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => fingerprint_of(key.key_data()),
            // A host certificate is pinned by the key it certifies.
            PublicKeyOrCertificate::Certificate(cert) => fingerprint_of(cert.public_key()),
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(found.clone());
        }
        Ok(self.expected.as_deref().map(str::trim) == Some(found.as_str()))
    }
}
