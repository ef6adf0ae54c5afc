//! One release on three fake servers: a server that fails does not stop the others, the
//! deployment records which server runs which release, a retry runs only where it failed,
//! and the next deploy and a rollback reach every server.

use super::fake::{FakeTarget, Fault};
use crate::{Caller, Deployer, RollbackTarget};
use capstan_core::{AppName, DeploymentState, ServerName};
use capstan_store::Store;
use std::sync::Arc;
use std::time::Duration;

const SERVERS: [&str; 3] = ["local", "edge-a", "edge-b"];

struct Fleet {
    deployer: Deployer,
    /// The fake host of each server, in [`SERVERS`] order.
    hosts: Vec<Arc<FakeTarget>>,
    app: AppName,
    _dir: tempfile::TempDir,
}

/// A daemon with three servers (each its own fake host holding `web:v1` and `web:v2`) and
/// app `web` on all three.
async fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    let hosts: Vec<Arc<FakeTarget>> = SERVERS
        .iter()
        .map(|name| {
            let host = Arc::new(FakeTarget::new(&format!("ns-{name}")));
            host.add_image("web:v1");
            host.add_image("web:v2");
            host
        })
        .collect();
    let deployer = Deployer::new(
        store,
        hosts[0].clone(),
        super::fake::test_settings(dir.path()),
    );
    let caller = Caller::daemon();
    for (i, name) in SERVERS.iter().enumerate().skip(1) {
        let server = serde_json::from_value(serde_json::json!({
            "name": name, "kind": "ssh", "host": format!("10.0.0.{}", 10 + i)
        }))
        .unwrap();
        deployer.create_server(server, &caller).await.unwrap();
        deployer.add_target(ServerName::parse(name).unwrap(), hosts[i].clone());
    }
    let app = AppName::parse("web").unwrap();
    let spec = serde_json::from_value(serde_json::json!({
        "source": {"image": "web:v1"}, "port": 8080, "domains": ["web.example.com"],
        "drain_secs": 1, "servers": SERVERS,
        "health": {"interval_secs": 0.1, "retries": 3, "deadline_secs": 2}
    }))
    .unwrap();
    deployer.create_app(&app, spec, &caller).await.unwrap();
    Fleet {
        deployer,
        hosts,
        app,
        _dir: dir,
    }
}

impl Fleet {
    async fn run_next(&self) -> (i64, DeploymentState) {
        let claimed = self.deployer.store().claim_next().await.unwrap().unwrap();
        let id = claimed.id;
        self.deployer.run_deployment(claimed).await;
        for _ in 0..200 {
            if !self.deployer.is_running(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (
            id,
            self.deployer.store().deployment(id).await.unwrap().state,
        )
    }

    async fn deploy(&self) -> (i64, DeploymentState) {
        self.deployer
            .deploy(&self.app, None, false, &Caller::daemon())
            .await
            .unwrap();
        self.run_next().await
    }

    /// Each server's state for deployment `id`, in [`SERVERS`] order.
    async fn states(&self, id: i64) -> Vec<DeploymentState> {
        let targets = self.deployer.store().targets_of(id).await.unwrap();
        let servers: Vec<&str> = targets.iter().map(|t| t.server.as_str()).collect();
        assert_eq!(servers, SERVERS);
        targets.iter().map(|t| t.state).collect()
    }

    /// The deployment whose containers server `i`'s proxy routes to (`None`: no route).
    fn routed_deployment(&self, i: usize) -> Option<i64> {
        let names = capstan_core::InstanceNames::new(&format!("ns-{}", SERVERS[i]));
        let served =
            self.hosts[i].served(&format!("{}@file", names.app(&self.app).traefik_service()));
        let url = served.first()?;
        (1..100).find(|id| {
            capstan_compose::render::DeploymentNames::new(names.instance(), &self.app, *id)
                .replica_containers(1)
                .iter()
                .any(|c| url.contains(c.as_str()))
        })
    }
}

#[tokio::test]
async fn a_failing_server_does_not_stop_the_others_and_a_retry_runs_only_there() {
    use DeploymentState::{Failed, Live};
    let fleet = fleet().await;
    fleet.hosts[2].set_fault(Fault::StartFails);
    let (first, state) = fleet.deploy().await;
    assert_eq!(state, Live, "live where it could go live");
    assert_eq!(fleet.states(first).await, vec![Live, Live, Failed]);
    let record = fleet.deployer.store().deployment(first).await.unwrap();
    let note = record.error.unwrap();
    assert!(note.contains("edge-b") && note.contains("retry"), "{note}");
    assert_eq!(fleet.routed_deployment(0), Some(first));
    assert_eq!(fleet.routed_deployment(1), Some(first));
    assert_eq!(
        fleet.routed_deployment(2),
        None,
        "nothing routed where it failed"
    );
    let running_before: Vec<Vec<String>> = fleet.hosts[..2].iter().map(|h| h.running()).collect();

    fleet.hosts[2].clear_faults();
    let retried = fleet
        .deployer
        .retry(first, &Caller::daemon())
        .await
        .unwrap();
    assert_eq!(retried.state, DeploymentState::Queued);
    let (same, state) = fleet.run_next().await;
    assert_eq!((same, state), (first, Live));
    assert_eq!(fleet.states(first).await, vec![Live, Live, Live]);
    assert_eq!(fleet.routed_deployment(2), Some(first));
    let running_after: Vec<Vec<String>> = fleet.hosts[..2].iter().map(|h| h.running()).collect();
    assert_eq!(
        running_before, running_after,
        "the servers that were live were not touched"
    );

    // Nothing failed any more: nothing to retry.
    let refused = fleet
        .deployer
        .retry(first, &Caller::daemon())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, crate::ActionError::Conflict(_)),
        "{refused}"
    );
}

