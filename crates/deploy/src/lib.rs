//! Deployments end to end: the durable queue and its workers, the pipeline (source, plan,
//! build, release, start, health, cutover, retire), rollback and restart, and recovery
//! after a crash. Talks to Docker only through `capstan-engine` and to SQLite only
//! through `capstan-store`.

mod actions;
mod building;
mod companions;
mod cutover;
pub mod logs;
mod pipeline;
pub mod planning;
mod queue;
mod recovery;
mod retention;
mod routing;
mod secrets;

pub use actions::{AppView, RollbackTarget};
pub use logs::{LogEvent, LogHub};

use capstan_engine::proxy::{ProxyApi, RouteFiles};
use capstan_engine::Engine;
use capstan_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// Why an API-level action was refused or failed; web maps the kind to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<capstan_store::StoreError> for ActionError {
    fn from(err: capstan_store::StoreError) -> Self {
        use capstan_store::StoreError as E;
        match err {
            E::NotFound(what) => Self::NotFound(format!("{what} not found")),
            E::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<capstan_engine::EngineError> for ActionError {
    fn from(err: capstan_engine::EngineError) -> Self {
        Self::Internal(err.to_string())
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
}

/// Everything a deployment needs, shared by the API handlers and the workers.
#[derive(Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Engine,
    routes: RouteFiles,
    proxy: ProxyApi,
    settings: DeploySettings,
    logs: LogHub,
    wake: Notify,
    /// Deployments a worker of this process is executing right now.
    running: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// One lock per app, held for a deployment's run up to live or failed (not during the
    /// retirement of the version it replaced), so two deployments of an app never overlap.
    app_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Retirement work a deployment that went live leaves for after its app is free.
    retirements: std::sync::Mutex<std::collections::HashMap<i64, Retirement>>,
}

/// The retirement of the containers a deployment replaced, run after the deployment.
pub(crate) type Retirement = futures::future::BoxFuture<'static, ()>;

impl Deployer {
    pub fn new(
        store: Store,
        engine: Engine,
        routes: RouteFiles,
        proxy: ProxyApi,
        settings: DeploySettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                engine,
                routes,
                proxy,
                settings,
                logs: LogHub::default(),
                wake: Notify::new(),
                running: Default::default(),
                app_locks: Default::default(),
                retirements: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn logs(&self) -> &LogHub {
        &self.inner.logs
    }

    pub fn proxy(&self) -> &ProxyApi {
        &self.inner.proxy
    }

    pub(crate) fn routes(&self) -> &RouteFiles {
        &self.inner.routes
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
            .contains(&id)
    }

    pub(crate) fn set_running(&self, id: i64, running: bool) {
        let mut set = self.inner.running.lock().expect("running set lock");
        if running {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    pub(crate) fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.app_locks.lock().expect("app lock map");
        locks.entry(app.to_string()).or_default().clone()
    }

    /// Leaves `work` to run once deployment `id` has released its app.
    pub(crate) fn track_retirement(
        &self,
        id: i64,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        use futures::FutureExt;
        self.inner
            .retirements
            .lock()
            .expect("retirements lock")
            .insert(id, work.boxed());
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
