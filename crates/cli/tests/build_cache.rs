//! Deploying the same source with the same build settings reuses the earlier image; a
//! `no_cache` deploy builds from scratch.

mod support;

use serde_json::json;
use support::{sample_app, SampleRepo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_source_reuses_the_image_and_no_cache_rebuilds() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    let first = daemon.deploy_expect("web", None, "live").await;
    assert!(daemon
        .log(first["id"].as_i64().unwrap())
        .await
        .contains("[build] #1 "));

    // A change that leaves the app's files alone rebuilds, reusing the cached layers.
    repo.commit_file("NOTES.md", "not part of the image\n", "notes");
    let layered = daemon.deploy_expect("web", None, "live").await;
    let log = daemon.log(layered["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("[build] #1 ") && step_cached(&log, "COPY app /app"),
        "{log}"
    );

    let again = daemon.deploy_expect("web", None, "live").await;
    let log = daemon.log(again["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("build skipped") && !log.contains("[build]"),
        "{log}"
    );
    assert_eq!(again["no_cache"], false);
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");

    let clean = daemon
        .deploy_expect("web", Some(json!({"no_cache": true})), "live")
        .await;
    assert_eq!(clean["no_cache"], true);
    let log = daemon.log(clean["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("clean build requested") && log.contains("[build] #1 "),
        "{log}"
    );
    assert!(
        !step_cached(&log, "COPY app /app"),
        "no layer cache either:\n{log}"
    );

    // A changed Dockerfile path is a different build even for the same commit.
    repo.commit_file(
        "Dockerfile.alt",
        "FROM scratch\nCOPY app /app\nENV VERSION=alt\nENTRYPOINT [\"/app\"]\n",
        "alt",
    );
    let (status, _) = daemon
        .call(
            reqwest::Method::PATCH,
            "/apps/web",
            Some(json!({"build": {"dockerfile": "Dockerfile.alt"}})),
        )
        .await;
    assert_eq!(status, 200);
    let alt = daemon.deploy_expect("web", None, "live").await;
    assert!(daemon
        .log(alt["id"].as_i64().unwrap())
        .await
        .contains("[build] #1 "));
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: alt\n");
}

/// Whether BuildKit's output says the step whose instruction contains `instruction` came
/// from its cache (`#N [1/2] COPY app /app` then `#N CACHED`).
fn step_cached(log: &str, instruction: &str) -> bool {
    let numbers: Vec<String> = log
        .lines()
        .filter_map(|l| l.split("[build] ").nth(1))
        .filter(|l| l.contains(instruction))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    numbers
        .iter()
        .any(|n| log.contains(&format!("[build] {n} CACHED")))
}
