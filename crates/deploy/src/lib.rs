//! Deployments end to end: the durable queue and its workers, the pipeline (source, plan,
//! build, release, start, health, cutover, retire), rollback and restart, one-off
//! commands in a fresh container of the live release (`runs`), and recovery after a
//! crash. Talks to Docker only through `capstan-engine` and to SQLite only through
//! `capstan-store`.

mod actions;
mod app_output;
mod building;
pub mod certificates;
mod cleanup;
mod companions;
mod cutover;
pub mod events;
mod fanout;
mod git_trust;
mod health;
mod listening;
pub mod logs;
mod maintenance;
mod masking;
mod metrics;
mod pipeline;
pub mod planning;
mod ports;
mod proxy_watch;
mod queue;
mod queue_policy;
mod recovery;
mod registry;
mod release;
mod retention;
mod routing;
mod run;
mod run_exec;
mod running;
mod runs;
mod secrets;
pub mod servers;
mod source_check;
mod sources;
mod swarm;
pub mod target;
mod tls_names;
mod trust;
mod usage;
mod webhooks;

pub use actions::{AppView, RollbackTarget};
pub use app_output::MAX_TAIL;
pub use capstan_build::source::FetchLimits;
pub use cleanup::{CleanupPolicy, CleanupReport, DiskUsage};
pub use events::{DeployEvent, FailureKind, FailureReason, Finished, Outcome};
pub use logs::{LogEvent, LogHub};
pub use maintenance::MaintenanceState;
pub use metrics::Metrics;
pub use planning::PlanReport;
pub use proxy_watch::ProxyState;
pub use queue_policy::Cancelled;
pub use running::RunningContainer;
pub use runs::{check_command, RunEvent, RunLimits, RunRequest, DEFAULT_RUN_TIMEOUT_SECS};
pub use trust::{protected_host_paths, Caller, CallerKind};
pub use usage::ContainerUsage;

use capstan_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use target::Target;
use tokio::sync::Notify;

/// Why an API-level action was refused or failed. The variant is the kind, which the web
/// layer maps to a status code; the message says what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The request's input is wrong (422).
    #[error("{0}")]
    Invalid(String),
    /// The caller's token lacks what the action needs (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The action collides with the state of things (409).
    #[error("{0}")]
    Conflict(String),
    /// Something the daemon depends on (the Docker engine, the proxy) is not reachable
    /// now (503): the environment's fault, worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// A remote the request named (a git server) failed or did not answer (502).
    #[error("{0}")]
    Upstream(String),
    /// A bug or a broken installation (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// The app's rate limit is reached (429): try again in `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
}

