//! `/api/v1/registry` in-process: admin only (a write token gets 403 naming the scope);
//! none set is a 404 that says images move as layer archives; a bad URL or an empty
//! username is a 422 naming the field and never repeating the password; a good one is
//! 200 with `password_set` and never the password (not in any answer, the store keeps it
//! sealed); replacing keeps one registry; DELETE is 204, then 404.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{api, harness, send, token};

#[tokio::test]
async fn the_registry_is_set_shown_without_its_password_and_removed() {
    let h = harness().await;
    let (admin, write) = (token(&h, "a", "admin").await, token(&h, "w", "write").await);
    let password = format!("reg-pw-{:016x}", rand::random::<u64>());
    let mut answers = Vec::new();

    let none = send(&h, api(Method::GET, "/registry", Some(&admin), None)).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    assert!(none.body.contains("layer archives"), "{}", none.body);
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = json!({"url": "r.example.com", "username": "u", "password": password});
        let narrow = send(
            &h,
            api(method.clone(), "/registry", Some(&write), Some(body)),
        )
        .await;
        assert_eq!(narrow.status, StatusCode::FORBIDDEN, "{method}");
        assert!(narrow.body.contains("admin scope"), "{}", narrow.body);
        answers.push(narrow.body);
    }

    for (body, field) in [
        (
            json!({"url": "http://r.example.com", "username": "ci", "password": password}),
            "url:",
        ),
        (
            json!({"url": "ci:pw@r.example.com", "username": "ci", "password": password}),
            "url:",
        ),
        (
            json!({"url": "r.example.com:70000", "username": "ci", "password": password}),
            "url:",
        ),
        (
            json!({"url": "r.example.com", "username": "", "password": password}),
            "username:",
        ),
        (
            json!({"url": "r.example.com", "username": "ci", "password": "abc"}),
            "password:",
        ),
        (
            json!({"url": "r.example.com", "username": "ci"}),
            "password: missing",
        ),
        (
            json!({"url": "r.example.com", "username": "ci", "password": 12345678}),
            "password: must be a string",
        ),
        (
            json!({"url": "r.example.com", "username": "ci", "password": password, "token": password}),
            "unknown field",
        ),
    ] {
        let bad = send(
            &h,
            api(Method::PUT, "/registry", Some(&admin), Some(body.clone())),
        )
        .await;
        assert_eq!(
            bad.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            bad.body
        );
        assert!(
            bad.json()["error"].as_str().unwrap().starts_with(field) || bad.body.contains(field),
            "{body}: {}",
            bad.body
        );
        answers.push(bad.body);
    }
    assert_eq!(
        send(&h, api(Method::GET, "/registry", Some(&admin), None))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a refused registry is not stored"
    );

    let body = json!({"url": "https://10.250.0.1:5443", "username": "ci", "password": password});
    let set = send(&h, api(Method::PUT, "/registry", Some(&admin), Some(body))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let shown = set.json();
    assert_eq!(shown["url"], "https://10.250.0.1:5443");
    assert_eq!(shown["username"], "ci");
    assert_eq!(shown["password_set"], true);
    assert!(shown.get("password").is_none(), "{shown}");
    answers.push(set.body);
    let got = send(&h, api(Method::GET, "/registry", Some(&admin), None)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["username"], "ci");
    answers.push(got.body.clone());
    let replaced =
        json!({"url": "registry.example.com/team", "username": "deploy", "password": password});
    let again = send(
        &h,
        api(Method::PUT, "/registry", Some(&admin), Some(replaced)),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.json()["url"], "registry.example.com/team");
    assert_eq!(again.json()["created_at"], got.json()["created_at"]);
    answers.push(again.body);
    let doc = send(&h, api(Method::GET, "/openapi.json", None, None)).await;
    assert!(
        doc.json()["paths"]["/registry"]["put"].is_object(),
        "documented"
    );

    for answer in &answers {
        assert!(
            !answer.contains(&password),
            "the password in an answer: {answer}"
        );
    }
    let kept = h.store.registry().await.unwrap().unwrap();
    assert_eq!(
        (kept.url.as_str(), kept.username.as_str()),
        ("registry.example.com/team", "deploy")
    );

    let removed = send(&h, api(Method::DELETE, "/registry", Some(&admin), None)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let twice = send(&h, api(Method::DELETE, "/registry", Some(&admin), None)).await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND, "{}", twice.body);
    assert_eq!(h.store.registry().await.unwrap(), None);
}
