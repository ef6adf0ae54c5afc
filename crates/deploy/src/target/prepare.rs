//! A host made ready for deployments: the control network the proxy's API listens on,
//! the health probe in its read-only volume, the maintenance page server, and the proxy
//! itself, created or kept and answering. What a host needs is the same whether it is
//! the engine beside the daemon or another server; only the way there differs.

use capstan_engine::proxy::ProxySpec;
use capstan_engine::EngineError;
use std::time::Duration;

/// What a host is prepared with.
#[derive(Debug, Clone)]
pub struct HostSetup {
    /// The `capstan-probe` binary, mounted into app containers for their health checks
    /// and run by the maintenance page server.
    pub probe: Vec<u8>,
    /// The proxy container the host runs.
    pub proxy: ProxySpec,
}

/// Why a host could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(
        "the proxy image {0} is not on the Docker engine; on a machine without a registry run scripts/build-test-images.sh"
    )]
    MissingProxyImage(String),
    #[error("the proxy did not answer on {address} within {}s", .waited.as_secs())]
    ProxySilent { address: String, waited: Duration },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How long a freshly started proxy may take to answer.
pub(crate) const PROXY_START: Duration = Duration::from_secs(30);
