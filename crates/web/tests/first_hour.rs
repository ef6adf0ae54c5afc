//! Small things a new user meets in the first hour, in-process: the panel's icon is served
//! and linked from every page, the apps list names a last deployment that is the live one
//! (not "—"), the app page offers "Run a command" only to a role that may deploy, and the
//! delete box's placeholder does not look like the app's name already typed.

mod support;

use axum::http::StatusCode;
use capstan_core::{AppName, AppSpec};
use support::{go_live, harness, page, send, sign_in, signed_in};

#[tokio::test]
async fn icon_live_last_deployment_run_card_and_delete_placeholder() {
    let h = harness().await;
    let (admin, _) = signed_in(&h).await;
    let hash = capstan_web::accounts::PasswordGate::default()
        .hash("viewer password")
        .await
        .unwrap();
    h.store.add_user("vic", &hash, "viewer").await.unwrap();
    let signed = sign_in(&h, "vic", "viewer password").await;
    let viewer = signed.cookie.split(';').next().unwrap().to_string();

    let icon = send(&h, page("/favicon.svg", "")).await;
    assert_eq!(icon.status, StatusCode::OK);
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    let legacy = send(&h, page("/favicon.ico", "")).await;
    assert_eq!(
        legacy.status,
        StatusCode::OK,
        "no 404 for a browser that asks anyway"
    );

    let app = AppName::parse("demo").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"image":"busybox:stable"}}"#).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let listed = send(&h, page("/", &admin)).await;
    assert!(listed
        .body
        .contains(r#"<link rel="icon" href="/favicon.svg""#));
    assert!(listed.body.contains("none yet"), "{}", listed.body);
    let live = go_live(&h.store, &app, &spec, "services: {}\n").await;
    let listed = send(&h, page("/", &admin)).await;
    assert!(
        listed.body.contains(&format!(
            r#"<a href="/deployments/{live}" class="last-is-live">#{live}</a> <span class="muted">live</span>"#
        )),
        "{}",
        listed.body
    );
    assert!(!listed.body.contains("none yet"));

    let as_admin = send(&h, page("/apps/demo", &admin)).await;
    assert_eq!(as_admin.status, StatusCode::OK, "{}", as_admin.body);
    assert!(as_admin.body.contains("<h2>Run a command</h2>"));
    assert!(as_admin
        .body
        .contains(r#"placeholder="type the app's name""#));
    assert!(!as_admin.body.contains(r#"placeholder="demo""#));
    let as_viewer = send(&h, page("/apps/demo", &viewer)).await;
    assert_eq!(as_viewer.status, StatusCode::OK, "{}", as_viewer.body);
    assert!(
        !as_viewer.body.contains("Run a command"),
        "{}",
        as_viewer.body
    );
}
