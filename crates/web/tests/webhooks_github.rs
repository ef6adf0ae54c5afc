//! GitHub deliveries through the whole router: a signed push queues exactly the pushed
//! commit (also for an app tracking `refs/heads/<branch>`), a ping, a tag and a pull
//! request queue nothing and say why, and every refused signature (no app, no secret,
//! wrong or missing signature) gets the same 401 words.

mod support;
mod webhook_support;

use axum::http::StatusCode;
use capstan_core::AppName;
use support::{harness, send, token};
use webhook_support::*;

#[tokio::test]
async fn a_signed_push_queues_exactly_the_pushed_commit() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    assert_eq!(secret.len(), 64, "32 bytes in hex");
    assert_eq!(secret_of(&h, &admin, "hello").await, secret, "kept");

    let body = fixture("github", GITHUB_PUSH);
    let accepted = send(
        &h,
        delivery("github", "hello", "push", "d1", Some(&secret), body),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let answer = accepted.json();
    assert_eq!(answer["commit"], GITHUB_HEAD);
    let deployments = queued(&h, &app).await;
    assert_eq!(deployments.len(), 1);
    assert_eq!(answer["deployment"], deployments[0].0);
    assert_eq!(deployments[0].1.as_deref(), Some(GITHUB_HEAD));
    assert_eq!(deployments[0].2.as_deref(), Some("webhook:github"));

    let events = h.store.app_events(&app, 50).await.unwrap();
    assert!(events.iter().all(|e| !e.detail.contains(&secret)));
    assert!(events.iter().any(|e| e.action == "webhook"
        && e.actor == "webhook:github"
        && e.detail.contains(GITHUB_HEAD)
        && e.detail.contains("queued")));
}

#[tokio::test]
async fn pings_tags_and_pull_requests_queue_nothing_and_say_why() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    let send_fixture = |event: &'static str, id: &'static str, name: &'static str| {
        delivery(
            "github",
            "hello",
            event,
            id,
            Some(&secret),
            fixture("github", name),
        )
    };

    let ping = send(&h, send_fixture("ping", "d2", "ping.payload.json")).await;
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);
    // A deleted tag.
    let tag = send(&h, send_fixture("push", "d3", "push.payload.json")).await;
    assert_eq!(tag.status, StatusCode::ACCEPTED);
    assert!(tag.body.contains("tag simple-tag"), "{}", tag.body);
    let pr = send(
        &h,
        send_fixture("pull_request", "d4", "pull_request.opened.payload.json"),
    )
    .await;
    assert_eq!(pr.status, StatusCode::ACCEPTED);
    assert!(
        pr.body.contains("preview environments are not built yet"),
        "{}",
        pr.body
    );
    assert!(queued(&h, &app).await.is_empty());
    let events = h.store.app_events(&app, 50).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "webhook").count(), 3);
}

#[tokio::test]
async fn an_app_tracking_refs_heads_deploys_its_branch() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "refs/heads/master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    let body = fixture("github", GITHUB_PUSH);
    let accepted = send(
        &h,
        delivery("github", "hello", "push", "h1", Some(&secret), body),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.json()["commit"], GITHUB_HEAD, "{}", accepted.body);
    assert_eq!(queued(&h, &app).await.len(), 1);
}

#[tokio::test]
async fn every_refused_signature_gets_the_same_answer() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let body = fixture("github", GITHUB_PUSH);
    let no_secret_yet = create_app(&h, "quiet", GITHUB_REPO, "master").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    let mut tampered = body.clone();
    tampered.push(b'\n');
    let cases = [
        (
            "no such app",
            delivery("github", "ghost", "push", "d1", Some(&secret), body.clone()),
        ),
        (
            "invalid name",
            delivery(
                "github",
                "No_App",
                "push",
                "d1",
                Some(&secret),
                body.clone(),
            ),
        ),
        (
            "no secret yet",
            delivery("github", "quiet", "push", "d1", Some("x"), body.clone()),
        ),
        (
            "wrong secret",
            delivery("github", "hello", "push", "d1", Some("nope"), body.clone()),
        ),
        (
            "no signature",
            delivery("github", "hello", "push", "d1", None, body.clone()),
        ),
        (
            "empty secret",
            delivery("github", "hello", "push", "d1", Some(""), body.clone()),
        ),
        ("changed body", {
            let mut r = delivery("github", "hello", "push", "d1", Some(&secret), body.clone());
            *r.body_mut() = tampered.into();
            r
        }),
    ];
    let mut answers = Vec::new();
    for (what, request) in cases {
        let refused = send(&h, request).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            refused.body
        );
        for secretive in ["X-Hub", "match", &secret, "Hello-World"] {
            assert!(
                !refused.body.contains(secretive),
                "{what}: {}",
                refused.body
            );
        }
        answers.push((what, refused.body));
    }
    for (what, body) in &answers {
        assert_eq!(
            body, &answers[0].1,
            "{what} is told apart from {}",
            answers[0].0
        );
    }
    assert!(queued(&h, &app).await.is_empty());
    assert!(queued(&h, &no_secret_yet).await.is_empty());
    assert!(queued(&h, &AppName::parse("hello").unwrap())
        .await
        .is_empty());
}
