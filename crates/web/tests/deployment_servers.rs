//! A deployment on several servers in the panel and the API, over deployments written
//! straight into the store: its page lists each server with its state and error and, when
//! it ended with servers where it failed, offers to run it again there; the retry queues
//! it for those servers only, and one with nothing failed is refused with the reason.

mod support;

use axum::http::{Method, StatusCode};
use capstan_core::{AppName, AppSpec, DeploymentState};
use capstan_store::Store;
use support::{api, form, harness, page, send, signed_in};

/// A deployment of `app` on `local` (live) and `edge` (failed), live as a whole.
async fn live_but_failed_on_edge(store: &Store, app: &AppName, spec: &AppSpec) -> i64 {
    let id = store
        .enqueue(capstan_store::NewDeployment {
            app,
            trigger: capstan_core::Trigger::Deploy,
            git_ref: None,
            from_release: None,
            no_cache: false,
            actor: "user:ada",
            servers: &["local", "edge"],
        })
        .await
        .unwrap()
        .id;
    store.claim_next().await.unwrap().unwrap();
    store
        .transition(id, DeploymentState::Starting, None)
        .await
        .unwrap();
    store
        .save_release(&capstan_store::NewRelease {
            app,
            deployment_id: id,
            image: "inproc/shop:3",
            commit_sha: None,
            compose_spec: "services: {}\n",
            app_spec: spec,
            repo_config: None,
        })
        .await
        .unwrap();
    store.mark_live_on(app, id, "local").await.unwrap();
    store
        .set_target_state(
            id,
            "edge",
            DeploymentState::Failed,
            Some("ssh: connection refused"),
        )
        .await
        .unwrap();
    let note = "failed on 1 server(s) (retry runs only those): edge: ssh: connection refused";
    let state = store
        .settle_from_targets(app, id, Some(note))
        .await
        .unwrap();
    assert_eq!(state, DeploymentState::Live);
    id
}

#[tokio::test]
async fn the_page_lists_each_server_and_a_retry_runs_only_where_it_failed() {
    let h = harness().await;
    let (cookie, csrf) = signed_in(&h).await;
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"image":"shop:3"}}"#).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    let id = live_but_failed_on_edge(&h.store, &app, &spec).await;

    let shown = send(&h, page(&format!("/deployments/{id}"), &cookie)).await;
    assert_eq!(shown.status, StatusCode::OK);
    let servers = &shown.body[shown.body.find("id=\"servers\"").expect("a servers card")..];
    assert!(servers.contains("local") && servers.contains("edge"));
    assert!(servers.contains("ssh: connection refused"));
    assert!(servers.contains("Retry failed servers"), "{servers}");

    let token = support::token(&h, "ci", "read").await;
    let shown = send(
        &h,
        api(
            Method::GET,
            &format!("/deployments/{id}"),
            Some(&token),
            None,
        ),
    )
    .await;
    let body = shown.json();
    assert_eq!(body["state"], "live");
    assert_eq!(body["servers"][0]["state"], "live");
    assert_eq!(body["servers"][1]["server"], "edge");
    assert_eq!(body["servers"][1]["error"], "ssh: connection refused");
    // Retrying needs the deploy scope.
    let path = format!("/deployments/{id}/retry");
    let refused = send(&h, api(Method::POST, &path, Some(&token), None)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let retried = send(&h, form(&path, &cookie, &[("csrf", csrf.as_str())])).await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    assert_eq!(retried.location, path.trim_end_matches("/retry"));
    assert_eq!(
        h.store.deployment(id).await.unwrap().state,
        DeploymentState::Queued
    );
    let states: Vec<_> = h
        .store
        .targets_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, vec![DeploymentState::Live, DeploymentState::Queued]);

    // Queued again, it is not finished: a second retry is refused with the reason.
    let deployer = support::token(&h, "cd", "deploy").await;
    let again = send(&h, api(Method::POST, &path, Some(&deployer), None)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("still running"),
        "{}",
        again.body
    );
    let missing = send(
        &h,
        api(
            Method::POST,
            "/deployments/999/retry",
            Some(&deployer),
            None,
        ),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
