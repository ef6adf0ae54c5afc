//! Ports as repos declare them, with repos shaped like the public samples, deployed for
//! real through the proxy: a one-service `docker-compose.yml` that builds the Dockerfile
//! beside it (`build: .`, `ports: ["8000:8000"]`) runs on 8000; an app that names its port
//! nowhere goes live on the one port it listens on (replicas and a restart included),
//! while one listening on two ports fails naming both; the dry run shows one port, `PORT`
//! and health interval throughout; a samples-collection root is refused with its apps.
//! One daemon; the four run side by side.

mod support;

use capstan_compose::ComposeSpec;
use reqwest::Method;
use serde_json::{json, Value};
use support::{Daemon, SampleRepo};

/// Settings that name no port and no health check beyond a quick interval.
fn bare_app(name: &str, repo: &SampleRepo, host: &str) -> Value {
    json!({
        "name": name,
        "source": {"git": {"url": repo.url(), "ref": "main"}},
        "domains": [host],
        "drain_secs": 1,
        "stop_grace_secs": 1,
        "health": {"interval_secs": 0.5}
    })
}

/// A busybox `httpd` serving `www/` on the ports of `command` (a shell line), which no
/// file of the repo names.
fn httpd_repo(command: &str, page: &str) -> SampleRepo {
    let repo = SampleRepo::new();
    repo.commit_file("www/index.html", page, "a page");
    let command = serde_json::to_string(command).unwrap();
    repo.commit_file(
        "Dockerfile",
        &format!("FROM busybox:stable\nCOPY www /www\nCMD [\"sh\", \"-c\", {command}]\n"),
        "serve it",
    );
    repo
}

async fn plan(daemon: &Daemon, app: &str) -> (u16, Value) {
    daemon
        .call(Method::POST, &format!("/apps/{app}/plan"), None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_read_where_repos_declare_them() {
    let daemon = support::start_daemon().await;
    tokio::join!(
        a_one_service_compose_file_names_the_port(&daemon),
        an_app_goes_live_on_the_one_port_it_listens_on(&daemon),
        an_app_listening_on_two_ports_fails_naming_both(&daemon),
        a_samples_collection_root_is_refused_with_its_apps(&daemon),
    );
}

async fn a_one_service_compose_file_names_the_port(daemon: &Daemon) {
    let repo = SampleRepo::new();
    // No EXPOSE: only the compose file says 8000; the app listens on $PORT.
    repo.commit_file(
        "Dockerfile",
        "FROM scratch\nCOPY app /app\nENV VERSION=composed\nENTRYPOINT [\"/app\"]\n",
        "the app",
    );
    repo.commit_file(
        "docker-compose.yml",
        "services:\n  web:\n    build: .\n    ports:\n      - \"8000:8000\"\n",
        "compose it",
    );
    daemon
        .create_app(bare_app("composed", &repo, "composed.test"))
        .await;
    let source = "docker-compose.yml: service web's ports, the service that builds the Dockerfile";
    // The dry run shows the port it plans everywhere, and the settings' interval.
    let (status, report) = plan(daemon, "composed").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["port"], format!("8000 (from {source})"), "{report}");
    assert_consistent(&report, "composed", 8000, "500ms");

    let d = daemon.deploy_expect("composed", None, "live").await;
    let id = d["id"].as_i64().unwrap();
    let log = daemon.log(id).await;
    assert!(log.contains(&format!("port 8000 (from {source})")), "{log}");
    assert_eq!(
        daemon.via_proxy("composed.test", "/env/PORT").await,
        (200, "8000\n".to_string())
    );
    assert_eq!(daemon.deployment(id).await["port"], 8000);

    // A compose plan (the file adds a service): the same agreement in its spec.
    repo.commit_file(
        "docker-compose.yml",
        "services:\n  web:\n    build: .\n    ports:\n      - \"8000:8000\"\n    \
         depends_on: [worker]\n  worker:\n    image: busybox:stable\n    command: [\"sleep\", \"1000\"]\n",
        "a worker beside it",
    );
    let (status, report) = plan(daemon, "composed").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["build_type"], "compose", "{report}");
    assert_eq!(
        report["port"], "8000 (from docker-compose.yml: service web's ports)",
        "{report}"
    );
    assert_consistent(&report, "composed", 8000, "500ms");
}

/// The spec a dry run shows probes and hands the app the port it announces, checks at the
/// settings' interval, and carries none of the template's comments.
fn assert_consistent(report: &Value, app: &str, port: u16, interval: &str) {
    let text = report["compose_spec"].as_str().unwrap();
    assert!(!text.contains('#'), "template comments shown:\n{text}");
    assert_eq!(report["settings"]["port"], port, "{report}");
    assert_eq!(
        report["settings"]["health"]["interval_secs"], 0.5,
        "{report}"
    );
    let spec = ComposeSpec::from_yaml(text).unwrap();
    let web = &spec.services[app];
    assert_eq!(web.environment["PORT"], port.to_string(), "{text}");
    let check = web.healthcheck.as_ref().unwrap();
    assert_eq!(check.test[2], format!("http://127.0.0.1:{port}/"), "{text}");
    assert_eq!(check.interval, interval, "{text}");
}