#[tokio::test]
async fn the_next_deploy_and_a_rollback_reach_every_server() {
    use DeploymentState::{Failed, Live, Superseded};
    let fleet = fleet().await;
    fleet.hosts[1].set_fault(Fault::NeverHealthy);
    let (first, _) = fleet.deploy().await;
    assert_eq!(fleet.states(first).await, vec![Live, Failed, Live]);
    fleet.hosts[1].clear_faults();
    let patch = serde_json::json!({"source": {"image": "web:v2"}});
    fleet
        .deployer
        .patch_app(&fleet.app, &patch, &Caller::daemon())
        .await
        .unwrap();
    let (second, state) = fleet.deploy().await;
    assert_eq!(state, Live);
    assert_eq!(fleet.states(second).await, vec![Live, Live, Live]);
    assert_eq!(
        fleet.states(first).await,
        vec![Superseded, Failed, Superseded]
    );
    // A deployment replaced by a later one is not retried.
    assert!(fleet
        .deployer
        .retry(first, &Caller::daemon())
        .await
        .is_err());
    for (i, server) in SERVERS.iter().enumerate() {
        assert_eq!(fleet.routed_deployment(i), Some(second), "server {server}");
    }

    fleet
        .deployer
        .rollback(
            &fleet.app,
            RollbackTarget::Deployment(first),
            &Caller::daemon(),
        )
        .await
        .unwrap();
    let (rollback, state) = fleet.run_next().await;
    assert_eq!(state, Live);
    assert_eq!(fleet.states(rollback).await, vec![Live, Live, Live]);
    for (i, server) in SERVERS.iter().enumerate() {
        assert_eq!(
            fleet.routed_deployment(i),
            Some(rollback),
            "server {server}"
        );
        assert_eq!(
            fleet.hosts[i].image_of(&first_container(&fleet, i, rollback)),
            Some("web:v1".to_string())
        );
    }
}

#[tokio::test]
async fn failing_everywhere_fails_the_deployment_and_leaves_each_server_serving() {
    use DeploymentState::{Failed, Live};
    let fleet = fleet().await;
    let (first, _) = fleet.deploy().await;
    for host in &fleet.hosts {
        host.set_fault(Fault::ExitsBeforeHealthy);
    }
    let (second, state) = fleet.deploy().await;
    assert_eq!(state, Failed);
    assert_eq!(fleet.states(second).await, vec![Failed, Failed, Failed]);
    assert_eq!(fleet.states(first).await, vec![Live, Live, Live]);
    let live = fleet
        .deployer
        .store()
        .app(&fleet.app)
        .await
        .unwrap()
        .live_deployment_id;
    assert_eq!(live, Some(first));
    for i in 0..3 {
        assert_eq!(fleet.routed_deployment(i), Some(first));
    }
}

fn first_container(fleet: &Fleet, i: usize, id: i64) -> String {
    let names = capstan_core::InstanceNames::new(&format!("ns-{}", SERVERS[i]));
    capstan_compose::render::DeploymentNames::new(names.instance(), &fleet.app, id)
        .replica_containers(1)[0]
        .clone()
}

