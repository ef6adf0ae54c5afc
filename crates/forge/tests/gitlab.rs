//! GitLab deliveries built from GitLab's documented payloads: pushes, tag pushes, branch
//! deletions and merge requests, signed with the shared token, verified and read.

mod common;

use capstan_forge::{Event, PrAction, Provider};
use common::{deliver, expect_pr, expect_push, fixture, signed, strings, SECRET};

const PROJECT: &str = "https://gitlab.example.com/acme/web/storefront.git";

fn gitlab(name: &str, event: &str) -> Event {
    deliver(Provider::Gitlab, "gitlab", name, event)
}

#[test]
fn push_to_a_branch() {
    let push = expect_push(gitlab("push.json", "Push Hook"));
    assert_eq!(push.branch.as_deref(), Some("main"));
    assert_eq!(push.tag, None);
    assert_eq!(
        push.commit.as_deref(),
        Some("9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3")
    );
    assert!(!push.deleted);
    assert_eq!(push.head_message.as_deref(), Some("Drop unused helper\n"));
    assert_eq!(
        push.changed_paths,
        Some(strings(&[
            "apps/web/src/badge.tsx",
            "apps/web/src/header.tsx",
            "libs/util/old.ts"
        ]))
    );
    assert!(push.repo.matches(PROJECT));
    assert!(push
        .repo
        .matches("ssh://git@gitlab.example.com/acme/web/storefront"));
    assert!(!push
        .repo
        .matches("https://gitlab.example.com/acme/storefront.git"));
}

#[test]
fn push_with_more_commits_than_listed_has_no_file_list() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab", "push.json")).expect("json");
    v["total_commits_count"] = 31.into();
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Gitlab, SECRET, "Push Hook", &body);
    let push = expect_push(Provider::Gitlab.parse(&headers, &body).expect("parses"));
    assert_eq!(push.changed_paths, None);
}

#[test]
fn annotated_tag_push_names_the_tagged_commit() {
    let push = expect_push(gitlab("tag_push.json", "Tag Push Hook"));
    assert_eq!(push.tag.as_deref(), Some("v2.4.0"));
    assert_eq!(push.branch, None);
    // `after` is the tag object; `checkout_sha` the commit it tags.
    assert_eq!(
        push.commit.as_deref(),
        Some("9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3")
    );
    assert!(!push.deleted);
}

#[test]
fn branch_deletion() {
    let push = expect_push(gitlab("push.branch_deleted.json", "Push Hook"));
    assert_eq!(push.branch.as_deref(), Some("feature/old-cart"));
    assert!(push.deleted);
    assert_eq!(push.commit, None);
    assert_eq!(push.changed_paths, None);
}

#[test]
fn merge_request_actions() {
    let cases = [
        ("merge_request.open.json", PrAction::Opened),
        ("merge_request.update.json", PrAction::Synchronized),
        (
            "merge_request.close.json",
            PrAction::Closed { merged: false },
        ),
        (
            "merge_request.merge.json",
            PrAction::Closed { merged: true },
        ),
    ];
    for (name, action) in cases {
        let pr = expect_pr(gitlab(name, "Merge Request Hook"));
        assert_eq!(pr.action, action, "{name}");
        assert_eq!(pr.number, 17);
        assert_eq!(pr.head_commit, "c0ffee1234567890abcdef1234567890abcdef12");
        assert_eq!(pr.head_branch, "feature/wishlist");
        assert_eq!(pr.base_branch, "main");
        assert!(!pr.from_fork, "{name}");
        assert_eq!(pr.head_clone_url.as_deref(), Some(PROJECT));
        assert_eq!(pr.title, "Wishlist page");
        assert!(pr.repo.matches(PROJECT));
    }
}

#[test]
fn merge_request_from_a_fork() {
    let pr = expect_pr(gitlab("merge_request.open.fork.json", "Merge Request Hook"));
    assert!(pr.from_fork);
    assert_eq!(
        pr.head_clone_url.as_deref(),
        Some("https://gitlab.example.com/jo/storefront.git")
    );
    assert!(pr.repo.matches(PROJECT), "the base project is the app's");
}

#[test]
fn other_hooks_are_ignored() {
    let body = fixture("gitlab", "push.json");
    let headers = signed(Provider::Gitlab, SECRET, "Pipeline Hook", &body);
    assert_eq!(
        Provider::Gitlab.parse(&headers, &body),
        Ok(Event::Ignored {
            event: "GitLab Pipeline Hook".to_owned()
        })
    );
}
