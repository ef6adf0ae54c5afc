//! Rollback and restart reuse releases (no fetch, no build) through the same health-gated
//! cutover; retention keeps the newest images; the faults of a cutover leave the previous
//! version serving.

mod support;

use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{sample_app, SampleRepo};

fn id(d: &serde_json::Value) -> i64 {
    d["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_restart_without_rebuild() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    let d1 = daemon.deploy_expect("web", None, "live").await;
    repo.commit_version("v2", &[]);
    let d2 = daemon.deploy_expect("web", None, "live").await;
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v2\n");

    // Default rollback: the previous successful release.
    let (status, accepted) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["trigger"], "rollback");
    let rb = daemon.wait(id(&accepted)).await;
    assert_eq!(rb["state"], "live", "{}", daemon.log(id(&rb)).await);
    assert_eq!(rb["image"], d1["image"], "the old image is reused");
    assert_eq!(rb["commit"], d1["commit"]);
    assert!(rb["phases"]["building"].is_null(), "no build: {rb}");
    let log = daemon.log(id(&rb)).await;
    assert!(
        log.contains("no fetch, no build") && !log.contains("[build]"),
        "{log}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");

    // Rollback to an explicit deployment.
    let (status, accepted) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": id(&d2)})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(daemon.wait(id(&accepted)).await["state"], "live");
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v2\n");

    // Restart picks up changed settings with the live image.
    let (status, _) = daemon
        .call(
            Method::PATCH,
            "/apps/web",
            Some(json!({"env": {"MESSAGE": "restarted"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, accepted) = daemon.call(Method::POST, "/apps/web/restart", None).await;
    assert_eq!(status, 202);
    let restart = daemon.wait(id(&accepted)).await;
    assert_eq!(restart["state"], "live");
    assert_eq!(restart["trigger"], "restart");
    assert_eq!(restart["image"], d2["image"]);
    assert_eq!(
        daemon.via_proxy("web.test", "/").await.1,
        "version: v2\nrestarted\n"
    );

    // All of it is in the history with its trigger.
    let (_, history) = daemon
        .call(Method::GET, "/apps/web/deployments", None)
        .await;
    let triggers: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(
        triggers,
        ["restart", "rollback", "rollback", "deploy", "deploy"]
    );

    // The default rollback skips the releases that run the live image (the rollback to v2
    // that the restart reused): it goes back to v1.
    let (status, accepted) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{accepted}");
    let back = daemon.wait(id(&accepted)).await;
    assert_eq!(back["state"], "live");
    assert_eq!(back["image"], d1["image"], "{back}");
    // (with v1's own settings: a rollback restores them)
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");

    // A redeploy of the same commit reuses its image under a new tag: the default
    // rollback compares images, not tags, so it passes over the first v3 (the same image)
    // and goes back to v1.
    repo.commit_version("v3", &[]);
    let v3 = daemon.deploy_expect("web", None, "live").await;
    let v3_again = daemon.deploy_expect("web", None, "live").await;
    assert_ne!(
        v3["image"], v3_again["image"],
        "each deployment tags its image"
    );
    assert!(
        daemon.log(id(&v3_again)).await.contains("build skipped"),
        "the same image: {}",
        daemon.log(id(&v3_again)).await
    );
    let (status, accepted) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{accepted}");
    let back = daemon.wait(id(&accepted)).await;
    assert_eq!(back["state"], "live");
    assert_eq!(back["image"], d1["image"], "{back}");
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refusals_and_queueing() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    let d1 = daemon.deploy_expect("web", None, "live").await;
    repo.commit_version("bad", &[("HEALTH_STATUS", "500")]);
    let bad = daemon.deploy_expect("web", None, "failed").await;
    repo.commit_version("v2", &[]);
    let d2 = daemon.deploy_expect("web", None, "live").await;

    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": id(&bad)})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("never went live"),
        "{body}"
    );
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": id(&d2)})),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("already live"),
        "{body}"
    );
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": 987654})),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // While a slow deployment runs, a rollback waits behind it and then runs. A slow
    // starter declares a start period: failures inside it do not count.
    let (status, _) = daemon
        .call(Method::PATCH, "/apps/web", Some(json!({"health": {"path": "/health", "start_period_secs": 15, "deadline_secs": 30}})))
        .await;
    assert_eq!(status, 200);
    repo.commit_version("v3", &[("HEALTHY_AFTER_SECS", "4")]);
    let d3 = daemon.deploy("web", None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.deployment(d3).await["state"] != "health_checking" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, accepted) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": id(&d1)})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(daemon.deployment(id(&accepted)).await["state"], "queued");
    assert_eq!(
        daemon.deployment(d3).await["state"],
        "health_checking",
        "not interleaved"
    );
    let rollback = daemon.wait(id(&accepted)).await;
    assert_eq!(
        rollback["state"],
        "live",
        "{}",
        daemon.log(id(&rollback)).await
    );
    let slow = daemon.deployment(d3).await;
    assert_eq!(
        slow["state"], "superseded",
        "the slow deploy finished first: {slow}"
    );
    assert!(
        slow["phases"]["live"].as_str().unwrap()
            <= rollback["phases"]["preparing"].as_str().unwrap(),
        "the rollback started only after the deploy ended: {slow} {rollback}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");

    // A release whose image is gone cannot be rolled back to.
    let out = std::process::Command::new("docker")
        .args(["rmi", "-f", d2["image"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/web/rollback",
            Some(json!({"deployment": id(&d2)})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no longer on the engine"),
        "{body}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_images_and_never_piles_up_containers() {
    let daemon = support::start_daemon_with(&["--keep-images", "2"]).await;
    let repo = SampleRepo::new();
    // A source is asked for its ref when the app is created.
    repo.commit_version("v0", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    let mut images = Vec::new();
    for n in 1..=4 {
        repo.commit_version(&format!("v{n}"), &[]);
        let d = daemon.deploy_expect("web", None, "live").await;
        // Old images are pruned just after the deployment is recorded live.
        daemon.final_log(d["id"].as_i64().unwrap()).await;
        images.push(d["image"].as_str().unwrap().to_string());
    }
    let present = |image: &str| {
        std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(present(&images[3]), "the live image stays");
    assert!(present(&images[2]), "the rollback target stays");
    assert!(
        !present(&images[0]) && !present(&images[1]),
        "older images are removed"
    );
    let (status, body) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(daemon.wait(id(&body)).await["state"], "live");
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v3\n");
    let live = daemon.call(Method::GET, "/apps/web", None).await.1["live"]["id"]
        .as_i64()
        .unwrap();
    daemon
        .wait_containers("web", &[format!("{}_web_d{live}", daemon.instance)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_crashes_after_passing_health_is_switched_back() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = sample_app("web", &repo, "main", "web.test");
    app["drain_secs"] = json!(8);
    daemon.create_app(app).await;
    daemon.deploy_expect("web", None, "live").await;

    repo.commit_version("v2", &[("CRASH_AFTER_SECS", "3")]);
    let d = daemon.deploy_expect("web", None, "failed").await;
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("after passing its health check"), "{d}");
    let log = daemon.log(id(&d)).await;
    assert!(
        log.contains("traffic switched to") && log.contains("switching traffic back"),
        "{log}"
    );
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );
    assert_eq!(
        daemon.containers("web").len(),
        1,
        "the crashing container is removed"
    );
}
