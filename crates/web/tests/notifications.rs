//! `/api/v1/apps/{app}/notifications` and `/api/v1/notifications*` in-process: an app's
//! channels need the deploy scope, global ones the admin scope (also through
//! `/notifications/{id}`); a URL that is not http(s) is a 422 naming `url`; no answer
//! repeats a URL's path or token; a webhook's signing secret is shown once; the test
//! button sends a signed message to a local sink now and says when it did not arrive;
//! deliveries are listed; DELETE is 204 then 404.

mod support;

use axum::http::{HeaderMap, Method, StatusCode};
use capstan_core::{AppName, AppSpec};
use serde_json::json;
use std::sync::{Arc, Mutex};
use support::{api, harness, send, token};

/// A local HTTP sink: the `X-Capstan-Signature` header of each request it got.
async fn sink() -> (Arc<Mutex<Vec<String>>>, String) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |headers: HeaderMap| async move {
            let signature = headers
                .get("x-capstan-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push(signature);
            StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, base)
}

#[tokio::test]
async fn channels_are_scoped_checked_masked_tested_and_removed() {
    let h = harness().await;
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap();
    h.store
        .create_app(&AppName::parse("shop").unwrap(), &spec)
        .await
        .unwrap();
    let (admin, deploy, read) = (
        token(&h, "a", "admin").await,
        token(&h, "d", "deploy").await,
        token(&h, "r", "read").await,
    );
    let slack = json!({"kind": "slack", "url": "https://hooks.slack.com/services/T0/B0/tok3n-x"});
    let path = "/apps/shop/notifications";

    let narrow = send(&h, api(Method::GET, path, Some(&read), None)).await;
    assert_eq!(narrow.status, StatusCode::FORBIDDEN, "{}", narrow.body);
    let global = send(
        &h,
        api(
            Method::POST,
            "/notifications",
            Some(&deploy),
            Some(slack.clone()),
        ),
    )
    .await;
    assert_eq!(global.status, StatusCode::FORBIDDEN, "{}", global.body);

    let bad = json!({"kind": "discord", "url": "ftp://example.com/hook"});
    let refused = send(&h, api(Method::POST, path, Some(&deploy), Some(bad))).await;
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
            .starts_with("url:"),
        "{}",
        refused.body
    );
    let typo = json!({"kind": "slack", "url": 5});
    let refused = send(&h, api(Method::POST, path, Some(&deploy), Some(typo))).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );

    let added = send(
        &h,
        api(Method::POST, path, Some(&deploy), Some(slack.clone())),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.json()["config"]["url"], "https://hooks.slack.com/…");
    assert_eq!(
        added.json()["events"],
        json!(["deployment.live", "deployment.failed"])
    );
    let listed = send(&h, api(Method::GET, path, Some(&deploy), None)).await;
    assert_eq!(
        listed.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.body
    );
    for answer in [&added, &listed] {
        assert!(
            !answer.body.contains("tok3n") && !answer.body.contains("/services"),
            "{}",
            answer.body
        );
    }

    let (got, base) = sink().await;
    let hook = json!({"kind": "webhook", "url": format!("{base}/in?token=s3cr3t")});
    let global = send(
        &h,
        api(Method::POST, "/notifications", Some(&admin), Some(hook)),
    )
    .await;
    assert_eq!(global.status, StatusCode::CREATED, "{}", global.body);
    let secret = global.json()["signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let id = global.json()["id"].as_i64().unwrap();
    let shown = send(&h, api(Method::GET, "/notifications", Some(&admin), None)).await;
    assert!(
        !shown.body.contains(&secret) && !shown.body.contains("s3cr3t"),
        "{}",
        shown.body
    );
    let test_path = format!("/notifications/{id}/test");
    let as_deploy = send(&h, api(Method::POST, &test_path, Some(&deploy), None)).await;
    assert_eq!(
        as_deploy.status,
        StatusCode::FORBIDDEN,
        "a global channel: {}",
        as_deploy.body
    );
    let tested = send(&h, api(Method::POST, &test_path, Some(&admin), None)).await;
    assert_eq!(
        tested.json(),
        json!({"delivered": true, "error": null}),
        "{}",
        tested.body
    );
    let signatures = got.lock().unwrap().clone();
    assert_eq!(signatures.len(), 1);
    assert!(
        signatures[0].starts_with("t=") && signatures[0].contains(",v1="),
        "{signatures:?}"
    );

    let app_id = added.json()["id"].as_i64().unwrap();
    let dead = json!({"kind": "webhook", "url": "http://127.0.0.1:9/closed/path"});
    let dead = send(&h, api(Method::POST, path, Some(&deploy), Some(dead))).await;
    let dead_id = dead.json()["id"].as_i64().unwrap();
    let failed = send(
        &h,
        api(
            Method::POST,
            &format!("/notifications/{dead_id}/test"),
            Some(&deploy),
            None,
        ),
    )
    .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.body);
    assert_eq!(failed.json()["delivered"], false, "{}", failed.body);
    assert!(!failed.body.contains("closed/path"), "{}", failed.body);

    let deliveries = format!("/notifications/{app_id}/deliveries");
    let rows = send(&h, api(Method::GET, &deliveries, Some(&deploy), None)).await;
    assert_eq!(
        (rows.status, rows.json()),
        (StatusCode::OK, json!([])),
        "{}",
        rows.body
    );
    let bad_id = send(
        &h,
        api(
            Method::GET,
            "/notifications/abc/deliveries",
            Some(&deploy),
            None,
        ),
    )
    .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{}", bad_id.body);

    let gone = format!("/notifications/{app_id}");
    let removed = send(&h, api(Method::DELETE, &gone, Some(&deploy), None)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let again = send(&h, api(Method::DELETE, &gone, Some(&deploy), None)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    let missing_app = send(
        &h,
        api(Method::GET, "/apps/nope/notifications", Some(&deploy), None),
    )
    .await;
    assert_eq!(
        missing_app.status,
        StatusCode::NOT_FOUND,
        "{}",
        missing_app.body
    );
}

#[tokio::test]
async fn the_app_page_lists_channels_and_its_test_button_reports_once() {
    let h = harness().await;
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap();
    h.store
        .create_app(&AppName::parse("shop").unwrap(), &spec)
        .await
        .unwrap();
    let (cookie, csrf) = support::signed_in(&h).await;
    let empty = send(&h, support::page("/apps/shop", &cookie)).await;
    assert!(empty.body.contains("notifications-none"), "{}", empty.body);

    let deploy = token(&h, "d", "deploy").await;
    let (got, base) = sink().await;
    let hook = json!({"kind": "webhook", "url": format!("{base}/in/t0k3n")});
    let path = "/apps/shop/notifications";
    let added = send(&h, api(Method::POST, path, Some(&deploy), Some(hook))).await;
    let id = added.json()["id"].as_i64().unwrap();
    let shown = send(&h, support::page("/apps/shop", &cookie)).await;
    assert!(
        shown.body.contains(&format!("data-channel=\"{id}\"")),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains("t0k3n"), "the URL is masked");

    let test = format!("/apps/shop/notifications/{id}/test");
    let forged = send(&h, support::form(&test, &cookie, &[("csrf", "nope")])).await;
    assert!(forged.status.is_client_error(), "{}", forged.status);
    assert!(
        got.lock().unwrap().is_empty(),
        "a forged post sends nothing"
    );
    let posted = send(&h, support::form(&test, &cookie, &[("csrf", &csrf)])).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    assert_eq!(got.lock().unwrap().len(), 1);
    let after = send(&h, support::page("/apps/shop", &cookie)).await;
    assert!(
        after.body.contains("test message was delivered"),
        "{}",
        after.body
    );
    let other = send(
        &h,
        support::form(
            "/apps/nope/notifications/1/test",
            &cookie,
            &[("csrf", &csrf)],
        ),
    )
    .await;
    assert!(other.status.is_client_error(), "{}", other.status);
}
