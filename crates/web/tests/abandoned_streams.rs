//! Live streams a reader leaves: the follower behind a deployment's log (the API's and the
//! panel page's, with its phases) and behind a run's output ends as soon as the reader
//! goes, not when a later send to it fails — a quiet deployment sends nothing for
//! minutes, and each abandoned tab would read the store every second until it ended.
//! A follower holds its deployment's (or run's) channel in the log hub while it runs, so
//! the hub's channel count says whether one is still running.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_store::{NewDeployment, NewRun};
use futures::StreamExt;
use std::time::{Duration, Instant};
use support::{api, harness, page, signed_in, token, Harness};
use tower::ServiceExt;

/// Opens `request` as a stream, reads its first event, then leaves (drops the body) and
/// waits up to `within` for `followers()` to reach none.
async fn open_then_leave(
    h: &Harness,
    request: Request<Body>,
    followers: impl Fn() -> usize,
    within: Duration,
) -> Result<(), String> {
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("a first event within 5 s")
        .expect("a first event")
        .unwrap();
    assert!(!first.is_empty());
    assert_eq!(followers(), 1, "one follower while the reader is there");
    drop(body);
    let left = Instant::now();
    while left.elapsed() < within {
        if followers() == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "a follower still runs {within:?} after its reader left"
    ))
}

#[tokio::test]
async fn a_follower_ends_once_its_reader_leaves() {
    let h = harness().await;
    let (cookie, _) = signed_in(&h).await;
    let secret = token(&h, "reader", "read").await;
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    // A deployment that builds quietly, with one line already logged (the first event).
    let id = h
        .store
        .enqueue(NewDeployment {
            app: &app,
            trigger: Trigger::Deploy,
            git_ref: None,
            from_release: None,
            no_cache: false,
            actor: "user:ada",
            servers: &["local"],
        })
        .await
        .unwrap()
        .id;
    h.store.claim_next().await.unwrap().unwrap();
    h.store
        .transition(id, DeploymentState::Building, None)
        .await
        .unwrap();
    h.store
        .append_log(id, "info", "building the image")
        .await
        .unwrap();
    // The wait between two looks at the store is 1 s (2 s for runs): well under it.
    let promptly = Duration::from_millis(600);
    let deployments = || h.deployer.logs().channel_count();

    let from_api = api(
        Method::GET,
        &format!("/deployments/{id}/logs?follow=true"),
        Some(&secret),
        None,
    );
    open_then_leave(&h, from_api, deployments, promptly)
        .await
        .expect("the API's log stream");
    let from_page = page(&format!("/deployments/{id}/stream"), &cookie);
    open_then_leave(&h, from_page, deployments, promptly)
        .await
        .expect("the deployment page's stream");

    // A run still running, with one line of output.
    let run = h
        .store
        .create_run(&NewRun {
            app: &app,
            deployment_id: id,
            image: "inproc/shop:1",
            command: &["sleep".to_string(), "600".to_string()],
            timeout_secs: 600,
            actor: "user:ada",
        })
        .await
        .unwrap()
        .id;
    h.store
        .append_run_line(run, "stdout", "started")
        .await
        .unwrap();
    let runs = || h.deployer.run_logs().channel_count();
    let from_api = api(
        Method::GET,
        &format!("/apps/shop/runs/{run}/output?follow=true"),
        Some(&secret),
        None,
    );
    open_then_leave(&h, from_api, runs, promptly)
        .await
        .expect("the API's run output");
    let from_page = page(&format!("/apps/shop/runs/{run}/stream"), &cookie);
    open_then_leave(&h, from_page, runs, promptly)
        .await
        .expect("the run page's stream");
}
