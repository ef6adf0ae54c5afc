//! Reaching a remote Docker engine over SSH, with russh (no `ssh` process, nothing
//! installed on the server but sshd and Docker): one connection per server, shared by
//! every engine call, each call a channel to the engine's unix socket; host keys pinned
//! by fingerprint; keepalive, a bound on everything, reconnect with backoff.

mod channel;
mod connection;
mod docker;
mod error;
mod keys;
mod watched;

pub use channel::ChannelIo;
pub use connection::{
    connect, Contact, SshConnection, SshOptions, DEFAULT_DOCKER_SOCKET, DEFAULT_TIMEOUT,
};
pub use docker::{DockerSocket, TcpPort};
pub use error::RemoteError;
pub use keys::{fingerprint, generate_key_pair, public_key_of};
/// The `ssh-key` release russh uses, for callers that handle keys themselves.
pub use russh::keys::ssh_key;
