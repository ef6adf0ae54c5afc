//! What a running container uses now: CPU (as a share of one core, like `docker stats`) and
//! memory (without the page cache it could give back), read from the engine's stats.

use crate::{Engine, EngineError};
use bollard::container::{MemoryStatsStats, Stats, StatsOptions};
use futures::StreamExt;

/// A container's CPU and memory use at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Percent of one core (200 = two cores busy), over the engine's last second.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// The container's memory limit, when it has one below the host's memory.
    pub memory_limit_bytes: Option<u64>,
}

impl Engine {
    /// One sample of `container`'s use. The engine takes two readings about a second
    /// apart to tell CPU use, so this takes about a second.
    pub async fn usage(&self, container: &str) -> Result<Usage, EngineError> {
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let mut stream = self.docker().stats(container, Some(options));
        match stream.next().await {
            Some(stats) => Ok(usage_of(&stats?, self.host_memory().await)),
            None => Err(EngineError::Docker(
                bollard::errors::Error::DockerStreamError {
                    error: format!("no stats for {container}"),
                },
            )),
        }
    }

    async fn host_memory(&self) -> Option<u64> {
        let info = self.docker().info().await.ok()?;
        info.mem_total.and_then(|m| u64::try_from(m).ok())
    }
}

fn usage_of(stats: &Stats, host_memory: Option<u64>) -> Usage {
    let cpu = &stats.cpu_stats;
    let before = &stats.precpu_stats;
    let cpu_delta = cpu
        .cpu_usage
        .total_usage
        .saturating_sub(before.cpu_usage.total_usage) as f64;
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(before.system_cpu_usage.unwrap_or(0)) as f64;
    let cores = cpu.online_cpus.unwrap_or(1).max(1) as f64;
    let cpu_percent = if system_delta > 0.0 {
        cpu_delta / system_delta * cores * 100.0
    } else {
        0.0
    };
    let memory = &stats.memory_stats;
    let inactive = match memory.stats {
        Some(MemoryStatsStats::V1(v1)) => v1.total_inactive_file,
        Some(MemoryStatsStats::V2(v2)) => v2.inactive_file,
        None => 0,
    };
    let memory_bytes = memory.usage.unwrap_or(0).saturating_sub(inactive);
    let memory_limit_bytes = memory
        .limit
        .filter(|limit| host_memory.is_none_or(|host| *limit < host));
    Usage {
        cpu_percent: (cpu_percent * 10.0).round() / 10.0,
        memory_bytes,
        memory_limit_bytes,
    }
}
