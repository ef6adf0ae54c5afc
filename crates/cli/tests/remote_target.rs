//! A server as a deploy target, for real: the second host of the tests (its own Docker
//! engine in its own network namespace at 10.250.0.2, a real OpenSSH server beside it)
//! prepared through `RemoteTarget` over one SSH connection — control network, probe,
//! page server and proxy created through its engine's API, the proxy publishing HTTP on
//! the server's port — then a route written through the Docker API into the proxy's
//! routes volume for a busybox httpd on the app's network: Traefik's API, asked over a
//! `direct-tcpip` channel, serves it, and HTTP to the server's port with the route's
//! Host answers from that container, also while the route is rewritten again and again;
//! removed, the route is gone. Every object of the run's own namespace is removed after.

use capstan_compose::model::Service;
use capstan_compose::proxy::{render_static_config, ProxySettings, DYNAMIC_DIR};
use capstan_core::AppName;
use capstan_deploy::target::{HostSetup, ProxyPorts, RemoteTarget, Router, Runtime, Target};
use capstan_engine::proxy::{ProxySpec, RoutesSource};
use capstan_remote::{connect, Contact, SshOptions};
use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOST_NAME: &str = "web.rt.test";
/// How often the route is rewritten under traffic.
const REWRITES: usize = 100;

/// The route file for the app `rtweb`, sending to `url`.
fn route(url: &str) -> String {
    format!(
        "http:\n  routers:\n    rtweb_http:\n      rule: \"Host(`{HOST_NAME}`)\"\n      \
         entryPoints: [\"web\"]\n      service: rtweb\n  services:\n    rtweb:\n      \
         loadBalancer:\n        servers:\n          - url: \"{url}\"\n"
    )
}

