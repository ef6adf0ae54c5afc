//! One-off runs on a real SQLite file: recorded running, finished once, output numbered
//! and bounded, counted per app, failed on recovery, pruned, removed with their app.

use capstan_core::{AppName, AppSpec};
use capstan_store::{NewRun, RunState, Store, MAX_RUN_LINES};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    (dir, store)
}

fn spec() -> AppSpec {
    serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap()
}

async fn new_run(store: &Store, app: &AppName, argv: &[&str]) -> i64 {
    let command: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    store
        .create_run(&NewRun {
            app,
            deployment_id: 7,
            image: "capstan/web:7",
            command: &command,
            timeout_secs: 60,
            actor: "token:test",
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn a_run_is_recorded_finished_once_and_its_output_kept_in_order() {
    let (_dir, store) = store().await;
    let web = AppName::parse("web").unwrap();
    store.create_app(&web, &spec()).await.unwrap();
    let id = new_run(&store, &web, &["sh", "-c", "echo 'a b'"]).await;
    let run = store.run(id).await.unwrap();
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.command, ["sh", "-c", "echo 'a b'"]);
    assert_eq!(run.actor, "token:test");
    assert_eq!(store.running_runs(Some(&web)).await.unwrap(), 1);
    assert_eq!(store.running_runs(None).await.unwrap(), 1);

    let first = store.append_run_line(id, "output", "one").await.unwrap();
    let second = store.append_run_line(id, "output", "two").await.unwrap();
    assert_eq!((first.unwrap().seq, second.unwrap().seq), (1, 2));
    let after_one = store.run_lines_after(id, 1).await.unwrap();
    assert_eq!(after_one.len(), 1);
    assert_eq!(after_one[0].line, "two");

    assert!(store
        .finish_run(id, RunState::Failed, Some(3), None)
        .await
        .unwrap());
    assert!(
        !store
            .finish_run(id, RunState::Succeeded, Some(0), None)
            .await
            .unwrap(),
        "a finished run stays as it ended"
    );
    let run = store.run(id).await.unwrap();
    assert_eq!((run.state, run.exit_code), (RunState::Failed, Some(3)));
    assert!(run.finished_at.is_some());
    assert_eq!(store.running_runs(None).await.unwrap(), 0);
    assert!(store.run(id + 100).await.is_err());
}

#[tokio::test]
async fn output_past_the_bound_is_not_kept_but_the_closing_note_is() {
    let (_dir, store) = store().await;
    let web = AppName::parse("web").unwrap();
    store.create_app(&web, &spec()).await.unwrap();
    let id = new_run(&store, &web, &["yes"]).await;
    for n in 0..MAX_RUN_LINES {
        let kept = store
            .append_run_line(id, "output", &format!("y {n}"))
            .await
            .unwrap();
        assert!(kept.is_some());
    }
    assert!(store
        .append_run_line(id, "output", "one too many")
        .await
        .unwrap()
        .is_none());
    let note = store.append_run_note(id, "5 more lines").await.unwrap();
    assert_eq!(note.seq, MAX_RUN_LINES + 1);
    let lines = store.run_lines_after(id, MAX_RUN_LINES - 1).await.unwrap();
    let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(
        texts,
        [format!("y {}", MAX_RUN_LINES - 1).as_str(), "5 more lines"]
    );
}

#[tokio::test]
async fn recovery_fails_running_runs_and_pruning_keeps_the_newest() {
    let (_dir, store) = store().await;
    let web = AppName::parse("web").unwrap();
    let api = AppName::parse("api").unwrap();
    store.create_app(&web, &spec()).await.unwrap();
    store.create_app(&api, &spec()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = new_run(&store, &web, &["true"]).await;
        store
            .finish_run(id, RunState::Succeeded, Some(0), None)
            .await
            .unwrap();
        ids.push(id);
    }
    let running = new_run(&store, &web, &["sleep", "9"]).await;
    let other = new_run(&store, &api, &["sleep", "9"]).await;
    assert_eq!(store.prune_runs(&web, 3).await.unwrap(), 3);
    let left: Vec<i64> = store
        .runs_of(&web, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        left,
        [running, ids[4], ids[3]],
        "newest first, running kept"
    );

    let failed = store.fail_running_runs("interrupted").await.unwrap();
    let mut failed_ids: Vec<i64> = failed.iter().map(|r| r.id).collect();
    failed_ids.sort();
    assert_eq!(failed_ids, [running, other]);
    let run = store.run(running).await.unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("interrupted"));

    store.delete_app(&web).await.unwrap();
    assert!(store.run(running).await.is_err(), "runs go with their app");
    assert!(store.run(other).await.is_ok());
}
