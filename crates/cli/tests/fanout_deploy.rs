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

use support::servers;

use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const DOMAIN: &str = "fanout.deploy.test";

/// A server of the run, and the address its proxy answers on.
struct Server {
    name: &'static str,
    proxy_host: String,
    added: servers::TestServer,
}

impl Server {
    async fn add(
        daemon: &capstan_testkit::Daemon,
        name: &'static str,
        sshd: capstan_testkit::Sshd,
        proxy_host: &str,
        socket: &str,
    ) -> Server {
        let added = servers::add_server(daemon, name, "ssh", sshd, socket, "fo").await;
        Server {
            name,
            proxy_host: proxy_host.to_string(),
            added,
        }
    }

    /// GET / through this server's proxy: the body when it answers 200.
    async fn answer(&self, http: &reqwest::Client) -> Option<String> {
        let response = http
            .get(format!(
                "http://{}:{}/",
                self.proxy_host, self.added.proxy_port
            ))
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
        let filter = format!("label=capstan.instance={}", self.added.namespace);
        let out = Command::new("docker")
            .args(["-H", &format!("unix://{}", self.added.docker_socket)])
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_release_on_three_servers_one_down_then_a_retry_deploys_only_there() {
    let host = servers::second_host(false).await;
    let mut daemon = support::start_daemon().await;
    let h2_socket = host.docker_socket().to_string_lossy().into_owned();
    let main = servers::MAIN_SOCKET;
    let mut servers = [
        Server::add(
            &daemon,
            "fb",
            servers::sshd_on_loopback(),
            "127.0.0.1",
            main,
        )
        .await,
        Server::add(
            &daemon,
            "fa",
            servers::sshd_on_second_host(&host),
            &host.ip().to_string(),
            &h2_socket,
        )
        .await,
        Server::add(
            &daemon,
            "fc",
            servers::sshd_on_loopback(),
            "127.0.0.1",
            main,
        )
        .await,
    ];
    let tag = format!("capstan-fanout-{:08x}:v1", rand::random::<u32>());
    servers::build_web_image(&tag, "fanned-out");
    let outcome = exercise(&daemon, &mut servers, &tag).await;
    let _ = daemon.call(Method::DELETE, "/apps/wide", None).await;
    // The daemon stops first: its watch would bring a server's proxy back meanwhile.
    let daemon_log = daemon.daemon_log();
    daemon.kill();
    let mut left = Vec::new();
    for server in &servers {
        left.extend(server.added.purge().await);
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
    daemon
        .create_app(json!({
            "name": "wide", "source": {"image": tag}, "port": 8080, "domains": [DOMAIN],
            "servers": ["fb", "fa", "fc"], "health": {"interval_secs": 0.25}, "drain_secs": 1,
        }))
        .await;
    servers[2].added.sshd.kill();
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

    servers[2].added.sshd.restart().map_err(|e| e.to_string())?;
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
