//! An app's webhook settings: the secret needs the deploy scope, is created on first look,
//! and a rotation retires the old one; the app page shows the URLs and creates and rotates
//! the secret.

mod support;
mod webhook_support;

use axum::http::{Method, StatusCode};
use capstan_core::AppName;
use support::{api, harness, send, token};
use webhook_support::*;

#[tokio::test]
async fn rotating_the_secret_retires_the_old_one_and_needs_the_deploy_scope() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let reader = token(&h, "r", "read").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let body = fixture("github", GITHUB_PUSH);

    for method in [Method::GET, Method::POST] {
        let refused = send(
            &h,
            api(method.clone(), "/apps/hello/webhooks", Some(&reader), None),
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            refused.body
        );
        assert!(refused.body.contains("deploy scope"), "{}", refused.body);
    }

    let old = secret_of(&h, &admin, "hello").await;
    let shown = send(
        &h,
        api(Method::GET, "/apps/hello/webhooks", Some(&admin), None),
    )
    .await;
    let providers = shown.json()["providers"].as_array().unwrap().clone();
    assert_eq!(providers.len(), 4);
    assert_eq!(providers[0]["provider"], "github");
    assert_eq!(providers[0]["signature_header"], "X-Hub-Signature-256");
    assert!(
        providers[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/webhooks/github/hello"),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("?"),
        "no secret in a URL: {}",
        shown.body
    );

    let rotated = send(
        &h,
        api(Method::POST, "/apps/hello/webhooks", Some(&admin), None),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new = rotated.json()["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(secret_of(&h, &admin, "hello").await, new);

    let stale = send(
        &h,
        delivery("github", "hello", "push", "x1", Some(&old), body.clone()),
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.body);
    assert!(queued(&h, &app).await.is_empty());
    let fresh = send(
        &h,
        delivery("github", "hello", "push", "x1", Some(&new), body),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED, "{}", fresh.body);
    assert_eq!(queued(&h, &app).await.len(), 1);
    let events = h.store.app_events(&app, 20).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.action == "webhook secret rotated" && e.actor == "token:a"));
    assert!(events
        .iter()
        .all(|e| !e.detail.contains(&new) && !e.detail.contains(&old)));
}

#[tokio::test]
async fn the_app_page_shows_the_webhooks_and_creates_and_rotates_the_secret() {
    let h = harness().await;
    create_app(&h, "hello", GITHUB_REPO, "master").await;
    let (cookie, csrf) = support::signed_in(&h).await;
    let mut shown_at = support::page("/apps/hello", &cookie);
    shown_at
        .headers_mut()
        .insert("host", "capstan.example.org:8443".parse().unwrap());
    let before = send(&h, shown_at).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert!(before.body.contains("id=\"webhooks\""), "{}", before.body);
    assert!(before.body.contains("webhook-no-secret"));
    assert!(before
        .body
        .contains("http://capstan.example.org:8443/api/v1/webhooks/gitlab/hello"));

    let no_csrf = send(&h, support::form("/apps/hello/webhooks", &cookie, &[])).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let app = AppName::parse("hello").unwrap();
    assert_eq!(h.deployer.webhook_secret(&app).await.unwrap(), None);

    let created = send(
        &h,
        support::form("/apps/hello/webhooks", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let secret = h.deployer.webhook_secret(&app).await.unwrap().unwrap();
    let after = send(&h, support::page("/apps/hello", &cookie)).await;
    assert!(after.body.contains(&secret), "the secret behind its reveal");
    assert!(after.body.contains("webhook-rotate"));

    send(
        &h,
        support::form("/apps/hello/webhooks", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    let rotated = h.deployer.webhook_secret(&app).await.unwrap().unwrap();
    assert_ne!(rotated, secret);
}
