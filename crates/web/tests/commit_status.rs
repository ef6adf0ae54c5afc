//! Commit statuses in the API: an app's forge settings are set, patched and removed like
//! any other setting (bad ones refused, naming the field), and a deployment shows the last
//! status reported to the forge when there is one.

mod support;

use axum::http::{Method, StatusCode};
use capstan_core::{AppName, AppSpec};
use serde_json::json;
use support::{api, harness, send, token};

#[tokio::test]
async fn forge_settings_are_patched_checked_and_removed() {
    let h = harness().await;
    let admin = token(&h, "root", "admin").await;
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_value(
        json!({"source": {"git": {"url": "https://gitlab.com/team/sub/shop.git"}}}),
    )
    .unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let patch = |body| api(Method::PATCH, "/apps/shop", Some(&admin), Some(body));

    let set = send(
        &h,
        patch(json!({"forge": {"provider": "gitlab", "token_secret": "GL_TOKEN"}})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let stored = h.store.app(&app).await.unwrap().spec.forge.unwrap();
    assert_eq!(stored.token_secret, "GL_TOKEN");

    for (bad, field) in [
        (
            json!({"forge": {"api_url": "ftp://gitlab.com"}}),
            "forge.api_url",
        ),
        (
            json!({"forge": {"token_secret": "glpat-abc"}}),
            "forge.token_secret",
        ),
        (json!({"forge": {"provider": "svn"}}), "provider"),
    ] {
        let refused = send(&h, patch(bad.clone())).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.body
        );
        assert!(refused.body.contains(field), "{bad}: {}", refused.body);
    }
    let off = send(&h, patch(json!({"forge": null}))).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(h.store.app(&app).await.unwrap().spec.forge, None);
}

#[tokio::test]
async fn a_deployment_shows_its_last_commit_status() {
    let h = harness().await;
    let reader = token(&h, "ci", "read").await;
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_value(json!({"source": {"image": "shop:3"}})).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let mut ids = vec![];
    for _ in 0..2 {
        let queued = h
            .store
            .enqueue(capstan_store::NewDeployment {
                app: &app,
                trigger: capstan_core::Trigger::Deploy,
                git_ref: None,
                from_release: None,
                no_cache: false,
                actor: "user:ada",
                servers: &["local"],
            })
            .await
            .unwrap();
        ids.push(queued.id);
    }
    let sha = "ab".repeat(20);
    h.store
        .record_commit_status(&capstan_store::CommitStatusRecord {
            deployment_id: ids[0],
            provider: "github".into(),
            sha: sha.clone(),
            state: "failure".into(),
            delivered: false,
            tries: 4,
            error: Some("the forge answered 502: bad gateway".into()),
            updated_at: 0,
        })
        .await
        .unwrap();
    let show = |id: i64| {
        api(
            Method::GET,
            &format!("/deployments/{id}"),
            Some(&reader),
            None,
        )
    };
    let shown = send(&h, show(ids[0])).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let status = &shown.json()["commit_status"];
    assert_eq!(status["provider"], "github");
    assert_eq!(status["sha"], sha.as_str());
    assert_eq!(status["state"], "failure");
    assert_eq!(status["delivered"], false);
    assert_eq!(status["tries"], 4);
    assert_eq!(status["error"], "the forge answered 502: bad gateway");
    let other = send(&h, show(ids[1])).await.json();
    assert!(other.get("commit_status").is_none(), "{other}");
}
