//! One-off commands in the panel, in a real Chromium against the daemon of
//! `one_off_runs`.

use capstan_testkit::browser::Browser;
use capstan_testkit::Daemon;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

/// A deployer in the panel (a real Chromium): one line from the app page runs as the argv
/// it splits into, its output follows live on the run's page until the exit code shows
/// without a reload; a wrong line and time limit are named beside their fields, the line
/// kept.
pub async fn panel_runs(daemon: &Daemon) {
    const PASSWORD: &str = "correct horse battery";
    let user = json!({"name": "dee", "password": PASSWORD, "role": "deployer"});
    let (status, body) = daemon.call(Method::POST, "/users", Some(user)).await;
    assert_eq!(status, 201, "{body}");
    let browser = Browser::start("one_off_runs").await;
    browser.goto(&format!("{}/login", daemon.api)).await;
    browser.fill("form", "name", "dee").await;
    browser.fill("form", "password", PASSWORD).await;
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");

    browser.goto(&format!("{}/apps/jobs", daemon.api)).await;
    let line = "sh -c 'echo panel-$GREETING; sleep 2; echo done >&2; exit 4'";
    browser.fill("#run-form", "command", line).await;
    browser.submit("#run-start").await;
    let path = browser.path().await;
    assert!(path.starts_with("/apps/jobs/runs/"), "{path}");
    assert!(browser
        .text("#flash")
        .await
        .contains("Command started as run #"));
    let argv: Vec<String> = browser
        .text("#argv")
        .await
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        argv,
        [
            "sh",
            "-c",
            "echo panel-$GREETING; sleep 2; echo done >&2; exit 4"
        ]
    );
    browser
        .client
        .execute("window.sameDocument = 'yes'", vec![])
        .await
        .unwrap();
    let state = browser
        .wait_text("#state", "failed", Duration::from_secs(60))
        .await;
    assert_eq!(state, "failed");
    let exit = browser
        .wait_text("#exit-code", "4", Duration::from_secs(10))
        .await;
    assert_eq!(exit, "4");
    assert!(
        !browser.exists("#flash").await,
        "'started' is no news once the run ended"
    );
    let marker = browser
        .client
        .execute("return window.sameDocument || 'reloaded'", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "yes", "the run ended on the same page");
    let title = browser.client.title().await.unwrap();
    let run_id = path.trim_start_matches("/apps/jobs/runs/");
    assert_eq!(
        title,
        format!("Run #{run_id} · jobs · Capstan"),
        "the tab's title is text only"
    );
    let output = browser.text("#log").await;
    assert!(
        output.contains("panel-hello-from-env") && output.contains("done"),
        "{output}"
    );
    browser.screenshot("run-page").await;

    browser
        .goto(&format!("{}/apps/jobs/runs", daemon.api))
        .await;
    browser.fill("#run-form", "command", "echo 'unclosed").await;
    browser.fill("#run-form", "timeout", "0").await;
    browser.submit("#run-start").await;
    assert!(browser.text("[data-field=command]").await.contains("quote"));
    assert!(browser
        .text("[data-field=timeout]")
        .await
        .contains("between 1 and 3600"));
    let kept = browser
        .client
        .execute(
            "return document.querySelector('#run-form [name=command]').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, "echo 'unclosed");
    assert!(
        browser.text("#runs").await.contains("failed"),
        "the list shows the run"
    );
    browser.screenshot("run-form-errors").await;
    browser.close().await;

    let (_, events) = daemon.call(Method::GET, "/apps/jobs/events", None).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "user:dee"
                && e["action"] == "command run"
                && e["detail"].as_str().unwrap().contains("panel-$GREETING")),
        "{events}"
    );
}
