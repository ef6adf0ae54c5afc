//! GitLab, Gitea/Forgejo and Bitbucket deliveries through the whole router, from the
//! `capstan-forge` fixtures signed the way each forge signs them: watch paths and skip
//! markers honoured, exactly the pushed commit queued, and a rewind force-push (no commit
//! listed) deploying because its changed files cannot be told.

mod support;
mod webhook_support;

use axum::http::StatusCode;
use serde_json::json;
use support::{harness, send, token};
use webhook_support::*;

const GITLAB_HEAD: &str = "9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3";
const GITEA_HEAD: &str = "6666ffff7777aaaa8888bbbb9999cccc0000dddd";

#[tokio::test]
async fn gitlab_pushes_honour_the_token_and_watch_paths() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let repo = "https://gitlab.example.com/acme/web/storefront.git";
    let lab = create_app(&h, "storefront", repo, "main").await;
    let secret = secret_of(&h, &admin, "storefront").await;
    patch(
        &h,
        &admin,
        "storefront",
        json!({"watch_paths": ["services/api"]}),
    )
    .await;
    let missed = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l1",
            Some(&secret),
            fixture("gitlab", "push.json"),
        ),
    )
    .await;
    assert_eq!(missed.status, StatusCode::ACCEPTED, "{}", missed.body);
    assert!(missed.body.contains("watch paths"), "{}", missed.body);
    assert!(queued(&h, &lab).await.is_empty());

    patch(
        &h,
        &admin,
        "storefront",
        json!({"watch_paths": ["apps/web"]}),
    )
    .await;
    // Another push of the same commit (a body of its own: the first one was handled).
    let again = edited("gitlab", "push.json", |p| {
        p["note"] = json!("a second push")
    });
    let wrong_token = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l2",
            Some("nope"),
            again.clone(),
        ),
    )
    .await;
    assert_eq!(wrong_token.status, StatusCode::UNAUTHORIZED);
    let hit = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l2",
            Some(&secret),
            again,
        ),
    )
    .await;
    assert_eq!(hit.status, StatusCode::ACCEPTED, "{}", hit.body);
    assert_eq!(hit.json()["commit"], GITLAB_HEAD);
    assert_eq!(queued(&h, &lab).await[0].1.as_deref(), Some(GITLAB_HEAD));
}

#[tokio::test]
async fn gitea_and_forgejo_pushes_honour_skip_markers() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let tea = create_app(&h, "api", "https://git.example.net/acme/api.git", "main").await;
    let secret = secret_of(&h, &admin, "api").await;
    let skipped = send(
        &h,
        delivery(
            "gitea",
            "api",
            "push",
            "t1",
            Some(&secret),
            fixture("gitea", "push.json"),
        ),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED, "{}", skipped.body);
    assert!(skipped.body.contains("[skip deploy]"), "{}", skipped.body);
    assert!(queued(&h, &tea).await.is_empty());
    let unskipped = String::from_utf8(fixture("gitea", "push.json"))
        .unwrap()
        .replace(" [skip deploy]", "");
    let deployed = send(
        &h,
        delivery(
            "forgejo",
            "api",
            "push",
            "t2",
            Some(&secret),
            unskipped.into_bytes(),
        ),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    assert_eq!(queued(&h, &tea).await[0].1.as_deref(), Some(GITEA_HEAD));
}

#[tokio::test]
async fn a_rewind_force_push_listing_no_commit_deploys_despite_watch_paths() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let tea = create_app(&h, "api", "https://git.example.net/acme/api.git", "main").await;
    let secret = secret_of(&h, &admin, "api").await;
    patch(&h, &admin, "api", json!({"watch_paths": ["services/api"]})).await;
    let rewind = edited("gitea", "push.json", |p| {
        p["commits"] = json!([]);
        p["total_commits"] = json!(0);
        p["head_commit"]["message"] = json!("an older commit");
    });
    let deployed = send(
        &h,
        delivery("gitea", "api", "push", "w1", Some(&secret), rewind),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    assert_eq!(deployed.json()["commit"], GITEA_HEAD, "{}", deployed.body);
    assert_eq!(queued(&h, &tea).await.len(), 1);
}

#[tokio::test]
async fn bitbucket_pushes_honour_skip_markers() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let repo = "https://bitbucket.org/northwind/billing.git";
    let bucket = create_app(&h, "billing", repo, "main").await;
    let secret = secret_of(&h, &admin, "billing").await;
    let push = fixture("bitbucket", "repo_push.json");
    let skipped = send(
        &h,
        delivery(
            "bitbucket",
            "billing",
            "repo:push",
            "k1",
            Some(&secret),
            push.clone(),
        ),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED, "{}", skipped.body);
    assert!(skipped.body.contains("[skip ci]"), "{}", skipped.body);
    let unskipped = String::from_utf8(push).unwrap().replace(" [ci skip]", "");
    let deployed = send(
        &h,
        delivery(
            "bitbucket",
            "billing",
            "repo:push",
            "k2",
            Some(&secret),
            unskipped.into_bytes(),
        ),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    assert_eq!(
        queued(&h, &bucket).await[0].1.as_deref(),
        Some("a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0")
    );
}
