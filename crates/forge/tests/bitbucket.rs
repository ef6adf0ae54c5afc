//! Bitbucket Cloud deliveries built from Atlassian's documented payloads, signed, verified
//! and read.

mod common;

use capstan_forge::{skip_marker, Event, PayloadError, PrAction, Provider};
use common::{deliver, expect_pr, expect_push, fixture, signed, SECRET};

const REPO: &str = "https://bitbucket.org/northwind/billing.git";
const NEW_HEAD: &str = "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0";

fn bitbucket(name: &str, event: &str) -> Event {
    deliver(Provider::Bitbucket, "bitbucket", name, event)
}

#[test]
fn push_to_a_branch() {
    let push = expect_push(bitbucket("repo_push.json", "repo:push"));
    assert_eq!(push.branch.as_deref(), Some("main"));
    assert_eq!(push.commit.as_deref(), Some(NEW_HEAD));
    assert!(!push.deleted);
    assert_eq!(
        skip_marker(push.head_message.as_deref().expect("message")),
        Some("[skip ci]")
    );
    assert_eq!(push.changed_paths, None, "Bitbucket lists no files");
    assert_eq!(push.repo.clone.as_deref(), Some(REPO));
    assert_eq!(
        push.repo.ssh.as_deref(),
        Some("git@bitbucket.org:northwind/billing.git")
    );
    assert_eq!(
        push.repo.web.as_deref(),
        Some("https://bitbucket.org/northwind/billing")
    );
    assert!(push.repo.matches("git@bitbucket.org:northwind/billing.git"));
}

#[test]
fn a_push_of_several_refs_gives_one_event_each() {
    let body = fixture("bitbucket", "repo_push.branch_and_tag.json");
    let headers = signed(Provider::Bitbucket, SECRET, "repo:push", &body);
    Provider::Bitbucket
        .verify(SECRET, &headers, &body)
        .expect("signed");
    assert_eq!(
        Provider::Bitbucket.parse(&headers, &body),
        Err(PayloadError::SeveralRefs { count: 2 })
    );
    let events = Provider::Bitbucket
        .parse_all(&headers, &body)
        .expect("parses");
    let pushes: Vec<_> = events.into_iter().map(expect_push).collect();
    assert_eq!(pushes[0].branch.as_deref(), Some("main"));
    assert_eq!(pushes[1].tag.as_deref(), Some("v3.1.0"));
    assert_eq!(pushes[1].branch, None);
    assert!(pushes.iter().all(|p| p.commit.as_deref() == Some(NEW_HEAD)));
}

#[test]
fn branch_deletion() {
    let push = expect_push(bitbucket("repo_push.branch_deleted.json", "repo:push"));
    assert_eq!(push.branch.as_deref(), Some("spike/pdf"));
    assert!(push.deleted);
    assert_eq!(push.commit, None);
    assert_eq!(push.head_message, None);
}

#[test]
fn pull_request_events() {
    let cases = [
        (
            "pullrequest_created.json",
            "pullrequest:created",
            PrAction::Opened,
        ),
        (
            "pullrequest_updated.json",
            "pullrequest:updated",
            PrAction::Synchronized,
        ),
        (
            "pullrequest_fulfilled.json",
            "pullrequest:fulfilled",
            PrAction::Closed { merged: true },
        ),
        (
            "pullrequest_rejected.json",
            "pullrequest:rejected",
            PrAction::Closed { merged: false },
        ),
        (
            "pullrequest_created.json",
            "pullrequest:approved",
            PrAction::Other("approved".to_owned()),
        ),
    ];
    for (name, event, action) in cases {
        let pr = expect_pr(bitbucket(name, event));
        assert_eq!(pr.action, action, "{event}");
        assert_eq!(pr.number, 42);
        assert_eq!(pr.head_commit, "d4c3b2a1f0e9", "Bitbucket abbreviates it");
        assert_eq!(pr.head_branch, "feature/pdf");
        assert_eq!(pr.base_branch, "main");
        assert!(!pr.from_fork);
        assert_eq!(pr.head_clone_url.as_deref(), Some(REPO));
        assert_eq!(pr.title, "PDF invoices");
        assert!(pr.repo.matches(REPO));
    }
}

#[test]
fn pull_request_from_a_fork() {
    let pr = expect_pr(bitbucket(
        "pullrequest_created.fork.json",
        "pullrequest:created",
    ));
    assert!(pr.from_fork);
    assert_eq!(
        pr.head_clone_url.as_deref(),
        Some("https://bitbucket.org/mia-k/billing.git")
    );
    assert!(pr.repo.matches(REPO));
}

#[test]
fn other_events_are_ignored() {
    let body = fixture("bitbucket", "repo_push.json");
    let headers = signed(Provider::Bitbucket, SECRET, "repo:fork", &body);
    assert_eq!(
        Provider::Bitbucket.parse(&headers, &body),
        Ok(Event::Ignored {
            event: "Bitbucket repo:fork".to_owned()
        })
    );
}
