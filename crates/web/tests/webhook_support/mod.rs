//! Shared by the webhook tests: the `capstan-forge` fixtures, deliveries signed here the
//! way each forge signs them, apps from a git repository, their secrets and what they
//! queued.

#![allow(dead_code)]

use crate::support::{api, send, Harness};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use capstan_core::{AppName, AppSpec};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const GITHUB_REPO: &str = "https://github.com/Codertocat/Hello-World.git";
pub const GITHUB_HEAD: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
pub const GITHUB_PUSH: &str = "push.with-new-branch.payload.json";

pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../forge/tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture with `edit` applied to its JSON.
pub fn edited(provider: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture(provider, name)).unwrap();
    edit(&mut payload);
    serde_json::to_vec(&payload).unwrap()
}

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A delivery as `provider` sends it: event header, delivery id (none when `id` is
/// empty), signature (none without a secret).
pub fn delivery(
    provider: &str,
    app: &str,
    event: &str,
    id: &str,
    secret: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let (event_header, id_header, signature_header, prefix) = match provider {
        "github" => (
            "X-GitHub-Event",
            "X-GitHub-Delivery",
            "X-Hub-Signature-256",
            "sha256=",
        ),
        "gitlab" => (
            "X-Gitlab-Event",
            "X-Gitlab-Event-UUID",
            "X-Gitlab-Token",
            "",
        ),
        "gitea" => ("X-Gitea-Event", "X-Gitea-Delivery", "X-Gitea-Signature", ""),
        "forgejo" => (
            "X-Forgejo-Event",
            "X-Forgejo-Delivery",
            "X-Forgejo-Signature",
            "",
        ),
        "bitbucket" => (
            "X-Event-Key",
            "X-Request-UUID",
            "X-Hub-Signature",
            "sha256=",
        ),
        _ => ("X-Event", "X-Delivery", "X-Signature", ""),
    };
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/webhooks/{provider}/{app}"))
        .header("content-type", "application/json")
        .header(event_header, event);
    if !id.is_empty() {
        request = request.header(id_header, id);
    }
    if let Some(secret) = secret {
        let signature = match provider {
            "gitlab" => secret.to_string(),
            _ => format!("{prefix}{}", hmac_hex(secret, &body)),
        };
        request = request.header(signature_header, signature);
    }
    request.body(Body::from(body)).unwrap()
}

pub async fn create_app(h: &Harness, name: &str, url: &str, reference: &str) -> AppName {
    let app = AppName::parse(name).unwrap();
    let spec: AppSpec =
        serde_json::from_value(json!({"source": {"git": {"url": url, "ref": reference}}})).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    app
}

pub async fn patch(h: &Harness, admin: &str, app: &str, body: Value) {
    let path = format!("/apps/{app}");
    let done = send(h, api(Method::PATCH, &path, Some(admin), Some(body))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}

pub async fn secret_of(h: &Harness, admin: &str, app: &str) -> String {
    let path = format!("/apps/{app}/webhooks");
    let shown = send(h, api(Method::GET, &path, Some(admin), None)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    shown.json()["secret"].as_str().unwrap().to_string()
}

/// The app's deployments: id, ref, actor.
pub async fn queued(h: &Harness, app: &AppName) -> Vec<(i64, Option<String>, Option<String>)> {
    h.store
        .deployments_of(app, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.git_ref, d.actor))
        .collect()
}
