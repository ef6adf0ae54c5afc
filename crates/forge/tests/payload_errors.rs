//! Bodies that verify but cannot be read: each error says what is wrong and where.

mod common;

use capstan_forge::{PayloadError, Provider};
use common::{fixture, headers, signed, SECRET};

fn parse(
    provider: Provider,
    event: &str,
    body: &[u8],
) -> Result<capstan_forge::Event, PayloadError> {
    provider.parse(&signed(provider, SECRET, event, body), body)
}

#[test]
fn a_body_that_is_not_json() {
    for (provider, event) in [
        (Provider::Github, "push"),
        (Provider::Gitlab, "Push Hook"),
        (Provider::Gitea, "pull_request"),
        (Provider::Bitbucket, "repo:push"),
    ] {
        for body in [&b"not json"[..], b"{\"ref\": ", b"", b"{\"ref\" 1}"] {
            let got = parse(provider, event, body);
            assert!(
                matches!(got, Err(PayloadError::NotJson { .. })),
                "{provider} {body:?}: {got:?}"
            );
        }
    }
}

#[test]
fn trailing_bytes_after_the_payload_are_not_json() {
    let mut body = fixture("gitea", "push.json");
    body.extend_from_slice(b"{}");
    let got = parse(Provider::Gitea, "push", &body);
    assert!(matches!(got, Err(PayloadError::NotJson { .. })), "{got:?}");
}

#[test]
fn a_missing_field_is_named() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github", "pull_request.opened.payload.json"))
            .expect("json");
    v["pull_request"]["head"]
        .as_object_mut()
        .expect("object")
        .remove("sha");
    let err = parse(
        Provider::Github,
        "pull_request",
        &serde_json::to_vec(&v).expect("json"),
    )
    .expect_err("no head sha");
    assert!(
        matches!(&err, PayloadError::Field { field, .. } if field == "pull_request.head"),
        "{err:?}"
    );
    assert!(err.to_string().contains("sha"), "{err}");

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab", "merge_request.open.json")).expect("json");
    v["object_attributes"]["iid"] = "seventeen".into();
    let err = parse(
        Provider::Gitlab,
        "Merge Request Hook",
        &serde_json::to_vec(&v).expect("json"),
    )
    .expect_err("iid not a number");
    assert!(
        matches!(&err, PayloadError::Field { field, .. } if field == "object_attributes.iid"),
        "{err:?}"
    );

    let err = parse(
        Provider::Bitbucket,
        "repo:push",
        b"{\"repository\":{\"full_name\":\"a/b\"}}",
    )
    .expect_err("no push");
    assert!(
        matches!(&err, PayloadError::Field { field, .. } if field == "."),
        "{err:?}"
    );
    assert!(err.to_string().contains("push"), "{err}");
}

#[test]
fn a_push_without_changes_is_invalid() {
    let body = br#"{"push":{"changes":[]},"repository":{"full_name":"a/b"}}"#;
    let err = parse(Provider::Bitbucket, "repo:push", body).expect_err("no changes");
    assert!(
        matches!(
            err,
            PayloadError::Invalid {
                field: "push.changes",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn no_event_header_is_an_error_naming_it() {
    let body = fixture("github", "push.payload.json");
    let h = headers(&[("X-Hub-Signature-256", "sha256=00")]);
    assert_eq!(
        Provider::Github.parse(&h, &body),
        Err(PayloadError::MissingEvent {
            header: "X-GitHub-Event"
        })
    );
    assert_eq!(
        Provider::Bitbucket.parse(&h, &body),
        Err(PayloadError::MissingEvent {
            header: "X-Event-Key"
        })
    );
}

#[test]
fn a_push_of_another_kind_of_ref_is_ignored() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab", "push.json")).expect("json");
    v["ref"] = "refs/merge-requests/17/head".into();
    let got = parse(
        Provider::Gitlab,
        "Push Hook",
        &serde_json::to_vec(&v).expect("json"),
    );
    assert_eq!(
        got,
        Ok(capstan_forge::Event::Ignored {
            event: "push to refs/merge-requests/17/head".to_owned()
        })
    );
}
