//! The deploy flow (deploy, rollback, restart, crash recovery) against the fake target,
//! with a fault injected at each step: whatever fails, the version the proxy serves is
//! the one the database calls live, and the failed deployment's containers are gone.

use super::fake::{FakeTarget, Fault};
use crate::{Caller, Deployer, RollbackTarget};
use capstan_core::{AppName, DeploymentState};
use capstan_store::Store;
use std::sync::Arc;
use std::time::Duration;

const INSTANCE: &str = "capt";

pub(crate) struct Host {
    pub(crate) deployer: Deployer,
    pub(crate) fake: Arc<FakeTarget>,
    app: AppName,
    _dir: tempfile::TempDir,
}

/// A daemon over a fresh database and the fake host, with app `web` created from the
/// prebuilt image `web:v1` (`web:v2` is on the host too).
pub(crate) async fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    let fake = Arc::new(FakeTarget::new(INSTANCE));
    fake.add_image("web:v1");
    fake.add_image("web:v2");
    let deployer = Deployer::new(store, fake.clone(), super::fake::test_settings(dir.path()));
    let app = AppName::parse("web").unwrap();
    let spec = serde_json::from_value(serde_json::json!({
        "source": {"image": "web:v1"},
        "port": 8080,
        "domains": ["web.example.com"],
        "drain_secs": 1,
        "health": {"interval_secs": 0.1, "retries": 3, "deadline_secs": 2}
    }))
    .unwrap();
    deployer
        .create_app(&app, spec, &Caller::daemon())
        .await
        .unwrap();
    Host {
        deployer,
        fake,
        app,
        _dir: dir,
    }
}

impl Host {
    /// Runs the next queued deployment to its end (retirement included); its final state.
    async fn run_next(&self) -> (i64, DeploymentState) {
        let claimed = self.deployer.store().claim_next().await.unwrap().unwrap();
        let id = claimed.id;
        self.deployer.run_deployment(claimed).await;
        self.settle(id).await
    }

