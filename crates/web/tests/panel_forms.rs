//! The panel's forms in-process (no Docker engine): every successful post answers 303
//! (post/redirect/get) and the page it leads to confirms it once; a new token's secret is
//! on that page once and never in the URL; setup keeps a code that matched. (Forms with
//! problems: `form_problems.rs`.)

mod support;

use axum::http::StatusCode;
use support::{
    form, form_token, harness, page, pre_session_form, send, sign_in, signed_in, Harness,
};

/// Posts a form; asserts the 303 and where it leads, then returns the page there, read
/// twice: the first with the confirmation, the second without.
async fn post_then_get(
    h: &Harness,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
    to: &str,
) -> (String, String) {
    let answer = send(h, form(path, cookie, fields)).await;
    assert_eq!(
        (answer.status, answer.location.as_str()),
        (StatusCode::SEE_OTHER, to),
        "{path}: {}",
        answer.body
    );
    let target = to.split('#').next().unwrap_or(to);
    let first = send(h, page(target, cookie)).await;
    assert_eq!(first.status, StatusCode::OK, "{target}: {}", first.body);
    let again = send(h, page(target, cookie)).await;
    (first.body, again.body)
}

/// The text of the element with `id` (up to its first tag end).
fn text_of(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = body.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    body[start..]
        .split('<')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The change log names exactly what a save changed, and nothing for a save that changed
/// nothing; "Save and deploy" saves, then queues a deployment and leads to its page; with
/// a problem it saves nothing and deploys nothing.
async fn save_and_deploy(h: &Harness, cookie: &str, saved: &[(&str, &str)]) {
    let name = capstan_core::AppName::parse("site").unwrap();
    let changes = |body: &str| body.matches("settings changed").count();
    let before = send(h, page("/apps/site", cookie)).await.body;
    assert!(
        before.contains("settings changed: <span class=\"detail\">replicas 1 → 2</span>"),
        "exactly the field that changed: {before}"
    );
    let queued_before = h.store.deployments_of(&name, 100).await.unwrap().len();
    let mut fields = saved.to_vec();
    fields.retain(|(k, _)| *k != "replicas" && *k != "health_path");
    fields.extend([
        ("replicas", "3"),
        ("health_path", "/healthz"),
        ("port", "http"),
    ]);
    let bad = send(h, form("/apps/site/settings/deploy", cookie, &fields)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("data-field=\"port\"") && bad.body.contains("id=\"not-saved\""));
    assert_eq!(
        h.store.app(&name).await.unwrap().spec.replicas,
        2,
        "nothing saved"
    );
    assert_eq!(
        h.store.deployments_of(&name, 100).await.unwrap().len(),
        queued_before,
        "nothing deployed"
    );
    fields.retain(|(k, _)| *k != "port");
    let answer = send(h, form("/apps/site/settings/deploy", cookie, &fields)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert!(
        answer.location.starts_with("/deployments/"),
        "{}",
        answer.location
    );
    let shown = send(h, page(&answer.location, cookie)).await.body;
    assert!(shown.contains("Settings saved; deployment #"), "{shown}");
    assert_eq!(h.store.app(&name).await.unwrap().spec.replicas, 3);
    assert_eq!(
        h.store.deployments_of(&name, 100).await.unwrap().len(),
        queued_before + 1
    );
    let after = send(h, page("/apps/site", cookie)).await.body;
    assert!(
        after.contains("settings changed: <span class=\"detail\">health path / → /healthz, replicas 2 → 3</span>"),
        "{after}"
    );
    // The same settings again: nothing changed, nothing recorded.
    let counted = changes(&after);
    let same = send(h, form("/apps/site/settings", cookie, &fields)).await;
    assert_eq!(same.status, StatusCode::SEE_OTHER);
    let again = send(h, page("/apps/site", cookie)).await.body;
    assert_eq!(changes(&again), counted, "{again}");
}

#[tokio::test]
async fn every_successful_post_redirects_and_its_page_confirms_it_once() {
    let h = harness().await;
    let (cookie, csrf) = signed_in(&h).await;
    let csrf = csrf.as_str();
    let cookie = cookie.as_str();

    let app = [
        ("csrf", csrf),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.test"),
    ];
    let created = send(&h, form("/new", cookie, &app)).await;
    assert_eq!(
        (created.status, created.location.as_str()),
        (StatusCode::SEE_OTHER, "/apps/site/plan")
    );
    // (The plan needs the engine; the next page shown says it instead.)
    let first = send(&h, page("/apps/site", cookie)).await;
    assert!(first.body.contains("App site created"), "{}", first.body);
    let again = send(&h, page("/apps/site", cookie)).await;
    assert!(!again.body.contains("id=\"flash\""), "shown once");

    // (Maintenance goes on only once something is live, which needs the engine: it is
    // put on in the store here, to see the panel end it.)
    let name = capstan_core::AppName::parse("site").unwrap();
    h.store
        .set_maintenance(&name, &Default::default(), "user:ada")
        .await
        .unwrap();
    let (first, again) = post_then_get(
        &h,
        cookie,
        "/apps/site/maintenance",
        &[("csrf", csrf), ("switch", "off")],
        "/apps/site",
    )
    .await;
    assert!(first.contains("Maintenance is off"), "{first}");
    assert!(!again.contains("Maintenance is off"));

    let settings = [
        ("csrf", csrf),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
        ("domains", "site.test"),
        ("health_path", "/"),
        ("health_interval", "1"),
        ("health_timeout", "2"),
        ("health_retries", "3"),
        ("health_start_period", "0"),
        ("health_deadline", "60"),
        ("replicas", "2"),
        ("build_type", "auto"),
    ];
    let (first, again) = post_then_get(
        &h,
        cookie,
        "/apps/site/settings",
        &settings,
        "/apps/site/settings",
    )
    .await;
    assert!(first.contains("Settings saved"), "{first}");
    assert!(!again.contains("Settings saved"));
    assert_eq!(h.store.app(&name).await.unwrap().spec.replicas, 2);
    save_and_deploy(&h, cookie, &settings).await;

    let (first, _) = post_then_get(
        &h,
        cookie,
        "/apps/site/secrets",
        &[
            ("csrf", csrf),
            ("name", "API_KEY"),
            ("value", "s3cr3t-value"),
        ],
        "/apps/site/settings#secrets",
    )
    .await;
    assert!(first.contains("Secret API_KEY set"), "{first}");
    assert!(!first.contains("s3cr3t-value"), "a value never comes back");
    let (first, _) = post_then_get(
        &h,
        cookie,
        "/apps/site/secrets/API_KEY/delete",
        &[("csrf", csrf)],
        "/apps/site/settings#secrets",
    )
    .await;
    assert!(first.contains("Secret API_KEY deleted"), "{first}");

    let (first, _) = post_then_get(
        &h,
        cookie,
        "/access/users",
        &[
            ("csrf", csrf),
            ("name", "vic"),
            ("password", "long enough pw"),
            ("role", "viewer"),
        ],
        "/access",
    )
    .await;
    assert!(first.contains("User vic added as viewer"), "{first}");
    let (first, _) = post_then_get(
        &h,
        cookie,
        "/access/users/vic/delete",
        &[("csrf", csrf)],
        "/access",
    )
    .await;
    assert!(first.contains("User vic deleted"), "{first}");

    // A token's secret: not in the answer to the post or its address, on the next page
    // once, then never again.
    let made = send(
        &h,
        form(
            "/access/tokens",
            cookie,
            &[("csrf", csrf), ("name", "ci"), ("scope_deploy", "on")],
        ),
    )
    .await;
    assert_eq!(
        (made.status, made.location.as_str()),
        (StatusCode::SEE_OTHER, "/access")
    );
    assert!(!made.body.contains("cap_"));
    let shown = send(&h, page("/access", cookie)).await;
    let secret = text_of(&shown.body, "new-token");
    assert!(secret.starts_with("cap_"), "{}", shown.body);
    let again = send(&h, page("/access", cookie)).await;
    assert!(!again.body.contains(&secret), "the secret is shown once");
    let id = h.store.tokens().await.unwrap()[0].id;
    let (first, _) = post_then_get(
        &h,
        cookie,
        &format!("/access/tokens/{id}/delete"),
        &[("csrf", csrf)],
        "/access",
    )
    .await;
    assert!(first.contains("Token revoked"), "{first}");

    // Queueing a deployment needs no engine: its page says it was queued.
    let deployed = send(&h, form("/apps/site/deploy", cookie, &[("csrf", csrf)])).await;
    assert_eq!(deployed.status, StatusCode::SEE_OTHER, "{}", deployed.body);
    assert!(deployed.location.starts_with("/deployments/"));

    // A message left for a session is not shown to another, and ends with the session.
    let stray = send(
        &h,
        form(
            "/apps/site/maintenance",
            cookie,
            &[("csrf", csrf), ("switch", "off")],
        ),
    )
    .await;
    assert_eq!(stray.status, StatusCode::SEE_OTHER);
    let other = sign_in(&h, "ada", "long enough pw").await;
    let other = other.cookie.split(';').next().unwrap().to_string();
    let elsewhere = send(&h, page("/", &other)).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert!(
        !elsewhere.body.contains("id=\"flash\""),
        "another session's message"
    );
    let here = send(&h, page("/", cookie)).await;
    assert!(here.body.contains("Maintenance is off"), "{}", here.body);
    let out = send(&h, form("/logout", cookie, &[("csrf", csrf)])).await;
    assert_eq!(
        (out.status, out.location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
}

#[tokio::test]
async fn setup_reports_every_problem_and_keeps_a_code_that_matched() {
    let h = harness().await;
    let fields = |code: &'static str| {
        [
            ("code", code),
            ("name", "a b"),
            ("password", "long enough pw"),
            ("confirm", "another long pw"),
        ]
    };
    let bad = send(
        &h,
        pre_session_form(&h, "/setup", &fields("the-code")).await,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "confirm"] {
        assert!(
            bad.body.contains(&format!("data-field=\"{field}\"")),
            "{}",
            bad.body
        );
    }
    assert!(
        bad.body.contains("name=\"code\" value=\"the-code\""),
        "a matching code is kept: {}",
        bad.body
    );
    let wrong = send(&h, pre_session_form(&h, "/setup", &fields("guess")).await).await;
    assert!(wrong.body.contains("data-field=\"code\""));
    assert!(
        !wrong.body.contains("value=\"guess\""),
        "a wrong code is not kept"
    );
    assert!(form_token(&wrong.body).len() > 10, "a fresh form token");
}
