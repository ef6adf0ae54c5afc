//! Self-healing and latency on the real engine and proxy: the proxy is watched and brought
//! back without a daemon restart (and reconnected to an app network it was disconnected
//! from by hand), a rollback right after a deploy does not wait for the
//! replaced container's stop grace period, delete and deploy never both succeed, and a
//! source that hangs is given up on with its processes gone.

mod support;

use capstan_testkit::{docker, GitAnswer, GitServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{sample_app, Daemon, SampleRepo};

async fn health(daemon: &Daemon) -> Value {
    daemon
        .http
        .get(daemon.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (bounded) until the app answers `expected` through the proxy and the daemon
/// reports the proxy running.
async fn wait_serving(daemon: &Daemon, host: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = daemon.via_proxy(host, "/").await;
        if status == 200 && body == expected && health(daemon).await["proxy"] == "running" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not serving again: {status} {body}; health {}\n{}",
            health(daemon).await,
            daemon.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_is_brought_back_without_a_daemon_restart() {
    let daemon = support::start_daemon().await;
    let repo = daemon.live_sample("web", "web.test", &[]).await;
    assert_eq!(health(&daemon).await["proxy"], "running");
    let proxy = format!("{}-proxy", daemon.instance);

    // Disconnected from the app's network by hand: the watch reconnects it, logs and
    // counts it, and the app answers through the proxy again.
    let network = format!("{}_web", daemon.instance);
    docker(&["network", "disconnect", &network, &proxy]);
    wait_serving(&daemon, "web.test", "version: v1\n").await;
    let joined = docker(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        &proxy,
    ]);
    assert!(joined.contains(&format!("\"{network}\"")), "{joined}");
    assert!(
        daemon.daemon_log().contains("reconnected it"),
        "{}",
        daemon.daemon_log()
    );
    let metrics = daemon
        .http
        .get(format!("{}/metrics", daemon.api))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("capstan_proxy_network_rejoins_total 1"),
        "{metrics}"
    );

    // Stopped: started again (on a new API port), routes re-applied.
    docker(&["stop", "-t", "1", &proxy]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_degraded = false;
    while Instant::now() < deadline && !saw_degraded {
        saw_degraded = health(&daemon).await["status"] == "degraded";
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_serving(&daemon, "web.test", "version: v1\n").await;

    // Removed: recreated, joined to the app's network again.
    docker(&["rm", "-f", &proxy]);
    wait_serving(&daemon, "web.test", "version: v1\n").await;

    // Deploys work on the recreated proxy.
    repo.commit_version("v2", &[]);
    daemon.deploy_expect("web", None, "live").await;
    assert_eq!(
        daemon.via_proxy("web.test", "/").await,
        (200, "version: v2\n".into())
    );
    assert!(saw_degraded, "health reported the proxy down while it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_right_after_a_deploy_does_not_wait_for_retirement() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    // An app that ignores SIGTERM: stopping it takes the whole grace period.
    repo.commit_version("v1", &[("SHUTDOWN", "ignore")]);
    let mut settings = sample_app("stubborn", &repo, "main", "stubborn.test");
    settings["stop_grace_secs"] = json!(15);
    // Without an init process the app is PID 1 and SIGTERM does nothing to it.
    settings["init"] = json!(false);
    settings["health"]["interval_secs"] = json!(0.25);
    daemon.create_app(settings).await;
    let first = daemon.deploy_expect("stubborn", None, "live").await;
    repo.commit_version("v2", &[("SHUTDOWN", "ignore")]);
    let second = daemon.deploy_expect("stubborn", None, "live").await;
    let retiring = format!("{}_stubborn_d{}", daemon.instance, first["id"]);

    let asked = Instant::now();
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/stubborn/rollback",
            Some(json!({"deployment": first["id"]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let rollback = daemon.wait(body["id"].as_i64().unwrap()).await;
    assert_eq!(
        rollback["state"],
        "live",
        "{}",
        daemon.log(body["id"].as_i64().unwrap()).await
    );
    let took = asked.elapsed();
    assert_eq!(
        daemon.via_proxy("stubborn.test", "/").await.1,
        "version: v1\n"
    );
    // The container v2 replaced is still in its 15 s grace period: the rollback did not
    // wait for it.
    assert!(
        daemon.containers("stubborn").contains(&retiring),
        "rollback live after {took:?}, while {retiring} is still being retired"
    );
    let log = daemon.log(body["id"].as_i64().unwrap()).await;
    assert!(
        !log.contains("waiting for the previous deployment"),
        "{log}"
    );
    println!(
        "rollback right after deploy: live {took:?} after the API call (deploy {})",
        second["id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_init_an_app_that_ignores_sigterm_stops_at_once() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[("SHUTDOWN", "ignore")]);
    let mut settings = sample_app("tini", &repo, "main", "tini.test");
    settings["stop_grace_secs"] = json!(120);
    daemon.create_app(settings).await;
    let first = daemon.deploy_expect("tini", None, "live").await;
    repo.commit_version("v2", &[("SHUTDOWN", "ignore")]);
    let second = daemon.deploy_expect("tini", None, "live").await;
    let old = format!("{}_tini_d{}", daemon.instance, first["id"]);
    let new = format!("{}_tini_d{}", daemon.instance, second["id"]);
    let init = docker(&["inspect", "-f", "{{.HostConfig.Init}}", &new]);
    assert_eq!(init.trim(), "true");
    // The init process passes SIGTERM on, and the app (no longer PID 1) dies of it: the
    // old container is gone long before its 120 s grace period would end (the wait
    // below gives up after 30 s).
    daemon.wait_containers("tini", &[new]).await;
    println!("{old} retired well inside its grace period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_deploy_never_both_succeed() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    for round in 0..6 {
        let name = format!("race{round}");
        daemon
            .create_app(sample_app(&name, &repo, "main", &format!("{name}.test")))
            .await;
        let (app_path, deploy_path) =
            (format!("/apps/{name}"), format!("/apps/{name}/deployments"));
        let delete = daemon.call(Method::DELETE, &app_path, None);
        let deploy = daemon.call(Method::POST, &deploy_path, None);
        let ((delete_status, delete_body), (deploy_status, deploy_body)) =
            tokio::join!(delete, deploy);
        match (delete_status, deploy_status) {
            // The deploy won: the delete was refused, the deployment exists and runs.
            (409, 202) => {
                assert!(delete_body["error"]
                    .as_str()
                    .unwrap()
                    .contains("queued or running"));
                let id = deploy_body["id"].as_i64().unwrap();
                daemon.wait(id).await;
                daemon.final_log(id).await;
                // Its last cleanup may still be finishing: the delete waits for it.
                let mut status = 0;
                for _ in 0..50 {
                    status = daemon
                        .call(Method::DELETE, &format!("/apps/{name}"), None)
                        .await
                        .0;
                    if status != 409 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert_eq!(status, 204);
            }
            // The delete won: the deploy found no app.
            (204, 404) => {
                assert!(
                    deploy_body["error"].as_str().unwrap().contains("not found"),
                    "{deploy_body}"
                );
            }
            other => panic!(
                "round {round}: delete and deploy answered {other:?}: {delete_body} {deploy_body}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_hangs_is_given_up_on_and_leaves_no_process() {
    let daemon = support::start_daemon_with(&["--fetch-idle-secs", "2"]).await;
    // Accepts connections and never says a word (an ssh server without a banner, a git
    // server that hangs).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    let url = format!("ssh://git@127.0.0.1:{port}/repo.git");
    // Creating an app on it is refused once git has been silent for the limit, and
    // nothing is created.
    let started = Instant::now();
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps",
            Some(json!({"name": "hang", "source": {"git": {"url": url}}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("source.git.url:") && error.contains("no progress"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (_, apps) = daemon.call(Method::GET, "/apps", None).await;
    assert_eq!(apps, json!([]), "nothing created");

    // A git server that answers when the app is created and hangs from then on.
    let server = GitServer::loopback();
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let url = server.publish(repo.path(), "repo");
    daemon
        .create_app(json!({"name": "hang", "source": {"git": {"url": url}}}))
        .await;
    server.answer(GitAnswer::Hang);
    let http_port = server.port().to_string();

    // The dry run gives up with a 502 that says why.
    let started = Instant::now();
    let (status, body) = daemon.call(Method::POST, "/apps/hang/plan", None).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no progress"),
        "{body}"
    );
    println!("plan gave up after {:?}", started.elapsed());

    // So does a deployment, and another app's deploy is not held up meanwhile.
    let hung = daemon.deploy("hang", None).await;
    daemon.live_sample("other", "other.test", &[]).await;
    let d = daemon.wait(hung).await;
    assert_eq!(d["state"], "failed");
    assert!(d["error"].as_str().unwrap().contains("no progress"), "{d}");

    // No ssh (or git) of the daemon's is left talking to the hung server.
    let leftovers = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let leftovers = String::from_utf8_lossy(&leftovers.stdout);
    let port_text = port.to_string();
    let left: Vec<&str> = leftovers
        .lines()
        .filter(|l| {
            (l.starts_with("ssh") || l.contains("git"))
                && (l.contains(&port_text) || l.contains(&http_port))
        })
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
