//! The panel with an engine that takes connections and never answers (each call would
//! wait out the client's 5 s timeout): the app page and the dashboard still show within
//! the panel's engine wait (2 s), saying what they could not tell; the certificates the
//! app page's script asks for answer from the session, as JSON. (Against the real engine,
//! Traefik and Chromium: the cli crate's `certificates` and `panel_forms` suites.)

mod support;

use axum::http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{api, form, harness, page, send, signed_in, token};

/// Well above the panel's 2 s engine wait, well below one engine call's 5 s timeout.
const PAGE_WAIT: Duration = Duration::from_millis(3_500);

#[tokio::test]
async fn pages_do_not_wait_on_a_hung_engine() {
    let h = harness().await;
    let (cookie, csrf) = signed_in(&h).await;
    let app = [
        ("csrf", csrf.as_str()),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.example.com"),
    ];
    assert_eq!(
        send(&h, form("/new", &cookie, &app)).await.status,
        StatusCode::SEE_OTHER
    );
    // The engine's socket now takes connections and never answers.
    let socket = h.dir.path().join("docker.sock");
    std::fs::remove_file(&socket).unwrap();
    let _hung = std::os::unix::net::UnixListener::bind(&socket).unwrap();

    let asked = Instant::now();
    let shown = send(&h, page("/apps/site", &cookie)).await;
    let took = asked.elapsed();
    assert_eq!(shown.status, StatusCode::OK);
    assert!(took < PAGE_WAIT, "the app page took {took:?}");
    assert!(
        shown
            .body
            .contains("Cannot tell what is running: the Docker engine did not answer within 2 s"),
        "{}",
        shown.body
    );
    assert!(
        shown.body.contains("data-domain=\"site.example.com\""),
        "the links still show (without the proxy's port)"
    );

    let asked = Instant::now();
    let dashboard = send(&h, page("/", &cookie)).await;
    let took = asked.elapsed();
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(took < PAGE_WAIT, "the dashboard took {took:?}");
    assert!(
        dashboard.body.contains("class=\"address\""),
        "{}",
        dashboard.body
    );
}

#[tokio::test]
async fn the_certificates_route_answers_the_session_as_json() {
    let h = harness().await;
    let answer = send(&h, page("/apps/site/certificates", "")).await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (StatusCode::SEE_OTHER, "/setup")
    );
    let (cookie, csrf) = signed_in(&h).await;
    let signed_out = send(
        &h,
        page("/apps/site/certificates", "capstan_session=not-a-session"),
    )
    .await;
    assert_eq!(
        (signed_out.status, signed_out.location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    let missing = send(&h, page("/apps/site/certificates", &cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert!(missing.json()["error"].as_str().unwrap().contains("site"));

    let app = [
        ("csrf", csrf.as_str()),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.example.com"),
    ];
    assert_eq!(
        send(&h, form("/new", &cookie, &app)).await.status,
        StatusCode::SEE_OTHER
    );
    let plain = send(&h, page("/apps/site/certificates", &cookie)).await;
    assert_eq!(
        plain.json(),
        serde_json::json!([{"domain": "site.example.com", "state": "http_only",
            "label": "HTTP only", "badge": "", "detail": ""}])
    );
    let admin = token(&h, "root", "admin").await;
    // HTTPS for a name no public CA issues for is refused (Let's Encrypt never would).
    let local = api(
        Method::PATCH,
        "/apps/site",
        Some(&admin),
        Some(serde_json::json!({"tls": true, "domains": ["site.localhost"]})),
    );
    let refused = send(&h, local).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("tls: site.localhost cannot get a certificate from Let's Encrypt"),
        "{}",
        refused.body
    );
    let with_tls = api(
        Method::PATCH,
        "/apps/site",
        Some(&admin),
        Some(serde_json::json!({"tls": true})),
    );
    let patched = send(&h, with_tls).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    // Not deployed: known without asking Traefik (whose engine is gone here).
    let shown = send(&h, page("/apps/site/certificates", &cookie)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(
        shown.json(),
        serde_json::json!([{"domain": "site.example.com", "state": "not_served",
            "label": "not deployed yet", "badge": "", "detail": ""}])
    );
}
