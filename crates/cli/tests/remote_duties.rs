//! The daemon's duties on a server reached over SSH, end to end against the second host of
//! the tests (its own Docker engine in its own network namespace at 10.250.0.2, a real sshd
//! beside it): crash recovery of a deployment left mid-flight there, with the server down
//! when the daemon starts (the start is not held up; the server is recovered once it is
//! back); the scoped cleanup and the proxy watcher reaching it; its preflight measuring the
//! engine's free disk through the Docker API; a git-source app built there; and the SSH
//! connection lost in the middle of a build (the deployment fails within the bound, the
//! live version serves, a deploy after sshd is back succeeds). Every object of a run's
//! namespace is removed from the second engine afterwards.

mod support;

use support::servers::SecondHostRun as Remote;

use capstan_testkit::SampleRepo;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DOMAIN: &str = "remote.duties.test";

/// The app: busybox httpd serving `token` on 8080, after `delay` seconds.
fn httpd(token: &str, delay: u32) -> Value {
    let script = format!(
        "sleep {delay}; mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www"
    );
    json!(["sh", "-c", script])
}

fn app(name: &str, token: &str) -> Value {
    json!({
        "name": name,
        "source": {"image": "busybox:stable"},
        "command": httpd(token, 0),
        "port": 8080,
        "domains": [DOMAIN],
        "servers": ["h2"],
        "health": {"interval_secs": 0.25},
        "drain_secs": 1,
    })
}

/// GET / through the server's proxy: status and body (trimmed).
async fn get(port: u16) -> Option<(u16, String)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = http
        .get(format!("http://10.250.0.2:{port}/"))
        .header(reqwest::header::HOST, DOMAIN)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((
        status,
        response.text().await.unwrap_or_default().trim().into(),
    ))
}

