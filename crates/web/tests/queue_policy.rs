//! The queue policy through the whole router: a deploy past the app's hourly limit is 429
//! with `Retry-After` (an admin passes), a queued deployment is cancelled with 200, and a
//! cancel of one that ended is 409 naming its state.

mod support;

use axum::http::{header, Method, StatusCode};
use serde_json::json;
use support::{api, harness, send, token};
use tower::ServiceExt;

#[tokio::test]
async fn past_the_hourly_limit_a_deploy_is_429_with_retry_after_and_an_admin_passes() {
    let h = harness().await;
    let app = capstan_core::AppName::parse("web").unwrap();
    let spec = serde_json::from_value(
        json!({"source": {"image": "busybox:stable"}, "deploys_per_hour": 2}),
    )
    .unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let ci = token(&h, "ci", "deploy").await;
    let admin = token(&h, "root", "admin").await;
    for _ in 0..2 {
        let queued = send(
            &h,
            api(Method::POST, "/apps/web/deployments", Some(&ci), None),
        )
        .await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    }
    let response = h
        .router
        .clone()
        .oneshot(api(Method::POST, "/apps/web/restart", Some(&ci), None))
        .await
        .unwrap();
    // A restart with nothing live is refused before the limit is looked at (409).
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = h
        .router
        .clone()
        .oneshot(api(Method::POST, "/apps/web/deployments", Some(&ci), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&wait), "Retry-After: {wait}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let error = serde_json::from_slice::<serde_json::Value>(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("2 times an hour"), "{message}");
    let admin_deploy = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&admin), None),
    )
    .await;
    assert_eq!(
        admin_deploy.status,
        StatusCode::ACCEPTED,
        "{}",
        admin_deploy.body
    );
    // The limit is a setting: 0 lifts it.
    let lifted = send(
        &h,
        api(
            Method::PATCH,
            "/apps/web",
            Some(&admin),
            Some(json!({"deploys_per_hour": 0})),
        ),
    )
    .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.body);
    let queued = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&ci), None),
    )
    .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
}

#[tokio::test]
async fn a_queued_deployment_is_cancelled_and_a_finished_one_is_409() {
    let h = harness().await;
    let app = capstan_core::AppName::parse("web").unwrap();
    let spec = serde_json::from_value(json!({"source": {"image": "busybox:stable"}})).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let ci = token(&h, "ci", "deploy").await;
    let reader = token(&h, "reader", "read").await;
    let older = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&ci), None),
    )
    .await;
    let older = older.json()["id"].as_i64().unwrap();
    let newer = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&ci), None),
    )
    .await;
    let newer = newer.json()["id"].as_i64().unwrap();
    let shown = send(
        &h,
        api(
            Method::GET,
            &format!("/deployments/{older}"),
            Some(&ci),
            None,
        ),
    )
    .await;
    assert_eq!(shown.json()["state"], "superseded", "{}", shown.body);

    let path = format!("/deployments/{newer}/cancel");
    let denied = send(&h, api(Method::POST, &path, Some(&reader), None)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let cancelled = send(&h, api(Method::POST, &path, Some(&ci), None)).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.json()["state"], "cancelled");
    let again = send(&h, api(Method::POST, &path, Some(&ci), None)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("it is cancelled"),
        "{}",
        again.body
    );
    let superseded = send(
        &h,
        api(
            Method::POST,
            &format!("/deployments/{older}/cancel"),
            Some(&ci),
            None,
        ),
    )
    .await;
    assert_eq!(superseded.status, StatusCode::CONFLICT);
    assert!(
        superseded.body.contains("it is superseded"),
        "{}",
        superseded.body
    );
    let missing = send(
        &h,
        api(Method::POST, "/deployments/99999/cancel", Some(&ci), None),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_deployment_page_offers_cancel_while_queued_and_it_cancels() {
    let h = harness().await;
    let app = capstan_core::AppName::parse("web").unwrap();
    let spec = serde_json::from_value(json!({"source": {"image": "busybox:stable"}})).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let (cookie, csrf) = support::signed_in(&h).await;
    let ci = token(&h, "ci", "deploy").await;
    let queued = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&ci), None),
    )
    .await;
    let id = queued.json()["id"].as_i64().unwrap();
    let path = format!("/deployments/{id}");
    let shown = send(&h, support::page(&path, &cookie)).await;
    assert!(shown.body.contains(r#"id="cancel""#), "{}", shown.body);
    let cancel = format!("{path}/cancel");
    let done = send(
        &h,
        support::form(&cancel, &cookie, &[("csrf", csrf.as_str())]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location, path);
    let record = h.store.deployment(id).await.unwrap();
    assert_eq!(record.state, capstan_core::DeploymentState::Cancelled);
    assert!(record.error.unwrap().contains("user:ada"));
    let shown = send(&h, support::page(&path, &cookie)).await;
    assert!(!shown.body.contains(r#"id="cancel""#), "ended: no button");
}
