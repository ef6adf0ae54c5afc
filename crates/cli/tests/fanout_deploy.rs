//! One release on three servers over SSH, end to end, with one of them down: a real
//! daemon; server `fb` is a real sshd on loopback in front of the test engine (its own
//! namespace and proxy port), `fa` the second host (its own engine in its own network
//! namespace, reached through an sshd there) and `fc` another loopback sshd that is
//! stopped when the deployment runs. The image is built on the test engine only, so `fa`
//! gets it moved over SSH with just the layer it lacks. The deployment goes live on `fb`
//! and `fa`, records `fc` failed, and a retry once `fc` is back deploys there only: the
//! other two keep the very same containers. Every object of the run's namespaces is
//! removed from both engines afterwards.

mod support;

use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const DOMAIN: &str = "fanout.deploy.test";

/// A server of the run: its sshd, namespace, proxy port and the address its proxy answers.
struct Server {
    name: &'static str,
    sshd: Sshd,
    namespace: String,
    proxy_port: u16,
    proxy_host: String,
    docker_socket: String,
}

impl Server {
    fn new(name: &'static str, sshd: Sshd, proxy_host: &str, docker_socket: &str) -> Server {
        Server {
            name,
            sshd,
            namespace: format!("fo{:08x}", rand::random::<u32>()),
            proxy_port: capstan_testkit::free_port(),
            proxy_host: proxy_host.to_string(),
            docker_socket: docker_socket.to_string(),
        }
    }

    /// Adds the server to the daemon and authorizes its key at the sshd.
    async fn add_to(&self, daemon: &capstan_testkit::Daemon) {
        let body = json!({
            "name": self.name, "kind": "ssh", "host": self.sshd.host(), "port": self.sshd.port(),
            "user": self.sshd.user(), "host_key_fingerprint": self.sshd.host_key_fingerprint(),
            "docker_socket": self.docker_socket, "namespace": self.namespace,
            "proxy_http_port": self.proxy_port, "proxy_https_port": capstan_testkit::free_port(),
        });
        let (status, added) = daemon.call(Method::POST, "/servers", Some(body)).await;
        assert_eq!(status, 201, "add server {}: {added}", self.name);
        self.sshd
            .authorize(added["public_key"].as_str().unwrap())
            .unwrap();
    }

    /// GET / through this server's proxy: the body when it answers 200.
    async fn answer(&self, http: &reqwest::Client) -> Option<String> {
        let response = http
            .get(format!("http://{}:{}/", self.proxy_host, self.proxy_port))
            .header(reqwest::header::HOST, DOMAIN)
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        Some(response.text().await.ok()?.trim().to_string())
    }

    /// The ids of this server's containers of the app.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=capstan.instance={}", self.namespace);
        let out = Command::new("docker")
            .args(["-H", &format!("unix://{}", self.docker_socket)])
            .args(["ps", "--format", "{{.ID}} {{.Names}}", "--filter", &filter])
            .output()
            .expect("docker ps");
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.contains("_d"))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// Removes every object of the server's namespace; what is left.
    async fn clean(&self) -> Vec<String> {
        let host = format!("unix://{}", self.docker_socket);
        let Ok(engine) = capstan_engine::Engine::connect(Some(&host), &self.namespace).await else {
            return vec![format!("{}: cannot reach its engine", self.name)];
        };
        if let Ok(objects) = engine.instance_objects().await {
            engine.purge(&objects, |_| {}).await;
        }
        match engine.instance_objects().await {
            Ok(left) if left.is_empty() => Vec::new(),
            Ok(left) => vec![format!("{}: {} objects", self.name, left.len())],
            Err(err) => vec![format!("{}: {err}", self.name)],
        }
    }
}

