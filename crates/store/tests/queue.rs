//! The deployments table as a queue, on a real SQLite file: claiming order, one
//! deployment per app, legal state changes only, live/superseded bookkeeping, and crash
//! recovery.

use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_store::{NewDeployment, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    (dir, store)
}

fn spec() -> AppSpec {
    serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap()
}

async fn queue(store: &Store, app: &AppName) -> i64 {
    store
        .enqueue(NewDeployment {
            app,
            trigger: Trigger::Deploy,
            git_ref: None,
            from_release: None,
            no_cache: false,
            actor: "token:test",
            servers: &["local"],
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn claims_oldest_first_and_one_per_app() {
    let (_dir, store) = store().await;
    let a = AppName::parse("a").unwrap();
    let b = AppName::parse("b").unwrap();
    store.create_app(&a, &spec()).await.unwrap();
    store.create_app(&b, &spec()).await.unwrap();
    let a1 = queue(&store, &a).await;
    let a2 = queue(&store, &a).await;
    let b1 = queue(&store, &b).await;

    assert_eq!(store.claim_next().await.unwrap().unwrap().id, a1);
    // a2 waits while a1 is in progress; b1 may run.
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, b1);
    assert!(store.claim_next().await.unwrap().is_none());

    store
        .transition(a1, DeploymentState::Failed, Some("boom"))
        .await
        .unwrap();
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, a2);
    let failed = store.deployment(a1).await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert!(failed.finished_at.is_some());
}

#[tokio::test]
async fn refuses_illegal_transitions_and_tracks_live() {
    let (_dir, store) = store().await;
    let app = AppName::parse("web").unwrap();
    store.create_app(&app, &spec()).await.unwrap();
    let first = queue(&store, &app).await;
    assert!(
        store
            .transition(first, DeploymentState::Live, None)
            .await
            .is_err(),
        "queued -> live is illegal"
    );
    store.claim_next().await.unwrap();
    for state in [
        DeploymentState::Starting,
        DeploymentState::HealthChecking,
        DeploymentState::Switching,
    ] {
        store.transition(first, state, None).await.unwrap();
    }
    assert_eq!(store.mark_live(&app, first).await.unwrap(), None);

    let second = queue(&store, &app).await;
    store.claim_next().await.unwrap();
    for state in [
        DeploymentState::Starting,
        DeploymentState::HealthChecking,
        DeploymentState::Switching,
    ] {
        store.transition(second, state, None).await.unwrap();
    }
    assert_eq!(store.mark_live(&app, second).await.unwrap(), Some(first));
    assert_eq!(
        store.deployment(first).await.unwrap().state,
        DeploymentState::Superseded
    );
    assert_eq!(
        store.app(&app).await.unwrap().live_deployment_id,
        Some(second)
    );
    let phases: Vec<_> = store
        .phases(second)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.state)
        .collect();
    assert_eq!(phases.first(), Some(&DeploymentState::Queued));
    assert_eq!(phases.last(), Some(&DeploymentState::Live));
}

#[tokio::test]
async fn recovery_fails_what_was_running_and_keeps_the_queue() {
    let (dir, store) = store().await;
    let app = AppName::parse("web").unwrap();
    let other = AppName::parse("other").unwrap();
    store.create_app(&app, &spec()).await.unwrap();
    store.create_app(&other, &spec()).await.unwrap();
    let running = queue(&store, &app).await;
    let waiting = queue(&store, &other).await;
    store.claim_next().await.unwrap();
    drop(store);

    // A new process opens the same file.
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    let interrupted = store.fail_interrupted().await.unwrap();
    assert_eq!(
        interrupted.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![running]
    );
    let d = store.deployment(running).await.unwrap();
    assert_eq!(d.state, DeploymentState::Failed);
    assert!(d.error.unwrap().contains("interrupted"));
    assert_eq!(
        store.deployment(waiting).await.unwrap().state,
        DeploymentState::Queued
    );
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, waiting);
}

#[tokio::test]
async fn log_lines_are_numbered_and_tokens_stored_hashed() {
    let (dir, store) = store().await;
    let app = AppName::parse("web").unwrap();
    store.create_app(&app, &spec()).await.unwrap();
    let id = queue(&store, &app).await;
    for n in 1..=3 {
        assert_eq!(
            store
                .append_log(id, "capstan", &format!("line {n}"))
                .await
                .unwrap()
                .seq,
            n
        );
    }
    let after_one: Vec<_> = store
        .logs_after(id, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(after_one, ["line 2", "line 3"]);

    store
        .add_token("admin", "cap_secret-token", "admin")
        .await
        .unwrap();
    let found = store
        .token_by_secret("cap_secret-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.name.as_str(), found.scopes.as_str()),
        ("admin", "admin")
    );
    assert!(
        found.last_used_at.is_none(),
        "the record read is the one before this use"
    );
    let again = store
        .token_by_secret("cap_secret-token")
        .await
        .unwrap()
        .unwrap();
    assert!(again.last_used_at.is_some(), "the first use was recorded");
    assert!(store.token_by_secret("cap_other").await.unwrap().is_none());
    assert_eq!(store.tokens().await.unwrap().len(), 1);
    drop(store);
    let raw = std::fs::read(dir.path().join("capstan.db")).unwrap();
    let wal = std::fs::read(dir.path().join("capstan.db-wal")).unwrap_or_default();
    let needle = b"cap_secret-token";
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the token itself is never stored"
        );
    }
}
