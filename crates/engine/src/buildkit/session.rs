//! A BuildKit session: the engine's `/session` endpoint upgraded to HTTP/2, on which
//! Capstan serves gRPC to the engine. It offers what a build may ask for: its secrets
//! (`RUN --mount=type=secret`) and a health check. It lives until it is dropped.

use super::connection::{send, EngineAddress};
use crate::EngineError;
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{HealthCheckRequest, HealthCheckResponse};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::{Response, Status};

/// The gRPC methods a session offers, announced to the engine when it opens.
const METHODS: [&str; 2] = [
    "/grpc.health.v1.Health/Check",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
];

/// An open session; closing it (dropping) ends the gRPC server and the connection.
pub(crate) struct Session {
    pub(crate) id: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Opens a session offering `secrets` (id → value).
pub(crate) async fn open(
    address: &EngineAddress,
    api_version: &str,
    secrets: HashMap<String, Vec<u8>>,
) -> Result<Session, EngineError> {
    let id = session_id();
    let mut request = Request::post(format!("/v{api_version}/session"))
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "h2c")
        .header("X-Docker-Expose-Session-Uuid", &id)
        .header("X-Docker-Expose-Session-Name", "capstan")
        .header("X-Docker-Expose-Session-Sharedkey", "");
    for method in METHODS {
        request = request.header("X-Docker-Expose-Session-Grpc-Method", method);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| EngineError::Build(format!("session request: {e}")))?;
    let response = send(address, request).await?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(EngineError::Build(format!(
            "the engine refused a BuildKit session ({})",
            response.status()
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| EngineError::Build(format!("BuildKit session upgrade: {e}")))?;
    let stream = SessionStream(TokioIo::new(upgraded));
    let router = tonic::transport::Server::builder()
        .add_service(HealthServer::new(AlwaysServing))
        .add_service(SecretsServer::new(SecretStore(secrets)));
    let server = tokio::spawn(async move {
        let incoming = futures::stream::iter([Ok::<_, std::io::Error>(stream)]);
        if let Err(err) = router.serve_with_incoming(incoming).await {
            tracing::debug!("BuildKit session ended: {err}");
        }
    });
    Ok(Session { id, server })
}

fn session_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    format!("capstan-{}", hex::encode(bytes))
}

/// The upgraded connection, as tonic's server takes it.
struct SessionStream(TokioIo<hyper::upgrade::Upgraded>);

impl tonic::transport::server::Connected for SessionStream {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SessionStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Answers the engine's health checks of the session.
struct AlwaysServing;

#[tonic::async_trait]
impl Health for AlwaysServing {
    type WatchStream =
        Pin<Box<dyn futures::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn check(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn watch(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not offered"))
    }
}

/// The build's secrets, by id; an unknown id is "not found", which BuildKit turns into an
/// absent file (or an error for `required=true`).
struct SecretStore(HashMap<String, Vec<u8>>);

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: tonic::Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.0.get(id) {
            Some(data) => Ok(Response::new(GetSecretResponse { data: data.clone() })),
            None => Err(Status::not_found(format!(
                "no build secret named {id:?} (set one with `capstan secrets set APP {id} --build`)"
            ))),
        }
    }
}
