//! The panel's forms with problems, in-process (no Docker engine): each form comes back
//! (422) with every problem beside its field, in plain words, with what was typed kept.

mod support;

use axum::http::StatusCode;
use support::{form, harness, page, send, signed_in};

#[tokio::test]
async fn a_form_with_problems_comes_back_with_every_one_beside_its_field() {
    let h = harness().await;
    let (cookie, csrf) = signed_in(&h).await;
    let (cookie, csrf) = (cookie.as_str(), csrf.as_str());
    let beside = |body: &str, fields: &[&str]| {
        for field in fields {
            assert!(
                body.contains(&format!("data-field=\"{field}\"")),
                "no problem beside {field}: {body}"
            );
        }
        assert!(
            !body.contains("_secs") && !body.contains("[A-Za-z"),
            "in the user's words: {body}"
        );
    };

    // New app: the name, the source, the port and a domain, all in one answer.
    let bad = send(
        &h,
        form(
            "/new",
            cookie,
            &[
                ("csrf", csrf),
                ("name", "Bad Name"),
                ("source_kind", "image"),
                ("image", "-x"),
                ("domains", "not a host"),
                ("port", "http"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["name", "image", "domains", "port"]);
    assert!(bad.body.contains("value=\"http\"") && bad.body.contains(">not a host</textarea>"));
    assert!(h.store.apps().await.unwrap().is_empty(), "nothing created");

    let app = [
        ("csrf", csrf),
        ("name", "site"),
        ("source_kind", "image"),
        ("image", "busybox:stable"),
    ];
    assert_eq!(
        send(&h, form("/new", cookie, &app)).await.status,
        StatusCode::SEE_OTHER
    );

    // Settings: a field that does not parse and fields out of range, together.
    let bad = send(
        &h,
        form(
            "/apps/site/settings",
            cookie,
            &[
                ("csrf", csrf),
                ("source_kind", "image"),
                ("image", "busybox:stable"),
                ("port", "http"),
                ("health_path", "/"),
                ("health_interval", "0"),
                ("health_timeout", "2"),
                ("health_retries", "3"),
                ("health_start_period", "0"),
                ("health_deadline", "60"),
                ("replicas", "0"),
                ("build_type", "auto"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["port", "health_interval", "replicas"]);

    // A new source that does not answer: beside its field, what was typed kept, and the
    // settings as they were.
    let unknown = "https://git.nonexistent.invalid/app.git";
    let bad = send(
        &h,
        form(
            "/apps/site/settings",
            cookie,
            &[
                ("csrf", csrf),
                ("source_kind", "git"),
                ("git_url", unknown),
                ("git_ref", "main"),
                ("health_path", "/"),
                ("health_interval", "1"),
                ("health_timeout", "2"),
                ("health_retries", "3"),
                ("health_start_period", "0"),
                ("health_deadline", "60"),
                ("replicas", "1"),
                ("build_type", "auto"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    beside(&bad.body, &["git_url"]);
    assert!(
        bad.body.contains("No git repository answers at"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains(&format!("value=\"{unknown}\"")),
        "{}",
        bad.body
    );
    let name = capstan_core::AppName::parse("site").unwrap();
    let stored = h.store.app(&name).await.unwrap().spec.source;
    assert_eq!(stored, capstan_core::Source::Image("busybox:stable".into()));

    // Secrets: inline on the settings page, the name kept, never the value.
    let bad = send(
        &h,
        form(
            "/apps/site/secrets",
            cookie,
            &[
                ("csrf", csrf),
                ("name", "a b"),
                ("value", "xy"),
                ("build", "on"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["secret_name", "secret_value"]);
    assert!(bad.body.contains("id=\"secret-form\"") && bad.body.contains("value=\"a b\""));

    // Maintenance: both fields at once, what was typed kept.
    let long = "x".repeat(1200);
    let bad = send(
        &h,
        form(
            "/apps/site/maintenance",
            cookie,
            &[
                ("csrf", csrf),
                ("switch", "on"),
                ("message", &long),
                ("retry_after", "soon"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["message", "retry_after"]);
    assert!(bad.body.contains("value=\"soon\""));

    // Restart before anything is live: said on the app page, not an error page.
    let bad = send(&h, form("/apps/site/restart", cookie, &[("csrf", csrf)])).await;
    assert_eq!(bad.status, StatusCode::CONFLICT);
    assert!(
        bad.body.contains("id=\"action-error\"") && bad.body.contains("id=\"deployments\"")
            || bad.body.contains("No deployments yet"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("nothing is deployed yet"), "{}", bad.body);

    // Delete with the wrong name: beside the confirmation, nothing deleted.
    let bad = send(
        &h,
        form(
            "/apps/site/delete",
            cookie,
            &[("csrf", csrf), ("confirm", "sit")],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["confirm"]);
    assert_eq!(h.store.apps().await.unwrap().len(), 1);

    // Users: every problem at once; a new user's role is viewer unless chosen.
    let bad = send(
        &h,
        form(
            "/access/users",
            cookie,
            &[
                ("csrf", csrf),
                ("name", "a b"),
                ("password", "short"),
                ("role", "root"),
            ],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["user_name", "user_password", "role"]);
    let fresh = send(&h, page("/access", cookie)).await;
    assert!(
        fresh.body.contains("<option value=\"viewer\" selected>"),
        "{}",
        fresh.body
    );
    let taken = send(
        &h,
        form(
            "/access/users",
            cookie,
            &[
                ("csrf", csrf),
                ("name", "ada"),
                ("password", "long enough pw"),
                ("role", "admin"),
            ],
        ),
    )
    .await;
    beside(&taken.body, &["user_name"]);
    assert!(
        taken.body.contains("<option value=\"admin\" selected>"),
        "the choice is kept"
    );

    // Tokens: the name and the scopes together.
    let bad = send(
        &h,
        form("/access/tokens", cookie, &[("csrf", csrf), ("name", "")]),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    beside(&bad.body, &["token_name", "scopes"]);
    assert!(h.store.tokens().await.unwrap().is_empty());
}
