//! The queue policy against the fake target: a newer deployment supersedes a queued one, a
//! queued deployment is cancelled at once and a running one at its next step (its new
//! containers gone, the live version still routed), too late once it switches; transient
//! engine faults before anything started are tried again, at most 3 times; the hourly
//! rate limit binds tokens and not the admin.

use super::fake::Fault;
use super::flow_tests::{host, Host};
use crate::events::{DeployEvent, Outcome};
use crate::{ActionError, Caller, Cancelled, Deployer};
use capstan_core::{AppName, DeploymentState, Role};
use std::time::Duration;

fn web() -> AppName {
    AppName::parse("web").unwrap()
}

fn ci() -> Caller {
    Caller::token("ci", Role::Deployer.scopes())
}

/// Queues a deploy of `web` as `caller`; its id.
async fn queue_deploy(deployer: &Deployer, caller: &Caller) -> i64 {
    deployer
        .deploy(&web(), None, false, caller)
        .await
        .unwrap()
        .id
}

async fn log_of(deployer: &Deployer, id: i64) -> String {
    let lines = deployer.store().logs_after(id, 0).await.unwrap();
    lines
        .iter()
        .map(|l| l.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn containers_of(id: i64) -> Vec<String> {
    capstan_compose::render::DeploymentNames::new(host_instance(), &web(), id).replica_containers(1)
}

fn host_instance() -> &'static str {
    "capt"
}

/// The containers the proxy routes the app to.
fn routed(host: &Host) -> Vec<String> {
    let names = capstan_core::InstanceNames::new(host_instance()).app(&web());
    let mut routed: Vec<String> = host
        .fake
        .served(&format!("{}@file", names.traefik_service()))
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

/// A first deployment live on `web:v1`, the app then pointed at `web:v2`.
async fn live_on_v1(host: &Host) -> i64 {
    let (first, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    let patch = serde_json::json!({"source": {"image": "web:v2"}});
    host.deployer
        .patch_app(&web(), &patch, &Caller::daemon())
        .await
        .unwrap();
    first
}

async fn state_of(deployer: &Deployer, id: i64) -> DeploymentState {
    deployer.store().deployment(id).await.unwrap().state
}

/// Waits until deployment `id` is in `state` (5 s at most).
async fn wait_for_state(deployer: &Deployer, id: i64, state: DeploymentState) {
    for _ in 0..250 {
        if state_of(deployer, id).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deployment {id} never reached {state}");
}

/// Waits until no worker runs deployment `id` (5 s at most).
async fn wait_until_done(deployer: &Deployer, id: i64) {
    for _ in 0..250 {
        if !deployer.is_running(id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deployment {id} still runs");
}

#[tokio::test]
async fn a_newer_deployment_supersedes_a_queued_one_and_says_so() {
    let host = host().await;
    let mut events = host.deployer.subscribe();
    let older = queue_deploy(&host.deployer, &ci()).await;
    let newer = queue_deploy(&host.deployer, &ci()).await;
    assert_eq!(
        state_of(&host.deployer, older).await,
        DeploymentState::Superseded
    );
    let note = format!("superseded by deployment {newer} before it started");
    assert!(log_of(&host.deployer, older).await.contains(&note));
    let mut superseded = None;
    while let Ok(event) = events.try_recv() {
        if let DeployEvent::Finished(finished) = event {
            superseded = Some((finished.record.id, finished.outcome.clone()));
        }
    }
    assert_eq!(superseded, Some((older, Outcome::Superseded)));
    // The newer one is what runs next.
    let claimed = host.deployer.store().claim_next().await.unwrap().unwrap();
    assert_eq!(claimed.id, newer);
}

#[tokio::test]
async fn a_queued_deployment_is_cancelled_at_once() {
    let host = host().await;
    let id = queue_deploy(&host.deployer, &ci()).await;
    let ann = Caller::user("ann", Role::Deployer);
    match host.deployer.cancel(id, &ann).await.unwrap() {
        Cancelled::Now(d) => assert_eq!(d.state, DeploymentState::Cancelled),
        other => panic!("{other:?}"),
    }
    assert!(host.deployer.store().claim_next().await.unwrap().is_none());
    assert!(log_of(&host.deployer, id)
        .await
        .contains("cancelled by user:ann"));
    let again = host.deployer.cancel(id, &ann).await.unwrap_err();
    assert!(
        matches!(&again, ActionError::Conflict(m) if m.contains("already ended: it is cancelled")),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_running_deployment_stops_at_its_health_wait_and_the_live_version_serves() {
    let host = host().await;
    let first = live_on_v1(&host).await;
    host.fake.set_fault(Fault::NeverHealthy);
    let id = queue_deploy(&host.deployer, &ci()).await;
    let claimed = host.deployer.store().claim_next().await.unwrap().unwrap();
    let runner = host.deployer.clone();
    let run = tokio::spawn(async move { runner.run_deployment(claimed).await });
    wait_for_state(&host.deployer, id, DeploymentState::HealthChecking).await;
    assert!(
        host.fake.exists(&containers_of(id)[0]),
        "its container started"
    );
    let ann = Caller::user("ann", Role::Deployer);
    let asked = host.deployer.cancel(id, &ann).await.unwrap();
    assert!(matches!(asked, Cancelled::Requested(_)), "{asked:?}");
    // Well before the health deadline (2 s) would have failed it.
    tokio::time::timeout(Duration::from_millis(1500), run)
        .await
        .expect("stopped at once")
        .unwrap();
    wait_until_done(&host.deployer, id).await;
    let record = host.deployer.store().deployment(id).await.unwrap();
    assert_eq!(record.state, DeploymentState::Cancelled);
    assert!(record.error.unwrap().contains("cancelled by user:ann"));
    assert!(
        !host.fake.exists(&containers_of(id)[0]),
        "its container is gone"
    );
    assert_eq!(
        routed(&host),
        containers_of(first),
        "the live version serves"
    );
    let app = host.deployer.store().app(&web()).await.unwrap();
    assert_eq!(app.live_deployment_id, Some(first));
    let log = log_of(&host.deployer, id).await;
    assert!(log.contains("cancel requested by user:ann"), "{log}");
    // The next deploy goes live as usual.
    host.fake.clear_faults();
    let (next, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    assert_eq!(routed(&host), containers_of(next));
}

#[tokio::test]
async fn a_deployment_switching_traffic_cannot_be_cancelled() {
    let host = host().await;
    live_on_v1(&host).await;
    host.fake.set_fault(Fault::StallsOnceRouted);
    let id = queue_deploy(&host.deployer, &ci()).await;
    let claimed = host.deployer.store().claim_next().await.unwrap().unwrap();
    let runner = host.deployer.clone();
    let run = tokio::spawn(async move { runner.run_deployment(claimed).await });
    wait_for_state(&host.deployer, id, DeploymentState::Switching).await;
    let refused = host.deployer.cancel(id, &ci()).await.unwrap_err();
    assert!(
        matches!(&refused, ActionError::Conflict(m) if m.contains("too late")),
        "{refused:?}"
    );
    run.abort();
}

#[tokio::test]
async fn an_unreachable_engine_before_anything_started_is_tried_three_times() {
    let host = host().await;
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("Dockerfile"), "FROM web:v1\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut settings = super::fake::test_settings(data.path());
    settings.source_dirs = vec![source.path().to_path_buf()];
    let deployer = Deployer::new(host.deployer.store().clone(), host.fake.clone(), settings);
    let path = source.path().to_string_lossy().into_owned();
    let patch = serde_json::json!({"source": {"path": path}});
    deployer
        .patch_app(&web(), &patch, &Caller::daemon())
        .await
        .unwrap();
    let run = |deployer: Deployer| async move {
        deployer
            .deploy(&web(), None, true, &Caller::daemon())
            .await
            .unwrap();
        let claimed = deployer.store().claim_next().await.unwrap().unwrap();
        deployer.run_deployment(claimed.clone()).await;
        wait_until_done(&deployer, claimed.id).await;
        claimed.id
    };
    // Twice unreachable, then it answers: live on the third try.
    host.fake.fail_builds_unreachable(2);
    let id = run(deployer.clone()).await;
    assert_eq!(state_of(&deployer, id).await, DeploymentState::Live);
    let log = log_of(&deployer, id).await;
    assert!(log.contains("the build failed (try 1 of 3)"), "{log}");
    assert!(log.contains("the build failed (try 2 of 3)"), "{log}");
    // Unreachable every time: three tries, then it fails.
    host.fake.fail_builds_unreachable(10);
    let id = run(deployer.clone()).await;
    assert_eq!(state_of(&deployer, id).await, DeploymentState::Failed);
    let log = log_of(&deployer, id).await;
    assert!(log.contains("try 2 of 3"), "{log}");
    assert!(!log.contains("try 3 of 3"), "{log}");
    assert!(
        host.fake.take_unreachable_build(),
        "exactly 3 tries were made"
    );
    host.fake.fail_builds_unreachable(0);
}

#[tokio::test]
async fn the_rate_limit_binds_tokens_and_not_the_admin() {
    let host = host().await;
    let patch = serde_json::json!({"deploys_per_hour": 2});
    host.deployer
        .patch_app(&web(), &patch, &Caller::daemon())
        .await
        .unwrap();
    queue_deploy(&host.deployer, &ci()).await;
    queue_deploy(&host.deployer, &ci()).await;
    let refused = host
        .deployer
        .deploy(&web(), None, false, &ci())
        .await
        .unwrap_err();
    match &refused {
        ActionError::RateLimited {
            message,
            retry_after_secs,
        } => {
            assert!(message.contains("2 times an hour"), "{message}");
            assert!(
                (3500..=3600).contains(retry_after_secs),
                "{retry_after_secs}"
            );
        }
        other => panic!("{other:?}"),
    }
    let webhook = Caller::webhook("github");
    let pushed = host.deployer.deploy(&web(), None, false, &webhook).await;
    assert!(matches!(pushed, Err(ActionError::RateLimited { .. })));
    host.deployer
        .deploy(&web(), None, false, &Caller::daemon())
        .await
        .expect("an admin is not limited");
}
