//! An in-memory [`Target`](super::Target) for unit tests of the deploy flow: containers,
//! images and the proxy's served routes are maps, and a [`Fault`] set before a step makes
//! that step fail the way the real host can (a build error, a container that exits or never
//! gets healthy, a proxy that never confirms, a route write refused, a container that dies
//! once traffic reaches it). No Docker, no proxy: its routes are in `proxy`.

mod images;
mod proxy;

use super::{HostSetup, PrepareError, Runtime, Target};
use async_trait::async_trait;
use capstan_compose::labels;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_core::{AppName, InstanceNames};
use capstan_engine::containers::{Health, HealthReport, OwnedContainer};
use capstan_engine::proxy::ProxyStatus;
use capstan_engine::server::EngineStatus;
use capstan_engine::usage::Usage;
use capstan_engine::EngineError;
use futures::stream::BoxStream;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// A way the next step of a deployment fails on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fault {
    /// Every image build fails.
    BuildFails,
    /// Creating or starting a container is refused.
    StartFails,
    /// New containers exit before they are healthy.
    ExitsBeforeHealthy,
    /// New containers run, but their health test never passes.
    NeverHealthy,
    /// Route files are written, but the proxy never serves what they say.
    ProxyNeverConfirms,
    /// Writing a route file fails.
    RouteWriteFails,
    /// The first route write goes through (the switch); every later one fails (putting
    /// the route back).
    RouteWritesFailAfterOne,
    /// New containers pass their health test and die once the proxy routes to them.
    DiesOnceRouted,
    /// Once the proxy routes to new containers, asking after their health never answers
    /// (the daemon is as good as stopped mid-switch).
    StallsOnceRouted,
}

/// How a container started while faults were set behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Fate {
    #[default]
    Healthy,
    ExitsAtOnce,
    NeverHealthy,
    DiesOnceRouted,
    StallsOnceRouted,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    id: String,
    image: String,
    labels: BTreeMap<String, String>,
    running: bool,
    fate: Fate,
    /// The URL the proxy reaches it at (`http://<name>:<port>` for any port).
    url_prefix: String,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    /// Image reference → image id.
    images: HashMap<String, String>,
    networks: BTreeSet<String>,
    /// Route file name → its text and the services (`<name>@file`) it defines.
    route_files: HashMap<String, (String, Vec<String>)>,
    /// Route writes that go through while `RouteWritesFailAfterOne` is set.
    writes_allowed: Option<u32>,
    /// How many builds from now on find the engine unreachable.
    unreachable_builds: u32,
    /// What the proxy serves: service → server URLs.
    served: HashMap<String, Vec<String>>,
    faults: BTreeSet<FaultKey>,
    next_id: u64,
    /// The one-off tasks run (pre-deploy commands), by container name.
    tasks: Vec<String>,
}

/// `Fault` ordered, for the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FaultKey(u8);

impl From<Fault> for FaultKey {
    fn from(fault: Fault) -> Self {
        FaultKey(fault as u8)
    }
}

/// The fake host.
pub(crate) struct FakeTarget {
    names: InstanceNames,
    state: Mutex<State>,
}

fn injected(what: &str) -> EngineError {
    EngineError::Proxy(format!("injected fault: {what}"))
}

impl FakeTarget {
    pub(crate) fn new(instance: &str) -> Self {
        Self {
            names: InstanceNames::new(instance),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake target state")
    }

    /// The one-off tasks run here so far (their container names).
    pub(crate) fn tasks(&self) -> Vec<String> {
        self.state().tasks.clone()
    }

    /// Makes an image reference present, as a pull or an earlier build would.
    pub(crate) fn add_image(&self, reference: &str) {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("sha256:{:064x}", state.next_id);
        state.images.insert(reference.to_string(), id);
    }

    pub(crate) fn set_fault(&self, fault: Fault) {
        let mut state = self.state();
        if fault == Fault::RouteWritesFailAfterOne {
            state.writes_allowed = Some(1);
        }
        state.faults.insert(fault.into());
    }

    /// The next `builds` builds find the engine unreachable (a transient fault).
    pub(crate) fn fail_builds_unreachable(&self, builds: u32) {
        self.state().unreachable_builds = builds;
    }

    /// Takes one unreachable build, if any are left.
    pub(crate) fn take_unreachable_build(&self) -> bool {
        let mut state = self.state();
        let left = state.unreachable_builds > 0;
        state.unreachable_builds = state.unreachable_builds.saturating_sub(1);
        left
    }

    pub(crate) fn clear_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.writes_allowed = None;
    }

