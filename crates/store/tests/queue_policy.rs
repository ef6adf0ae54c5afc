//! The queue policy on a real SQLite file: a newer deployment supersedes the older queued
//! ones in the transaction that queues it, a queued deployment is cancelled at once, and
//! the hourly rate limit counts non-admin deployments only.

use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_store::{NewDeployment, RateLimit, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    (dir, store)
}

fn spec() -> AppSpec {
    serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap()
}

fn new(app: &AppName, trigger: Trigger) -> NewDeployment<'_> {
    NewDeployment {
        app,
        trigger,
        git_ref: None,
        from_release: None,
        no_cache: false,
        actor: "token:test",
        servers: &["local"],
    }
}

async fn queue_with(store: &Store, app: &AppName, limit: RateLimit) -> capstan_store::Enqueued {
    store
        .enqueue_with(new(app, Trigger::Deploy), limit)
        .await
        .unwrap()
        .expect("not limited")
}

const OPEN: RateLimit = RateLimit::Counted { per_hour: 0 };

#[tokio::test]
async fn a_newer_deployment_supersedes_the_queued_ones_but_not_the_running_one() {
    let (_dir, store) = store().await;
    let a = AppName::parse("a").unwrap();
    let b = AppName::parse("b").unwrap();
    store.create_app(&a, &spec()).await.unwrap();
    store.create_app(&b, &spec()).await.unwrap();
    let running = queue_with(&store, &a, OPEN).await.record.id;
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, running);
    let first = queue_with(&store, &a, OPEN).await;
    assert!(first.superseded.is_empty());
    let other_app = queue_with(&store, &b, OPEN).await.record.id;
    let second = store
        .enqueue_with(new(&a, Trigger::Restart), OPEN)
        .await
        .unwrap()
        .unwrap();
    let third = queue_with(&store, &a, OPEN).await;
    assert_eq!(second.superseded, [first.record.id]);
    assert_eq!(third.superseded, [second.record.id]);

    let gone = store.deployment(first.record.id).await.unwrap();
    assert_eq!(gone.state, DeploymentState::Superseded);
    let note = format!(
        "superseded by deployment {} before it started",
        second.record.id
    );
    assert_eq!(gone.error.as_deref(), Some(note.as_str()));
    assert!(gone.finished_at.is_some());
    let phases = store.phases(first.record.id).await.unwrap();
    let states: Vec<_> = phases.iter().map(|p| p.state).collect();
    assert_eq!(
        states,
        [DeploymentState::Queued, DeploymentState::Superseded]
    );
    let targets = store.targets_of(first.record.id).await.unwrap();
    assert_eq!(targets[0].state, DeploymentState::Superseded);
    // The running one and the other app's are untouched; the newest waits.
    let states = |id| {
        let store = store.clone();
        async move { store.deployment(id).await.unwrap().state }
    };
    assert_eq!(states(running).await, DeploymentState::Preparing);
    assert_eq!(states(other_app).await, DeploymentState::Queued);
    assert_eq!(states(third.record.id).await, DeploymentState::Queued);
    // The plain enqueue (fixtures, tests) applies no policy.
    let raw = store.enqueue(new(&a, Trigger::Deploy)).await.unwrap().id;
    assert_eq!(states(third.record.id).await, DeploymentState::Queued);
    assert_eq!(states(raw).await, DeploymentState::Queued);
}

#[tokio::test]
async fn a_queued_deployment_is_cancelled_at_once_and_only_while_queued() {
    let (_dir, store) = store().await;
    let a = AppName::parse("a").unwrap();
    store.create_app(&a, &spec()).await.unwrap();
    let claimed = queue_with(&store, &a, OPEN).await.record.id;
    store.claim_next().await.unwrap().unwrap();
    let waiting = queue_with(&store, &a, OPEN).await.record.id;

    let ended = store
        .cancel_queued(waiting, "cancelled by token:ci before it started")
        .await
        .unwrap()
        .expect("it was queued");
    assert_eq!(ended.state, DeploymentState::Cancelled);
    assert!(ended.finished_at.is_some());
    let targets = store.targets_of(waiting).await.unwrap();
    assert_eq!(targets[0].state, DeploymentState::Cancelled);
    let phases = store.phases(waiting).await.unwrap();
    assert_eq!(phases.last().unwrap().state, DeploymentState::Cancelled);
    // Twice, or a running one: nothing changes here.
    assert!(store.cancel_queued(waiting, "x").await.unwrap().is_none());
    assert!(store.cancel_queued(claimed, "x").await.unwrap().is_none());
    assert_eq!(
        store.deployment(claimed).await.unwrap().state,
        DeploymentState::Preparing
    );
    // A running one is cancelled through its own transitions.
    store
        .transition(
            claimed,
            DeploymentState::Cancelled,
            Some("cancelled by user:ann"),
        )
        .await
        .unwrap();
    store
        .cancel_open_targets(claimed, "cancelled by user:ann")
        .await
        .unwrap();
    assert_eq!(
        store.targets_of(claimed).await.unwrap()[0].state,
        DeploymentState::Cancelled
    );
}

#[tokio::test]
async fn the_rate_limit_counts_the_last_hour_without_the_admins_deployments() {
    let (_dir, store) = store().await;
    let a = AppName::parse("a").unwrap();
    let b = AppName::parse("b").unwrap();
    store.create_app(&a, &spec()).await.unwrap();
    store.create_app(&b, &spec()).await.unwrap();
    let three = RateLimit::Counted { per_hour: 3 };
    for _ in 0..3 {
        queue_with(&store, &a, three).await;
        // An admin's deployments neither count nor are refused.
        queue_with(&store, &a, RateLimit::Exempt).await;
    }
    let before = store.deployments_of(&a, 100).await.unwrap().len();
    let refused = store
        .enqueue_with(new(&a, Trigger::Deploy), three)
        .await
        .unwrap()
        .expect_err("the fourth in an hour is refused");
    assert_eq!(refused.per_hour, 3);
    let hour = capstan_store::RATE_WINDOW_MS;
    assert!(
        refused.retry_after_ms > hour - 60_000 && refused.retry_after_ms <= hour,
        "{refused:?}"
    );
    assert_eq!(store.deployments_of(&a, 100).await.unwrap().len(), before);
    // Still possible: an admin, a higher limit, no limit, another app.
    queue_with(&store, &a, RateLimit::Exempt).await;
    queue_with(&store, &a, RateLimit::Counted { per_hour: 4 }).await;
    queue_with(&store, &a, OPEN).await;
    queue_with(&store, &b, three).await;
    // With more in the window than a lowered limit, the wait is for the one that makes room.
    let lowered = store
        .enqueue_with(new(&a, Trigger::Deploy), RateLimit::Counted { per_hour: 1 })
        .await
        .unwrap()
        .expect_err("over a lowered limit");
    assert!(lowered.retry_after_ms > hour - 60_000, "{lowered:?}");
}
