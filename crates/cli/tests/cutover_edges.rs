//! Cutover edge cases: a domain that changes between versions, and the daemon's own
//! graceful shutdown on SIGTERM leaving the live app serving.

mod support;

use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{sample_app, SampleRepo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_domain_moves_traffic_without_dropping_the_router() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "old.test"))
        .await;
    daemon.deploy_expect("web", None, "live").await;
    assert_eq!(daemon.via_proxy("old.test", "/").await.1, "version: v1\n");

    repo.commit_version("v2", &[]);
    let (status, _) = daemon
        .call(
            Method::PATCH,
            "/apps/web",
            Some(json!({"domains": ["new.test", "www.new.test"]})),
        )
        .await;
    assert_eq!(status, 200);
    let d2 = daemon.deploy_expect("web", None, "live").await;
    assert_eq!(
        daemon.via_proxy("new.test", "/").await,
        (200, "version: v2\n".into())
    );
    assert_eq!(
        daemon.via_proxy("www.new.test", "/").await,
        (200, "version: v2\n".into())
    );
    daemon
        .wait_containers("web", &[format!("{}_web_d{}", daemon.instance, d2["id"])])
        .await;
    // Once the old version is retired, its domain is no longer routed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.via_proxy("old.test", "/").await.0 != 404 {
        assert!(Instant::now() < deadline, "old.test still routed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_gracefully_and_apps_keep_serving() {
    let mut daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    daemon.deploy_expect("web", None, "live").await;

    let pid = daemon.pid().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = daemon
        .wait_exit(Duration::from_secs(30))
        .expect("the daemon exits on SIGTERM");
    assert!(
        code.success(),
        "clean exit after SIGTERM: {code}\n{}",
        daemon.daemon_log()
    );
    assert!(daemon.daemon_log().contains("shutting down"));
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );

    // Started again, it finds everything as it was.
    daemon.spawn().await;
    let (_, app) = daemon.call(Method::GET, "/apps/web", None).await;
    assert_eq!(app["live"]["state"], "live");
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );
}
