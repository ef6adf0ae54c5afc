//! What an engine says about its host, for a server's preflight checks: versions (the
//! engine's and the API range it speaks), platform, data root and clock, from one
//! `/version` and one `/info` call.

use crate::{Engine, EngineError};

/// The engine's own account of itself and its host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// The engine's version (`20.10.24`).
    pub version: String,
    /// The newest API version the engine speaks (`1.41`).
    pub api_version: String,
    /// The oldest API version the engine accepts.
    pub min_api_version: String,
    pub os: String,
    /// The engine's architecture as Go names it (`amd64`, `arm64`).
    pub arch: String,
    /// Where the engine keeps images and containers (`DockerRootDir`).
    pub data_root: Option<String>,
    /// The engine host's clock when `/info` answered (RFC 3339 with nanoseconds).
    pub system_time: Option<String>,
    /// The swarm state of the engine's node (`inactive`, `active`, ...), and whether it
    /// is a manager.
    pub swarm_state: Option<String>,
    pub swarm_manager: bool,
}

impl Engine {
    /// The engine's versions, platform, data root and clock.
    pub async fn host_facts(&self) -> Result<HostFacts, EngineError> {
        let version = self.docker().version().await?;
        let info = self.docker().info().await?;
        let swarm = info.swarm.as_ref();
        Ok(HostFacts {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            min_api_version: version.min_api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            data_root: info.docker_root_dir,
            system_time: info.system_time,
            swarm_state: swarm
                .and_then(|s| s.local_node_state.as_ref())
                .map(|s| s.to_string()),
            swarm_manager: swarm.and_then(|s| s.control_available) == Some(true),
        })
    }
}