    async fn settle(&self, id: i64) -> (i64, DeploymentState) {
        for _ in 0..200 {
            if !self.deployer.is_running(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let record = self.deployer.store().deployment(id).await.unwrap();
        (id, record.state)
    }

    pub(super) async fn deploy(&self) -> (i64, DeploymentState) {
        let caller = Caller::daemon();
        self.deployer
            .deploy(&self.app, None, false, &caller)
            .await
            .unwrap();
        self.run_next().await
    }

    /// Points the app at another prebuilt image (the next deploy runs it).
    async fn use_image(&self, image: &str) {
        let patch = serde_json::json!({"source": {"image": image}});
        let caller = Caller::daemon();
        self.deployer
            .patch_app(&self.app, &patch, &caller)
            .await
            .unwrap();
    }

    async fn live(&self) -> Option<i64> {
        self.deployer
            .store()
            .app(&self.app)
            .await
            .unwrap()
            .live_deployment_id
    }

    /// The containers the proxy sends the app's traffic to.
    fn routed(&self) -> Vec<String> {
        let mut routed: Vec<String> = self
            .fake
            .served(&format!("{}@file", self.names().traefik_service()))
            .iter()
            .map(|url| {
                url.trim_start_matches("http://")
                    .trim_end_matches(":8080")
                    .to_string()
            })
            .collect();
        routed.sort();
        routed
    }

    fn names(&self) -> capstan_core::AppNames {
        capstan_core::InstanceNames::new(INSTANCE).app(&self.app)
    }

    fn containers_of(&self, deployment: i64) -> Vec<String> {
        let names = capstan_compose::render::DeploymentNames::new(INSTANCE, &self.app, deployment);
        names.replica_containers(1)
    }

    /// The invariant after any failure: the proxy routes to the deployment the database
    /// calls live, it runs, and the failed one left no container behind.
    async fn assert_serving(&self, live: i64, failed: i64) {
        assert_eq!(
            self.live().await,
            Some(live),
            "the database's live deployment"
        );
        let live_containers = self.containers_of(live);
        assert_eq!(self.routed(), live_containers, "what the proxy routes to");
        let running = self.fake.running();
        for container in &live_containers {
            assert!(running.contains(container), "{container} runs: {running:?}");
        }
        for container in self.containers_of(failed) {
            assert!(!self.fake.exists(&container), "{container} was removed");
        }
        // The route file itself names the live containers and not the failed ones.
        let file = self.fake.route_file(&self.names().route_file());
        let file = file.expect("a route file");
        for container in &live_containers {
            assert!(file.contains(container.as_str()), "{file}");
        }
        for container in self.containers_of(failed) {
            assert!(!file.contains(container.as_str()), "{file}");
        }
        let record = self.deployer.store().deployment(failed).await.unwrap();
        assert_eq!(record.state, DeploymentState::Failed);
        assert!(record.error.is_some_and(|e| !e.is_empty()));
    }

    /// A first deployment live on `web:v1`, then the app pointed at `web:v2`.
    async fn live_on_v1(&self) -> i64 {
        let (first, state) = self.deploy().await;
        assert_eq!(state, DeploymentState::Live);
        assert_eq!(self.routed(), self.containers_of(first));
        self.use_image("web:v2").await;
        first
    }
}

#[tokio::test]
async fn a_deploy_goes_live_and_the_next_one_replaces_it() {
    let host = host().await;
    let first = host.live_on_v1().await;
    let (second, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    assert_eq!(host.live().await, Some(second));
    assert_eq!(host.routed(), host.containers_of(second));
    let first_record = host.deployer.store().deployment(first).await.unwrap();
    assert_eq!(first_record.state, DeploymentState::Superseded);
    // The replaced version is retired.
    assert_eq!(host.fake.running(), host.containers_of(second));
    let container = &host.containers_of(second)[0];
    assert_eq!(host.fake.image_of(container).as_deref(), Some("web:v2"));
}

#[tokio::test]
async fn every_fault_before_or_during_the_switch_leaves_the_live_version_serving() {
    let faults = [
        Fault::StartFails,
        Fault::ExitsBeforeHealthy,
        Fault::NeverHealthy,
        Fault::ProxyNeverConfirms,
        Fault::RouteWriteFails,
        Fault::DiesOnceRouted,
    ];
    for fault in faults {
        let host = host().await;
        let first = host.live_on_v1().await;
        host.fake.set_fault(fault);
        let (second, state) = host.deploy().await;
        assert_eq!(state, DeploymentState::Failed, "{fault:?}");
        host.assert_serving(first, second).await;
        // The next deploy, with the host healthy again, goes live.
        host.fake.clear_faults();
        let (third, state) = host.deploy().await;
        assert_eq!(state, DeploymentState::Live, "{fault:?}: the deploy after");
        assert_eq!(host.routed(), host.containers_of(third), "{fault:?}");
    }
}

#[tokio::test]
async fn a_failed_first_deploy_routes_nothing() {
    for fault in [Fault::NeverHealthy, Fault::ProxyNeverConfirms] {
        let host = host().await;
        host.fake.set_fault(fault);
        let (first, state) = host.deploy().await;
        assert_eq!(state, DeploymentState::Failed, "{fault:?}");
        assert_eq!(host.live().await, None);
        assert!(host.routed().is_empty(), "{fault:?}: {:?}", host.routed());
        let file = host.fake.route_file(&host.names().route_file());
        assert_eq!(file, None, "{fault:?}: the route file was removed");
        assert!(
            host.fake.running().is_empty(),
            "{first}: {:?}",
            host.fake.running()
        );
    }
}

#[tokio::test]
async fn a_build_that_fails_changes_nothing() {
    let host = host().await;
    let first = host.live_on_v1().await;
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("Dockerfile"), "FROM web:v1\nRUN false\n").unwrap();
    let mut settings = super::fake::test_settings(host._dir.path());
    settings.source_dirs = vec![source.path().to_path_buf()];
    let deployer = Deployer::new(host.deployer.store().clone(), host.fake.clone(), settings);
    let path = source.path().to_string_lossy().into_owned();
    let patch = serde_json::json!({"source": {"path": path}});
    deployer
        .patch_app(&host.app, &patch, &Caller::daemon())
        .await
        .unwrap();
    host.fake.set_fault(Fault::BuildFails);
    deployer
        .deploy(&host.app, None, false, &Caller::daemon())
        .await
        .unwrap();
    let claimed = deployer.store().claim_next().await.unwrap().unwrap();
    deployer.run_deployment(claimed.clone()).await;
    let (second, _) = host.settle(claimed.id).await;
    host.assert_serving(first, second).await;
    let error = deployer
        .store()
        .deployment(second)
        .await
        .unwrap()
        .error
        .unwrap();
    assert!(error.contains("injected fault"), "{error}");
}

#[tokio::test]
async fn rollback_and_restart_go_through_the_same_gate() {
    let host = host().await;
    let first = host.live_on_v1().await;
    let (second, _) = host.deploy().await;
    // A rollback whose containers never get healthy leaves v2 serving.
    host.fake.set_fault(Fault::NeverHealthy);
    let caller = Caller::daemon();
    host.deployer
        .rollback(&host.app, RollbackTarget::Previous, &caller)
        .await
        .unwrap();
    let (failed, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Failed);
    host.assert_serving(second, failed).await;
    // Without the fault it brings back v1's image.
    host.fake.clear_faults();
    let target = RollbackTarget::Deployment(first);
    host.deployer
        .rollback(&host.app, target, &caller)
        .await
        .unwrap();
    let (rolled, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Live);
    let container = &host.containers_of(rolled)[0];
    assert_eq!(host.fake.image_of(container).as_deref(), Some("web:v1"));
    assert_eq!(host.routed(), host.containers_of(rolled));
    // A restart that dies once routed goes back to the rollback's containers.
    host.fake.set_fault(Fault::DiesOnceRouted);
    host.deployer.restart(&host.app, &caller).await.unwrap();
    let (failed, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Failed);
    host.assert_serving(rolled, failed).await;
    host.fake.clear_faults();
    host.deployer.restart(&host.app, &caller).await.unwrap();
    let (restarted, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Live);
    let container = &host.containers_of(restarted)[0];
    assert_eq!(host.fake.image_of(container).as_deref(), Some("web:v1"));
}

#[tokio::test]
async fn a_daemon_stopped_mid_switch_comes_back_serving_the_live_version() {
    let host = host().await;
    let first = host.live_on_v1().await;
    host.fake.set_fault(Fault::StallsOnceRouted);
    let caller = Caller::daemon();
    host.deployer
        .deploy(&host.app, None, false, &caller)
        .await
        .unwrap();
    let claimed = host.deployer.store().claim_next().await.unwrap().unwrap();
    let second = claimed.id;
    let running = {
        let deployer = host.deployer.clone();
        tokio::spawn(async move { deployer.run_deployment(claimed).await })
    };
    // Wait until the route points at the new version, mid-drain.
    for _ in 0..200 {
        if host.routed() == host.containers_of(second) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.routed(), host.containers_of(second), "switched");
    let state = host
        .deployer
        .store()
        .deployment(second)
        .await
        .unwrap()
        .state;
    assert_eq!(state, DeploymentState::Switching);
    // The daemon stops: its task is gone, and a new daemon starts on the same database
    // and host.
    running.abort();
    let _ = running.await;
    host.fake.clear_faults();
    let settings = super::fake::test_settings(host._dir.path());
    let restarted = Deployer::new(host.deployer.store().clone(), host.fake.clone(), settings);
    restarted.recover().await;
    host.assert_serving(first, second).await;
}

#[tokio::test]
async fn an_app_deploys_on_the_server_it_targets() {
    let host = host().await;
    let edge = Arc::new(FakeTarget::new("edge"));
    edge.add_image("web:v1");
    let server: capstan_core::ServerSpec = serde_json::from_value(serde_json::json!({
        "name": "edge", "kind": "ssh", "host": "10.0.0.7"
    }))
    .unwrap();
    let caller = Caller::daemon();
    host.deployer.create_server(server, &caller).await.unwrap();
    let app = AppName::parse("api").unwrap();
    let spec = |image: &str| {
        serde_json::json!({
            "source": {"image": image}, "port": 8080, "domains": ["api.example.com"],
            "servers": ["edge"], "health": {"interval_secs": 0.1, "deadline_secs": 2}
        })
    };
    let spec_v1 = serde_json::from_value(spec("web:v1")).unwrap();
    host.deployer
        .create_app(&app, spec_v1, &caller)
        .await
        .unwrap();
    // No target for the server yet: the deployment connects when it runs, and fails
    // there (nothing to connect with here), leaving nothing live.
    host.deployer
        .deploy(&app, None, false, &caller)
        .await
        .unwrap();
    let (unstarted, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Failed);
    let error = host
        .deployer
        .store()
        .deployment(unstarted)
        .await
        .unwrap()
        .error
        .unwrap();
    assert!(error.contains("not set up its own host"), "{error}");
    host.deployer.add_target(
        capstan_core::ServerName::parse("edge").unwrap(),
        edge.clone(),
    );
    host.deployer
        .deploy(&app, None, false, &caller)
        .await
        .unwrap();
    let (first, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Live);
    let containers = capstan_compose::render::DeploymentNames::new("edge", &app, first);
    let served = edge.served(&format!(
        "{}@file",
        capstan_core::InstanceNames::new("edge")
            .app(&app)
            .traefik_service()
    ));
    assert_eq!(
        served,
        vec![format!(
            "http://{}:8080",
            containers.replica_containers(1)[0]
        )]
    );
    assert_eq!(edge.running(), containers.replica_containers(1));
    // Nothing of it on the local host.
    assert!(host.fake.running().is_empty(), "{:?}", host.fake.running());
    // A restart there whose containers never get healthy leaves the first serving there.
    edge.set_fault(Fault::NeverHealthy);
    host.deployer.restart(&app, &caller).await.unwrap();
    let (failed, state) = host.run_next().await;
    assert_eq!(state, DeploymentState::Failed, "deployment {failed}");
    assert_eq!(edge.running(), containers.replica_containers(1));
    let live = host
        .deployer
        .store()
        .app(&app)
        .await
        .unwrap()
        .live_deployment_id;
    assert_eq!(live, Some(first));
}

#[tokio::test]
async fn a_route_that_cannot_be_put_back_keeps_the_new_containers() {
    let host = host().await;
    let first = host.live_on_v1().await;
    // The switch is written but never confirmed, and putting the route back is refused.
    host.fake.set_fault(Fault::ProxyNeverConfirms);
    host.fake.set_fault(Fault::RouteWritesFailAfterOne);
    let (second, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Failed);
    assert_eq!(host.live().await, Some(first));
    let error = host
        .deployer
        .store()
        .deployment(second)
        .await
        .unwrap()
        .error
        .unwrap();
    assert!(error.contains("could not be put back"), "{error}");
    // No outage: whatever the proxy routes to still runs.
    let running = host.fake.running();
    for container in host
        .containers_of(first)
        .iter()
        .chain(&host.containers_of(second))
    {
        assert!(running.contains(container), "{container}: {running:?}");
    }
    // The next deployment, with the host healthy again, replaces both.
    host.fake.clear_faults();
    let (third, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    assert_eq!(host.fake.running(), host.containers_of(third));
}