    /// The text of a route file, if there is one.
    pub(crate) fn route_file(&self, name: &str) -> Option<String> {
        self.state()
            .route_files
            .get(name)
            .map(|(text, _)| text.clone())
    }

    /// Whether a container exists (running or not).
    pub(crate) fn exists(&self, container: &str) -> bool {
        self.state().containers.contains_key(container)
    }

    fn has(&self, fault: Fault) -> bool {
        self.state().faults.contains(&fault.into())
    }

    /// The server URLs the proxy serves for a service (`<name>@file`).
    pub(crate) fn served(&self, service: &str) -> Vec<String> {
        self.state()
            .served
            .get(service)
            .cloned()
            .unwrap_or_default()
    }

    /// The names of the running containers.
    pub(crate) fn running(&self) -> Vec<String> {
        let state = self.state();
        let running = state.containers.iter().filter(|(_, c)| c.running);
        running.map(|(name, _)| name.clone()).collect()
    }

    /// The image a container was started from.
    pub(crate) fn image_of(&self, container: &str) -> Option<String> {
        self.state()
            .containers
            .get(container)
            .map(|c| c.image.clone())
    }

    fn start(&self, service: &Service) -> Result<String, EngineError> {
        if self.has(Fault::StartFails) {
            return Err(injected("the container could not be started"));
        }
        let fate = if self.has(Fault::ExitsBeforeHealthy) {
            Fate::ExitsAtOnce
        } else if self.has(Fault::NeverHealthy) {
            Fate::NeverHealthy
        } else if self.has(Fault::DiesOnceRouted) {
            Fate::DiesOnceRouted
        } else if self.has(Fault::StallsOnceRouted) {
            Fate::StallsOnceRouted
        } else {
            Fate::Healthy
        };
        let mut state = self.state();
        if !state.images.contains_key(&service.image) {
            return Err(injected(&format!("no such image: {}", service.image)));
        }
        let name = service.container_name.clone();
        if state.containers.contains_key(&name) {
            return Err(injected(&format!(
                "container name {name} is already in use"
            )));
        }
        state.next_id += 1;
        let container = FakeContainer {
            id: format!("{:012x}", state.next_id),
            image: service.image.clone(),
            labels: service.labels.clone(),
            running: fate != Fate::ExitsAtOnce,
            fate,
            url_prefix: format!("http://{name}:"),
        };
        let id = container.id.clone();
        state.containers.insert(name, container);
        Ok(id)
    }

    /// The container by name or id.
    fn find<'a>(state: &'a mut State, key: &str) -> Option<(String, &'a mut FakeContainer)> {
        state
            .containers
            .iter_mut()
            .find(|(name, c)| name.as_str() == key || c.id == key)
            .map(|(name, c)| (name.clone(), c))
    }

    fn listed(&self, app: Option<&str>, role: &str) -> Vec<OwnedContainer> {
        let state = self.state();
        let matches = |c: &FakeContainer| {
            c.labels.get(labels::ROLE).map(String::as_str) == Some(role)
                && app.is_none_or(|a| c.labels.get(labels::APP).map(String::as_str) == Some(a))
        };
        state
            .containers
            .iter()
            .filter(|(_, c)| matches(c))
            .map(|(name, c)| OwnedContainer {
                id: c.id.clone(),
                name: name.clone(),
                labels: c.labels.clone().into_iter().collect(),
                running: c.running,
            })
            .collect()
    }
}

impl FakeTarget {
    /// A container's health now; `Err(None)` when asking it stalls.
    fn health_now(&self, container: &str) -> Result<HealthReport, Option<EngineError>> {
        let mut state = self.state();
        let served: Vec<String> = state.served.values().flatten().cloned().collect();
        let Some((_, c)) = Self::find(&mut state, container) else {
            return Err(Some(injected(&format!("no such container: {container}"))));
        };
        let routed = served.iter().any(|u| u.starts_with(&c.url_prefix));
        match c.fate {
            Fate::DiesOnceRouted if routed => c.running = false,
            Fate::StallsOnceRouted if routed => return Err(None),
            _ => {}
        }
        let health = match (c.running, c.fate) {
            (false, _) => Health::Down("exited with code 1".into()),
            (true, Fate::NeverHealthy) => Health::Starting,
            (true, _) => Health::Healthy,
        };
        Ok(HealthReport {
            health,
            last_probe: None,
            restart_count: 0,
        })
    }
}

#[async_trait]
impl Runtime for FakeTarget {
    fn names(&self) -> &InstanceNames {
        &self.names
    }

    async fn status(&self) -> Result<EngineStatus, EngineError> {
        Err(injected("the fake target has no engine status"))
    }

