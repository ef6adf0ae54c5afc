//! The remote engine through the connection: every HTTP connection to its API (each
//! bollard call, exec or attach upgrade, BuildKit session and build) is a new
//! `direct-streamlocal@openssh.com` channel to the engine's socket on the server.

use crate::SshConnection;
use capstan_engine::dial::{Dial, DialFuture, Dialer, EngineStream};
use capstan_engine::{Engine, EngineError};
use std::sync::Arc;

/// Opens channels to the engine's socket over one shared connection.
pub struct DockerSocket {
    connection: Arc<SshConnection>,
    socket: String,
}

impl Dial for DockerSocket {
    fn dial(&self) -> DialFuture {
        let connection = self.connection.clone();
        let socket = self.socket.clone();
        Box::pin(async move {
            let channel = connection
                .open_socket(&socket)
                .await
                .map_err(|err| err.into_io())?;
            Ok(Box::new(channel) as Box<dyn EngineStream>)
        })
    }

    fn describe(&self) -> String {
        format!("ssh://{}{}", self.connection.address(), self.socket)
    }
}

impl SshConnection {
    /// A dialer for the engine's socket on this server (the configured one).
    pub fn docker_dialer(self: &Arc<Self>) -> Dialer {
        Dialer(Arc::new(DockerSocket {
            connection: self.clone(),
            socket: self.options().docker_socket.clone(),
        }))
    }

    /// An [`Engine`] for `instance` whose every call goes through this connection.
    pub async fn engine(self: &Arc<Self>, instance: &str) -> Result<Engine, EngineError> {
        Engine::connect_over(self.docker_dialer(), instance).await
    }
}
