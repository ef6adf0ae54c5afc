//! What the daemon counts for `/metrics` (Prometheus text format): deployments finished
//! by state and trigger, how long each phase took, cutover time, image builds and build
//! cache hits, failed health checks, app networks the proxy was reconnected to; and, set
//! when scraped, what the store and the process say now (deployments by state, the queue,
//! resident memory, open file descriptors). The counters follow the event bus
//! ([`crate::events`]); nothing in the pipeline calls them.

use crate::events::DeployEvent;
use capstan_core::DeploymentState;
use capstan_store::{DeploymentRecord, Phase};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::broadcast::{error::RecvError, Receiver};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub state: String,
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub state: String,
}

/// Seconds: from a few milliseconds (a phase of a rollback) to twenty minutes (a build).
fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0, 1200.0,
    ]
    .into_iter()
}

/// The daemon's metrics; cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    finished: Family<OutcomeLabels, Counter>,
    phase_seconds: Family<PhaseLabels, Histogram>,
    cutover_seconds: Histogram,
    builds: Counter,
    build_cache_hits: Counter,
    health_check_failures: Counter,
    proxy_network_rejoins: Counter,
    stored: Family<OutcomeLabels, Gauge>,
    queue: Family<QueueLabels, Gauge>,
    resident_bytes: Gauge,
    open_fds: Gauge,
    server_reachable: Family<ServerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("capstan");
        let finished = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deployments_finished",
            "Deployments this daemon run finished, by final state and trigger",
            finished.clone(),
        );
        let phase_seconds = Family::<PhaseLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(duration_buckets())
        });
        registry.register(
            "deployment_phase_seconds",
            "How long finished deployments spent in each phase",
            phase_seconds.clone(),
        );
        let cutover_seconds = Histogram::new(duration_buckets());
        registry.register(
            "cutover_seconds",
            "From the new version healthy to the route switched and confirmed (the switching phase)",
            cutover_seconds.clone(),
        );
        let builds = Counter::default();
        registry.register(
            "image_builds",
            "Images built through the engine",
            builds.clone(),
        );
        let build_cache_hits = Counter::default();
        registry.register(
            "build_cache_hits",
            "Deploys that reused an image built from the same source and settings",
            build_cache_hits.clone(),
        );
        let health_check_failures = Counter::default();
        registry.register(
            "health_check_failures",
            "New containers that never became healthy (or stopped before they did)",
            health_check_failures.clone(),
        );
        let proxy_network_rejoins = Counter::default();
        registry.register(
            "proxy_network_rejoins",
            "App networks the proxy watch found the proxy disconnected from and reconnected",
            proxy_network_rejoins.clone(),
        );
        let stored = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "deployments",
            "Deployments in the database, by state and trigger",
            stored.clone(),
        );
        let queue = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Deployments waiting (queued) and in progress (running)",
            queue.clone(),
        );
        let resident_bytes = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "The daemon's resident memory",
            resident_bytes.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "File descriptors the daemon has open",
            open_fds.clone(),
        );
        let server_reachable = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "server_reachable",
            "Whether the background check reaches each server's engine (0 after 3 failures in a row)",
            server_reachable.clone(),
        );
        Metrics {
            server_reachable,
            registry,
            finished,
            phase_seconds,
            cutover_seconds,
            builds,
            build_cache_hits,
            health_check_failures,
            proxy_network_rejoins,
            stored,
            queue,
            resident_bytes,
            open_fds,
        }
    }

    /// Counts what the event bus says, until the daemon's deployers are gone.
    pub(crate) async fn follow(self: Arc<Self>, mut events: Receiver<DeployEvent>) {
        loop {
            match events.recv().await {
                Ok(event) => self.count(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the metrics fell behind the event bus");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// What one event changes in the counters.
    fn count(&self, event: &DeployEvent) {
        match event {
            DeployEvent::Finished(finished) => {
                self.deployment_finished(&finished.record, &finished.phases);
            }
            DeployEvent::ImageReady { reused, .. } => {
                let counter = if *reused {
                    &self.build_cache_hits
                } else {
                    &self.builds
                };
                counter.inc();
            }
            DeployEvent::HealthCheckFailed { .. } => {
                self.health_check_failures.inc();
            }
            DeployEvent::ProxyNetworkRejoined { .. } => {
                self.proxy_network_rejoins.inc();
            }
            DeployEvent::ServerChecked { server, reachable } => {
                self.set_server_reachable(server, *reachable);
            }
            DeployEvent::ServerRemoved { server } => self.forget_server(server),
            DeployEvent::Queued { .. }
            | DeployEvent::Started { .. }
            | DeployEvent::Phase { .. } => {}
        }
    }

    /// Records a finished deployment: its outcome and how long each phase took.
    fn deployment_finished(&self, d: &DeploymentRecord, phases: &[Phase]) {
        self.finished
            .get_or_create(&OutcomeLabels {
                state: d.state.as_str().into(),
                trigger: d.trigger.as_str().into(),
            })
            .inc();
        for pair in phases.windows(2) {
            let seconds = (pair[1].at - pair[0].at).max(0) as f64 / 1000.0;
            self.phase_seconds
                .get_or_create(&PhaseLabels {
                    phase: pair[0].state.as_str().into(),
                })
                .observe(seconds);
            if pair[0].state == DeploymentState::Switching {
                self.cutover_seconds.observe(seconds);
            }
        }
    }

    /// What the background check found of a server.
    fn set_server_reachable(&self, server: &str, reachable: bool) {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        self.server_reachable
            .get_or_create(&labels)
            .set(i64::from(reachable));
    }

    /// Drops a removed server's gauge.
    fn forget_server(&self, server: &str) {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        self.server_reachable.remove(&labels);
    }

    /// Sets what the store says now: deployments by state and trigger, and the queue.
    pub fn set_stored(&self, counts: &[(String, String, i64)], queued: i64, running: i64) {
        self.stored.clear();
        for (state, trigger, count) in counts {
            self.stored
                .get_or_create(&OutcomeLabels {
                    state: state.clone(),
                    trigger: trigger.clone(),
                })
                .set(*count);
        }
        for (state, value) in [("queued", queued), ("running", running)] {
            self.queue
                .get_or_create(&QueueLabels {
                    state: state.into(),
                })
                .set(value);
        }
    }

    /// Reads the process's resident memory and open descriptors from `/proc/self`.
    pub fn sample_process(&self) {
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(bytes);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(entries.count()).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition (`text/plain; version=0.0.4` compatible OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%err, "cannot encode metrics");
        }
        text
    }
}

/// Resident memory from `/proc/self/statm` (pages × page size).
pub fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * i64::from(i32::try_from(page).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::{AppName, Trigger};

    #[test]
    fn a_finished_deployment_is_counted_with_its_phases_and_cutover() {
        let metrics = Metrics::new();
        let d = DeploymentRecord {
            id: 1,
            app: AppName::parse("web").unwrap(),
            server: "local".into(),
            environment: "production".into(),
            trigger: Trigger::Deploy,
            state: DeploymentState::Live,
            git_ref: None,
            commit_sha: None,
            commit_message: None,
            image: None,
            from_release: None,
            no_cache: false,
            error: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            actor: None,
        };
        let phase = |state, at| Phase { state, at };
        metrics.deployment_finished(
            &d,
            &[
                phase(DeploymentState::Queued, 0),
                phase(DeploymentState::Switching, 100),
                phase(DeploymentState::Live, 350),
            ],
        );
        metrics.set_stored(&[("live".into(), "deploy".into(), 3)], 1, 0);
        metrics.count(&DeployEvent::ProxyNetworkRejoined {
            app: AppName::parse("web").unwrap(),
            network: "net".into(),
        });
        metrics.sample_process();
        let text = metrics.encode();
        for line in [
            "capstan_deployments_finished_total{state=\"live\",trigger=\"deploy\"} 1",
            "capstan_cutover_seconds_sum 0.25",
            "capstan_deployment_phase_seconds_count{phase=\"queued\"} 1",
            "capstan_deployments{state=\"live\",trigger=\"deploy\"} 3",
            "capstan_queue_depth{state=\"queued\"} 1",
            "capstan_proxy_network_rejoins_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("capstan_process_resident_memory_bytes "));
    }
}
