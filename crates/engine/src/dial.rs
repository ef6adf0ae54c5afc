//! Reaching an engine through byte streams the caller opens (an SSH channel to a remote
//! engine's socket, say) instead of a local socket: a [`Dial`] opens one stream per HTTP
//! connection, and bollard's calls, BuildKit's `/session` and `/build` all run HTTP/1
//! over it, upgrades (exec, attach, sessions) included.

use bollard::{BollardRequest, Docker};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::Response;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to the engine's API.
pub trait EngineStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> EngineStream for T {}

/// What [`Dial::dial`] returns.
pub type DialFuture = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn EngineStream>>> + Send>>;

/// Opens a new byte stream to the engine's API for each HTTP connection. A failure that
/// is not plain IO should travel as the `io::Error`'s inner error so callers can
/// downcast it.
pub trait Dial: Send + Sync + 'static {
    /// Opens one stream.
    fn dial(&self) -> DialFuture;
    /// Where the streams go, for messages (`ssh://user@host:22/var/run/docker.sock`).
    fn describe(&self) -> String;
}

/// A shared [`Dial`], cloneable and printable.
#[derive(Clone)]
pub struct Dialer(pub Arc<dyn Dial>);

impl Dialer {
    pub(crate) async fn open(&self) -> std::io::Result<Box<dyn EngineStream>> {
        self.0.dial().await
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Dialer").field(&self.0.describe()).finish()
    }
}

impl std::fmt::Display for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.describe())
    }
}

/// A bollard client whose every request runs on a new stream from `dialer` (for the
/// engine's own handle and for tests that set up objects the same way); `timeout`
/// bounds each request up to its response's head, as for the local socket.
pub fn docker_over(dialer: Dialer, timeout: u64) -> Result<Docker, bollard::errors::Error> {
    let transport = move |request: BollardRequest| {
        let dialer = dialer.clone();
        async move { send(&dialer, request).await }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Sends one request on a new stream, keeping the connection (and so any upgrade) alive
/// for as long as the response body or the upgraded stream is held.
async fn send(
    dialer: &Dialer,
    request: BollardRequest,
) -> Result<Response<Incoming>, bollard::errors::Error> {
    let stream = dialer.open().await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender.send_request(origin_form(request)).await?)
}

/// bollard writes absolute URIs (`http://docker/v1.41/...`); a connection-level client
/// sends the path and a `Host` header instead, as over the local socket.
fn origin_form(request: BollardRequest) -> BollardRequest {
    let (mut parts, body) = request.into_parts();
    if let Some(path) = parts.uri.path_and_query().cloned() {
        if let Ok(uri) = hyper::Uri::builder().path_and_query(path).build() {
            parts.uri = uri;
        }
    }
    parts
        .headers
        .entry(HOST)
        .or_insert(HeaderValue::from_static("docker"));
    BollardRequest::from_parts(parts, body)
}

/// The error a [`Dial`] or one of its streams failed with (e.g. the SSH connection was
/// lost), found under a bollard error; `None` for other failures, and where bollard kept
/// only the message (its line-decoded streams, such as logs, do: [`crate::is_unreachable`]
/// still says the transport failed).
pub fn dial_failure(
    err: &bollard::errors::Error,
) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
    use bollard::errors::Error as E;
    let mut current: Option<&(dyn std::error::Error + 'static)> = match err {
        E::IOError { err } => Some(err),
        E::HyperResponseError { err } => Some(err),
        _ => None,
    };
    while let Some(e) = current {
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return Some(inner);
        }
        current = e.source();
    }
    None
}
