//! Verified pushes that should not deploy are answered 202 with the reason (another
//! branch, another repository, an app not deployed from git); an oversize body is 413
//! and an unknown forge 404.

mod support;
mod webhook_support;

use axum::http::StatusCode;
use capstan_core::{AppName, AppSpec};
use serde_json::json;
use support::{harness, send, token};
use webhook_support::*;

#[tokio::test]
async fn another_branch_or_repository_is_answered_with_the_reason() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let body = fixture("github", GITHUB_PUSH);

    let main = create_app(&h, "tracks-main", GITHUB_REPO, "main").await;
    let secret = secret_of(&h, &admin, "tracks-main").await;
    let other = send(
        &h,
        delivery(
            "github",
            "tracks-main",
            "push",
            "b1",
            Some(&secret),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.body);
    assert!(
        other.body.contains("branch master pushed"),
        "{}",
        other.body
    );
    assert!(queued(&h, &main).await.is_empty());

    let elsewhere = create_app(
        &h,
        "elsewhere",
        "https://github.com/someone/else.git",
        "master",
    )
    .await;
    let secret = secret_of(&h, &admin, "elsewhere").await;
    let mismatch = send(
        &h,
        delivery("github", "elsewhere", "push", "r1", Some(&secret), body),
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::ACCEPTED, "{}", mismatch.body);
    let reason = mismatch.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("Codertocat/Hello-World") && reason.contains("someone/else"),
        "{reason}"
    );
    assert!(queued(&h, &elsewhere).await.is_empty());
}

#[tokio::test]
async fn an_app_not_deployed_from_git_an_oversize_body_and_an_unknown_forge() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let body = fixture("github", GITHUB_PUSH);
    let image = AppName::parse("from-image").unwrap();
    let spec: AppSpec = serde_json::from_value(json!({"source": {"image": "nginx:1"}})).unwrap();
    h.store.create_app(&image, &spec).await.unwrap();
    let secret = secret_of(&h, &admin, "from-image").await;
    let not_git = send(
        &h,
        delivery(
            "github",
            "from-image",
            "push",
            "i1",
            Some(&secret),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(not_git.status, StatusCode::ACCEPTED);
    assert!(
        not_git.body.contains("does not deploy from git"),
        "{}",
        not_git.body
    );

    let huge = vec![b' '; 5 * 1024 * 1024 + 1];
    let too_big = send(
        &h,
        delivery("github", "from-image", "push", "o1", Some(&secret), huge),
    )
    .await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.body
    );
    let unknown = send(
        &h,
        delivery("sourcehut", "from-image", "push", "u1", None, body),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    for name in ["github", "gitlab", "gitea", "bitbucket"] {
        assert!(unknown.body.contains(name), "{}", unknown.body);
    }
}
