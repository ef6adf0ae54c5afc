//! Apps as their authors wrote them, for real through the proxy: the port found from the
//! image's `EXPOSE` or `capstan.toml` and handed to the app as `PORT`, a refused health
//! check that names the ports the app really listens on, and the image's own
//! `HEALTHCHECK` honoured when the app's settings define none.

mod support;

use serde_json::{json, Value};
use support::SampleRepo;

/// Settings with no port and no health check: everything comes from the repo and image.
fn bare_app(name: &str, repo: &SampleRepo, host: &str) -> Value {
    json!({
        "name": name,
        "source": {"git": {"url": repo.url(), "ref": "main"}},
        "domains": [host],
        "drain_secs": 1,
        "stop_grace_secs": 2
    })
}

fn dockerfile(extra: &str) -> String {
    format!("FROM scratch\nCOPY app /app\nENV VERSION=v1\n{extra}ENTRYPOINT [\"/app\"]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_comes_from_expose_or_capstan_toml_and_reaches_the_app_as_port() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file("Dockerfile", &dockerfile("EXPOSE 5000\n"), "expose 5000");
    daemon
        .create_app(bare_app("exposed", &repo, "exposed.test"))
        .await;
    let d = daemon.deploy_expect("exposed", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(log.contains("port 5000 (from the image's EXPOSE)"), "{log}");
    assert_eq!(
        daemon.via_proxy("exposed.test", "/env/PORT").await,
        (200, "5000\n".to_string())
    );
    assert_eq!(
        daemon.via_proxy("exposed.test", "/").await,
        (200, "version: v1\n".to_string())
    );
    // Docker's own check of the live container runs every 30s, not every second.
    let container = daemon
        .containers("exposed")
        .pop()
        .expect("a live container");
    let interval = support::docker(&[
        "inspect",
        "-f",
        "{{.Config.Healthcheck.Interval}}",
        &container,
    ]);
    assert_eq!(interval.trim(), "30s");

    // capstan.toml names the port: it wins over EXPOSE.
    repo.commit_file("capstan.toml", "port = 3000\n", "port from the repo");
    let d = daemon.deploy_expect("exposed", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(log.contains("port 3000 (from capstan.toml)"), "{log}");
    assert_eq!(
        daemon.via_proxy("exposed.test", "/env/PORT").await,
        (200, "3000\n".to_string())
    );
    // The release stores the port it used, so the app's view shows it.
    let release = daemon.deployment(d["id"].as_i64().unwrap()).await;
    assert_eq!(release["state"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_health_check_names_the_ports_the_app_listens_on() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        &dockerfile("EXPOSE 9000\n"),
        "listens on 9000",
    );
    let mut app = bare_app("wrongport", &repo, "wrongport.test");
    // The app is told 8080 but insists on 9000 (its own PORT variable).
    app["port"] = json!(8080);
    app["env"] = json!({"PORT": "9000"});
    app["health"] = json!({"interval_secs": 0.5, "retries": 2, "deadline_secs": 20});
    daemon.create_app(app).await;
    let d = daemon.deploy_expect("wrongport", None, "failed").await;
    let error = d["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("listening on 0.0.0.0:9000;"), "{error}");
    assert!(error.contains("the image exposes 9000"), "{error}");
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("capstan-sample v1 listening on 9000"),
        "the app's own output is in the log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_healthcheck_is_honoured_when_the_app_defines_none() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        &dockerfile("HEALTHCHECK CMD [\"/app\", \"task\", \"1\", \"not ready yet\"]\n"),
        "a failing image health check",
    );
    daemon
        .create_app(bare_app("imagecheck", &repo, "imagecheck.test"))
        .await;
    // HTTP would answer, but the image says the app is not healthy: that decides.
    let failed = daemon.deploy_expect("imagecheck", None, "failed").await;
    let log = daemon.log(failed["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("health check: the image's HEALTHCHECK (CMD /app task 1 not ready yet)"),
        "{log}"
    );
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("health check failed"), "{error}");
    assert!(error.contains("not ready yet"), "{error}");

    repo.commit_file(
        "Dockerfile",
        &dockerfile("HEALTHCHECK CMD [\"/app\", \"task\", \"0\", \"ready\"]\n"),
        "a passing image health check",
    );
    let d = daemon.deploy_expect("imagecheck", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(log.contains("health probe: ready"), "{log}");
    assert_eq!(
        daemon.via_proxy("imagecheck.test", "/").await,
        (200, "version: v1\n".to_string())
    );
}
