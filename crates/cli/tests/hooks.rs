//! Pre-deploy commands run in a one-off container of the new image before anything is
//! switched (failure or timeout aborts, the old version keeps serving); post-deploy
//! commands run in the new container after cutover (failure is reported, not rolled back).

mod support;

use reqwest::Method;
use serde_json::json;
use support::{sample_app, SampleRepo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_and_post_deploy_commands() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = sample_app("web", &repo, "main", "web.test");
    app["volumes"] = json!([{"source": "data", "target": "/data"}]);
    app["pre_deploy"] = json!({"command": ["/app", "write", "/data/migrated", "v1-schema"]});
    app["post_deploy"] = json!({"command": ["/app", "task", "0", "caches warmed"]});
    daemon.create_app(app).await;
    let d1 = daemon.deploy_expect("web", None, "live").await;
    let log = daemon.final_log(d1["id"].as_i64().unwrap()).await;
    assert!(log.contains("[pre-deploy] wrote /data/migrated"), "{log}");
    assert!(log.contains("[post-deploy] caches warmed"), "{log}");
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/read?path=/data/migrated")
            .await
            .1,
        "v1-schema",
        "the pre-deploy container shares the app's volumes"
    );

    // A failing pre-deploy command aborts before anything starts; v1 keeps serving.
    repo.commit_version("v2", &[]);
    let patch = json!({"pre_deploy": {"command": ["/app", "task", "3", "migration failed: column exists"]}});
    assert_eq!(
        daemon.call(Method::PATCH, "/apps/web", Some(patch)).await.0,
        200
    );
    let d2 = daemon.deploy_expect("web", None, "failed").await;
    let log = daemon.log(d2["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("[pre-deploy] migration failed: column exists"),
        "{log}"
    );
    assert!(
        d2["error"]
            .as_str()
            .unwrap()
            .contains("pre-deploy command exited with status 3"),
        "{d2}"
    );
    assert!(
        d2["phases"]["health_checking"].is_null(),
        "nothing was started: {d2}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");
    assert_eq!(
        daemon.containers("web").len(),
        1,
        "the one-off container is removed"
    );

    // A pre-deploy command past its timeout is stopped and fails the deployment.
    let patch = json!({"pre_deploy": {"command": ["/app", "sleep", "30"], "timeout_secs": 2}});
    assert_eq!(
        daemon.call(Method::PATCH, "/apps/web", Some(patch)).await.0,
        200
    );
    let d3 = daemon.deploy_expect("web", None, "failed").await;
    assert!(
        d3["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 2s"),
        "{d3}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");
    assert_eq!(daemon.containers("web").len(), 1);

    // A failing post-deploy command is reported; the new version stays live.
    let patch = json!({"pre_deploy": null, "post_deploy": {"command": ["/app", "task", "1", "cache warm-up failed"]}});
    assert_eq!(
        daemon.call(Method::PATCH, "/apps/web", Some(patch)).await.0,
        200
    );
    let d4 = daemon.deploy_expect("web", None, "live").await;
    let log = daemon.final_log(d4["id"].as_i64().unwrap()).await;
    assert!(log.contains("[post-deploy] cache warm-up failed"), "{log}");
    assert!(
        log.contains("post-deploy command FAILED with status 1"),
        "{log}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v2\n");

    // Bad commands are refused by name.
    for (patch, needle) in [
        (json!({"pre_deploy": {"command": []}}), "pre_deploy"),
        (
            json!({"post_deploy": {"command": ["x"], "timeout_secs": 0}}),
            "post_deploy",
        ),
        (
            json!({"pre_deploy": {"command": "sh -c 'rm -rf /'"}}),
            "pre_deploy",
        ),
    ] {
        let (status, body) = daemon
            .call(Method::PATCH, "/apps/web", Some(patch.clone()))
            .await;
        assert!(status == 422 || status == 400, "{patch}: {status} {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(needle),
            "{patch}: {body}"
        );
    }
}