/// Polls `probe` every 250 ms until it is true or `within` has passed; whether it was.
async fn eventually<F, Fut>(within: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

impl Remote {
    /// `docker` on the second engine; its stdout.
    fn docker(&self, args: &[&str]) -> String {
        let out = self.host.docker_cli().args(args).output().expect("docker");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The names of the second engine's containers of this run carrying `label`.
    fn containers_with(&self, label: &str) -> Vec<String> {
        let instance = format!("label=capstan.instance={}", self.namespace);
        let label = format!("label={label}");
        let listed = self.docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &instance,
            "--filter",
            &label,
        ]);
        listed.lines().map(str::to_string).collect()
    }

    async fn state_of(&self, id: i64) -> String {
        self.daemon.deployment(id).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_up_is_recovered_once_it_is_back() {
    let mut remote = Remote::start("ssh", "rq", &["--ssh-timeout-secs", "5"]).await;
    let outcome = recover_late(&mut remote).await;
    remote.finish(outcome).await;
}

async fn recover_late(remote: &mut Remote) -> Result<(), String> {
    let port = remote.proxy_port;
    remote.daemon.create_app(app("rec", "first")).await;
    remote.daemon.deploy_expect("rec", None, "live").await;
    // A version that takes its time to get healthy: the daemon dies while it is checked.
    let patch = json!({"command": httpd("second", 300), "health": {"start_period_secs": 600, "deadline_secs": 600}});
    let (status, body) = remote
        .daemon
        .call(Method::PATCH, "/apps/rec", Some(patch))
        .await;
    if status != 200 {
        return Err(format!("patch: {status} {body}"));
    }
    let id = remote.daemon.deploy("rec", None).await;
    if !eventually(Duration::from_secs(60), || async {
        remote.state_of(id).await == "health_checking"
    })
    .await
    {
        return Err(format!(
            "never health-checking: {}",
            remote.state_of(id).await
        ));
    }
    let half_made = format!("capstan.deployment={id}");
    if remote.containers_with(&half_made).is_empty() {
        return Err("the new version has no container on the server".into());
    }
    remote.daemon.kill();
    remote.sshd.kill();
    // The server is down: the daemon starts all the same, and at once.
    let started = Instant::now();
    remote.daemon.spawn().await;
    let took = started.elapsed();
    if took > Duration::from_secs(20) {
        return Err(format!("the start took {took:?} with the server down"));
    }
    let state = remote.state_of(id).await;
    if state != "failed" {
        return Err(format!("the interrupted deployment is {state}"));
    }
    if remote.containers_with(&half_made).is_empty() {
        return Err("the half-made container went away without the server".into());
    }
    let waits = |log: &str| log.contains("its recovery waits until it is");
    if !eventually(Duration::from_secs(20), || async {
        waits(&remote.daemon.daemon_log())
    })
    .await
    {
        return Err("no word in the log that the server's recovery waits".into());
    }
    let serving = get(port).await;
    if serving != Some((200, "first".into())) {
        return Err(format!(
            "the live version while the server's sshd is down: {serving:?}"
        ));
    }
    remote.sshd.restart().map_err(|e| e.to_string())?;
    let back = Instant::now();
    if !eventually(Duration::from_secs(90), || async {
        remote.containers_with(&half_made).is_empty()
    })
    .await
    {
        return Err(
            "the half-made container is still there 90 s after the server came back".into(),
        );
    }
    println!("recovered {:?} after the server came back", back.elapsed());
    // The live route is confirmed after the leftovers go; then the recovery is logged.
    let recovered = |log: &str| log.contains("server recovered");
    if !eventually(Duration::from_secs(60), || async {
        recovered(&remote.daemon.daemon_log())
    })
    .await
    {
        return Err("the recovery is not in the log".into());
    }
    let serving = get(port).await;
    if serving != Some((200, "first".into())) {
        return Err(format!("the live version after the recovery: {serving:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_preflight_and_the_proxy_watcher_reach_the_server() {
    let remote = Remote::start("ssh", "rq", &[]).await;
    let outcome = tend(&remote).await;
    remote.finish(outcome).await;
}

async fn tend(remote: &Remote) -> Result<(), String> {
    remote.daemon.create_app(app("tidy", "tidy")).await;
    remote.daemon.deploy_expect("tidy", None, "live").await;
    the_app_is_read_and_switched_there(remote).await?;
    preflight_measures_the_disk(remote).await?;
    cleanup_reaches_the_server(remote).await?;
    proxy_comes_back(remote).await
}

/// The app's container use and output come from the server, and maintenance mode is
/// switched in the server's proxy.
async fn the_app_is_read_and_switched_there(remote: &Remote) -> Result<(), String> {
    let daemon = &remote.daemon;
    let (status, usage) = daemon.call(Method::GET, "/apps/tidy/usage", None).await;
    let container = usage[0]["container"].as_str().unwrap_or_default();
    if status != 200
        || !container.starts_with(&remote.namespace)
        || usage[0]["memory_bytes"].as_u64() == Some(0)
    {
        return Err(format!("usage ({status}): {usage}"));
    }
    let (status, output) = daemon.call(Method::GET, "/apps/tidy/logs", None).await;
    if status != 200 {
        return Err(format!("runtime output ({status}): {output}"));
    }
    let page = json!({"message": "back soon", "retry_after_secs": 60});
    let (status, on) = daemon
        .call(Method::PUT, "/apps/tidy/maintenance", Some(page))
        .await;
    let port = remote.proxy_port;
    let in_maintenance = eventually(Duration::from_secs(20), || async {
        get(port)
            .await
            .is_some_and(|(s, b)| s == 503 && b.contains("back soon"))
    });
    if status != 200 || !in_maintenance.await {
        return Err(format!(
            "maintenance on ({status}): {on}; serving {:?}",
            get(port).await
        ));
    }
    let (status, off) = daemon
        .call(Method::DELETE, "/apps/tidy/maintenance", None)
        .await;
    let back = eventually(Duration::from_secs(20), || async {
        get(port).await == Some((200, "tidy".into()))
    });
    if status != 200 || !back.await {
        return Err(format!(
            "maintenance off ({status}): {off}; serving {:?}",
            get(port).await
        ));
    }
    Ok(())
}

/// The server's preflight says how much room its engine's data root has, as `df` there
/// says (within what a busy machine writes meanwhile).
async fn preflight_measures_the_disk(remote: &Remote) -> Result<(), String> {
    let (status, preflight) = remote
        .daemon
        .call(Method::POST, "/servers/h2/check", None)
        .await;
    let disk = preflight["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "disk"))
        .cloned()
        .unwrap_or(Value::Null);
    let root = remote.docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let detail = disk["detail"].as_str().unwrap_or_default();
    if status != 200 || disk["ok"] != true || !detail.contains(&root) {
        return Err(format!("disk check ({status}): {disk}; data root {root}"));
    }
    println!("remote disk check: {detail}");
    // The same measurement, as numbers, against the filesystem seen from here.
    let engine =
        capstan_engine::Engine::connect(Some(&remote.host.docker_host()), &remote.namespace)
            .await
            .map_err(|e| e.to_string())?;
    let image = "traefik:v3.7";
    let probe = std::fs::read(capstan_testkit::assets_dir().join("capstan-probe"))
        .map_err(|e| e.to_string())?;
    let (measured_root, usage) = engine
        .data_root_disk(image, &probe, Duration::from_secs(20))
        .await
        .map_err(|e| e.to_string())?;
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=size,avail", &root])
        .output()
        .map_err(|e| e.to_string())?;
    let df = String::from_utf8_lossy(&df.stdout);
    let numbers: Vec<u64> = df
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [size, avail] = numbers[..] else {
        return Err(format!("df said {df}"));
    };
    // The machine is shared: other builds write and free space meanwhile.
    let slack = 2 << 30;
    println!(
        "probe: {} of {} free; df: {avail} of {size}",
        usage.free_bytes, usage.total_bytes
    );
    if measured_root != root
        || usage.total_bytes != size
        || usage.free_bytes.abs_diff(avail) > slack
    {
        return Err(format!(
            "probe said {usage:?} under {measured_root}; df said {size} {avail} under {root}"
        ));
    }
    let probes = remote.containers_with("capstan.role=disk-probe");
    if !probes.is_empty() {
        return Err(format!("measuring containers left: {probes:?}"));
    }
    Ok(())
}

/// A stopped container of an app that no longer exists, left on the server: the scoped
/// cleanup lists it (dry run) and removes it, naming the server.
async fn cleanup_reaches_the_server(remote: &Remote) -> Result<(), String> {
    let name = format!("{}_gone_d999999", remote.namespace);
    let instance = format!("capstan.instance={}", remote.namespace);
    remote.docker(&[
        "create",
        "--name",
        &name,
        "--label",
        &instance,
        "--label",
        "capstan.app=gone",
        "--label",
        "capstan.role=app",
        "--label",
        "capstan.deployment=999999",
        "busybox:stable",
        "true",
    ]);
    if remote.containers_with("capstan.app=gone").is_empty() {
        return Err("the leftover could not be made".into());
    }
    let listed = format!("h2: {name}");
    let names = |report: &Value| -> Vec<String> {
        report["containers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let dry = json!({"dry_run": true});
    let (status, preview) = remote
        .daemon
        .call(Method::POST, "/server/cleanup", Some(dry))
        .await;
    if status != 200 || !names(&preview).contains(&listed) {
        return Err(format!("dry run ({status}): {preview}"));
    }
    if remote.containers_with("capstan.app=gone").is_empty() {
        return Err("the dry run removed the leftover".into());
    }
    let (status, report) = remote
        .daemon
        .call(Method::POST, "/server/cleanup", None)
        .await;
    if status != 200 || !names(&report).contains(&listed) {
        return Err(format!("cleanup ({status}): {report}"));
    }
    if !remote.containers_with("capstan.app=gone").is_empty() {
        return Err("the leftover is still on the server".into());
    }
    // The live app's container stays.
    if remote.containers_with("capstan.app=tidy").is_empty() {
        return Err("cleanup removed the live app's container".into());
    }
    Ok(())
}

/// The server's proxy stopped by hand is brought back by the watcher, routes and all.
async fn proxy_comes_back(remote: &Remote) -> Result<(), String> {
    let proxy = format!("{}-proxy", remote.namespace);
    remote.docker(&["stop", "-t", "1", &proxy]);
    let stopped = Instant::now();
    let port = remote.proxy_port;
    if !eventually(Duration::from_secs(60), || async {
        get(port).await == Some((200, "tidy".into()))
    })
    .await
    {
        return Err(format!(
            "the server's proxy did not come back: {:?}",
            get(port).await
        ));
    }
    println!(
        "the server's proxy served again {:?} after it was stopped",
        stopped.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_app_builds_on_the_server_and_a_lost_connection_mid_build_fails_in_time() {
    let mut remote = Remote::start("ssh", "rq", &["--ssh-timeout-secs", "5"]).await;
    let outcome = build_there(&mut remote).await;
    remote.finish(outcome).await;
}

async fn build_there(remote: &mut Remote) -> Result<(), String> {
    let port = remote.proxy_port;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut settings = capstan_testkit::sample_app("built", &repo, "main", DOMAIN);
    settings["servers"] = json!(["h2"]);
    remote.daemon.create_app(settings).await;
    remote.daemon.deploy_expect("built", None, "live").await;
    if get(port).await != Some((200, "version: v1".into())) {
        return Err(format!(
            "the git app through the server's proxy: {:?}",
            get(port).await
        ));
    }
    if !remote.daemon.containers("built").is_empty() {
        return Err("the git app runs on the local engine".into());
    }
    // A build that takes a while; the connection goes while it runs.
    let slow = "FROM busybox:stable\nRUN [\"sleep\", \"120\"]\nCOPY app /app\nENV VERSION=v2\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n";
    repo.commit_file("Dockerfile", slow, "v2");
    let id = remote.daemon.deploy("built", None).await;
    let sleeping = |log: &str| log.contains("sleep");
    if !eventually(Duration::from_secs(120), || async {
        remote.state_of(id).await == "building" && sleeping(&remote.daemon.log(id).await)
    })
    .await
    {
        return Err(format!(
            "never building the slow step: {}\n{}",
            remote.state_of(id).await,
            remote.daemon.log(id).await
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    remote.sshd.kill();
    let lost_at = Instant::now();
    let ended = remote.daemon.wait(id).await;
    let took = lost_at.elapsed();
    println!("the build failed {took:?} after the connection was lost");
    if ended["state"] != "failed" {
        return Err(format!("with the connection gone mid-build: {ended}"));
    }
    // The bound is 5 s; reconnect attempts and the cleanup's own tries fit inside 30.
    if took > Duration::from_secs(30) {
        return Err(format!("failed only after {took:?}: {ended}"));
    }
    if get(port).await != Some((200, "version: v1".into())) {
        return Err(format!(
            "the live version after the loss: {:?}",
            get(port).await
        ));
    }
    // sshd comes back: the daemon connects again and the next deploy goes live there.
    remote.sshd.restart().map_err(|e| e.to_string())?;
    repo.commit_version("v3", &[]);
    let next = remote.daemon.deploy("built", None).await;
    let done = remote.daemon.wait(next).await;
    if done["state"] != "live" {
        return Err(format!(
            "the deploy after sshd came back: {done}\n{}",
            remote.daemon.log(next).await
        ));
    }
    if get(port).await != Some((200, "version: v3".into())) {
        return Err(format!("after the reconnect: {:?}", get(port).await));
    }
    Ok(())
}
