//! GitHub's real payloads (from GitHub's documentation), signed, verified and read.

mod common;

use capstan_forge::{Event, PrAction, Provider};
use common::{deliver, expect_pr, expect_push, fixture, signed, SECRET};

const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn github(name: &str, event: &str) -> Event {
    deliver(Provider::Github, "github", name, event)
}

#[test]
fn ping_is_a_ping() {
    assert_eq!(github("ping.payload.json", "ping"), Event::Ping);
}

#[test]
fn push_creating_a_branch() {
    let push = expect_push(github("push.with-new-branch.payload.json", "push"));
    assert_eq!(push.branch.as_deref(), Some("master"));
    assert_eq!(push.tag, None);
    assert_eq!(
        push.commit.as_deref(),
        Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );
    assert!(!push.deleted);
    assert_eq!(push.head_message.as_deref(), Some("Initial commit"));
    // A created branch: the files changed since "before" cannot be told.
    assert_eq!(push.changed_paths, None);
    assert_eq!(
        push.repo.clone.as_deref(),
        Some("https://github.com/Codertocat/Hello-World.git")
    );
    assert_eq!(
        push.repo.ssh.as_deref(),
        Some("git@github.com:Codertocat/Hello-World.git")
    );
    assert_eq!(
        push.repo.web.as_deref(),
        Some("https://github.com/Codertocat/Hello-World")
    );
    assert!(push.repo.matches("git@github.com:codertocat/hello-world"));
    assert!(push
        .repo
        .matches("https://github.com/Codertocat/Hello-World/"));
    assert!(!push
        .repo
        .matches("https://github.com/Codertocat/Hello-World-2"));
}

#[test]
fn push_deleting_a_tag() {
    let push = expect_push(github("push.payload.json", "push"));
    assert_eq!(push.tag.as_deref(), Some("simple-tag"));
    assert_eq!(push.branch, None);
    assert!(push.deleted);
    assert_eq!(push.commit, None);
    assert_eq!(push.head_message, None);
}

#[test]
fn push_to_an_existing_branch_lists_its_files() {
    // The same real payload as an ordinary push: not created, with a second commit.
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github", "push.with-new-branch.payload.json"))
            .expect("json");
    v["created"] = false.into();
    v["before"] = "1111111111111111111111111111111111111111".into();
    let mut second = v["commits"][0].clone();
    second["id"] = "2222222222222222222222222222222222222222".into();
    second["added"] = serde_json::json!([]);
    second["modified"] = serde_json::json!(["src/app.rs", "README.md"]);
    second["removed"] = serde_json::json!(["old.txt"]);
    v["commits"].as_array_mut().expect("array").push(second);
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Github, SECRET, "push", &body);
    Provider::Github
        .verify(SECRET, &headers, &body)
        .expect("signed");
    let push = expect_push(Provider::Github.parse(&headers, &body).expect("parses"));
    assert_eq!(
        push.changed_paths,
        Some(vec![
            "README.md".to_owned(),
            "old.txt".to_owned(),
            "src/app.rs".to_owned()
        ])
    );
    // A forced push rewrote history: the list no longer says what changed.
    v["forced"] = true.into();
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Github, SECRET, "push", &body);
    let push = expect_push(Provider::Github.parse(&headers, &body).expect("parses"));
    assert_eq!(push.changed_paths, None);
}

#[test]
fn pull_request_actions() {
    let cases = [
        ("pull_request.opened.payload.json", PrAction::Opened),
        (
            "pull_request.synchronize.payload.json",
            PrAction::Synchronized,
        ),
        ("pull_request.reopened.payload.json", PrAction::Reopened),
        (
            "pull_request.closed.payload.json",
            PrAction::Closed { merged: false },
        ),
    ];
    for (name, action) in cases {
        let pr = expect_pr(github(name, "pull_request"));
        assert_eq!(pr.action, action, "{name}");
        assert_eq!(pr.number, 2);
        assert_eq!(pr.head_commit, HEAD);
        assert_eq!(pr.head_branch, "changes");
        assert_eq!(pr.base_branch, "master");
        assert!(!pr.from_fork);
        assert_eq!(pr.title, "Update the README with new information.");
        assert_eq!(
            pr.head_clone_url.as_deref(),
            Some("https://github.com/Codertocat/Hello-World.git")
        );
        assert!(pr
            .repo
            .matches("https://github.com/Codertocat/Hello-World.git"));
    }
}

#[test]
fn merged_and_fork_pull_requests() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github", "pull_request.closed.payload.json"))
            .expect("json");
    v["pull_request"]["merged"] = true.into();
    v["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
    v["pull_request"]["head"]["repo"]["clone_url"] =
        "https://github.com/someone/Hello-World.git".into();
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Github, SECRET, "pull_request", &body);
    let pr = expect_pr(Provider::Github.parse(&headers, &body).expect("parses"));
    assert_eq!(pr.action, PrAction::Closed { merged: true });
    assert!(pr.from_fork);
    assert_eq!(
        pr.head_clone_url.as_deref(),
        Some("https://github.com/someone/Hello-World.git")
    );
    // The base repository is still the one matched against the app.
    assert!(pr.repo.matches("https://github.com/Codertocat/Hello-World"));

    // A fork deleted since: no head repository at all, still a fork.
    v["pull_request"]["head"]["repo"] = serde_json::Value::Null;
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Github, SECRET, "pull_request", &body);
    let pr = expect_pr(Provider::Github.parse(&headers, &body).expect("parses"));
    assert!(pr.from_fork);
    assert_eq!(pr.head_clone_url, None);
}

#[test]
fn other_events_are_ignored_by_name() {
    let body = fixture("github", "ping.payload.json");
    let headers = signed(Provider::Github, SECRET, "issues", &body);
    assert_eq!(
        Provider::Github.parse(&headers, &body),
        Ok(Event::Ignored {
            event: "GitHub issues".to_owned()
        })
    );
}
