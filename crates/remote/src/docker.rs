//! The remote engine through the connection: every HTTP connection to its API (each
//! bollard call, exec or attach upgrade, BuildKit session and build) is a new
//! `direct-streamlocal@openssh.com` channel to the engine's socket on the server; and
//! `direct-tcpip` channels to a TCP port the server reaches (its proxy's API on loopback).

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

/// Opens `direct-tcpip` channels to one TCP address as the server reaches it.
pub struct TcpPort {
    connection: Arc<SshConnection>,
    host: String,
    port: u16,
}

impl Dial for TcpPort {
    fn dial(&self) -> DialFuture {
        let connection = self.connection.clone();
        let host = self.host.clone();
        let port = self.port;
        Box::pin(async move {
            let channel = connection
                .open_tcp(&host, port)
                .await
                .map_err(|err| err.into_io())?;
            Ok(Box::new(channel) as Box<dyn EngineStream>)
        })
    }

    fn describe(&self) -> String {
        format!(
            "ssh://{} to {}:{}",
            self.connection.address(),
            self.host,
            self.port
        )
    }
}

impl SshConnection {
    /// A dialer for TCP `host:port` as this server reaches it (e.g. a port published on
    /// its loopback), each stream a `direct-tcpip` channel over this connection.
    pub fn tcp_dialer(self: &Arc<Self>, host: &str, port: u16) -> Dialer {
        Dialer(Arc::new(TcpPort {
            connection: self.clone(),
            host: host.to_string(),
            port,
        }))
    }
}
