//! Replays of a verified delivery queue nothing, however they are dressed: the same id,
//! the same body with a new id or none, or the GitHub-signed body sent to the Gitea URL
//! (both forges sign with a hex HMAC-SHA256 of the same secret). A delivery whose handling
//! failed before anything was queued is forgotten, its body too, so the retry is handled.

mod support;
mod webhook_support;

use axum::http::StatusCode;
use support::{harness, send, token};
use webhook_support::*;

#[tokio::test]
async fn a_replayed_body_queues_nothing_whatever_its_id_or_forge() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    let body = fixture("github", GITHUB_PUSH);
    let first = send(
        &h,
        delivery("github", "hello", "push", "d1", Some(&secret), body.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);

    for (what, provider, id) in [
        ("the same id", "github", "d1"),
        ("a new id", "github", "d2"),
        ("no id", "github", ""),
        ("the Gitea URL", "gitea", "g1"),
        ("the Gitea URL without an id", "gitea", ""),
    ] {
        let replay = send(
            &h,
            delivery(provider, "hello", "push", id, Some(&secret), body.clone()),
        )
        .await;
        assert_eq!(replay.status, StatusCode::OK, "{what}: {}", replay.body);
        assert_eq!(replay.json()["duplicate"], true, "{what}: {}", replay.body);
    }
    assert_eq!(queued(&h, &app).await.len(), 1);
}

#[tokio::test]
async fn a_delivery_without_an_id_is_handled_once() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    let body = fixture("github", GITHUB_PUSH);
    for expected in [StatusCode::ACCEPTED, StatusCode::OK] {
        let answer = send(
            &h,
            delivery("github", "hello", "push", "", Some(&secret), body.clone()),
        )
        .await;
        assert_eq!(answer.status, expected, "{}", answer.body);
    }
    assert_eq!(queued(&h, &app).await.len(), 1);
}

#[tokio::test]
async fn a_failed_delivery_is_forgotten_so_its_retry_is_handled() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let secret = secret_of(&h, &admin, "hello").await;
    for (attempt, id) in [(1, "f1"), (2, "f1"), (3, ""), (4, "f2")] {
        let garbage = send(
            &h,
            delivery(
                "github",
                "hello",
                "push",
                id,
                Some(&secret),
                b"{not json".to_vec(),
            ),
        )
        .await;
        assert_eq!(
            garbage.status,
            StatusCode::BAD_REQUEST,
            "attempt {attempt}: {}",
            garbage.body
        );
        assert!(garbage.body.contains("not JSON"), "{}", garbage.body);
    }
    assert!(queued(&h, &app).await.is_empty());
}
