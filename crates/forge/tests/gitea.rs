//! Gitea/Forgejo deliveries built from Gitea's documented payloads, signed, verified and
//! read.

mod common;

use capstan_forge::{skip_marker, touches_watched, Event, PrAction, Provider};
use common::{deliver, expect_pr, expect_push, fixture, signed, strings, SECRET};

fn gitea(name: &str, event: &str) -> Event {
    deliver(Provider::Gitea, "gitea", name, event)
}

#[test]
fn push_to_a_branch() {
    let push = expect_push(gitea("push.json", "push"));
    assert_eq!(push.branch.as_deref(), Some("main"));
    assert_eq!(
        push.commit.as_deref(),
        Some("6666ffff7777aaaa8888bbbb9999cccc0000dddd")
    );
    assert!(!push.deleted);
    let message = push.head_message.as_deref().expect("a head message");
    assert_eq!(skip_marker(message), Some("[skip deploy]"));
    let changed = push.changed_paths.expect("files listed");
    assert_eq!(
        changed,
        strings(&["docs/rate-limit.md", "services/auth/login.go"])
    );
    assert!(touches_watched(&changed, &strings(&["services/auth"])));
    assert!(!touches_watched(
        &changed,
        &strings(&["services/billing", "web"])
    ));
    assert!(push
        .repo
        .matches("ssh://git@git.example.net:2222/acme/api.git"));
    assert!(push.repo.matches("https://git.example.net/acme/api"));
    // The web and HTTPS URLs name the same host and path as an scp-like URL would.
    assert!(push.repo.matches("git@git.example.net:acme/api.git"));
    assert!(!push
        .repo
        .matches("ssh://git@git.example.net:2222/acme/web.git"));
}

#[test]
fn push_of_a_tag() {
    let push = expect_push(gitea("push.tag.json", "push"));
    assert_eq!(push.tag.as_deref(), Some("v0.9.1"));
    assert_eq!(push.branch, None);
    assert_eq!(
        push.commit.as_deref(),
        Some("6666ffff7777aaaa8888bbbb9999cccc0000dddd")
    );
    assert_eq!(push.changed_paths, None, "a created ref");
}

#[test]
fn push_deleting_a_branch() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitea", "push.json")).expect("json");
    v["after"] = "0000000000000000000000000000000000000000".into();
    v["head_commit"] = serde_json::Value::Null;
    v["commits"] = serde_json::json!([]);
    v["total_commits"] = 0.into();
    let body = serde_json::to_vec(&v).expect("json");
    let headers = signed(Provider::Gitea, SECRET, "push", &body);
    let push = expect_push(Provider::Gitea.parse(&headers, &body).expect("parses"));
    assert!(push.deleted);
    assert_eq!(push.commit, None);
}

#[test]
fn pull_request_actions() {
    let cases = [
        (
            "pull_request.opened.json",
            PrAction::Opened,
            "1111aaaa2222bbbb3333cccc4444dddd5555eeee",
        ),
        (
            "pull_request.synchronized.json",
            PrAction::Synchronized,
            "6666ffff7777aaaa8888bbbb9999cccc0000dddd",
        ),
        (
            "pull_request.closed.json",
            PrAction::Closed { merged: false },
            "6666ffff7777aaaa8888bbbb9999cccc0000dddd",
        ),
        (
            "pull_request.closed.merged.json",
            PrAction::Closed { merged: true },
            "6666ffff7777aaaa8888bbbb9999cccc0000dddd",
        ),
    ];
    for (name, action, head) in cases {
        let pr = expect_pr(gitea(name, "pull_request"));
        assert_eq!(pr.action, action, "{name}");
        assert_eq!(pr.number, 9);
        assert_eq!(pr.head_commit, head);
        assert_eq!(pr.head_branch, "rate-limit");
        assert_eq!(pr.base_branch, "main");
        assert!(!pr.from_fork, "{name}");
        assert_eq!(pr.title, "Login rate limit");
        assert!(pr.repo.matches("https://git.example.net/acme/api.git"));
    }
}

#[test]
fn pull_request_from_a_fork() {
    let pr = expect_pr(gitea("pull_request.opened.fork.json", "pull_request"));
    assert!(pr.from_fork);
    assert_eq!(
        pr.head_clone_url.as_deref(),
        Some("https://git.example.net/ola/api.git")
    );
    assert!(pr.repo.matches("https://git.example.net/acme/api.git"));
}

#[test]
fn other_events_are_ignored() {
    let body = fixture("gitea", "push.json");
    let headers = signed(Provider::Gitea, SECRET, "create", &body);
    assert_eq!(
        Provider::Gitea.parse(&headers, &body),
        Ok(Event::Ignored {
            event: "Gitea create".to_owned()
        })
    );
}
