//! For install.rs: what `install.sh --uninstall` does with the instance's Docker objects.
//! An app deployed through the installed daemon (so the instance owns an app container,
//! its network, a named volume and an image besides the proxy and the page server), and
//! objects of another instance and of none on the same engine. --uninstall keeps every
//! labelled object, lists them and prints the command that removes them; --purge-data
//! removes data and config only; that command (--purge, the config gone) lists, then
//! removes every labelled object and nothing else; an image of the instance that someone
//! else tagged too stays (the purge says it is not done) until that tag is gone.

use crate::support::docker;
use crate::Host;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub async fn uninstall_keeps_then_purges(host: &Host, data_dir: &Path) {
    let instance = &host.instance;
    deploy_app(&host.listen, data_dir, &host.dir.join("app")).await;
    let owned = labelled(instance);
    for expected in [
        format!("container {instance}-proxy"),
        format!("container {instance}-pages"),
        format!("container {instance}_web_d1"),
        format!("network {instance}-control"),
        format!("network {instance}_web"),
        format!("volume {instance}-probe"),
        format!("volume {instance}_web_data"),
        format!("image {instance}/web:1"),
    ] {
        assert!(owned.contains(&expected), "{expected} in {owned:?}");
    }
    let others = foreign_objects(host);

    // While the daemon runs, the purge command refuses.
    let (ok, out) = host.exec(&["/usr/local/bin/capstan", "purge", "--yes"]);
    assert!(!ok && out.contains("stop it first"), "{out}");
    assert_eq!(labelled(instance), owned);

    let (ok, out) = host.install(&["--uninstall"]);
    assert!(ok, "{out}");
    let (active, _) = host.exec(&["systemctl", "is-active", "capstan"]);
    assert!(!active);
    let (exists, _) = host.exec(&["test", "-e", "/usr/local/bin/capstan"]);
    assert!(!exists, "the binary is removed");
    let (exists, _) = host.exec(&["test", "-e", "/etc/systemd/system/capstan.service"]);
    assert!(!exists, "the unit is removed");
    assert!(
        data_dir.join("capstan.db").exists(),
        "data kept without --purge-data"
    );
    let hint = format!(
        "to remove them, with the data and config: bash {} --uninstall --purge --instance {instance}",
        host.dir.join("install.sh").display()
    );
    assert!(out.contains(&hint), "{out}");
    let app_line = format!("  container {instance}_web_d1 (app, web, running)");
    assert!(out.contains(&app_line), "{out}");
    assert_eq!(labelled(instance), owned, "{out}");

    let (ok, out) = host.install(&["--uninstall", "--purge-data"]);
    assert!(ok, "{out}");
    assert!(!data_dir.exists(), "--purge-data removes the data dir");
    let (exists, _) = host.exec(&["test", "-e", "/etc/capstan"]);
    assert!(!exists, "--purge-data removes the config");
    assert!(out.contains(&hint), "{out}");
    assert_eq!(labelled(instance), owned, "{out}");

    // An image of the instance someone else tagged too; a directory at the default data
    // dir's place that no config names. Neither is removed; the purge says it is not done.
    let (extra, foreign_tag) = (
        format!("{instance}/extra:1"),
        format!("foreign-{}:kept", host.suffix),
    );
    let change = format!("LABEL capstan.instance={instance}");
    docker(&["commit", "--change", &change, &others[1].1, &extra]);
    docker(&["tag", &extra, &foreign_tag]);
    host.exec(&["mkdir", "-p", "/var/lib/capstan/unrelated"]);
    let (ok, out) = host.install(&["--uninstall", "--purge", "--instance", instance]);
    assert!(!ok, "{out}");
    let listed = out.find(&app_line);
    let removed = out.find(&format!("removed container {instance}_web_d1"));
    assert!(
        listed.is_some() && listed < removed,
        "listed, then removed: {out}"
    );
    for object in owned.iter().filter(|o| !o.starts_with("image ")) {
        assert!(
            out.contains(&format!("removed {object}")),
            "{object}: {out}"
        );
    }
    for removed in [
        format!("removed volume {instance}-proxy-data"),
        format!("removed image {instance}/web:1"),
        format!("also tagged {foreign_tag}, which is not this instance's name"),
        "run again: bash".to_string(),
    ] {
        assert!(out.contains(&removed), "{removed}: {out}");
    }
    let left = labelled(instance);
    assert_eq!(left, [format!("image {foreign_tag}")], "{out}");
    docker(&["rmi", &foreign_tag]);

    let (ok, out) = host.install(&["--uninstall", "--purge", "--instance", instance]);
    assert!(ok, "{out}");
    assert_eq!(labelled(instance), Vec::<String>::new(), "{out}");
    let proxy_data = format!("name=^{instance}-proxy-data$");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &proxy_data]), "");
    for (kind, name) in &others {
        let still = docker(&[kind, "inspect", "-f", "{{.Name}}", name]);
        assert!(still.contains(name.as_str()), "{kind} {name} was touched");
    }
    let (exists, _) = host.exec(&["test", "-e", "/var/lib/capstan/unrelated"]);
    assert!(exists, "a data dir no config names is not removed: {out}");
    let (exists, _) = host.exec(&["test", "-e", "/usr/local/lib/capstan"]);
    assert!(!exists, "the kept copy of capstan goes with the objects");
    // Run again with nothing left: it says so and succeeds.
    let (ok, again) = host.install(&["--uninstall", "--purge", "--instance", instance]);
    assert!(ok && again.contains("no capstan binary is left"), "{again}");
}

