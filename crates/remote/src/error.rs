//! What can go wrong reaching a server over SSH, as types callers match on.

/// A failure of the SSH transport to a server. `address` is `user@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error(
        "the host key of {address} changed: expected {expected}, found {found} \
         (confirm the new fingerprint if the server was reinstalled)"
    )]
    HostKeyChanged {
        address: String,
        expected: String,
        found: String,
    },
    #[error("{address} refused Capstan's key (is its public key in {user}'s authorized_keys?)")]
    AuthRefused { address: String, user: String },
    #[error("{address} did not answer within {seconds}s while {during}")]
    Timeout {
        address: String,
        during: &'static str,
        seconds: u64,
    },
    #[error("{address} refused a channel to {socket}: {reason}")]
    Channel {
        address: String,
        socket: String,
        reason: String,
    },
    #[error("the SSH connection to {address} was lost")]
    ConnectionLost { address: String },
    #[error("SSH protocol error with {address}: {reason}")]
    Protocol { address: String, reason: String },
    #[error("invalid SSH key: {0}")]
    Key(String),
}

impl RemoteError {
    /// Whether trying again cannot help (a changed host key, a refused or invalid key):
    /// reconnecting stops at once instead of backing off.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::HostKeyChanged { .. } | Self::AuthRefused { .. } | Self::Key(_)
        )
    }

    /// As an `io::Error` carrying this error (for the HTTP client running over a
    /// channel); [`RemoteError::from_io`] gets it back.
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            Self::Timeout { .. } => std::io::ErrorKind::TimedOut,
            Self::ConnectionLost { .. } => std::io::ErrorKind::ConnectionAborted,
            Self::Unreachable { .. } => std::io::ErrorKind::ConnectionRefused,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }

    /// The [`RemoteError`] somewhere in `err`'s chain of sources (an engine error whose
    /// cause was the SSH transport), if any.
    pub fn find_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a RemoteError> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(remote) = e.downcast_ref::<RemoteError>() {
                return Some(remote);
            }
            if let Some(remote) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<RemoteError>())
            {
                return Some(remote);
            }
            current = e.source();
        }
        None
    }
}