#[tokio::test]
async fn a_build_server_produces_the_image_and_only_the_app_servers_run_it() {
    let fleet = fleet().await;
    let patch = serde_json::json!({"servers": ["edge-b"], "build_server": "local"});
    fleet
        .deployer
        .patch_app(&fleet.app, &patch, &Caller::daemon())
        .await
        .unwrap();
    let (id, state) = fleet.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    let targets = fleet.deployer.store().targets_of(id).await.unwrap();
    let rows: Vec<_> = targets
        .iter()
        .map(|t| (t.server.as_str(), t.state))
        .collect();
    assert_eq!(rows, vec![("edge-b", DeploymentState::Live)]);
    assert_eq!(fleet.routed_deployment(2), Some(id));
    assert!(
        fleet.hosts[0].running().is_empty(),
        "nothing runs on the build server"
    );
    assert_eq!(fleet.routed_deployment(0), None);

    // A build server that does not exist is refused, naming the field.
    let patch = serde_json::json!({"build_server": "nowhere"});
    let refused = fleet
        .deployer
        .patch_app(&fleet.app, &patch, &Caller::daemon())
        .await
        .err()
        .expect("an unknown build server is refused");
    let message = refused.to_string();
    assert!(
        message.starts_with("build_server: there is no server nowhere"),
        "{message}"
    );
}

#[tokio::test]
async fn the_apps_commands_run_once_and_a_failure_there_starts_no_other_server() {
    use DeploymentState::{Failed, Live};
    let fleet = fleet().await;
    let patch = serde_json::json!({"pre_deploy": {"command": ["migrate"]}});
    fleet
        .deployer
        .patch_app(&fleet.app, &patch, &Caller::daemon())
        .await
        .unwrap();
    let (first, state) = fleet.deploy().await;
    assert_eq!(state, Live);
    let tasks: Vec<usize> = fleet.hosts.iter().map(|h| h.tasks().len()).collect();
    assert_eq!(
        tasks,
        vec![1, 0, 0],
        "the pre-deploy command ran once, on the first server"
    );
    assert_eq!(fleet.states(first).await, vec![Live, Live, Live]);

    // The server that runs the commands fails: no other server starts the new version.
    fleet.hosts[0].set_fault(Fault::StartFails);
    let (second, state) = fleet.deploy().await;
    assert_eq!(state, Failed);
    assert_eq!(fleet.states(second).await, vec![Failed, Failed, Failed]);
    let running_second = fleet.hosts[1..]
        .iter()
        .flat_map(|h| h.running())
        .filter(|c| c.contains(&format!("_d{second}")))
        .count();
    assert_eq!(running_second, 0);
    for i in 0..SERVERS.len() {
        assert_eq!(fleet.routed_deployment(i), Some(first));
    }
}

#[tokio::test]
async fn a_server_the_app_is_not_live_on_can_be_taken_away() {
    let fleet = fleet().await;
    fleet.hosts[2].set_fault(Fault::StartFails);
    let (first, _) = fleet.deploy().await;
    assert_eq!(fleet.states(first).await[2], DeploymentState::Failed);
    let caller = Caller::daemon();
    // Live on edge-a: refused, naming it.
    let patch = serde_json::json!({"servers": ["local"]});
    let refused = fleet.deployer.patch_app(&fleet.app, &patch, &caller).await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("live on edge-a"), "{message}");
    assert!(!message.contains("edge-b"), "{message}");
    // Not live on edge-b (it failed there): taken away.
    let patch = serde_json::json!({"servers": ["local", "edge-a"]});
    let kept = fleet.deployer.patch_app(&fleet.app, &patch, &caller).await;
    assert!(kept.is_ok());
}

#[tokio::test]
async fn a_cancel_on_several_servers_ends_cancelled_and_each_keeps_serving() {
    let fleet = fleet().await;
    let (first, _) = fleet.deploy().await;
    for host in &fleet.hosts {
        host.set_fault(Fault::NeverHealthy);
    }
    let queued = fleet
        .deployer
        .deploy(&fleet.app, None, false, &Caller::daemon())
        .await
        .unwrap();
    let claimed = fleet.deployer.store().claim_next().await.unwrap().unwrap();
    let runner = fleet.deployer.clone();
    let run = tokio::spawn(async move { runner.run_deployment(claimed).await });
    for _ in 0..250 {
        let states = fleet.states(queued.id).await;
        if states.iter().all(|s| *s == DeploymentState::HealthChecking) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ann = Caller::user("ann", capstan_core::Role::Deployer);
    fleet.deployer.cancel(queued.id, &ann).await.unwrap();
    tokio::time::timeout(Duration::from_millis(1500), run)
        .await
        .expect("stopped before the health deadline")
        .unwrap();
    let record = fleet.deployer.store().deployment(queued.id).await.unwrap();
    assert_eq!(
        record.state,
        DeploymentState::Cancelled,
        "{:?}",
        record.error
    );
    for i in 0..3 {
        assert!(!fleet.hosts[i].exists(&first_container(&fleet, i, queued.id)));
        assert_eq!(fleet.routed_deployment(i), Some(first));
    }
}
