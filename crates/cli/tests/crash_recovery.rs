//! A daemon killed mid-deployment comes back with the deployment failed as interrupted,
//! its half-made container removed, and the live version serving the whole time.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{sample_app, SampleRepo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_a_kill_mid_deployment() {
    let mut daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = sample_app("web", &repo, "main", "web.test");
    app["health"]["deadline_secs"] = json!(120);
    daemon.create_app(app).await;
    let d1 = daemon.deploy_expect("web", None, "live").await;

    // v2 takes a minute to become healthy: kill the daemon while it waits.
    repo.commit_version("v2", &[("HEALTHY_AFTER_SECS", "60")]);
    let id = daemon.deploy("web", None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while daemon.deployment(id).await["state"] != "health_checking" {
        assert!(Instant::now() < deadline, "never reached health_checking");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let half_made = format!("{}_web_d{id}", daemon.instance);
    assert!(daemon.containers("web").contains(&half_made));
    daemon.kill();

    // The proxy and the live container do not depend on the daemon.
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );

    daemon.spawn().await;
    let d = daemon.deployment(id).await;
    assert_eq!(d["state"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("interrupted"), "{d}");
    assert!(daemon.log(id).await.contains("interrupted"));
    let live = format!("{}_web_d{}", daemon.instance, d1["id"]);
    assert_eq!(
        daemon.containers("web"),
        vec![live],
        "the half-made container is gone"
    );
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v1\n".into())
    );

    // And the daemon deploys normally again.
    repo.commit_version("v3", &[]);
    daemon.deploy_expect("web", None, "live").await;
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v3\n".into())
    );
}
