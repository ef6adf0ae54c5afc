//! The running app's own output through the API and `capstan logs APP`: every replica or
//! one, each line prefixed with its container, secret values masked, followed live as
//! server-sent events; bad requests are 4xx with a reason. Then the same app followed
//! from its page in the panel, with its CPU and memory (`runtime_logs/panel.rs`).

#[path = "runtime_logs/panel.rs"]
mod panel;
mod support;

use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use support::SampleRepo;

const SECRET_VERSION: &str = "v-hush-4411";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_own_output_is_read_and_followed_with_secrets_masked() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = support::sample_app("chatty", &repo, "main", "chatty.test");
    app["replicas"] = json!(2);
    app["limits"] = json!({ "memory_mb": 64 });
    daemon.create_app(app).await;
    // Bad requests before there is anything to read.
    let (status, body) = daemon.call(Method::GET, "/apps/chatty/logs", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("deploy it first"));
    let (status, _) = daemon.call(Method::GET, "/apps/nope/logs", None).await;
    assert_eq!(status, 404);
    // The app prints its VERSION at start: make it a secret.
    let (status, _) = daemon
        .call(
            Method::PUT,
            "/apps/chatty/secrets/VERSION",
            Some(json!({ "value": SECRET_VERSION })),
        )
        .await;
    assert_eq!(status, 200);
    daemon.deploy_expect("chatty", None, "live").await;

    let text = daemon.text("/apps/chatty/logs?tail=5").await;
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("capstan-sample **** listening on 8080"))
        .collect();
    assert_eq!(starts.len(), 2, "one line per replica: {text}");
    assert!(starts.iter().all(|l| l.starts_with("[chatty_")), "{text}");
    assert!(!text.contains(SECRET_VERSION), "{text}");
    // One container: only its lines.
    let mut containers = daemon.containers("chatty");
    containers.sort();
    let one = containers[1]
        .strip_prefix(&format!("{}_", daemon.instance))
        .unwrap();
    let text = daemon
        .text(&format!("/apps/chatty/logs?tail=5&container={one}"))
        .await;
    assert!(text.contains("listening on 8080"), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with(&format!("[{one}] "))),
        "{text}"
    );
    let (status, body) = daemon
        .call(Method::GET, "/apps/chatty/logs?container=chatty_d99", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(one),
        "names the running ones: {body}"
    );
    for (query, code) in [("tail=lots", 400), ("tail=20000", 422), ("colour=red", 400)] {
        let (status, body) = daemon
            .call(Method::GET, &format!("/apps/chatty/logs?{query}"), None)
            .await;
        assert_eq!(status, code, "{query}: {body}");
        assert!(body["error"].as_str().is_some(), "{query}: {body}");
    }

    // Following: a line the app writes after the request arrives, secret masked.
    let response = reqwest::Client::new()
        .get(daemon.url("/apps/chatty/logs?follow=true&tail=0"))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let container = daemon.containers("chatty").pop().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    support::docker(&[
        "exec",
        &container,
        "/app",
        "write",
        "/proc/1/fd/1",
        &format!("late line with {SECRET_VERSION}\n"),
    ]);
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while !seen.contains("late line") {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        match next {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            _ => panic!("no followed line in 15s: {seen}"),
        }
    }
    assert!(seen.contains("event: log"), "{seen}");
    assert!(seen.contains("late line with ****"), "{seen}");

    // The CLI: an app name reads the app's output, a number a deployment's log.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["logs", "chatty", "--tail", "3", "--url", &daemon.api])
        .args(["--container", &container])
        .args(["--token", &daemon.token])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("late line with ****"), "{stdout}");
    assert!(stdout.contains("listening on 8080"), "{stdout}");
    let shown = container
        .strip_prefix(&format!("{}_", daemon.instance))
        .unwrap();
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with(&format!("[{shown}] "))),
        "only the chosen container: {stdout}"
    );

    panel::app_page_live(&daemon).await;
}
