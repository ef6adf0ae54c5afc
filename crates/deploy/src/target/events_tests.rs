//! The event bus against the fake target: a deploy publishes queued, started, each phase
//! and its end in that order; a failure names the phase it happened in and its kind; the
//! metrics count from the bus alone.

use super::fake::Fault;
use super::flow_tests::host;
use crate::events::{DeployEvent, FailureKind, Outcome};
use capstan_core::DeploymentState;
use std::time::Duration;
use tokio::sync::broadcast::Receiver;

/// Every event until (and with) the first `Finished`, as short words.
async fn until_finished(events: &mut Receiver<DeployEvent>) -> (Vec<String>, Outcome) {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the bus is open");
        match event {
            DeployEvent::Queued { .. } => seen.push("queued".to_string()),
            DeployEvent::Started { .. } => seen.push("started".to_string()),
            DeployEvent::Phase { phase, .. } => seen.push(phase.as_str().to_string()),
            DeployEvent::HealthCheckFailed { .. } => seen.push("unhealthy".to_string()),
            DeployEvent::Finished(finished) => {
                seen.push(format!("finished {}", finished.record.state.as_str()));
                return (seen, finished.outcome.clone());
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_deploy_publishes_each_step_in_order() {
    let host = host().await;
    let mut events = host.deployer.subscribe();
    let (id, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Live);
    let (seen, outcome) = until_finished(&mut events).await;
    assert_eq!(
        seen,
        [
            "queued",
            "started",
            "starting",
            "health_checking",
            "switching",
            "finished live"
        ],
        "deployment {id}"
    );
    assert_eq!(outcome, Outcome::Live);
}

#[tokio::test]
async fn a_failure_is_published_with_its_phase_and_kind() {
    let host = host().await;
    host.deploy().await;
    host.fake.set_fault(Fault::NeverHealthy);
    let mut events = host.deployer.subscribe();
    let (_, state) = host.deploy().await;
    assert_eq!(state, DeploymentState::Failed);
    let (seen, outcome) = until_finished(&mut events).await;
    assert!(seen.contains(&"unhealthy".to_string()), "{seen:?}");
    let Outcome::Failed(reason) = outcome else {
        panic!("not a failure: {outcome:?}");
    };
    assert_eq!(reason.phase, DeploymentState::HealthChecking);
    assert_eq!(reason.kind, FailureKind::Phase);
    assert!(!reason.message.is_empty());
}

#[tokio::test]
async fn the_metrics_count_from_the_bus() {
    let host = host().await;
    host.deploy().await;
    host.fake.set_fault(Fault::NeverHealthy);
    host.deploy().await;
    // The metrics task reads the bus on its own: give it a moment.
    let mut text = String::new();
    for _ in 0..100 {
        text = host.deployer.metrics().encode();
        if text.contains("capstan_health_check_failures_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for line in [
        "capstan_deployments_finished_total{state=\"live\",trigger=\"deploy\"} 1",
        "capstan_deployments_finished_total{state=\"failed\",trigger=\"deploy\"} 1",
        "capstan_health_check_failures_total 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
