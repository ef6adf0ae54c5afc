//! The pure parts of the webhook door: a body that never arrives is 408, what is kept of
//! a failed delivery, and the push checks (a tracked ref written `refs/heads/...`, a
//! commit that is not a full id).

use super::events::{why_not, Failed};
use super::*;
use capstan_forge::{Push, RepoUrls};

const REPO: &str = "https://example.com/acme/web.git";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn push(branch: &str, commit: &str) -> Push {
    Push {
        repo: RepoUrls {
            clone: Some(REPO.into()),
            ..Default::default()
        },
        branch: Some(branch.into()),
        tag: None,
        commit: Some(commit.into()),
        deleted: false,
        head_message: None,
        changed_paths: None,
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let started = std::time::Instant::now();
    let refused = read_body(
        &HeaderMap::new(),
        Body::from_stream(never),
        Duration::from_millis(50),
    )
    .await
    .expect_err("no body arrives");
    assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT, "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let read = read_body(&HeaderMap::new(), Body::from("{}"), Duration::from_secs(5)).await;
    assert_eq!(read.expect("a body in time"), Bytes::from("{}"));
}

#[test]
fn a_failure_after_a_deployment_was_queued_keeps_the_delivery() {
    let failure = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database is locked");
    let before: Result<Handled, Failed> = Err(Failed::from(failure()));
    assert_eq!(settlement(&before), Settlement::Forget);
    let after: Result<Handled, Failed> = Err(Failed {
        error: failure(),
        queued: vec![7],
    });
    match settlement(&after) {
        Settlement::Outcome(outcome) => {
            assert!(outcome.contains("queued deployment 7"), "{outcome}");
            assert!(outcome.contains("database is locked"), "{outcome}");
        }
        Settlement::Forget => panic!("a queued deployment's delivery was forgotten"),
    }
}

#[test]
fn the_tracked_ref_may_be_written_with_refs_heads() {
    assert_eq!(
        why_not(&push("main", COMMIT), REPO, "refs/heads/main", &[]),
        Ok(COMMIT.to_string())
    );
    assert_eq!(
        why_not(&push("main", COMMIT), REPO, "main", &[]),
        Ok(COMMIT.to_string())
    );
    let other = why_not(&push("dev", COMMIT), REPO, "refs/heads/main", &[]);
    assert!(other.is_err_and(|reason| reason.contains("branch dev pushed")));
}

#[test]
fn a_push_naming_no_full_commit_id_deploys_nothing() {
    for named in ["production", "main", "0123456789ab"] {
        let refused = why_not(&push("main", named), REPO, "main", &[]);
        assert!(
            refused
                .as_ref()
                .is_err_and(|reason| reason.contains("not a full commit id")),
            "{named}: {refused:?}"
        );
    }
}
