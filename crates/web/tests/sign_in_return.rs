//! Signing in from a deep link comes back to it: a page the browser navigated to while
//! signed out sends it to `/login?next=<that page>`, and signing in goes on there — only
//! ever to a path of this site (never `//host`, `/\host`, a scheme), whatever `next` says.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use support::{harness, page, pre_session_form, send, signed_in, Harness};

const PASSWORD: &str = "long enough pw";

/// A signed-out request of `path` as a browser makes it (`mode`: `navigate` for a page,
/// `cors`/`same-origin` for a script's fetch).
fn browsing(path: &str, mode: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("sec-fetch-mode", mode)
        .body(Body::empty())
        .unwrap()
}

async fn sign_in_going_to(h: &Harness, next: &str, password: &str) -> support::Answer {
    let fields = [("name", "ada"), ("password", password), ("next", next)];
    send(h, pre_session_form(h, "/login", &fields).await).await
}

#[tokio::test]
async fn a_deep_link_survives_signing_in_and_only_local_paths_are_followed() {
    let h = harness().await;
    signed_in(&h).await;

    let to_login = send(&h, browsing("/apps/demo/settings?tab=env", "navigate")).await;
    assert_eq!(to_login.status, StatusCode::SEE_OTHER);
    assert_eq!(
        to_login.location,
        "/login?next=%2Fapps%2Fdemo%2Fsettings%3Ftab%3Denv"
    );
    // A script's fetch of a page's part, and the apps list itself, carry nothing.
    let fetched = send(&h, browsing("/apps/demo/usage", "cors")).await;
    assert_eq!(fetched.location, "/login");
    assert_eq!(send(&h, browsing("/", "navigate")).await.location, "/login");

    let form = send(&h, page(&to_login.location, "")).await;
    assert!(
        form.body
            .contains(r#"name="next" value="/apps/demo/settings?tab=env""#),
        "{}",
        form.body
    );
    let refused = sign_in_going_to(&h, "/apps/demo/settings", "wrong password!").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Wrong user name or password."));
    assert!(
        refused
            .body
            .contains(r#"name="next" value="/apps/demo/settings""#),
        "a refused sign-in still goes on there: {}",
        refused.body
    );
    let signed = sign_in_going_to(&h, "/apps/demo/settings?tab=env", PASSWORD).await;
    assert_eq!(
        (signed.status, signed.location.as_str()),
        (StatusCode::SEE_OTHER, "/apps/demo/settings?tab=env")
    );

    for elsewhere in [
        "//evil.example/",
        "/\\evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
    ] {
        let signed = sign_in_going_to(&h, elsewhere, PASSWORD).await;
        assert_eq!(
            (signed.status, signed.location.as_str()),
            (StatusCode::SEE_OTHER, "/"),
            "{elsewhere}"
        );
        let encoded: String = elsewhere.bytes().map(|b| format!("%{b:02X}")).collect();
        let form = send(&h, page(&format!("/login?next={encoded}"), "")).await;
        assert!(
            !form.body.contains(r#"name="next""#),
            "{elsewhere}: {}",
            form.body
        );
    }
}
