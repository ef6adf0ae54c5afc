//! A push or pull request names the commit it carries by its full id: a branch name or
//! other non-hex text where the commit belongs is refused naming the field (Bitbucket's
//! abbreviated pull request heads excepted), and a rewind force-push that lists no commit
//! leaves its changed files unknowable rather than empty.

mod common;

use capstan_forge::{is_full_commit_id, Event, PayloadError, Provider};
use common::{expect_pr, expect_push, fixture, signed, SECRET};
use serde_json::{json, Value};

/// A fixture with `edit` applied, delivered signed and parsed.
fn edited(
    provider: Provider,
    name: &str,
    event: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<Event, PayloadError> {
    let dir = match provider {
        Provider::Github => "github",
        Provider::Gitlab => "gitlab",
        Provider::Gitea => "gitea",
        Provider::Bitbucket => "bitbucket",
    };
    let mut payload: Value = serde_json::from_slice(&fixture(dir, name)).unwrap();
    edit(&mut payload);
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = signed(provider, SECRET, event, &body);
    provider.verify(SECRET, &headers, &body).unwrap();
    provider.parse(&headers, &body)
}

fn invalid_field(result: Result<Event, PayloadError>) -> &'static str {
    match result {
        Err(PayloadError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn full_commit_ids_are_40_or_64_hex_digits() {
    assert!(is_full_commit_id(&"a".repeat(40)));
    assert!(is_full_commit_id(&"0123456789abcdefABCDEF".repeat(3)[..64]));
    for not in ["", "production", "main", &"a".repeat(12), &"g".repeat(40)] {
        assert!(!is_full_commit_id(not), "{not:?}");
    }
    assert!(!is_full_commit_id(&"a".repeat(41)));
}

#[test]
fn a_gitlab_push_whose_checkout_sha_is_a_branch_name_is_refused() {
    let result = edited(Provider::Gitlab, "push.json", "Push Hook", |p| {
        p["checkout_sha"] = json!("production");
    });
    assert_eq!(invalid_field(result), "checkout_sha");
    let result = edited(Provider::Gitlab, "push.json", "Push Hook", |p| {
        p["checkout_sha"] = Value::Null;
        p["after"] = json!("main");
    });
    assert_eq!(invalid_field(result), "after");
}

#[test]
fn github_and_gitea_pushes_and_pull_requests_need_full_ids() {
    let result = edited(
        Provider::Github,
        "push.with-new-branch.payload.json",
        "push",
        |p| p["head_commit"]["id"] = json!("master"),
    );
    assert_eq!(invalid_field(result), "head_commit.id");
    let result = edited(Provider::Gitea, "push.json", "push", |p| {
        p["head_commit"] = Value::Null;
        p["after"] = json!("refs/heads/main");
    });
    assert_eq!(invalid_field(result), "after");
    let result = edited(
        Provider::Github,
        "pull_request.opened.payload.json",
        "pull_request",
        |p| p["pull_request"]["head"]["sha"] = json!("changes"),
    );
    assert_eq!(invalid_field(result), "pull_request.head.sha");
    let result = edited(
        Provider::Gitlab,
        "merge_request.open.json",
        "Merge Request Hook",
        |p| p["object_attributes"]["last_commit"]["id"] = json!("feature"),
    );
    assert_eq!(invalid_field(result), "object_attributes.last_commit.id");
}

#[test]
fn bitbucket_push_targets_need_full_ids_but_pull_request_heads_stay_abbreviated() {
    let result = edited(Provider::Bitbucket, "repo_push.json", "repo:push", |p| {
        p["push"]["changes"][0]["new"]["target"]["hash"] = json!("main");
    });
    assert_eq!(invalid_field(result), "push.changes[].new.target.hash");
    let pr = expect_pr(
        edited(
            Provider::Bitbucket,
            "pullrequest_created.json",
            "pullrequest:created",
            |_| {},
        )
        .unwrap(),
    );
    assert_eq!(pr.head_commit.len(), 12, "{pr:?}");
}

#[test]
fn a_rewind_that_lists_no_commit_has_unknowable_changed_files() {
    let gitea = expect_push(
        edited(Provider::Gitea, "push.json", "push", |p| {
            p["commits"] = json!([]);
            p["total_commits"] = json!(0);
        })
        .unwrap(),
    );
    assert!(!gitea.deleted);
    assert_eq!(gitea.changed_paths, None);
    let gitlab = expect_push(
        edited(Provider::Gitlab, "push.json", "Push Hook", |p| {
            p["commits"] = json!([]);
            p["total_commits_count"] = json!(0);
        })
        .unwrap(),
    );
    assert!(!gitlab.deleted);
    assert_eq!(gitlab.changed_paths, None);
}
