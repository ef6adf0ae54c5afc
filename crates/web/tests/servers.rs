//! `/api/v1/servers` in-process: `local` is always there, adding a server answers with the
//! public key for its `authorized_keys` (never the private one), bad input is a 422 naming
//! the field, a taken name 409, an unknown server 404; the checks answer 200 with each
//! check (an SSH address is really connected to: a listener here greets like sshd, and
//! the engine checks behind it fail with their reason); an
//! app must name existing servers, a deploy to another server is queued for it, and a
//! server an app targets cannot be removed (409 naming the app), nor can `local`.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{api, harness, send, token};

/// A TCP listener on loopback that greets every connection like OpenSSH; its port.
async fn fake_sshd_greeting() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut peer, _)) = listener.accept().await {
            let _ = peer.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        }
    });
    port
}

fn error_of(answer: &support::Answer) -> String {
    answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn check_named<'a>(checks: &'a Value, name: &str) -> &'a Value {
    checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks}"))
}

#[tokio::test]
async fn servers_are_added_checked_guarded_and_removed() {
    let h = harness().await;
    let (admin, write) = (token(&h, "a", "admin").await, token(&h, "w", "write").await);
    let listed = send(&h, api(Method::GET, "/servers", Some(&admin), None)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let servers = listed.json();
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    assert_eq!(servers[0]["name"], "local");
    assert_eq!(servers[0]["kind"], "local");
    assert_eq!(servers[0]["namespace"], "inproc", "the instance's name");
    assert_eq!(servers[0]["public_key"], Value::Null);
    let narrow = send(&h, api(Method::GET, "/servers", Some(&write), None)).await;
    assert_eq!(narrow.status, StatusCode::FORBIDDEN);
    assert!(error_of(&narrow).contains("admin scope"), "{}", narrow.body);

    let port = fake_sshd_greeting().await;
    let print = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let new = json!({"name": "web-2", "kind": "ssh", "host": "127.0.0.1", "port": port,
        "user": "deploy", "host_key_fingerprint": print, "proxy_http_port": 8080, "namespace": "cap2"});
    let created = send(
        &h,
        api(Method::POST, "/servers", Some(&admin), Some(new.clone())),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let server = created.json();
    let public = server["public_key"].as_str().unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.ends_with("capstan@inproc/web-2"), "{public}");
    assert_eq!(server["host_key_fingerprint"], print);
    assert_eq!(server["namespace"], "cap2");
    assert_eq!(server["port"], port);
    assert_eq!(server["proxy_http_port"], 8080);
    assert!(!created.body.contains("PRIVATE"), "{}", created.body);
    let again = send(&h, api(Method::POST, "/servers", Some(&admin), Some(new))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        error_of(&again).contains("web-2 already exists"),
        "{}",
        again.body
    );

    for (body, field) in [
        (json!({"name": "x", "host": "h", "port": 0}), "port"),
        (json!({"name": "x", "host": "a b"}), "host"),
        (json!({"name": "x"}), "host"),
        (json!({"host": "h"}), "name"),
        (json!({"name": "Bad_Name", "host": "h"}), "name"),
        (
            json!({"name": "x", "host": "h", "host_key_fingerprint": "md5:00"}),
            "host_key_fingerprint",
        ),
        (json!({"name": "x", "host": "h", "kind": "k8s"}), "kind"),
        (
            json!({"name": "x", "host": "h", "namespace": "A_B"}),
            "namespace",
        ),
        (
            json!({"name": "x", "host": "h", "proxy_http_port": 0}),
            "proxy_http_port",
        ),
        (json!({"name": "x", "host": "h", "colour": "red"}), "colour"),
        (json!({"name": "local", "host": "h"}), "local"),
    ] {
        let answer = send(
            &h,
            api(Method::POST, "/servers", Some(&admin), Some(body.clone())),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert!(error_of(&answer).contains(field), "{body}: {}", answer.body);
    }
    let missing = send(&h, api(Method::GET, "/servers/nope", Some(&admin), None)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        error_of(&missing).contains("server nope not found"),
        "{}",
        missing.body
    );
    for path in ["/servers/nope/check", "/servers/nope"] {
        let method = if path.ends_with("check") {
            Method::POST
        } else {
            Method::DELETE
        };
        let answer = send(&h, api(method, path, Some(&admin), None)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
    }
    let shown = send(&h, api(Method::GET, "/servers/web-2", Some(&admin), None)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json()["public_key"], server["public_key"]);

    // The SSH server's address is connected to; its engine is not reached (the listener
    // only greets), so the engine checks fail, each saying why.
    let checked = send(
        &h,
        api(Method::POST, "/servers/web-2/check", Some(&admin), None),
    )
    .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let checks = checked.json();
    assert_eq!(checks["ok"], false, "{checks}");
    let reachable = check_named(&checks, "reachable");
    assert_eq!(reachable["ok"], true, "{checks}");
    assert!(
        reachable["detail"]
            .as_str()
            .unwrap()
            .contains("OpenSSH_9.2p1"),
        "{checks}"
    );
    for name in ["engine_version", "architecture", "disk", "proxy", "clock"] {
        let check = check_named(&checks, name);
        assert_eq!(check["ok"], false, "{checks}");
        assert!(!check["detail"].as_str().unwrap().is_empty(), "{checks}");
    }
    // local's engine is gone in this harness: the check says so, still 200.
    let local = send(
        &h,
        api(Method::POST, "/servers/local/check", Some(&admin), None),
    )
    .await;
    assert_eq!(local.status, StatusCode::OK, "{}", local.body);
    let local = local.json();
    assert_eq!(local["ok"], false);
    assert_eq!(check_named(&local, "reachable")["ok"], false, "{local}");
    assert!(
        check_named(&local, "reachable")["detail"]
            .as_str()
            .unwrap()
            .contains("does not answer"),
        "{local}"
    );

    // Apps name existing servers; a deploy to another server is queued for it.
    let app = |servers: Value| json!({"name": "shop", "source": {"image": "busybox:stable"}, "servers": servers});
    let unknown = send(
        &h,
        api(
            Method::POST,
            "/apps",
            Some(&admin),
            Some(app(json!(["local", "ghost"]))),
        ),
    )
    .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    assert!(
        error_of(&unknown).contains("no server ghost"),
        "{}",
        unknown.body
    );
    let made = send(
        &h,
        api(
            Method::POST,
            "/apps",
            Some(&admin),
            Some(app(json!(["web-2"]))),
        ),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.json()["servers"], json!(["web-2"]));
    let deploy = send(
        &h,
        api(Method::POST, "/apps/shop/deployments", Some(&admin), None),
    )
    .await;
    // Queued for web-2 (it is connected to when the deployment runs).
    assert_eq!(deploy.status, StatusCode::ACCEPTED, "{}", deploy.body);
    let bad_patch = send(
        &h,
        api(
            Method::PATCH,
            "/apps/shop",
            Some(&admin),
            Some(json!({"servers": ["ghost"]})),
        ),
    )
    .await;
    assert_eq!(
        bad_patch.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_patch.body
    );
    assert!(error_of(&bad_patch).contains("ghost"), "{}", bad_patch.body);

    let held = send(
        &h,
        api(Method::DELETE, "/servers/web-2", Some(&admin), None),
    )
    .await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.body);
    assert!(error_of(&held).contains("shop"), "{}", held.body);
    let listed = send(&h, api(Method::GET, "/servers/web-2", Some(&admin), None)).await;
    assert_eq!(listed.json()["apps"], json!(["shop"]));
    let local_stays = send(
        &h,
        api(Method::DELETE, "/servers/local", Some(&admin), None),
    )
    .await;
    assert_eq!(
        local_stays.status,
        StatusCode::CONFLICT,
        "{}",
        local_stays.body
    );
    assert!(
        error_of(&local_stays).contains("cannot be removed"),
        "{}",
        local_stays.body
    );

    let moved = send(
        &h,
        api(
            Method::PATCH,
            "/apps/shop",
            Some(&admin),
            Some(json!({"servers": ["local"]})),
        ),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let gone = send(
        &h,
        api(Method::DELETE, "/servers/web-2", Some(&admin), None),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    let after = send(&h, api(Method::GET, "/servers/web-2", Some(&admin), None)).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    let queued = send(
        &h,
        api(Method::POST, "/apps/shop/deployments", Some(&admin), None),
    )
    .await;
    assert_eq!(
        queued.status,
        StatusCode::ACCEPTED,
        "local deploys queue: {}",
        queued.body
    );

    // The document describes the routes and the bodies.
    let doc = send(&h, api(Method::GET, "/openapi.json", None, None))
        .await
        .json();
    for path in ["/servers", "/servers/{name}", "/servers/{name}/check"] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
    let spec = &doc["components"]["schemas"]["ServerSpec"];
    assert!(
        spec["properties"]["host_key_fingerprint"].is_object(),
        "{spec}"
    );
}