/// GETs `/` from the server's proxy with the route's Host: the status and the body.
async fn get(http: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let response = http
        .get(format!("http://10.250.0.2:{port}/"))
        .header(reqwest::header::HOST, HOST_NAME)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// Waits until `check` holds, for up to 15s.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A busybox httpd on the app network answering `token` on port 8080, started through
/// the target; its name.
async fn start_app(target: &RemoteTarget, instance: &str, network: &str, token: &str) -> String {
    let name = format!("{instance}-rtweb");
    let script =
        format!("mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www");
    let service: Service = serde_json::from_value(serde_json::json!({
        "image": "busybox:stable",
        "container_name": name,
        "restart": "no",
        "stop_grace_period": "1s",
        "labels": {capstan_compose::labels::INSTANCE: instance},
        "command": ["sh", "-c", script],
        "networks": [network],
    }))
    .expect("a service");
    target
        .run_service(&service)
        .await
        .expect("the app starts on the server");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_prepares_the_server_and_routes_through_its_proxy() {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .expect("the second host comes up (scripts/second-host.sh)");
    let (private, public) = capstan_remote::generate_key_pair().unwrap();
    let config = SshdConfig::in_netns(&public, host.netns_path(), host.ip().into());
    let sshd = Sshd::start_with(config).expect("sshd starts in the second host's namespace");
    let mut options = SshOptions::new(&sshd.host(), sshd.port(), sshd.user(), &private);
    options.host_key_fingerprint = Some(sshd.host_key_fingerprint().to_string());
    options.docker_socket = host.docker_socket().to_string_lossy().into_owned();
    let Contact::Connected(connection) = connect(options).await.expect("SSH connects") else {
        panic!("a pinned key is a connection");
    };
    let instance = format!("rt{:08x}", rand::random::<u32>());
    let engine = connection
        .engine(&instance)
        .await
        .expect("the engine over SSH");
    let http_port = 20_000 + rand::random::<u16>() % 20_000;
    let ports = ProxyPorts {
        http: http_port,
        https: http_port + 1,
    };
    let target = RemoteTarget::new(connection.clone(), engine.clone(), ports);

    let outcome = exercise(&target, &instance, http_port).await;

    let objects = engine.instance_objects().await.expect("the run's objects");
    let mut failures = Vec::new();
    engine
        .purge(&objects, |removal| {
            if let Err(err) = removal.result {
                failures.push(format!("{}: {err}", removal.name));
            }
        })
        .await;
    let left = engine.instance_objects().await.expect("the run's objects");
    if let Err(message) = outcome {
        panic!("{message}");
    }
    assert!(failures.is_empty(), "cleanup: {failures:?}");
    assert!(left.is_empty(), "left on the second engine: {}", left.len());
}

async fn exercise(target: &RemoteTarget, instance: &str, http_port: u16) -> Result<(), String> {
    let probe = std::fs::read(capstan_testkit::assets_dir().join("capstan-probe"))
        .map_err(|e| format!("the probe binary: {e}"))?;
    let static_config = render_static_config(&ProxySettings {
        instance,
        acme_email: None,
        acme_ca_server: None,
        throttle: "200ms",
    })
    .map_err(|e| e.to_string())?;
    let setup = HostSetup {
        probe,
        proxy: ProxySpec {
            image: "traefik:v3.7".to_string(),
            static_config,
            http_port: 1,
            https_port: 2,
            // The daemon's own directory: the server's proxy uses its volume instead.
            routes: RoutesSource::HostDir("/nonexistent/on/the/server".into()),
            routes_mount: DYNAMIC_DIR.to_string(),
            acme_ca_certificates: None,
        },
    };
    let started = Instant::now();
    target
        .prepare(&setup)
        .await
        .map_err(|e| format!("prepare: {e}"))?;
    eprintln!(
        "prepared the server in {:?}; proxy API {}",
        started.elapsed(),
        target.proxy_address()
    );
    let status = target.proxy_status().await.map_err(|e| e.to_string())?;
    let status = status.ok_or("no proxy container after prepare")?;
    if !status.running || status.host_port(80) != Some(http_port) {
        return Err(format!("the proxy runs publishing {http_port}: {status:?}"));
    }
    // Prepared again: everything kept (the same proxy answers at the same address).
    let address = target.proxy_address();
    target
        .prepare(&setup)
        .await
        .map_err(|e| format!("prepare again: {e}"))?;
    if target.proxy_address() != address {
        return Err(format!(
            "the proxy was recreated: {address} -> {}",
            target.proxy_address()
        ));
    }

    let app = AppName::parse("rtweb").map_err(|e| e.to_string())?;
    let network = target
        .ensure_app_network(&app)
        .await
        .map_err(|e| e.to_string())?;
    let token = format!("hello-from-{instance}");
    let container = start_app(target, instance, &network, &token).await;
    let url = format!("http://{container}:8080");
    target
        .write_route("rtweb", &route(&url))
        .await
        .map_err(|e| format!("write_route: {e}"))?;
    let served =
        eventually(|| async { target.served_urls("rtweb@file").await == Some(vec![url.clone()]) })
            .await;
    if !served || !target.router_enabled("rtweb_http@file").await {
        let log = target.proxy_log(30).await.unwrap_or_default();
        return Err(format!("Traefik never served the route: {log:#?}"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let answered = eventually(|| async {
        get(&http, http_port)
            .await
            .is_some_and(|(s, body)| s == 200 && body.trim() == token)
    })
    .await;
    if !answered {
        return Err(format!(
            "no answer from the app: {:?}",
            get(&http, http_port).await
        ));
    }

    rewrites_never_drop_the_route(target, &http, http_port, &url, &token).await?;

    target
        .remove_route("rtweb")
        .await
        .map_err(|e| format!("remove_route: {e}"))?;
    let gone = eventually(|| async {
        target.served_urls("rtweb@file").await.is_none()
            && !target.router_enabled("rtweb_http@file").await
    })
    .await;
    if !gone {
        return Err("the removed route is still served".to_string());
    }
    match get(&http, http_port).await {
        Some((404, _)) => {}
        other => return Err(format!("after removal: {other:?}")),
    }
    // What Traefik makes of an emptied file: nothing, and no error; likewise of a truly
    // empty file and of `{}` (measured here, for the record).
    for (name, text) in [("rtempty", ""), ("rtbraces", "{}\n")] {
        target
            .write_route(name, text)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = target.proxy_log(300).await.map_err(|e| e.to_string())?;
    let complaints: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("rtweb") || l.contains("rtempty") || l.contains("rtbraces"))
        .filter(|l| l.contains("ERR") || l.contains("level=error") || l.contains("WRN"))
        .collect();
    eprintln!("proxy log about the emptied, empty and {{}} files: {complaints:#?}");
    if complaints.iter().any(|l| l.contains("rtweb")) {
        return Err(format!(
            "the emptied route file is an error: {complaints:#?}"
        ));
    }
    Ok(())
}

/// Rewrites the route [`REWRITES`] times (alternating two equivalent texts) while requests run
/// against the proxy: every request is answered by the app (a half-read file would drop
/// the router and answer 404).
async fn rewrites_never_drop_the_route(
    target: &RemoteTarget,
    http: &reqwest::Client,
    http_port: u16,
    url: &str,
    token: &str,
) -> Result<(), String> {
    let stop = Arc::new(AtomicUsize::new(0));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (http, stop, ok, bad, token) = (
            http.clone(),
            stop.clone(),
            ok.clone(),
            bad.clone(),
            token.to_string(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while stop.load(Ordering::Relaxed) == 0 {
                match get(&http, http_port).await {
                    Some((200, body)) if body.trim() == token => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        seen.push(other);
                        bad.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            seen
        })
    };
    let started = Instant::now();
    for i in 0..REWRITES {
        let text = format!("{}# rewrite {i}\n", route(url));
        target
            .write_route("rtweb", &text)
            .await
            .map_err(|e| format!("rewrite {i}: {e}"))?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(1, Ordering::Relaxed);
    let seen = traffic.await.map_err(|e| e.to_string())?;
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    eprintln!(
        "{REWRITES} rewrites in {:?}: {ok} requests answered by the app, {bad} not",
        started.elapsed()
    );
    if bad > 0 || ok == 0 {
        return Err(format!(
            "requests failed during rewrites: {bad} of {}: {seen:?}",
            ok + bad
        ));
    }
    Ok(())
}
