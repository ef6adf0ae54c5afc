//! Compose apps for real: the web service is built and cut over blue-green behind the
//! proxy; the other services run once as companions on the app's private network, found
//! by service name, left alone while unchanged, replaced when changed, removed when gone,
//! and brought back as they were by a rollback.

mod support;

use capstan_testkit::docker;
use reqwest::Method;
use serde_json::json;
use support::SampleRepo;

fn compose_file(mark: &str, with_store: bool) -> String {
    let store = format!(
        r#"
  store:
    image: busybox:stable
    command: ["sh", "-c", "mkdir -p /www && echo store-$$MARK > /www/index.html && exec httpd -f -p 8080 -h /www"]
    environment:
      MARK: {mark}
    volumes: ["storedata:/var/lib/store"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 500ms
      retries: 20
"#
    );
    format!(
        r#"services:
  web:
    build: ./web
    environment:
      STORE_URL: http://store:8080/
    ports: ["8080:8080"]{depends}
{store}"#,
        depends = if with_store {
            "\n    depends_on: [store]"
        } else {
            ""
        },
        store = if with_store { store.as_str() } else { "" },
    )
}

fn web_dockerfile(version: &str) -> String {
    format!("FROM busybox:stable\nCOPY app /app\nENV VERSION={version}\nENTRYPOINT [\"/app\"]\n")
}

/// What the web container gets from the store companion, by its service name.
fn store_seen_from_web(container: &str) -> String {
    docker(&[
        "exec",
        container,
        "wget",
        "-q",
        "-O",
        "-",
        "http://store:8080/",
    ])
    .trim()
    .to_string()
}

fn container_id(name: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_app_with_a_companion_across_deploys_and_a_rollback() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    std::fs::create_dir_all(repo.path().join("web")).unwrap();
    std::fs::rename(repo.path().join("app"), repo.path().join("web/app")).unwrap();
    repo.commit_file("web/Dockerfile", &web_dockerfile("v1"), "web");
    repo.commit_file("compose.yaml", &compose_file("one", true), "compose");
    let mut app = support::sample_app("cmp", &repo, "main", "cmp.test");
    app["health"]["interval_secs"] = json!(0.5);
    daemon.create_app(app).await;
    let store = format!("{}_cmp_svc_store", daemon.instance);

    let first = daemon.deploy_expect("cmp", None, "live").await;
    let first_id = first["id"].as_i64().unwrap();
    let log = daemon.final_log(first_id).await;
    assert!(
        log.contains(
            "build plan: compose (compose.yaml: services store, web; web serves the app's domains)"
        ),
        "{log}"
    );
    assert!(
        log.contains(&format!("companion {store} is healthy")),
        "{log}"
    );
    assert_eq!(daemon.via_proxy("cmp.test", "/").await.1, "version: v1\n");
    assert_eq!(
        daemon.via_proxy("cmp.test", "/env/STORE_URL").await.1,
        "http://store:8080/\n"
    );
    let web1 = format!("{}_cmp_d{first_id}", daemon.instance);
    assert_eq!(store_seen_from_web(&web1), "store-one");
    let spec = daemon.text(&format!("/deployments/{first_id}/spec")).await;
    assert!(
        spec.contains(&store) && spec.contains("companion"),
        "{spec}"
    );
    let store_id = container_id(&store);

    // A web-only change leaves the companion running as it is.
    repo.commit_file("web/Dockerfile", &web_dockerfile("v2"), "web v2");
    let second = daemon.deploy_expect("cmp", None, "live").await;
    let log = daemon.final_log(second["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&format!("companion {store} is unchanged; left running")),
        "{log}"
    );
    assert_eq!(container_id(&store), store_id);
    assert_eq!(daemon.via_proxy("cmp.test", "/").await.1, "version: v2\n");

    // A changed companion is replaced; the new web version sees the new one.
    repo.commit_file("compose.yaml", &compose_file("two", true), "store two");
    let third = daemon.deploy_expect("cmp", None, "live").await;
    let third_id = third["id"].as_i64().unwrap();
    let log = daemon.final_log(third_id).await;
    assert!(
        log.contains(&format!("companion {store} changed; replacing it")),
        "{log}"
    );
    assert_eq!(
        store_seen_from_web(&format!("{}_cmp_d{third_id}", daemon.instance)),
        "store-two"
    );

    // Gone from the file: removed after the switch.
    repo.commit_file("compose.yaml", &compose_file("two", false), "no store");
    let fourth = daemon.deploy_expect("cmp", None, "live").await;
    let log = daemon.final_log(fourth["id"].as_i64().unwrap()).await;
    assert!(log.contains(&format!("removed companion {store}")), "{log}");
    assert!(container_id(&store).is_empty(), "the companion is gone");

    // Rolling back to the first release brings its companion back as it was.
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/cmp/rollback",
            Some(json!({"deployment": first_id})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let rollback_id = body["id"].as_i64().unwrap();
    let rolled = daemon.wait(rollback_id).await;
    assert_eq!(rolled["state"], "live", "{}", daemon.log(rollback_id).await);
    daemon.final_log(rollback_id).await;
    assert_eq!(daemon.via_proxy("cmp.test", "/").await.1, "version: v1\n");
    assert_eq!(
        store_seen_from_web(&format!("{}_cmp_d{rollback_id}", daemon.instance)),
        "store-one"
    );

    // Deleting the app removes companions and the app network; data volumes stay.
    let (status, _) = daemon.call(Method::DELETE, "/apps/cmp", None).await;
    assert_eq!(status, 204);
    assert!(container_id(&store).is_empty());
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks
            .lines()
            .any(|n| n == format!("{}_cmp", daemon.instance)),
        "{networks}"
    );
}
