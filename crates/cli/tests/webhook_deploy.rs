//! A forge's push webhook against the real daemon: a local git repository (over
//! `file://`), an app created from it, a commit, a GitHub-shaped `push` delivery signed with
//! the app's secret and POSTed to the open webhook URL → 202 at once with the queued
//! deployment, which goes live serving exactly the pushed commit although the branch moved
//! on before the delivery was sent; the same delivery again queues nothing.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Instant;
use support::SampleRepo;

/// HMAC-SHA256 written out (RFC 2104), independent of the daemon's implementation.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// A GitHub `push` payload as GitHub shapes it, for the repository at `url`.
fn push_payload(url: &str, before: &str, after: &str, message: &str) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "compare": "",
        "commits": [{"id": after, "message": message, "added": [], "modified": ["Dockerfile"], "removed": []}],
        "head_commit": {"id": after, "message": message, "added": [], "modified": ["Dockerfile"], "removed": []},
        "repository": {"full_name": "local/sample", "clone_url": url, "html_url": url},
        "pusher": {"name": "t"}
    })
}

async fn deliver(
    daemon: &support::Daemon,
    app: &str,
    secret: &str,
    id: &str,
    body: &[u8],
) -> (u16, Value, std::time::Duration) {
    let signature = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), body));
    let start = Instant::now();
    let response = reqwest::Client::new()
        .post(daemon.url(&format!("/webhooks/github/{app}")))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let took = start.elapsed();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        took,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_deploys_exactly_the_pushed_commit() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    let v1 = repo.commit_version("v1", &[]);
    let url = format!("file://{}", repo.path().display());
    let mut app = support::sample_app("hooked", &repo, "main", "hooked.test");
    app["source"]["git"]["url"] = json!(url);
    daemon.create_app(app).await;
    let (status, hooks) = daemon
        .call(Method::GET, "/apps/hooked/webhooks", None)
        .await;
    assert_eq!(status, 200, "{hooks}");
    let secret = hooks["secret"].as_str().unwrap().to_string();

    let v2 = repo.commit_version("v2", &[]);
    let body = push_payload(&url, &v1, &v2, "v2").to_string();
    let (status, wrong, took) = deliver(
        &daemon,
        "hooked",
        "not-the-secret",
        "e2e-0",
        body.as_bytes(),
    )
    .await;
    println!("wrongly signed: {status} in {took:?}");
    assert_eq!(status, 401, "{wrong}");

    // The branch moves on before the delivery arrives: it must still deploy v2, the
    // commit the push names, not the branch's head.
    let v3 = repo.commit_version("v3", &[]);
    assert_ne!(v3, v2);
    let (status, answer, took) =
        deliver(&daemon, "hooked", &secret, "e2e-1", body.as_bytes()).await;
    println!("signed push: {status} in {took:?}: {answer}");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["commit"], v2.as_str());
    let id = answer["deployment"].as_i64().expect("a deployment queued");

    let done = daemon.wait(id).await;
    assert_eq!(done["state"], "live", "{done}\n{}", daemon.log(id).await);
    assert_eq!(done["commit"], v2.as_str(), "{done}");
    assert_eq!(
        daemon.via_proxy("hooked.test", "/").await,
        (200, "version: v2\n".to_string())
    );

    let (status, again, took) = deliver(&daemon, "hooked", &secret, "e2e-1", body.as_bytes()).await;
    println!("replayed: {status} in {took:?}");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    let (_, deployments) = daemon
        .call(Method::GET, "/apps/hooked/deployments", None)
        .await;
    assert_eq!(
        deployments.as_array().map(Vec::len),
        Some(1),
        "{deployments}"
    );
}
