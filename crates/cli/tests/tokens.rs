//! API tokens with scopes against a real daemon: the admin creates `read`, `deploy` and
//! `write` tokens (each secret shown once, only its hash kept), every endpoint refuses a
//! missing token (401) and a too-narrow one (403, naming the scope), accepts the right one,
//! records when a token was last used, and revokes; the last admin token cannot go.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::SampleRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_tokens_allow_what_their_scope_names_and_nothing_more() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(support::sample_app("scoped", &repo, "main", "scoped.test"))
        .await;

    let mut secrets = std::collections::BTreeMap::new();
    for scope in ["read", "deploy", "write"] {
        let (status, body) = daemon
            .call(
                Method::POST,
                "/tokens",
                Some(json!({"name": format!("ci {scope}"), "scopes": [scope]})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["scopes"], json!([scope]));
        let token = body["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("cap_") && token.len() > 40);
        secrets.insert(scope, token);
    }
    for (body, expected) in [
        (
            json!({"name": "x", "scopes": ["root"]}),
            "unknown scope \"root\"",
        ),
        (json!({"name": "x", "scopes": []}), "at least one"),
        (json!({"name": "", "scopes": ["read"]}), "name"),
        (
            json!({"name": "x", "scopes": ["read"], "extra": 1}),
            "extra",
        ),
    ] {
        let (status, answer) = daemon.call(Method::POST, "/tokens", Some(body)).await;
        assert!(status == 422 || status == 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }

    // Every endpoint: no token → 401.
    let endpoints: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/apps", None),
        (Method::GET, "/apps/scoped", None),
        (Method::PATCH, "/apps/scoped", Some(json!({"replicas": 1}))),
        (Method::POST, "/apps/scoped/deployments", Some(json!({}))),
        (Method::GET, "/apps/scoped/deployments", None),
        (Method::POST, "/apps/scoped/rollback", Some(json!({}))),
        (Method::POST, "/apps/scoped/restart", Some(json!({}))),
        (Method::GET, "/apps/scoped/secrets", None),
        (
            Method::PUT,
            "/apps/scoped/secrets/API_KEY",
            Some(json!({"value": "abcd1234"})),
        ),
        (Method::GET, "/apps/scoped/logs", None),
        (Method::GET, "/apps/scoped/events", None),
        (Method::GET, "/server", None),
        (Method::GET, "/tokens", None),
        (
            Method::POST,
            "/tokens",
            Some(json!({"name": "x", "scopes": ["read"]})),
        ),
        (Method::DELETE, "/tokens/1", None),
        (Method::DELETE, "/apps/scoped", None),
    ];
    for (method, path, body) in &endpoints {
        let (status, answer) = daemon
            .call_as(None, method.clone(), path, body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }

    // Too narrow → 403 naming the scope; the right one → through.
    let read = secrets["read"].as_str();
    let deploy = secrets["deploy"].as_str();
    let write = secrets["write"].as_str();
    let (status, _) = daemon
        .call_as(Some(read), Method::GET, "/apps/scoped", None)
        .await;
    assert_eq!(status, 200);
    let (status, answer) = daemon
        .call_as(
            Some(read),
            Method::POST,
            "/apps/scoped/deployments",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("needs the deploy scope"),
        "{answer}"
    );
    let (status, answer) = daemon
        .call_as(
            Some(deploy),
            Method::PATCH,
            "/apps/scoped",
            Some(json!({"replicas": 1})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("needs the write scope"));
    let (status, answer) = daemon
        .call_as(
            Some(write),
            Method::POST,
            "/apps/scoped/deployments",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "changing settings is not deploying: {answer}");
    let (status, answer) = daemon
        .call_as(Some(write), Method::GET, "/tokens", None)
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("needs the admin scope"));
    // A write token may change settings, but host paths stay the admin's.
    let (status, answer) = daemon
        .call_as(
            Some(write),
            Method::PATCH,
            "/apps/scoped",
            Some(json!({"env": {"MESSAGE": "from the write token"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = daemon
        .call_as(
            Some(write),
            Method::PATCH,
            "/apps/scoped",
            Some(json!({"volumes": [{"source": "/srv/shared", "target": "/data"}]})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    // A deploy token deploys.
    let (status, answer) = daemon
        .call_as(
            Some(deploy),
            Method::POST,
            "/apps/scoped/deployments",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_i64().unwrap();
    let done = daemon.wait(id).await;
    assert_eq!(done["state"], "live");
    assert_eq!(done["actor"], "token:ci deploy", "who deployed is recorded");

    // Who changed what is recorded, secrets by name only.
    let (status, _) = daemon
        .call(
            Method::PUT,
            "/apps/scoped/secrets/API_KEY",
            Some(json!({"value": "value-never-listed"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, events) = daemon
        .call_as(Some(read), Method::GET, "/apps/scoped/events", None)
        .await;
    assert_eq!(status, 200, "{events}");
    let seen: Vec<(String, String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "token:admin".into(),
                "secret API_KEY set".into(),
                String::new()
            ),
            (
                "token:ci write".into(),
                "settings changed".into(),
                "variable MESSAGE added".into()
            ),
            ("token:admin".into(), "app created".into(), String::new()),
        ],
        "{events}"
    );
    assert!(!events.to_string().contains("value-never-listed"));

    // The list shows names, scopes and use, never a secret.
    let (status, list) = daemon.call(Method::GET, "/tokens", None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(
        secrets.values().all(|s| !text.contains(s.as_str())),
        "{text}"
    );
    let deploy_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci deploy")
        .unwrap()
        .clone();
    assert!(deploy_entry["last_used_at"].is_string(), "{deploy_entry}");
    let admin_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["scopes"] == json!(["admin"]))
        .unwrap()
        .clone();

    // Revoking: the deploy token stops working; the last admin token cannot go.
    let path = format!("/tokens/{}", deploy_entry["id"]);
    let (status, _) = daemon.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = daemon
        .call_as(Some(deploy), Method::GET, "/apps", None)
        .await;
    assert_eq!(status, 401);
    let path = format!("/tokens/{}", admin_entry["id"]);
    let (status, answer) = daemon.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("last admin token"));
    for (path, code) in [("/tokens/999", 404), ("/tokens/abc", 400)] {
        let (status, answer) = daemon.call(Method::DELETE, path, None).await;
        assert_eq!(status, code, "{path}: {answer}");
    }
}
