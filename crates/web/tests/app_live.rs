//! The app page's live routes in-process, with the engine gone: signed out they send to
//! sign-in, their refusals are the API's JSON errors, and the app page still shows, saying
//! it cannot tell what runs. (Against a real engine and Chromium: the cli crate's
//! `runtime_logs` suite.)

mod support;

use axum::http::StatusCode;
use support::{form, harness, page, send, signed_in};

#[tokio::test]
async fn the_live_routes_need_a_session_and_say_why_they_refuse() {
    let h = harness().await;
    for path in [
        "/apps/site/usage",
        "/apps/site/logs/stream?tail=100",
        "/apps/site/containers",
    ] {
        let answer = send(&h, page(path, "")).await;
        assert_eq!(
            (answer.status, answer.location.as_str()),
            (StatusCode::SEE_OTHER, "/setup"),
            "{path} before anyone exists"
        );
    }
    let (cookie, csrf) = signed_in(&h).await;
    let (cookie, csrf) = (cookie.as_str(), csrf.as_str());
    for path in [
        "/apps/site/usage",
        "/apps/site/logs/stream",
        "/apps/site/containers",
    ] {
        let answer = send(&h, page(path, "capstan_session=not-a-session")).await;
        assert_eq!(
            (answer.status, answer.location.as_str()),
            (StatusCode::SEE_OTHER, "/login"),
            "{path} signed out"
        );
    }
    let app = [
        ("csrf", csrf),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.test"),
    ];
    assert_eq!(
        send(&h, form("/new", cookie, &app)).await.status,
        StatusCode::SEE_OTHER
    );

    let shown = send(&h, page("/apps/site", cookie)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.body.contains("id=\"running-problem\"")
            && shown.body.contains("Cannot tell what is running"),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("app_live.js"),
        "no live view without containers"
    );

    for (path, status, says) in [
        (
            "/apps/site/usage",
            StatusCode::SERVICE_UNAVAILABLE,
            "engine",
        ),
        (
            "/apps/site/logs/stream?tail=7",
            StatusCode::BAD_REQUEST,
            "tail",
        ),
        (
            "/apps/site/logs/stream?colour=red",
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            "/apps/site/containers",
            StatusCode::SERVICE_UNAVAILABLE,
            "engine",
        ),
        ("/apps/nope/usage", StatusCode::NOT_FOUND, "nope"),
        ("/apps/nope/containers", StatusCode::NOT_FOUND, "nope"),
        (
            "/apps/Bad_Name/logs/stream",
            StatusCode::BAD_REQUEST,
            "Bad_Name",
        ),
    ] {
        let answer = send(&h, page(path, cookie)).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{path}: {}", answer.body);
    }

    let script = send(&h, page("/static/app_live.js", "")).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.body.contains("EventSource") && !script.body.contains("innerHTML"));
}