impl From<capstan_store::StoreError> for ActionError {
    fn from(err: capstan_store::StoreError) -> Self {
        use capstan_store::StoreError as E;
        match &err {
            E::NotFound(what) => Self::NotFound(format!("{what} not found")),
            E::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            E::IllegalTransition { .. } => Self::Conflict(err.to_string()),
            // The database file busy, locked or unreadable right now: the environment's
            // fault, worth retrying.
            _ if err.is_unavailable() => {
                Self::Unavailable(format!("the database is not available: {err}"))
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

impl From<capstan_engine::EngineError> for ActionError {
    fn from(err: capstan_engine::EngineError) -> Self {
        use capstan_engine::EngineError as E;
        match &err {
            E::Connect { .. } | E::Proxy(_) | E::Timeout(_) => Self::Unavailable(err.to_string()),
            E::Docker(inner) if capstan_engine::is_unreachable(inner) => {
                Self::Unavailable(format!("the Docker engine is not reachable: {inner}"))
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

impl From<capstan_build::BuildError> for ActionError {
    fn from(err: capstan_build::BuildError) -> Self {
        use capstan_build::BuildError as E;
        match &err {
            E::Git { .. } if err.is_network() => Self::Upstream(err.to_string()),
            E::Io(_) => Self::Internal(err.to_string()),
            _ => Self::Invalid(err.to_string()),
        }
    }
}

/// Settings the pipeline needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// Where per-deployment source checkouts are made (and removed afterwards).
    pub workspace_dir: PathBuf,
    /// How many deployments may run at once on this server.
    pub build_slots: usize,
    /// How many images to keep per app for rollback (the live one always stays).
    pub keep_images: usize,
    /// The key app secrets are encrypted with.
    pub secret_key: capstan_store::SecretKey,
    /// Limits on each git command of a fetch (overall, and without any output).
    pub fetch_limits: capstan_build::source::FetchLimits,
    /// Host paths no app may mount (see `trust::protected_host_paths`).
    pub protected_paths: Vec<String>,
    /// Directories under which an admin may deploy local source directories.
    pub source_dirs: Vec<PathBuf>,
    /// What a deployment may fetch or copy as its source.
    pub source_limits: SourceLimits,
    /// The host port the proxy publishes HTTPS on (`proxy_https_port`): the redirect from
    /// plain HTTP sends browsers there.
    pub proxy_https_port: u16,
    /// How long connecting to a server over SSH, opening a channel, or a silent
    /// connection may take (`ssh_timeout_secs`, default 30 s).
    pub ssh_timeout: std::time::Duration,
    /// The proxy asks an ACME CA of the operator's own (`acme_ca_server`), which may issue
    /// for names Let's Encrypt never will (`.test`, `.internal`): HTTPS is not refused for
    /// them.
    pub own_acme_ca: bool,
}

/// Limits on sources beyond `source_dirs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLimits {
    /// Whether a submodule may be fetched from a loopback or link-local address of the
    /// daemon's host (`allow_private_submodules`; off by default).
    pub allow_private_submodules: bool,
    /// The most a local source directory's copy may hold (`local_source_max_mb`).
    pub local_source_max_bytes: u64,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            allow_private_submodules: false,
            local_source_max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Everything a deployment needs, shared by the API handlers and the workers, bound to
/// one server's [`Target`]: the local engine unless [`Deployer::on`] chose another. Two
/// deployers bound to different servers share every lock, queue and record.
#[derive(Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
    server: capstan_core::ServerName,
    target: Arc<dyn Target>,
    /// Whether a deployment this deployer cuts over runs here only or on several servers.
    reach: fanout::Reach,
}

struct Inner {
    store: Store,
    /// One target per server the daemon can deploy to (`local` always).
    targets:
        std::sync::RwLock<std::collections::HashMap<capstan_core::ServerName, Arc<dyn Target>>>,
    settings: DeploySettings,
    logs: LogHub,
    wake: Notify,
    /// Deployments a worker of this process is executing right now.
    running: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    /// One lock per app, held for a deployment's run up to live or failed (not during the
    /// retirement of the version it replaced), so two deployments of an app never overlap.
    app_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The cancellation of each deployment a worker of this process runs.
    cancels: queue_policy::Cancels,
    /// Retirement work a deployment that went live leaves for after its app is free.
    retirements: std::sync::Mutex<std::collections::HashMap<i64, Retirement>>,
    /// Serialises changes to app settings and app deletion against queueing, so checks
    /// across apps (domains) and delete-versus-deploy never race.
    settings_lock: tokio::sync::Mutex<()>,
    /// Image builds at once (`build_slots`): only the build holds one, so a slow fetch
    /// never keeps another app's build waiting.
    build_slots: Arc<tokio::sync::Semaphore>,
    /// Source fetches at once (deployments and plans together).
    fetch_slots: Arc<tokio::sync::Semaphore>,
    proxy_state: std::sync::Mutex<ProxyState>,
    /// The typed events of deployments, servers and the proxy; every subscriber reads
    /// them from here.
    events: events::EventBus,
    /// Counted from the event bus by a task of their own.
    metrics: Arc<Metrics>,
    /// The route each app's file holds now on each server (without maintenance, which is
    /// rendered from the store at each write). One lock per server, held while a route file
    /// is rendered and written there, so a cutover and a maintenance switch never undo each
    /// other and one server's write never waits for another's.
    routes_in_force: routing::RoutesInForce,
    /// One-off runs: their live output, limits and start lock.
    runs: runs::Runs,
    /// What Traefik said of its certificates lately (the app pages ask often).
    certificate_facts: certificates::FactsCache,
    /// The one SSH connection per remote server.
    connections: servers::connections::Connections,
    /// What the background check last found of each server.
    watched: servers::watch::Watched,
    /// Remote hosts being prepared, and what they are prepared with.
    preparing: servers::targets::Preparing,
}

/// How many git fetches may run at once.
const FETCH_SLOTS: usize = 4;

/// The retirement of the containers a deployment replaced, run after the deployment.
pub(crate) type Retirement = futures::future::BoxFuture<'static, ()>;

impl Deployer {
    /// A deployer for the local server; call it inside a Tokio runtime, where the task
    /// that counts the metrics from the event bus starts.
    pub fn new(store: Store, target: Arc<dyn Target>, settings: DeploySettings) -> Self {
        let build_slots = settings.build_slots.max(1);
        let local = capstan_core::ServerName::local();
        let targets = std::collections::HashMap::from([(local.clone(), target.clone())]);
        let metrics = Arc::new(Metrics::new());
        let events = events::EventBus::default();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(metrics.clone().follow(events.subscribe()));
        }
        Self {
            server: local,
            target,
            reach: fanout::Reach::Sole,
            inner: Arc::new(Inner {
                store,
                targets: std::sync::RwLock::new(targets),
                settings,
                logs: LogHub::default(),
                wake: Notify::new(),
                running: Default::default(),
                app_locks: Default::default(),
                cancels: Default::default(),
                retirements: Default::default(),
                settings_lock: Default::default(),
                build_slots: Arc::new(tokio::sync::Semaphore::new(build_slots)),
                fetch_slots: Arc::new(tokio::sync::Semaphore::new(FETCH_SLOTS)),
                proxy_state: std::sync::Mutex::new(ProxyState::Running),
                events,
                metrics,
                routes_in_force: Default::default(),
                runs: Default::default(),
                certificate_facts: Default::default(),
                connections: Default::default(),
                watched: Default::default(),
                preparing: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The instance's key, for layers that seal their own records (notification channels).
    pub fn secret_key(&self) -> &capstan_store::SecretKey {
        &self.settings().secret_key
    }

    /// What the daemon counts, for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The host this deployer is bound to: its runtime, images and proxy.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// The server this deployer is bound to.
    pub fn server(&self) -> &capstan_core::ServerName {
        &self.server
    }

    /// This deployer bound to another server's target, if the daemon has one for it.
    pub fn on(&self, server: &capstan_core::ServerName) -> Option<Deployer> {
        let targets = self.inner.targets.read().expect("targets lock");
        let target = targets.get(server)?.clone();
        Some(Deployer {
            inner: self.inner.clone(),
            server: server.clone(),
            target,
            reach: fanout::Reach::Sole,
        })
    }

    /// Makes `target` the host of `server` for deployments from now on.
    pub fn add_target(&self, server: capstan_core::ServerName, target: Arc<dyn Target>) {
        let mut targets = self.inner.targets.write().expect("targets lock");
        targets.insert(server, target);
    }

    /// Forgets a server's target (the server was removed).
    pub(crate) fn remove_target(&self, server: &capstan_core::ServerName) {
        let mut targets = self.inner.targets.write().expect("targets lock");
        targets.remove(server);
    }

    /// The certificate facts kept of Traefik's last read.
    pub(crate) fn certificate_facts(&self) -> &certificates::FactsCache {
        &self.inner.certificate_facts
    }

    /// The builder Dockerfiles are made ready for: the engine's.
    pub(crate) fn builder_kind(&self) -> capstan_build::plan::BuilderKind {
        if self.target().builds_with_buildkit() {
            capstan_build::plan::BuilderKind::BuildKit
        } else {
            capstan_build::plan::BuilderKind::Classic
        }
    }

    pub fn logs(&self) -> &LogHub {
        &self.inner.logs
    }

    pub(crate) fn settings(&self) -> &DeploySettings {
        &self.inner.settings
    }

    /// Whether a worker of this process is still executing the deployment (its state may
    /// already be final while it retires old containers and writes its last log lines).
    pub fn is_running(&self, id: i64) -> bool {
        self.inner
            .running
            .lock()
            .expect("running set lock")
            .contains_key(&id)
    }

    /// Whether a worker of this process is still executing a deployment of `app`
    /// (retiring the version it replaced, say).
    pub(crate) fn has_running(&self, app: &capstan_core::AppName) -> bool {
        self.inner
            .running
            .lock()
            .expect("running set lock")
            .values()
            .any(|a| a == app.as_str())
    }

    /// Whether a worker of this process is executing any deployment.
    pub(crate) fn is_busy(&self) -> bool {
        !self
            .inner
            .running
            .lock()
            .expect("running set lock")
            .is_empty()
    }

    /// Records that deployment `id` of `app` runs (`Some`) or has finished (`None`).
    pub(crate) fn set_running(&self, id: i64, app: Option<&capstan_core::AppName>) {
        let mut set = self.inner.running.lock().expect("running set lock");
        match app {
            Some(app) => set.insert(id, app.to_string()),
            None => set.remove(&id),
        };
    }

    pub(crate) fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.app_locks.lock().expect("app lock map");
        locks.entry(app.to_string()).or_default().clone()
    }

    /// How many deployments may run at once: every build slot can be busy while as
    /// many others fetch, start or health-check.
    pub(crate) fn deployment_slots(&self) -> usize {
        self.settings().build_slots.max(1) * 2 + FETCH_SLOTS
    }

    /// Waits for a build slot, saying so in the log when it has to wait.
    pub(crate) async fn build_slot(
        &self,
        log: &logs::DeployLog,
    ) -> tokio::sync::OwnedSemaphorePermit {
        let slots = self.inner.build_slots.clone();
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        log.info("waiting for a build slot (other builds are running)")
            .await;
        slots.acquire_owned().await.expect("semaphore never closes")
    }

    /// A fetch slot if one is free right now.
    pub(crate) fn inner_fetch_slot_now(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.fetch_slots.clone().try_acquire_owned().ok()
    }

    /// A fetch slot (deployments and plans share them).
    pub(crate) async fn fetch_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.inner
            .fetch_slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes")
    }

    /// Leaves `work` to run once deployment `id` has released its app.
    pub(crate) fn track_retirement(
        &self,
        id: i64,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        use futures::FutureExt;
        let mut retirements = self.inner.retirements.lock().expect("retirements lock");
        // A deployment on several servers leaves one retirement on each.
        let work = match retirements.remove(&id) {
            Some(earlier) => futures::future::join(earlier, work).map(|_| ()).boxed(),
            None => work.boxed(),
        };
        retirements.insert(id, work);
    }

    pub(crate) fn take_retirement(&self, id: i64) -> Option<Retirement> {
        self.inner
            .retirements
            .lock()
            .expect("retirements lock")
            .remove(&id)
    }

    /// Wakes the queue workers (a deployment was queued).
    pub(crate) fn wake_workers(&self) {
        self.inner.wake.notify_waiters();
    }
}