/// Another instance's container and volume, and a container of no instance (Host's drop
/// removes them).
fn foreign_objects(host: &Host) -> Vec<(&'static str, String)> {
    let (other, foreign) = (
        format!("other-{}", host.suffix),
        format!("foreign-{}", host.suffix),
    );
    let label = format!("capstan.instance={}x", host.instance);
    docker(&["volume", "create", "--label", &label, &other]);
    docker(&[
        "create",
        "--name",
        &other,
        "--label",
        &label,
        "busybox:stable",
        "true",
    ]);
    docker(&["create", "--name", &foreign, "busybox:stable", "true"]);
    vec![
        ("container", other.clone()),
        ("container", foreign),
        ("volume", other),
    ]
}

/// Every object labelled `capstan.instance=<instance>`, as `kind name` lines, sorted.
fn labelled(instance: &str) -> Vec<String> {
    let filter = format!("label=capstan.instance={instance}");
    let mut found = Vec::new();
    for (kind, list) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
        ("volume", vec!["volume", "ls", "--format", "{{.Name}}"]),
        (
            "image",
            vec!["images", "--format", "{{.Repository}}:{{.Tag}}"],
        ),
    ] {
        let mut args = list;
        args.extend(["--filter", &filter]);
        found.extend(
            docker(&args)
                .lines()
                .filter(|l| !l.is_empty())
                .map(|name| format!("{kind} {name}")),
        );
    }
    found.sort();
    found
}

/// Deploys the sample app from `app_dir` (a local source directory the daemon may read)
/// as app `web` with a named volume, through the API on `listen`, until it is live.
async fn deploy_app(listen: &str, data_dir: &Path, app_dir: &Path) {
    std::fs::create_dir_all(app_dir).unwrap();
    std::fs::copy(
        capstan_testkit::assets_dir().join("capstan-sample"),
        app_dir.join("app"),
    )
    .unwrap();
    std::fs::write(
        app_dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{listen}/api/v1{path}");
    let send = |request: reqwest::RequestBuilder| async {
        let response = request.bearer_auth(token.trim()).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let app = json!({
        "name": "web",
        "source": {"path": app_dir.to_string_lossy()},
        "port": 8080,
        "domains": ["web.test"],
        "volumes": [{"source": "data", "target": "/data"}],
        "health": {"path": "/health", "interval_secs": 1, "timeout_secs": 2, "retries": 3, "deadline_secs": 30},
        "drain_secs": 1,
        "stop_grace_secs": 2
    });
    let (status, body) = send(http.post(api("/apps")).json(&app)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(http.post(api("/apps/web/deployments"))).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, deployment) = send(http.get(api(&format!("/deployments/{id}")))).await;
        match deployment["state"].as_str() {
            Some("live") => return,
            Some("failed" | "cancelled" | "superseded") => {
                let logs = http.get(api(&format!("/deployments/{id}/logs")));
                let log = logs.bearer_auth(token.trim()).send().await.unwrap();
                panic!(
                    "deployment {id}: {deployment}\n{}",
                    log.text().await.unwrap()
                );
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "deployment {id}: {deployment}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
