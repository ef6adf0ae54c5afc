//! The router in-process, without a Docker engine (the engine handle points at a socket
//! nobody listens on): bearer auth and scopes, validation messages, the panel's setup,
//! sessions, anti-forgery check and roles, and a 503 (not a 500) when an action needs the
//! engine. Requests go through `tower::ServiceExt::oneshot`.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{api, form, form_token, harness, page, pre_session_form, send, sign_in, token};

#[tokio::test]
async fn tokens_and_scopes_guard_every_endpoint_and_bad_input_is_named() {
    let h = harness().await;
    let (read, write, admin) = (
        token(&h, "r", "read").await,
        token(&h, "w", "write").await,
        token(&h, "a", "admin").await,
    );
    assert_eq!(
        send(&h, api(Method::GET, "/health", None, None))
            .await
            .status,
        StatusCode::OK
    );
    let doc = send(&h, api(Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(doc.status, StatusCode::OK);
    let missing = send(&h, api(Method::GET, "/apps", None, None)).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("missing token"));
    let wrong = send(&h, api(Method::GET, "/apps", Some("cap_nope"), None)).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&h, api(Method::GET, "/apps", Some(&read), None))
            .await
            .status,
        StatusCode::OK
    );

    let app =
        json!({"name": "web", "source": {"image": "busybox:stable"}, "domains": ["web.test"]});
    let narrow = send(
        &h,
        api(Method::POST, "/apps", Some(&read), Some(app.clone())),
    )
    .await;
    assert_eq!(narrow.status, StatusCode::FORBIDDEN);
    assert!(narrow.json()["error"]
        .as_str()
        .unwrap()
        .contains("write scope"));
    let created = send(&h, api(Method::POST, "/apps", Some(&write), Some(app))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let no_deploy = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&write), None),
    )
    .await;
    assert_eq!(
        no_deploy.status,
        StatusCode::FORBIDDEN,
        "write does not ship code"
    );
    assert_eq!(
        send(&h, api(Method::GET, "/tokens", Some(&write), None))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&h, api(Method::GET, "/users", Some(&admin), None))
            .await
            .status,
        StatusCode::OK
    );

    for (body, says) in [
        (
            json!({"name": "Bad Name", "source": {"image": "x"}}),
            "name",
        ),
        (
            json!({"name": "ok", "source": {"image": "x"}, "replicas": 0}),
            "replicas",
        ),
        (
            json!({"name": "ok", "source": {"image": "x"}, "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "ok", "source": {"image": "x"}, "domains": ["web.test"]}),
            "web.test",
        ),
    ] {
        let answer = send(&h, api(Method::POST, "/apps", Some(&admin), Some(body))).await;
        assert!(
            answer.status.is_client_error(),
            "{} {}",
            answer.status,
            answer.body
        );
        assert!(
            answer.json()["error"].as_str().unwrap().contains(says),
            "{}",
            answer.body
        );
    }

    // Without an engine: what needs it is 503 with a message; the status page still loads.
    let gone = send(&h, api(Method::DELETE, "/apps/web", Some(&admin), None)).await;
    assert_eq!(
        gone.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        gone.body
    );
    assert!(!gone.json()["error"].as_str().unwrap().is_empty());
    let server = send(&h, api(Method::GET, "/server", Some(&read), None)).await;
    assert_eq!(server.status, StatusCode::OK);
    assert_eq!(server.json()["engine"]["reachable"], false);
    let queued = send(
        &h,
        api(Method::POST, "/apps/web/deployments", Some(&admin), None),
    )
    .await;
    assert_eq!(
        queued.status,
        StatusCode::ACCEPTED,
        "queueing needs no engine: {}",
        queued.body
    );
}

#[tokio::test]
async fn the_panel_needs_setup_a_session_the_form_token_and_the_right_role() {
    let h = harness().await;
    let first = send(&h, page("/", "")).await;
    assert_eq!(
        (first.status, first.location.as_str()),
        (StatusCode::SEE_OTHER, "/setup")
    );
    let setup = |code: &'static str| {
        let h = &h;
        async move {
            let fields = [
                ("code", code),
                ("name", "ada"),
                ("password", "long enough pw"),
                ("confirm", "long enough pw"),
            ];
            pre_session_form(h, "/setup", &fields).await
        }
    };
    let unforged = form(
        "/setup",
        "",
        &[
            ("code", "the-code"),
            ("name", "ada"),
            ("password", "long enough pw"),
            ("confirm", "long enough pw"),
        ],
    );
    assert_eq!(
        send(&h, unforged).await.status,
        StatusCode::FORBIDDEN,
        "setup needs its form token"
    );
    assert_eq!(
        send(&h, setup("guess").await).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let done = send(&h, setup("the-code").await).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(!h.dir.path().join("setup-code").exists());
    let cookie = done.cookie.split(';').next().unwrap().to_string();
    let dashboard = send(&h, page("/", &cookie)).await;
    assert_eq!(dashboard.status, StatusCode::OK);
    let csrf = form_token(&dashboard.body);
    let csrf = csrf.as_str();

    let app = [
        ("csrf", csrf),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.test"),
    ];
    let forged = send(&h, form("/new", &cookie, &app[1..])).await;
    assert_eq!(
        forged.status,
        StatusCode::FORBIDDEN,
        "no anti-forgery token"
    );
    assert!(forged.body.contains("anti-forgery"));
    let stale = send(
        &h,
        form(
            "/new",
            &cookie,
            &[&[("csrf", "stale")][..], &app[1..]].concat(),
        ),
    )
    .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    let created = send(&h, form("/new", &cookie, &app)).await;
    assert_eq!(
        (created.status, created.location.as_str()),
        (StatusCode::SEE_OTHER, "/apps/site/plan")
    );

    // Settings: each wrong field named, nothing saved.
    let bad = send(
        &h,
        form(
            "/apps/site/settings",
            &cookie,
            &[
                ("csrf", csrf),
                ("source_kind", "image"),
                ("image", "busybox:stable"),
                ("port", "eighty"),
                ("replicas", "many"),
                ("health_interval", "1"),
                ("health_timeout", "2"),
                ("health_retries", "3"),
                ("health_start_period", "0"),
                ("health_deadline", "60"),
                ("build_type", "auto"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("data-field=\"port\"") && bad.body.contains("data-field=\"replicas\"")
    );
    let name = capstan_core::AppName::parse("site").unwrap();
    assert_eq!(h.store.app(&name).await.unwrap().spec.replicas, 1);

    // A viewer reads but cannot deploy; a wrong password is refused.
    let hash = capstan_web::accounts::PasswordGate::default()
        .hash("viewer password")
        .await
        .unwrap();
    h.store.add_user("vic", &hash, "viewer").await.unwrap();
    let wrong = sign_in(&h, "vic", "nope nope nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let signed = sign_in(&h, "vic", "viewer password").await;
    let viewer = signed.cookie.split(';').next().unwrap().to_string();
    let their_page = send(&h, page("/apps/site", &viewer)).await;
    assert_eq!(their_page.status, StatusCode::OK);
    assert!(!their_page.body.contains("id=\"deploy\""));
    let their_csrf = form_token(&their_page.body);
    let their_csrf = their_csrf.as_str();
    let refused = send(
        &h,
        form("/apps/site/deploy", &viewer, &[("csrf", their_csrf)]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("viewer"));
    // Maintenance mode from the panel: a viewer may not; a wrong Retry-After changes
    // nothing; before a first deployment the card is not offered and turning it on is
    // refused beside it (there is no site yet). Once on, the page and dashboard say so and
    // an admin ends it.
    let refused = send(
        &h,
        form(
            "/apps/site/maintenance",
            &viewer,
            &[("csrf", their_csrf), ("switch", "on")],
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = send(
        &h,
        form(
            "/apps/site/maintenance",
            &cookie,
            &[("csrf", csrf), ("switch", "on"), ("retry_after", "soon")],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(
        bad.body.contains("data-field=\"retry_after\"") && bad.body.contains("id=\"maintenance\""),
        "the problem is beside its field on the app page: {}",
        bad.body
    );
    let app_page = send(&h, page("/apps/site", &cookie)).await;
    assert!(
        !app_page.body.contains("id=\"maintenance\"") && !app_page.body.contains("id=\"restart\""),
        "nothing deployed: no Maintenance and no Restart offered"
    );
    let early = send(
        &h,
        form(
            "/apps/site/maintenance",
            &cookie,
            &[("csrf", csrf), ("switch", "on"), ("retry_after", "60")],
        ),
    )
    .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert!(
        text_after(&early.body, "id=\"maintenance-error\"").contains("nothing is deployed yet"),
        "{}",
        early.body
    );
    assert!(h.store.maintenance(&name).await.unwrap().is_none());
    let page_on = capstan_core::MaintenancePage {
        message: "Back <soon>".into(),
        retry_after_secs: 60,
    };
    h.store
        .set_maintenance(&name, &page_on, "user:ada")
        .await
        .unwrap();
    let shown = send(&h, page("/apps/site", &cookie)).await;
    let card = text_after(&shown.body, "id=\"maintenance\"");
    assert!(
        card.contains("Back &#60;soon&#62;") && card.contains("id=\"maintenance-off\""),
        "{}",
        &card[..card.len().min(800)]
    );
    let dashboard = send(&h, page("/", &cookie)).await;
    assert!(
        dashboard.body.contains(">maintenance</span>"),
        "the dashboard marks it"
    );
    let off = send(
        &h,
        form(
            "/apps/site/maintenance",
            &cookie,
            &[("csrf", csrf), ("switch", "off")],
        ),
    )
    .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    assert!(h.store.maintenance(&name).await.unwrap().is_none());

    let admin_deploy = send(&h, form("/apps/site/deploy", &cookie, &[("csrf", csrf)])).await;
    assert_eq!(admin_deploy.status, StatusCode::SEE_OTHER);
    assert!(admin_deploy.location.starts_with("/deployments/"));
}

/// The page from the first `marker` on (or all of it when absent).
fn text_after<'a>(body: &'a str, marker: &str) -> &'a str {
    &body[body.find(marker).unwrap_or(0)..]
}
