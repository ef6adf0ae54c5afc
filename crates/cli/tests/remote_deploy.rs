//! Deploying to a server over SSH, end to end: a real daemon, the second host of the
//! tests (its own Docker engine in its own network namespace at 10.250.0.2, a real sshd
//! beside it) added as a server, and an app that names it. The first deployment prepares
//! the server through its engine's API (control network, probe, page server, proxy on the
//! server's port) and goes live there through the health-gated cutover; the app answers
//! through the server's own proxy, nothing of it runs on the local engine, and a redeploy
//! and a rollback switch over there with no failed request. A server lost in the middle
//! of a deployment fails it within the SSH bound while the live version keeps serving
//! there. Every object of a run's namespace is removed from the second engine afterwards.

mod support;

use support::servers::SecondHostRun as Remote;

use capstan_testkit::SecondHost;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DOMAIN: &str = "remote.deploy.test";

/// The app: busybox httpd serving `token` on 8080 (an image the second host has).
fn app(token: &str) -> serde_json::Value {
    let script =
        format!("mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www");
    json!({
        "source": {"image": "busybox:stable"},
        "command": ["sh", "-c", script],
        "port": 8080,
        "domains": [DOMAIN],
        "servers": ["h2"],
        "health": {"interval_secs": 0.25},
        "drain_secs": 1,
    })
}

/// GET / through the server's proxy: status and body.
async fn get(http: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let response = http
        .get(format!("http://10.250.0.2:{port}/"))
        .header(reqwest::header::HOST, DOMAIN)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_deploys_to_a_server_over_ssh_and_answers_through_its_proxy() {
    let remote = Remote::start("ssh", "rd", &[]).await;
    let outcome = exercise(&remote).await;
    remote.finish(outcome).await;
}

async fn exercise(remote: &Remote) -> Result<(), String> {
    let Remote {
        host,
        daemon,
        namespace,
        proxy_port,
        ..
    } = remote;
    let (namespace, proxy_port) = (namespace.as_str(), *proxy_port);
    let mut first = app("first");
    first["name"] = json!("far");
    daemon.create_app(first).await;

    let deployed = daemon.deploy_expect("far", None, "live").await;
    if deployed["server"] != "h2" {
        return Err(format!("the deployment names its server: {deployed}"));
    }
    let http = reqwest::Client::new();
    let answer = get(&http, proxy_port).await;
    if answer.as_ref().map(|(s, b)| (*s, b.trim())) != Some((200, "first")) {
        return Err(format!("through the server's proxy: {answer:?}"));
    }
    if !daemon.containers("far").is_empty() {
        return Err(format!(
            "on the local engine: {:?}",
            daemon.containers("far")
        ));
    }
    let remote = host_containers(host, namespace);
    if !remote.iter().any(|c| c.contains("far_d")) {
        return Err(format!("not running on the second host: {remote:?}"));
    }

    // A redeploy with a new version and a rollback switch over there under traffic.
    let failed = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (failed, served, stop, http) =
            (failed.clone(), served.clone(), stop.clone(), http.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(&http, proxy_port).await {
                    Some((200, _)) => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let patch = json!({"command": app("second")["command"]});
    let (status, body) = daemon.call(Method::PATCH, "/apps/far", Some(patch)).await;
    if status != 200 {
        return Err(format!("patch: {status} {body}"));
    }
    daemon.deploy_expect("far", None, "live").await;
    let second = get(&http, proxy_port).await;
    let body = json!({"deployment": deployed["id"]});
    let (status, rollback) = daemon
        .call(Method::POST, "/apps/far/rollback", Some(body))
        .await;
    if status != 202 {
        return Err(format!("rollback: {status} {rollback}"));
    }
    let rolled = daemon
        .wait(rollback["id"].as_i64().unwrap_or_default())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let back = get(&http, proxy_port).await;
    let (ok, bad) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    if second.as_ref().map(|(_, b)| b.trim()) != Some("second") || rolled["state"] != "live" {
        return Err(format!("redeploy answered {second:?}; rollback {rolled}"));
    }
    if back.as_ref().map(|(_, b)| b.trim()) != Some("first") {
        return Err(format!("after the rollback: {back:?}"));
    }
    if bad != 0 || ok < 20 {
        return Err(format!(
            "{bad} failed requests of {} under redeploy and rollback",
            ok + bad
        ));
    }
    // Deleting the app removes it from the server too.
    // (once the rollback has retired the version it replaced: a delete waits for that)
    let mut answer = daemon.call(Method::DELETE, "/apps/far", None).await;
    for _ in 0..100 {
        if answer.0 != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = daemon.call(Method::DELETE, "/apps/far", None).await;
    }
    let (status, body) = answer;
    if status != 204 {
        return Err(format!("delete: {status} {body}"));
    }
    let remote = host_containers(host, namespace);
    if remote.iter().any(|c| c.contains("far_")) {
        return Err(format!("left after delete: {remote:?}"));
    }
    Ok(())
}

/// The names of the second engine's containers of `namespace`.
fn host_containers(host: &SecondHost, namespace: &str) -> Vec<String> {
    let filter = format!("label=capstan.instance={namespace}");
    let out = host
        .docker_cli()
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
        .output()
        .expect("docker ps on the second host");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lost_mid_deployment_fails_it_in_time_and_the_live_version_serves() {
    let mut remote = Remote::start("ssh", "rd", &["--ssh-timeout-secs", "5"]).await;
    let outcome = lose_the_server(&mut remote).await;
    remote.finish(outcome).await;
}

async fn lose_the_server(remote: &mut Remote) -> Result<(), String> {
    let port = remote.proxy_port;
    let daemon = &remote.daemon;
    let mut first = app("first");
    first["name"] = json!("lost");
    daemon.create_app(first).await;
    daemon.deploy_expect("lost", None, "live").await;
    // The next version takes a while to get healthy; the server goes away meanwhile.
    let slow =
        "sleep 20; mkdir -p /www && echo second > /www/index.html && exec httpd -f -p 8080 -h /www";
    let health = json!({"start_period_secs": 60, "deadline_secs": 120});
    let patch = json!({"command": ["sh", "-c", slow], "health": health});
    let (status, body) = daemon.call(Method::PATCH, "/apps/lost", Some(patch)).await;
    if status != 200 {
        return Err(format!("patch: {status} {body}"));
    }
    let id = daemon.deploy("lost", None).await;
    let mut state = String::new();
    for _ in 0..300 {
        state = daemon.deployment(id).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state == "health_checking" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if state != "health_checking" {
        return Err(format!("never health-checking: {state}"));
    }
    remote.sshd.kill();
    let lost_at = std::time::Instant::now();
    let ended = daemon.wait(id).await;
    let took = lost_at.elapsed();
    if ended["state"] != "failed" {
        return Err(format!("with its server gone: {ended}"));
    }
    // The bound is 5 s; reconnect attempts and the cleanup's own tries fit well inside 30.
    if took > Duration::from_secs(30) {
        return Err(format!("failed only after {took:?}: {ended}"));
    }
    let answer = get(&reqwest::Client::new(), port).await;
    if answer.as_ref().map(|(s, b)| (*s, b.trim())) != Some((200, "first")) {
        return Err(format!("the live version after the loss: {answer:?}"));
    }
    Ok(())
}