async fn an_app_goes_live_on_the_one_port_it_listens_on(daemon: &Daemon) {
    let repo = httpd_repo("exec httpd -f -p 8000 -h /www", "found on 8000\n");
    let mut app = bare_app("found", &repo, "found.test");
    app["replicas"] = json!(2);
    daemon.create_app(app).await;
    let (status, report) = plan(daemon, "found").await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["port"]
            .as_str()
            .unwrap()
            .contains("the one TCP port the new container listens on"),
        "{report}"
    );
    let d = daemon.deploy_expect("found", None, "live").await;
    let id = d["id"].as_i64().unwrap();
    let log = daemon.log(id).await;
    assert!(log.contains("port 8080 for now"), "{log}");
    assert!(log.contains("port 8000 (found listening"), "{log}");
    assert_eq!(
        daemon.via_proxy("found.test", "/").await,
        (200, "found on 8000\n".to_string())
    );
    assert_eq!(daemon.deployment(id).await["port"], 8000);
    assert_eq!(daemon.containers("found").len(), 2);
    // The stored release runs on it: its spec, and a restart that reuses it.
    let spec = daemon.text(&format!("/deployments/{id}/spec")).await;
    assert!(spec.contains("http://127.0.0.1:8000/"), "{spec}");
    let (status, restart) = daemon.call(Method::POST, "/apps/found/restart", None).await;
    assert_eq!(status, 202, "{restart}");
    let restarted = daemon.wait(restart["id"].as_i64().unwrap()).await;
    assert_eq!(restarted["state"], "live", "{restarted}");
    let log = daemon.log(restarted["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("port 8000 (from the release's settings)"),
        "{log}"
    );
    assert!(!log.contains("found listening"), "{log}");
    assert_eq!(
        daemon.via_proxy("found.test", "/").await,
        (200, "found on 8000\n".to_string())
    );
}

async fn an_app_listening_on_two_ports_fails_naming_both(daemon: &Daemon) {
    let repo = httpd_repo(
        "httpd -p 9000 -h /www && exec httpd -f -p 8000 -h /www",
        "two ports\n",
    );
    daemon
        .create_app(bare_app("twoports", &repo, "twoports.test"))
        .await;
    let failed = daemon.deploy_expect("twoports", None, "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("listens on several: 8000, 9000"), "{error}");
    assert!(error.contains("`port = 8000` in capstan.toml"), "{error}");
    assert!(daemon.containers("twoports").is_empty());
    // Choosing as the error says: the named port is used, never overridden.
    repo.commit_file("capstan.toml", "port = 8000\n", "choose 8000");
    let d = daemon.deploy_expect("twoports", None, "live").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(log.contains("port 8000 (from capstan.toml)"), "{log}");
    assert!(!log.contains("found listening"), "{log}");
    assert_eq!(
        daemon.via_proxy("twoports.test", "/").await,
        (200, "two ports\n".to_string())
    );
}

async fn a_samples_collection_root_is_refused_with_its_apps(daemon: &Daemon) {
    let repo = SampleRepo::new();
    for (path, text) in [
        ("README.md", "# Samples\n"),
        // nixpacks finds Deno from a script anywhere below the root.
        (
            "deno-hello/main.ts",
            "import { serve } from \"https://deno.land/std@0.140.0/http/server.ts\";\nserve(() => new Response(\"hi\"));\n",
        ),
        ("flask-hello/requirements.txt", "flask\n"),
        ("flask-hello/app.py", "from flask import Flask\napp = Flask(__name__)\n"),
        ("compose-hello/compose.yaml", "services:\n  web:\n    image: busybox:stable\n"),
        ("static-hello/index.html", "static hello\n"),
    ] {
        repo.commit_file(path, text, path);
    }
    daemon
        .create_app(bare_app("samples", &repo, "samples.test"))
        .await;
    let listed = "there are several in subdirectories: compose-hello (compose.yaml), deno-hello \
                  (main.ts), flask-hello (requirements.txt), static-hello (index.html)";
    let (status, refused) = plan(daemon, "samples").await;
    assert_eq!(status, 422, "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(listed) && error.contains("build.base_dir"),
        "{error}"
    );
    let failed = daemon.deploy_expect("samples", None, "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(listed) && error.contains("build.base_dir"),
        "{error}"
    );
    // Naming one of them deploys it.
    let (status, patched) = daemon
        .call(
            Method::PATCH,
            "/apps/samples",
            Some(json!({"build": {"base_dir": "static-hello"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    daemon.deploy_expect("samples", None, "live").await;
    assert_eq!(
        daemon.via_proxy("samples.test", "/").await,
        (200, "static hello\n".to_string())
    );
}
