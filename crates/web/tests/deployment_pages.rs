//! A deployment's pages in-process, over deployments written straight into the store: a
//! failed one's banner says what serves now as the store records it (nothing before a
//! first success, the previous version after), in the page and in the live stream's
//! `phase` event; the compose spec opens as a panel page for a viewer, escaped, with
//! secrets as `${NAME}`, and asks anyone else to sign in.

mod support;

use axum::http::StatusCode;
use capstan_core::{AppName, AppSpec, DeploymentState};
use capstan_store::Store;
use support::{go_live, harness, page, queue, send, sign_in, signed_in};

async fn fail_building(store: &Store, app: &AppName, error: &str) -> i64 {
    let id = queue(store, app).await;
    store
        .transition(id, DeploymentState::Building, None)
        .await
        .unwrap();
    store
        .transition(id, DeploymentState::Failed, Some(error))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_failure_says_what_serves_and_the_spec_opens_for_a_viewer() {
    let h = harness().await;
    signed_in(&h).await;
    let hash = capstan_web::accounts::PasswordGate::default()
        .hash("viewer password")
        .await
        .unwrap();
    h.store.add_user("vic", &hash, "viewer").await.unwrap();
    let signed = sign_in(&h, "vic", "viewer password").await;
    let viewer = signed.cookie.split(';').next().unwrap().to_string();
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();

    // A failed first deployment claims no version serves.
    let first = fail_building(&h.store, &app, "COPY failed: no-such-file").await;
    let shown = send(&h, page(&format!("/deployments/{first}"), &viewer)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains(&format!(
        "Deployment #{first} failed while building: COPY failed: no-such-file\n\
         Nothing was serving before; the app is not up."
    )));
    assert!(!shown.body.contains("still serving"));
    assert!(shown.body.contains(&format!(
        "<title>✗ failed · Deployment #{first} · Capstan</title>"
    )));
    assert!(!shown.body.contains("id=\"spec-link\""), "no spec to open");
    let none = send(&h, page(&format!("/deployments/{first}/spec"), &viewer)).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.body.contains("no compose spec"), "{}", none.body);

    // A live version, then a failure: the banner names the live one as still serving.
    let compose = "services:\n  web:\n    environment: {\"API_KEY\": \"${API_KEY}\", \"NOTE\": \"<b>hi</b>\"}\n";
    let live = go_live(&h.store, &app, &spec, compose).await;
    let failed = fail_building(&h.store, &app, "boom").await;
    let shown = send(&h, page(&format!("/deployments/{failed}"), &viewer)).await;
    assert!(shown.body.contains(&format!(
        "Deployment #{failed} failed while building: boom\nThe previous version (#{live}) is still serving."
    )));
    let old = send(&h, page(&format!("/deployments/{first}"), &viewer)).await;
    assert!(
        old.body
            .contains(&format!("Deployment #{live}, made since, is serving.")),
        "an older failure says what serves now"
    );

    // The live stream of a finished deployment: its phase event, then its end.
    let stream = send(
        &h,
        page(&format!("/deployments/{failed}/stream?after=0"), &viewer),
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    let phase = stream.body.find("event: phase").expect("a phase event");
    let end = stream.body.find("event: end").expect("an end event");
    assert!(phase < end, "{}", stream.body);
    let data = stream.body[phase..]
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    let progress: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(progress["state"], "failed");
    assert_eq!(progress["tone"], "bad");
    assert_eq!(
        progress["title"],
        format!("✗ failed · Deployment #{failed}")
    );
    assert!(progress["banner"]
        .as_str()
        .unwrap()
        .ends_with(&format!("The previous version (#{live}) is still serving.")));
    let phases: Vec<&str> = progress["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["queued", "preparing", "building", "failed"]);

    // The spec page: for a viewer, escaped, secrets by name; anyone else signs in first.
    let shown = send(&h, page(&format!("/deployments/{live}"), &viewer)).await;
    assert!(shown
        .body
        .contains(&format!("href=\"/deployments/{live}/spec\"")));
    let spec_page = send(&h, page(&format!("/deployments/{live}/spec"), &viewer)).await;
    assert_eq!(spec_page.status, StatusCode::OK);
    assert!(spec_page.body.contains("${API_KEY}"));
    assert!(
        spec_page.body.contains("hi") && !spec_page.body.contains("<b>hi"),
        "the spec is text, never markup: {}",
        spec_page.body
    );
    assert!(spec_page
        .body
        .contains(&format!("href=\"/deployments/{live}\"")));
    let stranger = send(&h, page(&format!("/deployments/{live}/spec"), "")).await;
    assert!(stranger.status.is_redirection(), "{}", stranger.status);
    assert!(
        stranger.location.starts_with("/login"),
        "{}",
        stranger.location
    );
}
