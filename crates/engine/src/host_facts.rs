//! What an engine says about its host, for a server's preflight checks: versions (the
//! engine's and the API range it speaks), platform, data root and clock, from one
//! `/version` and one `/info` call; and the disk under its data root, measured through the
//! Docker API alone (`data_root_disk`: `capstan-probe --disk` in a one-off container of an
//! image the host has, the data root mounted read-only), so a remote engine needs no shell.

use crate::cleanup::DiskUsage;
use crate::{Engine, EngineError};
use bollard::container::{Config, CreateContainerOptions, LogOutput, LogsOptions};
use bollard::container::{UploadToContainerOptions, WaitContainerOptions};
use bollard::models::HostConfig;
use futures::StreamExt;
use std::time::Duration;

/// Why the disk under an engine's data root could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum DiskProbeError {
    #[error("the engine does not say where its data root is")]
    NoDataRoot,
    #[error("measuring the disk under {root} took more than {} s", .waited.as_secs())]
    Timeout { root: String, waited: Duration },
    #[error("capstan-probe --disk exited with {status}: {stderr}")]
    Exit { status: i64, stderr: String },
    #[error("capstan-probe --disk said {0:?}, not two sizes")]
    Answer(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<bollard::errors::Error> for DiskProbeError {
    fn from(err: bollard::errors::Error) -> Self {
        Self::Engine(err.into())
    }
}

/// Where the data root is mounted in the measuring container.
const MOUNTED_ROOT: &str = "/capstan-data-root";
/// Where the probe is copied in the measuring container.
const PROBE_PATH: &str = "/capstan-probe";

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

impl Engine {
    /// The engine's data root and the disk under it, measured by `probe` (the
    /// `capstan-probe` binary) run as `--disk` in a one-off container of `helper_image`
    /// (an image the host has: the proxy's) with the data root mounted read-only and no
    /// network; the container is removed whatever happens. Only the Docker API is used, so
    /// this works the same on an engine reached over SSH. Bounded by `timeout`.
    pub async fn data_root_disk(
        &self,
        helper_image: &str,
        probe: &[u8],
        timeout: Duration,
    ) -> Result<(String, DiskUsage), DiskProbeError> {
        let root = self.data_root().await?.ok_or(DiskProbeError::NoDataRoot)?;
        let nonce = format!("{:08x}", rand::random::<u32>());
        let name = self.names().disk_probe(&nonce);
        let measured =
            tokio::time::timeout(timeout, self.measure_in(&name, helper_image, probe, &root)).await;
        // Removed on every path, also when the measurement timed out half-way.
        let removed = self.remove_container(&name).await;
        let usage = measured.map_err(|_| DiskProbeError::Timeout {
            root: root.clone(),
            waited: timeout,
        })??;
        removed?;
        Ok((root, usage))
    }

    async fn measure_in(
        &self,
        name: &str,
        helper_image: &str,
        probe: &[u8],
        root: &str,
    ) -> Result<DiskUsage, DiskProbeError> {
        let config = Config {
            image: Some(helper_image.to_string()),
            entrypoint: Some(vec![PROBE_PATH.to_string()]),
            cmd: Some(vec!["--disk".to_string(), MOUNTED_ROOT.to_string()]),
            labels: Some(self.owned_labels("disk-probe")),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{root}:{MOUNTED_ROOT}:ro")]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let create = CreateContainerOptions {
            name: name.to_string(),
            platform: None,
        };
        self.docker().create_container(Some(create), config).await?;
        let archive =
            crate::setup::single_file_tar(PROBE_PATH.trim_start_matches('/'), probe, 0o755)
                .map_err(DiskProbeError::Engine)?;
        let upload = UploadToContainerOptions {
            path: "/".to_string(),
            ..Default::default()
        };
        self.docker()
            .upload_to_container(name, Some(upload), archive.into())
            .await?;
        self.docker().start_container::<String>(name, None).await?;
        let mut waited = self
            .docker()
            .wait_container(name, None::<WaitContainerOptions<String>>);
        let status = match waited.next().await {
            Some(Ok(exit)) => exit.status_code,
            // A non-zero exit arrives as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(err)) => return Err(err.into()),
            None => -1,
        };
        let (stdout, stderr) = self.output_of(name).await?;
        if status != 0 {
            return Err(DiskProbeError::Exit {
                status,
                stderr: stderr.trim().to_string(),
            });
        }
        parse_disk(&stdout).ok_or_else(|| DiskProbeError::Answer(stdout.trim().to_string()))
    }

    /// A finished container's whole stdout and stderr.
    async fn output_of(&self, name: &str) -> Result<(String, String), EngineError> {
        let options = LogsOptions::<String> {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut logs = self.docker().logs(name, Some(options));
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(chunk) = logs.next().await {
            match chunk? {
                LogOutput::StdOut { message } => {
                    stdout.push_str(&String::from_utf8_lossy(&message))
                }
                LogOutput::StdErr { message } => {
                    stderr.push_str(&String::from_utf8_lossy(&message))
                }
                _ => {}
            }
        }
        Ok((stdout, stderr))
    }
}

/// `capstan-probe --disk`'s answer: `total_bytes free_bytes`.
fn parse_disk(stdout: &str) -> Option<DiskUsage> {
    let mut words = stdout.split_whitespace();
    let total_bytes = words.next()?.parse().ok()?;
    let free_bytes = words.next()?.parse().ok()?;
    if words.next().is_some() || free_bytes > total_bytes {
        return None;
    }
    Some(DiskUsage {
        total_bytes,
        free_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_disk;

    #[test]
    fn the_probe_answer_is_two_sizes_free_within_total() {
        let usage = parse_disk("270553174016 79670226944\n").unwrap();
        assert_eq!(
            (usage.total_bytes, usage.free_bytes),
            (270553174016, 79670226944)
        );
        assert!(parse_disk("").is_none());
        assert!(parse_disk("12").is_none());
        assert!(parse_disk("1 2 3").is_none());
        assert!(parse_disk("10 20").is_none());
        assert!(parse_disk("ten 2").is_none());
    }
}