/// Builds a one-layer image over `busybox:stable` on the test engine only.
fn build_image(tag: &str, token: &str) {
    let dockerfile = format!(
        "FROM busybox:stable\nRUN mkdir -p /www && echo {token} > /www/index.html\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    );
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "docker build {tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_release_on_three_servers_one_down_then_a_retry_deploys_only_there() {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .expect("the second host comes up (scripts/second-host.sh)");
    let (_, throwaway) = capstan_remote::generate_key_pair().unwrap();
    let in_h2 = SshdConfig::in_netns(&throwaway, host.netns_path(), host.ip().into());
    let main_socket = "/var/run/docker.sock";
    let servers = [
        Server::new(
            "fb",
            Sshd::start(&throwaway).unwrap(),
            "127.0.0.1",
            main_socket,
        ),
        Server::new(
            "fa",
            Sshd::start_with(in_h2).unwrap(),
            &host.ip().to_string(),
            &host.docker_socket().to_string_lossy(),
        ),
        Server::new(
            "fc",
            Sshd::start(&throwaway).unwrap(),
            "127.0.0.1",
            main_socket,
        ),
    ];
    let mut daemon = support::start_daemon().await;
    let tag = format!("capstan-fanout-{:08x}:v1", rand::random::<u32>());
    build_image(&tag, "fanned-out");
    let mut servers = servers;
    let outcome = exercise(&daemon, &mut servers, &tag).await;
    let _ = daemon.call(Method::DELETE, "/apps/wide", None).await;
    // The daemon stops first: its watch would bring a server's proxy back meanwhile.
    let daemon_log = daemon.daemon_log();
    daemon.kill();
    let mut left = Vec::new();
    for server in &servers {
        left.extend(server.clean().await);
    }
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    let _ = host.docker_cli().args(["rmi", "-f", &tag]).output();
    if let Err(message) = outcome {
        panic!("{message}\n--- daemon log ---\n{daemon_log}");
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn exercise(
    daemon: &capstan_testkit::Daemon,
    servers: &mut [Server; 3],
    tag: &str,
) -> Result<(), String> {
    for server in servers.iter() {
        server.add_to(daemon).await;
    }
    daemon
        .create_app(json!({
            "name": "wide", "source": {"image": tag}, "port": 8080, "domains": [DOMAIN],
            "servers": ["fb", "fa", "fc"], "health": {"interval_secs": 0.25}, "drain_secs": 1,
        }))
        .await;
    servers[2].sshd.kill();
    let deployed = daemon.deploy_expect("wide", None, "live").await;
    let id = deployed["id"].as_i64().unwrap();
    let states = server_states(&daemon.deployment(id).await);
    if states != [("fb", "live"), ("fa", "live"), ("fc", "failed")].map(own) {
        return Err(format!("per server after the first run: {states:?}"));
    }
    let note = deployed["error"].as_str().unwrap_or_default();
    if !note.contains("fc") {
        return Err(format!("the deployment notes where it failed: {deployed}"));
    }
    let log = daemon.log(id).await;
    if !log.contains("[fa] image moved") || !log.contains("1 layer(s) sent") {
        return Err(format!(
            "the image moved to fa with its one new layer:\n{log}"
        ));
    }
    let http = reqwest::Client::new();
    for server in &servers[..2] {
        let answer = server.answer(&http).await;
        if answer.as_deref() != Some("fanned-out") {
            return Err(format!("{} answers {answer:?}", server.name));
        }
    }
    if servers[2].answer(&http).await.is_some() {
        return Err("fc serves without having been deployed to".into());
    }
    let before: Vec<Vec<String>> = servers[..2].iter().map(Server::containers).collect();

    servers[2].sshd.restart().map_err(|e| e.to_string())?;
    // The CLI's retry, followed to its end: one line per server.
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["retry", &id.to_string(), "--wait"])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .map_err(|e| e.to_string())?;
    let printed = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !printed.contains("  fc: live") || !printed.contains("  fb: live") {
        return Err(format!(
            "capstan retry: {}\n{printed}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = format!("/deployments/{id}/retry");
    let retried = daemon.wait(id).await;
    let states = server_states(&daemon.deployment(id).await);
    if retried["state"] != "live"
        || states != [("fb", "live"), ("fa", "live"), ("fc", "live")].map(own)
    {
        return Err(format!("after the retry: {retried} {states:?}"));
    }
    let answer = servers[2].answer(&http).await;
    if answer.as_deref() != Some("fanned-out") {
        return Err(format!("fc answers {answer:?} after the retry"));
    }
    let after: Vec<Vec<String>> = servers[..2].iter().map(Server::containers).collect();
    if before != after || before.iter().any(Vec::is_empty) {
        return Err(format!(
            "the retry touched fb or fa: {before:?} -> {after:?}"
        ));
    }
    // Nothing failed any more: a second retry is refused with the reason.
    let (status, body) = daemon.call(Method::POST, &path, None).await;
    if status != 409 || !body.to_string().contains("failed on no server") {
        return Err(format!("a retry with nothing failed: {status} {body}"));
    }
    delete_when_retired(daemon).await?;
    for server in servers.iter() {
        if !server.containers().is_empty() {
            return Err(format!("{} keeps containers after the delete", server.name));
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

fn own((server, state): (&str, &str)) -> (String, String) {
    (server.to_string(), state.to_string())
}

/// Each server of a shown deployment with its state, in the app's order.
fn server_states(deployment: &Value) -> Vec<(String, String)> {
    deployment["servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .map(|s| {
                    own((
                        s["server"].as_str().unwrap_or(""),
                        s["state"].as_str().unwrap_or(""),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the app once the retirement of the version it replaced is done (a delete
/// waits for that with 409).
async fn delete_when_retired(daemon: &capstan_testkit::Daemon) -> Result<(), String> {
    for _ in 0..100 {
        let (status, body) = daemon.call(Method::DELETE, "/apps/wide", None).await;
        match status {
            204 => return Ok(()),
            409 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => return Err(format!("delete: {status} {body}")),
        }
    }
    Err("the app could not be deleted within 20 s".into())
}
