//! Signature checks of every forge: a correctly signed delivery verifies; a wrong secret,
//! a changed body, a missing or malformed header and an empty secret each fail the way
//! they should, and no error says the secret or the signature it was given.

mod common;

use capstan_forge::{Provider, SignatureError};
use common::{fixture, headers, hmac_hex, signed, SECRET};

/// One real-looking body per forge.
fn body_of(provider: Provider) -> (Vec<u8>, &'static str) {
    match provider {
        Provider::Github => (
            fixture("github", "push.with-new-branch.payload.json"),
            "push",
        ),
        Provider::Gitlab => (fixture("gitlab", "push.json"), "Push Hook"),
        Provider::Gitea => (fixture("gitea", "push.json"), "push"),
        Provider::Bitbucket => (fixture("bitbucket", "repo_push.json"), "repo:push"),
    }
}

fn signature_header(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "X-Hub-Signature-256",
        Provider::Gitlab => "X-Gitlab-Token",
        Provider::Gitea => "X-Gitea-Signature",
        Provider::Bitbucket => "X-Hub-Signature",
    }
}

#[test]
fn github_documented_example_verifies() {
    // The example in GitHub's "Validating webhook deliveries".
    let secret = b"It's a Secret to Everybody";
    let h = headers(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(
        Provider::Github.verify(secret, &h, b"Hello, World!"),
        Ok(())
    );
    assert_eq!(
        Provider::Github.verify(secret, &h, b"Hello, World?"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn correctly_signed_deliveries_verify() {
    for provider in Provider::ALL {
        let (body, event) = body_of(provider);
        let h = signed(provider, SECRET, event, &body);
        assert_eq!(provider.verify(SECRET, &h, &body), Ok(()), "{provider}");
    }
}

#[test]
fn a_wrong_secret_is_a_mismatch() {
    for provider in Provider::ALL {
        let (body, event) = body_of(provider);
        let h = signed(provider, b"another-secret", event, &body);
        assert_eq!(
            provider.verify(SECRET, &h, &body),
            Err(SignatureError::Mismatch),
            "{provider}"
        );
        // A secret that only starts the same is no better.
        let h = signed(provider, &SECRET[..SECRET.len() - 1], event, &body);
        assert_eq!(
            provider.verify(SECRET, &h, &body),
            Err(SignatureError::Mismatch),
            "{provider}"
        );
    }
}

#[test]
fn a_changed_body_byte_is_a_mismatch_where_the_body_is_signed() {
    for provider in [Provider::Github, Provider::Gitea, Provider::Bitbucket] {
        let (body, event) = body_of(provider);
        let h = signed(provider, SECRET, event, &body);
        for at in [0, body.len() / 2, body.len() - 1] {
            let mut changed = body.clone();
            changed[at] ^= 0x01;
            assert_eq!(
                provider.verify(SECRET, &h, &changed),
                Err(SignatureError::Mismatch),
                "{provider} byte {at}"
            );
        }
    }
    // GitLab sends the shared token, not a signature of the body: the check is the
    // token's, whatever the body says (transport security is HTTPS's).
    let (body, event) = body_of(Provider::Gitlab);
    let h = signed(Provider::Gitlab, SECRET, event, &body);
    assert_eq!(Provider::Gitlab.verify(SECRET, &h, b"{}"), Ok(()));
}

#[test]
fn a_missing_header_is_named() {
    for provider in Provider::ALL {
        let (body, event) = body_of(provider);
        let mut h = signed(provider, SECRET, event, &body);
        let header = signature_header(provider);
        assert!(h.remove(header).is_some());
        assert_eq!(
            provider.verify(SECRET, &h, &body),
            Err(SignatureError::Missing { header }),
            "{provider}"
        );
    }
}

#[test]
fn an_empty_secret_never_verifies() {
    for provider in Provider::ALL {
        let (body, event) = body_of(provider);
        // Even a delivery "signed" with the empty key, or carrying no signature at all.
        let mut h = signed(provider, b"", event, &body);
        if provider == Provider::Gitlab {
            h.insert("X-Gitlab-Token", http::HeaderValue::from_static(""));
        }
        assert_eq!(
            provider.verify(b"", &h, &body),
            Err(SignatureError::EmptySecret),
            "{provider}"
        );
        h.remove(signature_header(provider));
        assert_eq!(
            provider.verify(b"", &h, &body),
            Err(SignatureError::EmptySecret),
            "{provider}"
        );
    }
}

#[test]
fn malformed_headers_say_so() {
    let body = b"{}";
    let digest = hmac_hex(SECRET, body);
    let cases: &[(Provider, &str, String)] = &[
        (Provider::Github, "X-Hub-Signature-256", digest.clone()),
        (
            Provider::Github,
            "X-Hub-Signature-256",
            format!("sha1={digest}"),
        ),
        (
            Provider::Github,
            "X-Hub-Signature-256",
            format!("sha256={}", &digest[..40]),
        ),
        (
            Provider::Github,
            "X-Hub-Signature-256",
            format!("sha256={}zz", &digest[..62]),
        ),
        (
            Provider::Github,
            "X-Hub-Signature-256",
            "sha256=".to_owned(),
        ),
        (Provider::Bitbucket, "X-Hub-Signature", digest.clone()),
        (
            Provider::Bitbucket,
            "X-Hub-Signature",
            format!("sha512={digest}"),
        ),
        (
            Provider::Gitea,
            "X-Gitea-Signature",
            format!("sha256={digest}"),
        ),
        (Provider::Gitea, "X-Gitea-Signature", "not-hex".to_owned()),
    ];
    for (provider, header, value) in cases {
        let h = headers(&[(header, value)]);
        let got = provider.verify(SECRET, &h, body);
        assert!(
            matches!(got, Err(SignatureError::Malformed { header: named, .. }) if named == *header),
            "{provider} {value:?}: {got:?}"
        );
    }
    let h = headers(&[("X-Gitlab-Token", "")]);
    assert!(matches!(
        Provider::Gitlab.verify(SECRET, &h, body),
        Err(SignatureError::Malformed {
            header: "X-Gitlab-Token",
            ..
        })
    ));
    let mut h = http::HeaderMap::new();
    h.insert(
        "X-Hub-Signature-256",
        http::HeaderValue::from_bytes(b"sha256=\xff\xfe").expect("opaque bytes"),
    );
    assert!(matches!(
        Provider::Github.verify(SECRET, &h, body),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn hex_case_and_prefix_case_do_not_matter() {
    let body = b"{\"zen\":\"x\"}";
    let upper = hmac_hex(SECRET, body).to_uppercase();
    let h = headers(&[("X-Hub-Signature-256", &format!("SHA256={upper}"))]);
    assert_eq!(Provider::Github.verify(SECRET, &h, body), Ok(()));
    let h = headers(&[("X-Gitea-Signature", &upper)]);
    assert_eq!(Provider::Gitea.verify(SECRET, &h, body), Ok(()));
}

#[test]
fn forgejo_headers_alone_are_read() {
    let body = fixture("gitea", "push.json");
    let h = headers(&[
        ("X-Forgejo-Event", "push"),
        ("X-Forgejo-Delivery", "0c1d2e3f-aaaa-4bbb-8ccc-ddddeeeeffff"),
        ("X-Forgejo-Signature", &hmac_hex(SECRET, &body)),
    ]);
    assert_eq!(Provider::Gitea.verify(SECRET, &h, &body), Ok(()));
    assert_eq!(Provider::Gitea.event_name(&h).as_deref(), Some("push"));
    assert_eq!(
        Provider::Gitea.delivery_id(&h).as_deref(),
        Some("0c1d2e3f-aaaa-4bbb-8ccc-ddddeeeeffff")
    );
    let wrong = headers(&[("X-Forgejo-Signature", &hmac_hex(b"other", &body))]);
    assert_eq!(
        Provider::Gitea.verify(SECRET, &wrong, &body),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn errors_never_carry_the_secret_or_the_signature() {
    let body = b"{\"ref\":\"refs/heads/main\"}";
    let given = format!("sha256={}", hmac_hex(b"guess", body));
    let attempts = [
        (
            Provider::Github,
            headers(&[("X-Hub-Signature-256", given.as_str())]),
        ),
        (
            Provider::Github,
            headers(&[("X-Hub-Signature-256", "sha256=s3cret-for-tests-only")]),
        ),
        (
            Provider::Gitlab,
            headers(&[("X-Gitlab-Token", "s3cret-for-tests-onlX")]),
        ),
    ];
    for (provider, h) in attempts {
        let err = provider.verify(SECRET, &h, body).expect_err("must fail");
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains(&given[7..]), "{text}");
        assert!(!text.contains("refs/heads"), "{text}");
    }
}

#[test]
fn delivery_ids_and_event_names_come_from_each_forges_headers() {
    for provider in Provider::ALL {
        let (body, event) = body_of(provider);
        let h = signed(provider, SECRET, event, &body);
        assert_eq!(
            provider.event_name(&h).as_deref(),
            Some(event),
            "{provider}"
        );
        assert!(provider.delivery_id(&h).is_some(), "{provider}");
        assert_eq!(
            provider.delivery_id(&http::HeaderMap::new()),
            None,
            "{provider}"
        );
    }
    // GitLab's idempotency key, the same on every retry, wins over the event UUID.
    let h = headers(&[
        ("X-Gitlab-Event-UUID", "event-uuid"),
        ("Idempotency-Key", "retry-stable-key"),
    ]);
    assert_eq!(
        Provider::Gitlab.delivery_id(&h).as_deref(),
        Some("retry-stable-key")
    );
    let long = "a".repeat(129);
    let h = headers(&[("X-GitHub-Delivery", long.as_str())]);
    assert_eq!(Provider::Github.delivery_id(&h), None);
    let h = headers(&[("X-GitHub-Delivery", "  ")]);
    assert_eq!(Provider::Github.delivery_id(&h), None);
}
