//! The walking skeleton end to end on the real engine and proxy: deploy v1 from a git
//! repo, replace it with v2, and see that broken versions (never healthy, exits at once)
//! fail without disturbing the live one.

mod support;

use serde_json::json;
use support::{sample_app, SampleRepo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_replaces_and_survives_broken_versions() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    let v1 = repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;

    let d1 = daemon.deploy_expect("web", None, "live").await;
    assert_eq!(d1["commit"], v1.as_str());
    assert_eq!(d1["image"], format!("{}/web:{}", daemon.instance, d1["id"]));
    for phase in [
        "queued",
        "preparing",
        "building",
        "starting",
        "health_checking",
        "switching",
        "live",
    ] {
        assert!(
            d1["phases"][phase].is_string(),
            "phase {phase} has a timestamp: {d1}"
        );
    }
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );
    let log = daemon.log(d1["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("[build] #1 "),
        "build output is in the log:\n{log}"
    );

    // The compose spec is stored with the deployment; it carries no Traefik labels: the
    // route lives in the proxy's file for the app, which the daemon writes.
    let spec = daemon
        .text(&format!("/deployments/{}/spec", d1["id"]))
        .await;
    assert!(
        spec.contains("capstan.role") && !spec.contains("traefik"),
        "{spec}"
    );
    let route =
        std::fs::read_to_string(daemon.data_dir.path().join("proxy/dynamic/web.yml")).unwrap();
    assert!(route.contains("Host(`web.test`)"), "{route}");

    repo.commit_version("v2", &[]);
    let d2 = daemon.deploy_expect("web", None, "live").await;
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v2\n".into())
    );
    assert_eq!(
        daemon.deployment(d1["id"].as_i64().unwrap()).await["state"],
        "superseded"
    );
    let name_v2 = format!("{}_web_d{}", daemon.instance, d2["id"]);
    daemon
        .wait_containers("web", std::slice::from_ref(&name_v2))
        .await;

    // v3 answers 500 on /health: never switched, v2 keeps serving.
    repo.commit_version("v3", &[("HEALTH_STATUS", "500")]);
    let d3 = daemon
        .deploy_expect("web", Some(json!({"ref": "main"})), "failed")
        .await;
    let log3 = daemon.log(d3["id"].as_i64().unwrap()).await;
    assert!(
        log3.contains("HTTP 500"),
        "the last health result is in the log:\n{log3}"
    );
    assert!(d3["error"].as_str().unwrap().contains("health"), "{d3}");
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v2\n".into())
    );
    assert_eq!(
        daemon.containers("web"),
        vec![name_v2.clone()],
        "the failed container is removed"
    );

    // v4 exits at once: failed with its output in the log, v2 still serving.
    repo.commit_version("v4", &[("EXIT_AT_START", "1")]);
    let d4 = daemon.deploy_expect("web", None, "failed").await;
    let log4 = daemon.log(d4["id"].as_i64().unwrap()).await;
    assert!(
        log4.contains("EXIT_AT_START is set"),
        "the container's output is in the log:\n{log4}"
    );
    assert!(
        d4["error"]
            .as_str()
            .unwrap()
            .contains("stopped before it was healthy"),
        "{d4}"
    );
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v2\n".into())
    );

    // The app shows its live deployment.
    let (_, app) = daemon.call(reqwest::Method::GET, "/apps/web", None).await;
    assert_eq!(app["live"]["id"], d2["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_a_tag_a_commit_and_a_local_directory() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    let first = repo.commit_version("tagged", &[]);
    repo.tag("v1.0.0");
    repo.commit_version("head", &[]);
    daemon
        .create_app(sample_app("refs", &repo, "main", "refs.test"))
        .await;

    let d = daemon
        .deploy_expect("refs", Some(json!({"ref": "v1.0.0"})), "live")
        .await;
    assert_eq!(d["commit"], first.as_str());
    assert_eq!(
        daemon.via_proxy("refs.test", "/").await.1,
        "version: tagged\n"
    );
    daemon
        .deploy_expect("refs", Some(json!({"ref": first})), "live")
        .await;
    daemon.deploy_expect("refs", None, "live").await;
    assert_eq!(
        daemon.via_proxy("refs.test", "/").await.1,
        "version: head\n"
    );

    // A local directory source: built from the directory as it is.
    let mut local = sample_app("local", &repo, "main", "local.test");
    local["source"] = json!({"path": repo.url()});
    daemon.create_app(local).await;
    daemon.deploy_expect("local", None, "live").await;
    assert_eq!(
        daemon.via_proxy("local.test", "/").await.1,
        "version: head\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_log_as_server_sent_events_until_the_end() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("sse", &[]);
    daemon
        .create_app(sample_app("sse", &repo, "main", "sse.test"))
        .await;
    let id = daemon.deploy("sse", None).await;
    let response = daemon
        .http
        .get(daemon.url(&format!("/deployments/{id}/logs?follow=true")))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = tokio::time::timeout(std::time::Duration::from_secs(120), response.text())
        .await
        .expect("the stream ends when the deployment does")
        .unwrap();
    assert!(body.contains("event: log"), "{body}");
    assert!(body.contains("[build] #1 "), "{body}");
    assert!(
        body.contains("deployment is live"),
        "the last line comes before the end:\n{body}"
    );
    let end = body.rfind("event: end").expect("an end event");
    assert!(body[end..].contains(r#""state":"live""#), "{body}");
    assert!(body.rfind("deployment is live").unwrap() < end);
}
