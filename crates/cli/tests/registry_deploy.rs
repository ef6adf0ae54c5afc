//! A release moved to a second server through a configured registry, end to end: a real
//! daemon; a real registry (Debian's `docker-registry` over TLS with an htpasswd account,
//! `capstan_testkit::registry`) on the second host's link address, which both engines
//! reach; the app on `local` and on `rh2`, the second host (its own engine in its own
//! network namespace, reached through an sshd there). The image is built on the test
//! engine only. With the registry set through the CLI (password on standard input), the
//! deployment goes live on both servers and its log says the image went through the
//! registry (not as a layer archive), which now holds the repository. The password never
//! appears: not in the deployment's log (a pre-deploy command that prints it shows
//! `****`), not in the daemon's log, not in any API answer or CLI output (but the app's
//! own settings, which hold it on purpose). Every object of
//! the run is removed from both engines afterwards.

mod support;

use support::servers;

use capstan_testkit::registry::{Registry, REGISTRY_BIN};
use capstan_testkit::SecondHost;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const DOMAIN: &str = "registry.deploy.test";
const SERVER: &str = "rh2";

/// `capstan ARGS` against the daemon, `stdin` written to it: (success, stdout + stderr).
fn cli(daemon: &capstan_testkit::Daemon, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("capstan runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The second host as server `rh2`: what the run made there, to remove at the end.
struct Remote {
    host: SecondHost,
    server: servers::TestServer,
}

impl Remote {
    /// GET / through the second host's proxy: the body when it answers 200.
    async fn answer(&self) -> Option<String> {
        let response = reqwest::Client::new()
            .get(format!(
                "http://{}:{}/",
                self.host.ip(),
                self.server.proxy_port
            ))
            .header(reqwest::header::HOST, DOMAIN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        Some(response.text().await.ok()?.trim().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_reaches_the_second_server_through_the_registry_and_its_password_never_shows() {
    if !Registry::available() {
        eprintln!(
            "\n!!!!! SKIPPED: {REGISTRY_BIN} is missing (Debian's docker-registry; scripts/test.sh installs it) !!!!!\n"
        );
        return;
    }
    let host = servers::second_host(false).await;
    let password = format!("regpw-{:016x}", rand::random::<u64>());
    let registry = Registry::start(host.host_ip(), "capstan", &password).unwrap();
    let mut daemon = support::start_daemon().await;
    let socket = host.docker_socket().to_string_lossy().into_owned();
    let sshd = servers::sshd_on_second_host(&host);
    let server = servers::add_server(&daemon, SERVER, "ssh", sshd, &socket, "rg").await;
    let remote = Remote { host, server };
    let tag = format!("capstan-registry-{:08x}:v1", rand::random::<u32>());
    servers::build_web_image(&tag, "through-the-registry");
    let outcome = exercise(&daemon, &remote, &registry, &tag, &password).await;
    let _ = delete_when_retired(&daemon).await;
    let daemon_log = daemon.daemon_log();
    // The daemon stops first: its watch would bring the server's proxy back meanwhile.
    daemon.kill();
    let left = remote.server.purge().await;
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    let _ = remote.host.docker_cli().args(["rmi", "-f", &tag]).output();
    if let Err(message) = outcome {
        panic!(
            "{message}\n--- daemon log ---\n{daemon_log}\n--- registry log ---\n{}",
            registry.log().replace(&password, "<PASSWORD>")
        );
    }
    assert!(
        !daemon_log.contains(&password),
        "the daemon logged the registry's password"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn exercise(
    daemon: &capstan_testkit::Daemon,
    remote: &Remote,
    registry: &Registry,
    tag: &str,
    password: &str,
) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    let url = registry.url();
    let (ok, out) = cli(
        daemon,
        &["registry", "set", &url, "--username", "capstan"],
        &format!("{password}\n"),
    );
    if !ok || !out.contains("registry") {
        return Err(format!("capstan registry set: {out}"));
    }
    seen.push(out);
    let (ok, out) = cli(daemon, &["registry", "show"], "");
    if !ok || !out.contains(&url) || !out.contains("set (never shown)") {
        return Err(format!("capstan registry show: {out}"));
    }
    seen.push(out);
    let (status, shown) = daemon.call(Method::GET, "/registry", None).await;
    if status != 200 || shown["password_set"] != json!(true) {
        return Err(format!("GET /registry: {status} {shown}"));
    }
    seen.push(shown.to_string());

    // The app's own settings hold the password on purpose (its pre-deploy command prints
    // it), so its answers are the one place it may show; every other answer is checked.
    daemon
        .create_app(json!({
            "name": "viareg", "source": {"image": tag}, "port": 8080, "domains": [DOMAIN],
            "servers": ["local", SERVER], "health": {"interval_secs": 0.25}, "drain_secs": 1,
            // Prints the password into the deployment's log, where it must be masked.
            "pre_deploy": {"command": ["echo", format!("hook says {password}")]},
        }))
        .await;
    let started = std::time::Instant::now();
    let deployed = daemon.deploy_expect("viareg", None, "live").await;
    let elapsed = started.elapsed();
    let id = deployed["id"].as_i64().unwrap();
    let shown = daemon.deployment(id).await;
    seen.push(shown.to_string());
    let states: Vec<(String, String)> = shown["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (text(&s["server"]), text(&s["state"])))
        .collect();
    if states != [own("local", "live"), own(SERVER, "live")] {
        return Err(format!("per server: {states:?}"));
    }
    let log = daemon.log(id).await;
    eprintln!("deployment {id} live on both servers in {elapsed:?}:\n{log}");
    let through = format!("[{SERVER}] image moved through registry {url}");
    if !log.contains(&through) || log.contains("layers it lacks") {
        return Err(format!("the image went through the registry:\n{log}"));
    }
    if log.contains(password) || !log.contains("hook says ****") {
        return Err(format!("the password is masked in the log:\n{log}"));
    }
    seen.push(log);
    let pushed = registry.repositories();
    let repository = tag.split(':').next().unwrap_or_default();
    if !pushed.iter().any(|r| r == repository) {
        return Err(format!("the registry holds {pushed:?}, not {repository}"));
    }
    let (status, body) = daemon.via_proxy(DOMAIN, "/").await;
    if status != 200 || body.trim() != "through-the-registry" {
        return Err(format!("local answers {status} {body}"));
    }
    let answer = remote.answer().await;
    if answer.as_deref() != Some("through-the-registry") {
        return Err(format!("{SERVER} answers {answer:?}"));
    }
    for path in ["/servers", "/registry", "/server"] {
        let (_, body) = daemon.call(Method::GET, path, None).await;
        seen.push(body.to_string());
    }
    // The whole log, once the old version's retirement has written its last lines.
    seen.push(daemon.final_log(id).await);
    if let Some(leak) = seen.iter().find(|text| text.contains(password)) {
        return Err(format!("the password in an answer: {leak}"));
    }
    let (ok, out) = cli(daemon, &["registry", "remove"], "");
    let (status, _) = daemon.call(Method::GET, "/registry", None).await;
    if !ok || status != 404 {
        return Err(format!(
            "capstan registry remove: {out}; then GET: {status}"
        ));
    }
    Ok(())
}

fn own(server: &str, state: &str) -> (String, String) {
    (server.to_string(), state.to_string())
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Deletes the app once the retirement of the version it replaced is done (a delete
/// waits for that with 409).
async fn delete_when_retired(daemon: &capstan_testkit::Daemon) -> Result<(), String> {
    for _ in 0..100 {
        let (status, body) = daemon.call(Method::DELETE, "/apps/viareg", None).await;
        match status {
            204 | 404 => return Ok(()),
            409 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => return Err(format!("delete: {status} {body}")),
        }
    }
    Err("the app could not be deleted within 20 s".into())
}
