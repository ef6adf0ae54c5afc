//! Persistent volumes survive redeploys, rollbacks and restarts; host paths are mounted;
//! memory and CPU limits reach the engine; bad volume and limit settings are refused.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{sample_app, SampleRepo};

fn inspect(container: &str, format: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", format, container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_redeploys_rollbacks_and_restarts() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("motd"), "from the host\n").unwrap();
    let mut app = sample_app("web", &repo, "main", "web.test");
    app["volumes"] = json!([
        {"source": "data", "target": "/data"},
        {"source": shared.path().to_str().unwrap(), "target": "/shared", "read_only": true}
    ]);
    app["limits"] = json!({"memory_mb": 64, "cpus": 0.5});
    daemon.create_app(app).await;
    let d1 = daemon.deploy_expect("web", None, "live").await;

    let container = format!("{}_web_d{}", daemon.instance, d1["id"]);
    assert_eq!(
        inspect(&container, "{{.HostConfig.Memory}}"),
        (64 * 1024 * 1024).to_string()
    );
    assert_eq!(inspect(&container, "{{.HostConfig.NanoCpus}}"), "500000000");

    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/write?path=/data/note&value=kept")
            .await
            .0,
        200
    );
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/read?path=/shared/motd")
            .await
            .1,
        "from the host\n"
    );
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/write?path=/shared/x&value=no")
            .await
            .0,
        500,
        "a read-only host path stays read-only"
    );

    repo.commit_version("v2", &[]);
    daemon.deploy_expect("web", None, "live").await;
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v2\n");
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/read?path=/data/note")
            .await
            .1,
        "kept"
    );

    let (status, body) = daemon.call(Method::POST, "/apps/web/rollback", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        daemon.wait(body["id"].as_i64().unwrap()).await["state"],
        "live"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await.1, "version: v1\n");
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/read?path=/data/note")
            .await
            .1,
        "kept"
    );

    let (status, body) = daemon.call(Method::POST, "/apps/web/restart", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        daemon.wait(body["id"].as_i64().unwrap()).await["state"],
        "live"
    );
    assert_eq!(
        daemon
            .via_proxy("web.test", "/file/read?path=/data/note")
            .await
            .1,
        "kept"
    );

    let volume = format!("{}_web_data", daemon.instance);
    let labels = std::process::Command::new("docker")
        .args(["volume", "inspect", "--format", "{{json .Labels}}", &volume])
        .output()
        .unwrap();
    let labels: Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(labels["capstan.app"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_volume_and_limit_settings_are_refused() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    let cases = [
        (
            json!({"volumes": [{"source": "data", "target": "relative"}]}),
            "volumes.target",
        ),
        (
            json!({"volumes": [{"source": "data", "target": "/a/../../etc"}]}),
            "volumes.target",
        ),
        (
            json!({"volumes": [{"source": "data", "target": "/.capstan"}]}),
            "volumes.target",
        ),
        (
            json!({"volumes": [{"source": "Bad Name", "target": "/data"}]}),
            "volumes.source",
        ),
        (
            json!({"volumes": [{"source": "/", "target": "/data"}]}),
            "volumes.source",
        ),
        (
            json!({"volumes": [{"source": "a", "target": "/d"}, {"source": "b", "target": "/d"}]}),
            "mounted twice",
        ),
        (
            json!({"volumes": [{"source": "a", "target": "/d", "mode": "rw"}]}),
            "mode",
        ),
        (json!({"limits": {"memory_mb": 1}}), "limits.memory_mb"),
        (json!({"limits": {"cpus": 0}}), "limits.cpus"),
    ];
    for (patch, needle) in cases {
        let (status, body) = daemon
            .call(Method::PATCH, "/apps/web", Some(patch.clone()))
            .await;
        assert!(status == 422 || status == 400, "{patch}: {status} {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{patch}: {message:?} should mention {needle:?}"
        );
    }
}
