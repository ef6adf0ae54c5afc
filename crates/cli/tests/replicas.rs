//! Replicas: N containers behind the proxy, all health-gated before the switch, traffic
//! spread over them, and a redeploy that changes the count retires every old one.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use support::SampleRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_all_serve_and_a_redeploy_replaces_them_all() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = support::sample_app("many", &repo, "main", "many.test");
    app["replicas"] = json!(3);
    daemon.create_app(app).await;
    let first = daemon.deploy_expect("many", None, "live").await;
    let id = first["id"].as_i64().unwrap();
    let log = daemon.final_log(id).await;
    assert_eq!(
        log.matches(" is healthy").count(),
        3,
        "each replica is health-gated:\n{log}"
    );
    let base = format!("{}_many_d{id}", daemon.instance);
    daemon
        .wait_containers(
            "many",
            &[base.clone(), format!("{base}_r2"), format!("{base}_r3")],
        )
        .await;
    // Docker sets HOSTNAME to the container id: the proxy spreads requests over all three.
    let mut hosts = BTreeSet::new();
    for _ in 0..30 {
        let (status, body) = daemon.via_proxy("many.test", "/env/HOSTNAME").await;
        assert_eq!(status, 200, "{body}");
        hosts.insert(body);
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    let (status, body) = daemon
        .call(
            reqwest::Method::PATCH,
            "/apps/many",
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    repo.commit_version("v2", &[]);
    let second = daemon.deploy_expect("many", None, "live").await;
    let id2 = second["id"].as_i64().unwrap();
    daemon.final_log(id2).await;
    let base2 = format!("{}_many_d{id2}", daemon.instance);
    daemon
        .wait_containers("many", &[base2.clone(), format!("{base2}_r2")])
        .await;
    assert_eq!(daemon.via_proxy("many.test", "/").await.1, "version: v2\n");

    let (status, body) = daemon
        .call(
            reqwest::Method::PATCH,
            "/apps/many",
            Some(json!({"replicas": 0})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("replicas"),
        "{body}"
    );
}