    async fn ensure_app_network(&self, app: &AppName) -> Result<String, EngineError> {
        let network = self.names.app(app).network();
        self.state().networks.insert(network.clone());
        Ok(network)
    }

    async fn remove_app_network(&self, app: &AppName) -> Result<(), EngineError> {
        self.state().networks.remove(&self.names.app(app).network());
        Ok(())
    }

    async fn app_networks_by_app(&self) -> Result<Vec<(String, String)>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_network_named(&self, name: &str) -> Result<(), EngineError> {
        self.state().networks.remove(name);
        Ok(())
    }

    async fn ensure_volumes(&self, _spec: &ComposeSpec) -> Result<(), EngineError> {
        Ok(())
    }

    async fn run_spec(
        &self,
        _spec: &ComposeSpec,
        service: &Service,
    ) -> Result<String, EngineError> {
        self.start(service)
    }

    async fn run_service(&self, service: &Service) -> Result<String, EngineError> {
        self.start(service)
    }

    async fn run_task(
        &self,
        _service: &Service,
        name: &str,
        _argv: &[String],
        _timeout: Duration,
        _log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        self.state().tasks.push(name.to_string());
        Ok(0)
    }

    /// The health test: passes unless the container was started never to get healthy.
    async fn exec(
        &self,
        container: &str,
        _argv: &[String],
        _timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        let mut state = self.state();
        let Some((_, c)) = Self::find(&mut state, container) else {
            return Err(injected(&format!("no such container: {container}")));
        };
        if c.fate == Fate::NeverHealthy {
            let _ = log.send("HTTP 503 from /".to_string());
            return Ok(1);
        }
        Ok(0)
    }

    async fn health(&self, container: &str) -> Result<HealthReport, EngineError> {
        let report = self.health_now(container);
        if report.as_ref().is_err_and(|stalled| stalled.is_none()) {
            futures::future::pending::<()>().await;
        }
        report.map_err(|e| e.unwrap_or_else(|| injected("stalled")))
    }

    async fn container_image(&self, container: &str) -> Result<Option<String>, EngineError> {
        Ok(self.image_of(container))
    }

    async fn tail_logs(&self, _container: &str, _lines: usize) -> Result<Vec<String>, EngineError> {
        Ok(vec!["listening".to_string()])
    }

    fn output_lines(
        &self,
        _container: &str,
        _tail: usize,
        _follow: bool,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        Box::pin(futures::stream::empty())
    }

    async fn usage(&self, _container: &str) -> Result<Usage, EngineError> {
        Err(injected("the fake target samples no usage"))
    }

    async fn stop_container(&self, container: &str, _grace_secs: u32) -> Result<(), EngineError> {
        if let Some((_, c)) = Self::find(&mut self.state(), container) {
            c.running = false;
        }
        Ok(())
    }

    async fn remove_container(&self, container: &str) -> Result<(), EngineError> {
        let mut state = self.state();
        if let Some((name, _)) = Self::find(&mut state, container) {
            state.containers.remove(&name);
        }
        Ok(())
    }

    async fn owned_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        Ok(self.listed(app, "app"))
    }

    async fn companion_containers(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<OwnedContainer>, EngineError> {
        Ok(self.listed(app, "companion"))
    }

    async fn run_containers(&self, app: Option<&str>) -> Result<Vec<OwnedContainer>, EngineError> {
        Ok(self.listed(app, labels::ROLE_RUN))
    }

    async fn stopped_containers(&self) -> Result<Vec<OwnedContainer>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_stopped_container(&self, id: &str) -> Result<(), EngineError> {
        self.remove_container(id).await
    }

    async fn data_root(&self) -> Result<Option<String>, EngineError> {
        Ok(None)
    }

    async fn proxy_status(&self) -> Result<Option<ProxyStatus>, EngineError> {
        Ok(None)
    }

    async fn join_proxy(&self, _network: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}

#[async_trait]
impl Target for FakeTarget {
    async fn prepare(&self, _setup: &HostSetup) -> Result<(), PrepareError> {
        Ok(())
    }
}

/// Daemon settings for unit tests over a fake target, everything under `dir`.
pub(crate) fn test_settings(dir: &std::path::Path) -> crate::DeploySettings {
    crate::DeploySettings {
        workspace_dir: dir.join("workspaces"),
        build_slots: 1,
        keep_images: 3,
        secret_key: capstan_store::SecretKey::load_or_create(&dir.join("secret.key")).unwrap(),
        fetch_limits: Default::default(),
        protected_paths: vec![dir.to_string_lossy().into_owned()],
        source_dirs: vec![],
        source_limits: Default::default(),
        proxy_https_port: 443,
        own_acme_ca: false,
        ssh_timeout: Duration::from_secs(30),
    }
}
