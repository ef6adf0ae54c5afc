//! Deploying to a swarm server, end to end: a real daemon, the second host (its own engine
//! in its own network namespace at 10.250.0.2, made a single-node swarm manager, with a
//! real sshd beside it) added as a server of kind `swarm`, and an app with 2 replicas that
//! names it. The app becomes a swarm service behind Traefik's swarm provider (a proxy on
//! the manager publishing on the server's port); both tasks answer through it; an update
//! under load drops no request; a version that never turns healthy is rolled back by Swarm
//! and the deployment fails while the previous version keeps answering; deleting the app
//! removes its services. A server of kind `swarm` whose engine is no manager is refused.
//! The main engine's swarm state is only read, never changed.

mod support;

use support::servers;
use support::servers::SecondHostRun as Swarm;

use reqwest::Method;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DOMAIN: &str = "swarm.deploy.test";

/// The longest a load loop runs.
const LOAD_LIMIT: Duration = Duration::from_secs(150);

/// busybox httpd on 8080 answering `<token> <task hostname>`.
fn command(token: &str) -> serde_json::Value {
    let script = format!(
        "echo serving {token}; mkdir -p /www && echo {token} $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
    );
    json!(["sh", "-c", script])
}

async fn get(http: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let response = http
        .get(format!("http://10.250.0.2:{port}/"))
        .header(reqwest::header::HOST, DOMAIN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Requests in a loop until stopped: (answered 200, failed).
struct Load {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let (ok, failed, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let task = {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut errors = Vec::new();
                // Bounded: at most 300 000 requests and 150 s, or until stopped.
                let started = std::time::Instant::now();
                for _ in 0..300_000 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > LOAD_LIMIT {
                        break;
                    }
                    match get(&http, port).await {
                        Some((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            errors.push(format!("{other:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                errors
            })
        };
        Load {
            ok,
            failed,
            stop,
            task,
        }
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.task.await.unwrap_or_default();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_runs_as_swarm_replicas_behind_traefik_and_swarm_rolls_back_a_bad_version() {
    let swarm = Swarm::start("swarm", "sw", &[]).await;
    let outcome = exercise(&swarm).await;
    swarm.finish(outcome).await;
}

async fn exercise(swarm: &Swarm) -> Result<(), String> {
    let (daemon, port) = (&swarm.daemon, swarm.proxy_port);
    let (status, check) = daemon.call(Method::POST, "/servers/h2/check", None).await;
    let manager = check["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "swarm_manager"))
        .cloned();
    if status != 200 || manager.as_ref().map(|m| m["ok"] == true) != Some(true) {
        return Err(format!("check of the swarm server: {status} {check}"));
    }
    daemon
        .create_app(json!({
            "name": "sw", "source": {"image": "busybox:stable"}, "command": command("first"),
            "port": 8080, "domains": [DOMAIN], "servers": ["h2"], "replicas": 2,
            "health": {"interval_secs": 0.5, "retries": 3, "deadline_secs": 60},
        }))
        .await;
    let first = daemon.deploy_expect("sw", None, "live").await;
    let log = daemon.log(first["id"].as_i64().unwrap_or_default()).await;
    if !log.contains("start-first") {
        return Err(format!("the plan does not name the update order:\n{log}"));
    }
    both_tasks_answer(port, "first").await?;
    println!("(a) 2 replicas answer through the proxy on 10.250.0.2:{port}");

    // An update under load: start-first, nothing dropped.
    let load = Load::start(port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    patch(daemon, json!({"command": command("second")})).await?;
    let second = daemon.deploy_expect("sw", None, "live").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed, errors) = load.finish().await;
    println!("(c) update under load: {ok} answered, {failed} failed");
    if failed != 0 || ok < 50 {
        return Err(format!(
            "{failed} of {} requests failed across the update: {errors:?}",
            ok + failed
        ));
    }
    both_tasks_answer(port, "second").await?;

    // A version that never turns healthy (nothing listens): Swarm rolls it back.
    let load = Load::start(port);
    patch(daemon, json!({"command": ["sh", "-c", "exec sleep 3600"]})).await?;
    let bad = daemon.deploy_expect("sw", None, "failed").await;
    let (ok, failed, errors) = load.finish().await;
    let error = bad["error"].as_str().unwrap_or_default();
    println!("(b) bad version: {error}; under load {ok} answered, {failed} failed");
    if !error.contains("rolled the update back") || !error.contains("new task") {
        return Err(format!("the failure does not say Swarm rolled back: {bad}"));
    }
    if failed != 0 {
        return Err(format!(
            "{failed} requests failed while Swarm rolled back: {errors:?}"
        ));
    }
    both_tasks_answer(port, "second").await?;

    // Rollback to the first release, then delete.
    let body = json!({"deployment": first["id"]});
    let (status, rollback) = daemon
        .call(Method::POST, "/apps/sw/rollback", Some(body))
        .await;
    if status != 202 {
        return Err(format!("rollback: {status} {rollback}"));
    }
    let rolled = daemon
        .wait(rollback["id"].as_i64().unwrap_or_default())
        .await;
    if rolled["state"] != "live" {
        return Err(format!("rollback to {}: {rolled}", second["id"]));
    }
    both_tasks_answer(port, "first").await?;
    restart_and_logs(daemon, port).await?;
    maintenance_on_and_off(daemon, port).await?;
    delete_app(swarm).await
}

/// Maintenance on: the proxy answers every request with the page (503) above the
/// service's own router; off: the tasks answer again.
async fn maintenance_on_and_off(daemon: &capstan_testkit::Daemon, port: u16) -> Result<(), String> {
    let page = json!({"message": "back soon", "retry_after_secs": 60});
    let (status, on) = daemon
        .call(Method::PUT, "/apps/sw/maintenance", Some(page))
        .await;
    if status != 200 || on["applied"] != true {
        return Err(format!("maintenance on: {status} {on}"));
    }
    let answer = get(&reqwest::Client::new(), port).await;
    if answer.as_ref().map(|(s, b)| (*s, b.contains("back soon"))) != Some((503, true)) {
        return Err(format!("in maintenance: {answer:?}"));
    }
    let (status, off) = daemon
        .call(Method::DELETE, "/apps/sw/maintenance", None)
        .await;
    if !(200..300).contains(&status) {
        return Err(format!("maintenance off: {status} {off}"));
    }
    both_tasks_answer(port, "first").await
}

/// A restart replaces both tasks (new hostnames) of the same release; the app's output is
/// its service's log lines.
async fn restart_and_logs(daemon: &capstan_testkit::Daemon, port: u16) -> Result<(), String> {
    // A restart runs the live release with the app's current settings: the good command.
    patch(daemon, json!({"command": command("first")})).await?;
    let before = task_names(port).await;
    let (status, restart) = daemon.call(Method::POST, "/apps/sw/restart", None).await;
    if status != 202 {
        return Err(format!("restart: {status} {restart}"));
    }
    let restarted = daemon
        .wait(restart["id"].as_i64().unwrap_or_default())
        .await;
    if restarted["state"] != "live" {
        return Err(format!("restart: {restarted}"));
    }
    both_tasks_answer(port, "first").await?;
    let after = task_names(port).await;
    if !before.is_disjoint(&after) {
        return Err(format!("the restart kept tasks: {before:?} then {after:?}"));
    }
    let logs = daemon.text("/apps/sw/logs?tail=50").await;
    if !logs.lines().any(|l| l.contains("_sw] serving first")) {
        return Err(format!("the app's output: {logs}"));
    }
    Ok(())
}

/// The tasks (hostnames) that answer 20 requests.
async fn task_names(port: u16) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    let mut names = BTreeSet::new();
    for _ in 0..20 {
        if let Some((200, body)) = get(&http, port).await {
            if let Some(name) = body.split_whitespace().nth(1) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

async fn patch(daemon: &capstan_testkit::Daemon, body: serde_json::Value) -> Result<(), String> {
    let (status, answer) = daemon.call(Method::PATCH, "/apps/sw", Some(body)).await;
    if status != 200 {
        return Err(format!("patch: {status} {answer}"));
    }
    Ok(())
}

/// 40 requests through the proxy all answer `token`, from two different tasks.
async fn both_tasks_answer(port: u16, token: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut tasks = BTreeSet::new();
    for _ in 0..40 {
        let answer = get(&http, port).await;
        match answer
            .as_ref()
            .map(|(s, b)| (*s, b.split_whitespace().collect::<Vec<_>>()))
        {
            Some((200, words)) if words.first() == Some(&token) && words.len() == 2 => {
                tasks.insert(words[1].to_string());
            }
            _ => return Err(format!("through the proxy, expecting {token}: {answer:?}")),
        }
    }
    if tasks.len() != 2 {
        return Err(format!("answers came from {tasks:?}, not from both tasks"));
    }
    Ok(())
}

async fn delete_app(swarm: &Swarm) -> Result<(), String> {
    let mut answer = swarm.daemon.call(Method::DELETE, "/apps/sw", None).await;
    for _ in 0..100 {
        if answer.0 != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = swarm.daemon.call(Method::DELETE, "/apps/sw", None).await;
    }
    if answer.0 != 204 {
        return Err(format!("delete: {answer:?}"));
    }
    let engine = capstan_engine::Engine::connect(Some(&swarm.host.docker_host()), &swarm.namespace)
        .await
        .map_err(|e| e.to_string())?;
    let services = engine
        .owned_services(None)
        .await
        .map_err(|e| e.to_string())?;
    if !services.is_empty() {
        return Err(format!("services left after delete: {services:?}"));
    }
    Ok(())
}

/// A server of kind swarm whose engine is not a manager: the main engine (only its
/// `/info` is read) behind an sshd on loopback. Its check says so and a deploy fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_server_whose_engine_is_no_manager_is_refused() {
    let daemon = support::start_daemon_with(&[]).await;
    let state = std::process::Command::new("docker")
        .args(["info", "--format", "{{.Swarm.ControlAvailable}}"])
        .output()
        .expect("docker info");
    let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
    assert_eq!(
        state, "false",
        "the main engine must be no swarm manager for this test"
    );
    let sshd = servers::sshd_on_loopback();
    let _server =
        servers::add_server(&daemon, "nomgr", "swarm", sshd, servers::MAIN_SOCKET, "nm").await;
    let (status, check) = daemon
        .call(Method::POST, "/servers/nomgr/check", None)
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], false, "{check}");
    let manager = check["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "swarm_manager"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(manager["ok"], false, "{check}");
    assert!(
        manager["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not a swarm manager"),
        "{check}"
    );
    daemon
        .create_app(json!({
            "name": "nm", "source": {"image": "busybox:stable"}, "port": 8080,
            "servers": ["nomgr"],
        }))
        .await;
    let failed = daemon.deploy_expect("nm", None, "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("not a swarm manager"), "{failed}");
}
