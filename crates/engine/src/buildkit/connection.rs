//! Plain HTTP/1.1 connections to the engine for the two calls bollard does not offer in
//! the form BuildKit needs: the `/session` upgrade and a `/build` whose progress arrives
//! as BuildKit messages.

use crate::dial::EngineStream;
use crate::EngineError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;

/// Where the engine listens.
#[derive(Debug, Clone)]
pub enum EngineAddress {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
    /// Streams opened by the caller (an SSH channel to a remote engine's socket).
    Dialer(crate::dial::Dialer),
}

impl EngineAddress {
    /// Reads a `unix://`, absolute path, `tcp://` or `http://` address.
    pub fn parse(host: Option<&str>) -> Self {
        match host {
            None => Self::Unix(PathBuf::from("/var/run/docker.sock")),
            Some(host) if host.starts_with("unix://") || host.starts_with('/') => {
                Self::Unix(PathBuf::from(host.trim_start_matches("unix://")))
            }
            Some(host) => {
                let rest = host
                    .trim_start_matches("tcp://")
                    .trim_start_matches("http://");
                Self::Tcp(rest.trim_end_matches('/').to_string())
            }
        }
    }
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Dialer(dialer) => write!(f, "{dialer}"),
        }
    }
}

/// Sends one request on a new connection (upgrades allowed) and returns the response;
/// the connection lives as long as the response body or the upgraded stream.
pub(crate) async fn send(
    address: &EngineAddress,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, EngineError> {
    let unreachable = |e: std::io::Error| {
        EngineError::Build(format!("cannot reach the Docker engine at {address}: {e}"))
    };
    let stream: Box<dyn EngineStream> = match address {
        EngineAddress::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(unreachable)?,
        ),
        EngineAddress::Tcp(addr) => Box::new(
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(unreachable)?,
        ),
        EngineAddress::Dialer(dialer) => dialer.open().await.map_err(unreachable)?,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| EngineError::Build(format!("connecting to the engine: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| EngineError::Build(format!("the engine did not answer: {e}")))
}
