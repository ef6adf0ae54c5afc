//! Test helpers: fixtures read from `tests/fixtures/<provider>/`, and deliveries signed
//! the way each forge signs them (HMAC computed here, independently of the crate).

#![allow(dead_code)]

use std::path::PathBuf;

use capstan_forge::{Event, Provider, PullRequest, Push};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

pub const SECRET: &[u8] = b"s3cret-for-tests-only";

pub fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        provider,
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

/// The headers a forge sends with `body` for `event`, signed with `secret`.
pub fn signed(provider: Provider, secret: &[u8], event: &str, body: &[u8]) -> HeaderMap {
    let digest = hmac_hex(secret, body);
    let token = String::from_utf8(secret.to_vec()).expect("text secret");
    match provider {
        Provider::Github => headers(&[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-Hub-Signature-256", &format!("sha256={digest}")),
        ]),
        Provider::Gitlab => headers(&[
            ("X-Gitlab-Event", event),
            (
                "X-Gitlab-Event-UUID",
                "13792a34-cac6-4fda-95a8-c58e00a3954e",
            ),
            ("X-Gitlab-Token", &token),
        ]),
        Provider::Gitea => headers(&[
            ("X-Gitea-Event", event),
            ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
            ("X-Gitea-Signature", &digest),
        ]),
        Provider::Bitbucket => headers(&[
            ("X-Event-Key", event),
            ("X-Request-UUID", "9a1d7d2c-33b1-4e0b-a0f4-5c2e9d4d0b11"),
            ("X-Hook-UUID", "0b3c5e8a-1111-4a4a-9c9c-abcdefabcdef"),
            ("X-Hub-Signature", &format!("sha256={digest}")),
        ]),
    }
}

/// A fixture delivered signed, verified and parsed as the web layer would.
pub fn deliver(provider: Provider, dir: &str, name: &str, event: &str) -> Event {
    let body = fixture(dir, name);
    let headers = signed(provider, SECRET, event, &body);
    provider
        .verify(SECRET, &headers, &body)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    provider
        .parse(&headers, &body)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn expect_push(event: Event) -> Push {
    match event {
        Event::Push(push) => push,
        other => panic!("expected a push, got {other:?}"),
    }
}

pub fn expect_pr(event: Event) -> PullRequest {
    match event {
        Event::PullRequest(pr) => pr,
        other => panic!("expected a pull request, got {other:?}"),
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
