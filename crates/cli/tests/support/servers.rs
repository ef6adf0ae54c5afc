//! Servers for the end-to-end tests: a real sshd (inside the second host's network
//! namespace in front of its own engine, or on loopback in front of the test engine) added
//! to the daemon under test with its own namespace and proxy ports and its key authorized,
//! every object of a run's namespace removed from an engine afterwards, and a small web
//! image built on the test engine only (for a server to be sent).

use capstan_testkit::{Daemon, SecondHost, Sshd, SshdConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The test engine's socket.
pub const MAIN_SOCKET: &str = "/var/run/docker.sock";

/// A server added to the daemon under test.
pub struct TestServer {
    pub sshd: Sshd,
    /// The prefix of the Docker objects Capstan owns there.
    pub namespace: String,
    pub proxy_port: u16,
    pub docker_socket: String,
    /// The server as the API answered when it was added.
    pub added: Value,
}

/// A key for an sshd to start with, before the daemon gives the server its own.
fn throwaway_key() -> String {
    capstan_remote::generate_key_pair().unwrap().1
}

/// sshd inside the second host's network namespace, in front of its engine.
pub fn sshd_on_second_host(host: &SecondHost) -> Sshd {
    let config = SshdConfig::in_netns(&throwaway_key(), host.netns_path(), host.ip().into());
    Sshd::start_with(config).expect("sshd starts in the second host's namespace")
}

/// sshd on loopback, in front of the test engine.
pub fn sshd_on_loopback() -> Sshd {
    Sshd::start(&throwaway_key()).expect("sshd starts on loopback")
}

/// The second host, up (a swarm manager too when `swarm`).
pub async fn second_host(swarm: bool) -> SecondHost {
    tokio::task::spawn_blocking(move || {
        let host = SecondHost::ensure()?;
        if swarm {
            host.swarm_up()?;
        }
        Ok::<_, capstan_testkit::SecondHostError>(host)
    })
    .await
    .unwrap()
    .expect("the second host comes up (scripts/second-host.sh)")
}

/// Adds server `name` of `kind` reached through `sshd`, in front of the engine at
/// `docker_socket`, in a namespace of its own (`prefix` and a random part) with free proxy
/// ports, and authorizes the key the daemon made for it.
pub async fn add_server(
    daemon: &Daemon,
    name: &str,
    kind: &str,
    sshd: Sshd,
    docker_socket: &str,
    prefix: &str,
) -> TestServer {
    let namespace = format!("{prefix}{:08x}", rand::random::<u32>());
    let proxy_port = capstan_testkit::free_port();
    let body = json!({
        "name": name, "kind": kind, "host": sshd.host(), "port": sshd.port(),
        "user": sshd.user(), "host_key_fingerprint": sshd.host_key_fingerprint(),
        "docker_socket": docker_socket, "namespace": namespace,
        "proxy_http_port": proxy_port, "proxy_https_port": capstan_testkit::free_port(),
    });
    let (status, added) = daemon.call(Method::POST, "/servers", Some(body)).await;
    assert_eq!(status, 201, "add server {name}: {added}");
    sshd.authorize(added["public_key"].as_str().unwrap())
        .unwrap();
    TestServer {
        sshd,
        namespace,
        proxy_port,
        docker_socket: docker_socket.to_string(),
        added,
    }
}

/// A daemon with the second host added as server `h2` (its own namespace and proxy port),
/// reached through a real sshd in the second host's namespace.
pub struct SecondHostRun {
    pub host: SecondHost,
    pub sshd: Sshd,
    pub daemon: Daemon,
    pub namespace: String,
    pub proxy_port: u16,
}

impl SecondHostRun {
    /// The second host (a swarm manager for `kind` `swarm`) added to a new daemon started
    /// with `daemon_args`, in a namespace starting with `prefix`.
    pub async fn start(kind: &str, prefix: &str, daemon_args: &[&str]) -> SecondHostRun {
        let host = second_host(kind == "swarm").await;
        let sshd = sshd_on_second_host(&host);
        let daemon = super::start_daemon_with(daemon_args).await;
        let socket = host.docker_socket().to_string_lossy().into_owned();
        let server = add_server(&daemon, "h2", kind, sshd, &socket, prefix).await;
        SecondHostRun {
            host,
            sshd: server.sshd,
            daemon,
            namespace: server.namespace,
            proxy_port: server.proxy_port,
        }
    }

    /// Stops the daemon (its proxy watcher would bring the server's proxy back), removes
    /// the run's objects from the second engine, and fails on `outcome`'s error or on
    /// anything left there.
    pub async fn finish(mut self, outcome: Result<(), String>) {
        self.daemon.kill();
        let socket = self.host.docker_socket().to_string_lossy().into_owned();
        let left = purge_namespace(&socket, &self.namespace).await;
        if let Err(message) = outcome {
            panic!(
                "{message}\n--- daemon log ---\n{}",
                self.daemon.daemon_log()
            );
        }
        assert!(left.is_empty(), "left on the second engine: {left:?}");
    }
}

impl TestServer {
    /// Removes every object of its namespace from its engine; what is left.
    pub async fn purge(&self) -> Vec<String> {
        purge_namespace(&self.docker_socket, &self.namespace).await
    }
}

/// Removes a namespace's swarm services (waiting for their tasks to go), then every other
/// object of it, from the engine at `docker_socket`; what was left (services count: an
/// app's delete removes its own).
pub async fn purge_namespace(docker_socket: &str, namespace: &str) -> Vec<String> {
    let host = format!("unix://{docker_socket}");
    let Ok(engine) = capstan_engine::Engine::connect(Some(&host), namespace).await else {
        return vec![format!("cannot reach the engine at {docker_socket}")];
    };
    let services = engine.owned_services(None).await.unwrap_or_default();
    for service in &services {
        let _ = engine.remove_service(service).await;
    }
    for _ in 0..100 {
        if services.is_empty() || engine.service_containers(&services).await.unwrap_or(0) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Ok(objects) = engine.instance_objects().await {
        engine.purge(&objects, |_| {}).await;
    }
    let mut left = Vec::new();
    if !services.is_empty() {
        left.push(format!("service(s) the app's delete left: {services:?}"));
    }
    match engine.instance_objects().await {
        Ok(objects) if objects.is_empty() => {}
        Ok(objects) => left.push(format!("{} objects of {namespace}", objects.len())),
        Err(err) => left.push(err.to_string()),
    }
    left
}

/// Builds a one-layer image over `busybox:stable` on the test engine only: httpd serving
/// `token` on 8080.
pub fn build_web_image(tag: &str, token: &str) {
    use std::io::Write;
    let dockerfile = format!(
        "FROM busybox:stable\nRUN mkdir -p /www && echo {token} > /www/index.html\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    );
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "docker build {tag}");
}
