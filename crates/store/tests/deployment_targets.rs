//! A deployment on several servers, on a real SQLite file: each server's state its own,
//! the version live on a server superseded only there, a deployment settled from its
//! servers, one interrupted by a daemon stop kept live where it went live, and a retry
//! reopened only where it failed, refused when it cannot be.

use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_store::{NewDeployment, ReopenRefused, Store};
use DeploymentState::{Failed, Live, Queued, Superseded};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    (dir, store)
}

/// A deployment of `app` on servers `a` and `b`, claimed and starting.
async fn starting(store: &Store, app: &AppName) -> i64 {
    let id = store
        .enqueue(NewDeployment {
            app,
            trigger: Trigger::Deploy,
            git_ref: None,
            from_release: None,
            no_cache: false,
            actor: "token:test",
            servers: &["a", "b"],
        })
        .await
        .unwrap()
        .id;
    store.claim_next().await.unwrap().unwrap();
    store
        .transition(id, DeploymentState::Starting, None)
        .await
        .unwrap();
    id
}

async fn states(store: &Store, id: i64) -> Vec<(String, DeploymentState)> {
    let targets = store.targets_of(id).await.unwrap();
    targets.into_iter().map(|t| (t.server, t.state)).collect()
}

fn pairs(states: [(&str, DeploymentState); 2]) -> Vec<(String, DeploymentState)> {
    states
        .into_iter()
        .map(|(s, st)| (s.to_string(), st))
        .collect()
}

async fn save_release(store: &Store, app: &AppName, spec: &AppSpec, id: i64) {
    store
        .save_release(&capstan_store::NewRelease {
            app,
            deployment_id: id,
            image: "img:1",
            commit_sha: None,
            compose_spec: "services: {}\n",
            app_spec: spec,
            repo_config: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn each_server_moves_on_its_own_and_a_retry_reopens_only_the_failed_one() {
    let (_dir, store) = store().await;
    let app = AppName::parse("wide").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"image":"img:1"}}"#).unwrap();
    store.create_app(&app, &spec).await.unwrap();
    let first = starting(&store, &app).await;
    assert_eq!(
        states(&store, first).await,
        pairs([("a", Queued), ("b", Queued)])
    );
    save_release(&store, &app, &spec, first).await;
    assert_eq!(store.mark_live_on(&app, first, "a").await.unwrap(), None);
    store
        .set_target_state(first, "b", Failed, Some("refused"))
        .await
        .unwrap();
    let state = store
        .settle_from_targets(&app, first, Some("failed on b"))
        .await
        .unwrap();
    assert_eq!(state, Live);
    assert_eq!(
        store.app(&app).await.unwrap().live_deployment_id,
        Some(first)
    );
    assert_eq!(store.live_on(&app, "a").await.unwrap(), Some(first));
    assert_eq!(store.live_on(&app, "b").await.unwrap(), None);

    let reopened = store.reopen_failed(first).await.unwrap().unwrap();
    assert_eq!(reopened, vec!["b".to_string()]);
    assert_eq!(store.deployment(first).await.unwrap().state, Queued);
    assert_eq!(
        states(&store, first).await,
        pairs([("a", Live), ("b", Queued)])
    );
    assert_eq!(
        store.reopen_failed(first).await.unwrap(),
        Err(ReopenRefused::Running(first))
    );
    // A queued retry is live on a: cancelling it would record the serving version as
    // cancelled, so the store refuses.
    assert!(store.cancel_queued(first, "x").await.unwrap().is_none());
    assert_eq!(store.deployment(first).await.unwrap().state, Queued);

    // The retry runs and fails on b again: still live on a.
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, first);
    store
        .transition(first, DeploymentState::Starting, None)
        .await
        .unwrap();
    store
        .set_target_state(first, "b", Failed, Some("refused again"))
        .await
        .unwrap();
    let state = store
        .settle_from_targets(&app, first, Some("failed on b"))
        .await
        .unwrap();
    assert_eq!(state, Live);

    // The next deployment supersedes the first only on the server where it goes live.
    let second = starting(&store, &app).await;
    assert_eq!(
        store.reopen_failed(first).await.unwrap(),
        Err(ReopenRefused::Replaced {
            id: first,
            later: second
        })
    );
    assert_eq!(
        store.mark_live_on(&app, second, "a").await.unwrap(),
        Some(first)
    );
    assert_eq!(
        states(&store, first).await,
        pairs([("a", Superseded), ("b", Failed)])
    );
    assert_eq!(
        store.reopen_failed(second).await.unwrap(),
        Err(ReopenRefused::Running(second))
    );
}

#[tokio::test]
async fn a_stop_mid_fan_out_keeps_it_live_where_it_went_live() {
    let (_dir, store) = store().await;
    let app = AppName::parse("wide").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"image":"img:1"}}"#).unwrap();
    store.create_app(&app, &spec).await.unwrap();
    let id = starting(&store, &app).await;
    store.mark_live_on(&app, id, "a").await.unwrap();
    store
        .set_target_state(id, "b", DeploymentState::HealthChecking, None)
        .await
        .unwrap();
    let interrupted = store.fail_interrupted().await.unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].state, Live, "live on a");
    assert!(interrupted[0]
        .error
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert_eq!(
        states(&store, id).await,
        pairs([("a", Live), ("b", Failed)])
    );
    assert_eq!(store.app(&app).await.unwrap().live_deployment_id, Some(id));

    // One that went live nowhere fails as a whole, and without a release it cannot be retried.
    let other = starting(&store, &app).await;
    let interrupted = store.fail_interrupted().await.unwrap();
    assert_eq!(interrupted[0].state, Failed);
    assert_eq!(
        states(&store, other).await,
        pairs([("a", Failed), ("b", Failed)])
    );
    assert_eq!(
        store.reopen_failed(other).await.unwrap(),
        Err(ReopenRefused::NoRelease(other))
    );
    assert_eq!(store.app(&app).await.unwrap().live_deployment_id, Some(id));
}
