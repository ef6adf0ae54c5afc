//! Repos laid out the way their authors' platforms expect, deployed unchanged: a Procfile
//! whose `web:` starts a Dockerfile app that has no `CMD` and whose `release:` runs before
//! the cutover; `capstan plan` choosing a compose file that builds the Dockerfile beside
//! other services, and naming the apps of a monorepo instead of guessing.

mod support;

use serde_json::{json, Value};
use support::SampleRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_procfile_starts_the_app_and_runs_its_release_command_first() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nCOPY app /app\nENV VERSION=from-procfile\n",
        "no CMD",
    );
    repo.commit_file(
        "Procfile",
        "web: exec /app\nrelease: /app task 0 \"release ran: migrations applied\"\n",
        "procfile",
    );
    daemon
        .create_app(json!({
            "name": "heroku",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["heroku.test"],
            "drain_secs": 1,
            "stop_grace_secs": 2
        }))
        .await;
    let d = daemon.deploy_expect("heroku", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("setting start command = \"exec /app\" (from Procfile web:)"),
        "{log}"
    );
    assert!(log.contains("release ran: migrations applied"), "{log}");
    let release = log.find("release ran").unwrap();
    let switched = log.find("traffic switched").unwrap();
    assert!(release < switched, "release runs before the cutover: {log}");
    assert_eq!(
        daemon.via_proxy("heroku.test", "/").await,
        (200, "version: from-procfile\n".to_string())
    );

    // A failing release command stops the deploy; the live version keeps serving.
    repo.commit_file(
        "Procfile",
        "web: exec /app\nrelease: /app task 3 \"migration failed\"\n",
        "broken release",
    );
    let failed = daemon.deploy_expect("heroku", None, "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("pre-deploy"),
        "{failed}"
    );
    assert_eq!(
        daemon.via_proxy("heroku.test", "/").await,
        (200, "version: from-procfile\n".to_string())
    );
}

/// `capstan plan DIR --json`, parsed (success expected) or the error text.
fn plan(dir: &std::path::Path) -> Result<Value, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["plan", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn plan_prefers_a_fuller_compose_file_and_names_a_monorepos_apps() {
    let repos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/repos");
    let report = plan(&repos.join("compose-beside-dockerfile")).unwrap();
    assert_eq!(report["build_type"], "compose");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("whose services build that Dockerfile and add cache"),
        "{report}"
    );
    assert_eq!(
        report["port"],
        "8000 (from compose.yaml: service web's ports)"
    );
    let err = plan(&repos.join("monorepo")).unwrap_err();
    assert!(err.contains("services/api (Dockerfile)"), "{err}");
}
