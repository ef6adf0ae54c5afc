//! The web panel in a real Chromium (Debian's chromium + chromium-driver) against a real
//! daemon, engine and proxy, as a new user meets it: first-run setup with the one-time
//! code, a new app from a git repo with its plan shown before anything is deployed, Deploy
//! and the log followed live until the state turns `live` without a reload, a second
//! version, Rollback from the history, settings with every wrong field named and nothing
//! saved, secrets whose values never come back, users and tokens, and a phone-sized
//! screen. Only sensible actions are offered (`sensible`): no Restart or Maintenance before
//! a first deployment, no Roll back to what runs; Save and deploy; the change log names
//! what changed. Screenshots of every page go to `$CAPSTAN_ARTIFACTS_DIR/panel`.

#[path = "panel/deployment_page.rs"]
mod deployment_page;
#[path = "panel/sensible.rs"]
mod sensible;
mod support;

use capstan_testkit::browser::Browser;
use reqwest::Method;
use std::time::Duration;
use support::SampleRepo;

const PASSWORD: &str = "correct horse battery";

async fn sign_up(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&daemon.api).await;
    assert_eq!(
        browser.path().await,
        "/setup",
        "a fresh install offers only setup"
    );
    browser.screenshot("01-setup").await;
    let code_file = daemon.data_dir.path().join("setup-code");
    let code = std::fs::read_to_string(&code_file).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&code_file).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "the setup code is readable by its owner only"
    );

    for (field, value) in [
        ("code", "not-the-code"),
        ("name", "ada"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ] {
        browser.fill("form", field, value).await;
    }
    browser.submit("form button").await;
    assert!(browser
        .text("[data-field=code]")
        .await
        .contains("setup code does not match"));

    for (field, value) in [
        ("code", code.trim()),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ] {
        browser.fill("form", field, value).await;
    }
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");
    assert!(browser.text(".who").await.contains("ada"));
    assert!(
        !code_file.exists(),
        "the setup code is spent once the admin exists"
    );
    browser.screenshot("02-dashboard-empty").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_sets_up_deploys_and_rolls_back_in_a_real_browser() {
    let daemon = support::start_daemon().await;
    let browser = Browser::start("panel").await;
    sign_up(&browser, &daemon).await;

    // A new app: the plan is shown before anything is deployed.
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    browser.submit("a.button.primary").await;
    assert_eq!(browser.path().await, "/new");
    browser.fill("#new-app", "name", "Bad Name").await;
    browser.fill("#new-app", "git_url", &repo.url()).await;
    browser.fill("#new-app", "domains", "panel.test").await;
    browser.submit("#create").await;
    assert!(
        browser
            .text("[data-field=name]")
            .await
            .contains("lower-case letters"),
        "a bad name is named"
    );
    browser.screenshot("03-new-app-error").await;
    browser.fill("#new-app", "name", "shop").await;
    browser.submit("#create").await;
    assert_eq!(browser.path().await, "/apps/shop/plan");
    let plan = browser.text("#plan").await;
    assert!(
        plan.contains("dockerfile") && plan.contains("8080"),
        "{plan}"
    );
    let (_, deployments) = daemon
        .call(Method::GET, "/apps/shop/deployments", None)
        .await;
    assert_eq!(
        deployments.as_array().unwrap().len(),
        0,
        "planning deploys nothing"
    );
    browser.screenshot("04-plan").await;
    sensible::nothing_to_restart_yet(&browser, &daemon, "shop").await;

    // Deploy: the log streams in and the state turns live on the same page.
    browser.submit("#deploy").await;
    let path = browser.path().await;
    assert!(path.starts_with("/deployments/"), "{path}");
    browser
        .client
        .execute("window.sameDocument = 'yes'", vec![])
        .await
        .unwrap();
    let state = browser
        .wait_text("#state", "live", Duration::from_secs(120))
        .await;
    assert_eq!(state, "live");
    let marker = browser
        .client
        .execute("return window.sameDocument || 'reloaded'", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "yes", "the state changed without a reload");
    let log = browser.text("#log").await;
    assert!(
        log.contains("cutover") || log.contains("live"),
        "the log streamed: {log}"
    );
    assert!(browser.text("#phases").await.contains("health check"));
    browser.screenshot("05-deployment-live").await;
    let first_id: i64 = path.trim_start_matches("/deployments/").parse().unwrap();
    deployment_page::the_spec_opens_in_the_panel(&browser, &daemon, first_id).await;
    assert_eq!(daemon.via_proxy("panel.test", "/").await.0, 200);
    let (_, first) = daemon.call(Method::GET, "/apps/shop", None).await;
    assert_eq!(
        first["live"]["actor"], "user:ada",
        "the user is recorded as the actor"
    );
    assert_eq!(first["live"]["commit_message"], "v1", "{first}");

    // A second version, then Rollback to the first from the history.
    repo.commit_version("v2", &[]);
    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    browser.submit("#deploy").await;
    browser
        .wait_text("#state", "live", Duration::from_secs(120))
        .await;
    assert!(daemon.via_proxy("panel.test", "/").await.1.contains("v2"));
    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    browser.screenshot("06-app").await;
    let v1 = format!("#{}", first["live"]["id"]);
    let (_, second) = daemon.call(Method::GET, "/apps/shop", None).await;
    let v2 = format!("#{}", second["live"]["id"]);
    assert_eq!(
        sensible::rollback_offers(&browser).await,
        [v1.as_str()],
        "Roll back to v1, not to the live v2"
    );
    assert!(browser.exists("#restart").await && browser.exists("#maintenance").await);
    browser
        .client
        .execute("window.capstanOldPage = true", vec![])
        .await
        .unwrap();
    browser.click("#deployments form button").await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_new_page().await;
    browser
        .wait_text("#state", "live", Duration::from_secs(60))
        .await;
    assert!(daemon.via_proxy("panel.test", "/").await.1.contains("v1"));
    let (_, rolled_back) = daemon.call(Method::GET, "/apps/shop", None).await;
    assert_eq!(
        rolled_back["live"]["commit_message"], "v1",
        "a rollback carries its subject"
    );
    let rollback = format!("#{}", rolled_back["live"]["id"]);

    // A broken version fails with its error on the page as it ends; v1 keeps serving.
    repo.commit_file(
        "Dockerfile",
        "FROM scratch\nCOPY no-such-file /app\n",
        "broken build",
    );
    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    browser.submit("#deploy").await;
    let state = browser
        .wait_text("#state", "failed", Duration::from_secs(60))
        .await;
    assert_eq!(state, "failed");
    let error = browser
        .wait_text("#error", "no-such-file", Duration::from_secs(10))
        .await;
    assert!(error.contains("no-such-file"), "{error}");
    let failed_path = browser.path().await;
    let (_, shop) = daemon.call(Method::GET, "/apps/shop", None).await;
    let serving = format!(
        "The previous version (#{}) is still serving.",
        shop["live"]["id"]
    );
    assert!(
        error.contains("failed while building") && error.ends_with(&serving),
        "the banner, as it arrived live: {error}"
    );
    browser.screenshot("06b-deployment-failed").await;
    assert!(daemon.via_proxy("panel.test", "/").await.1.contains("v1"));
    let failed_id = failed_path
        .trim_start_matches("/deployments/")
        .parse()
        .unwrap();
    sensible::a_newer_failure_shows_on_the_app_page(&browser, &daemon, "shop", failed_id).await;

    // The deployment page phase by phase, its failures, its width, on an app of its own.
    let (slow_repo, slow_live) =
        deployment_page::follows_a_slow_deploy_phase_by_phase(&browser, &daemon).await;
    deployment_page::phases_card_fits(&browser, &daemon, slow_live).await;
    deployment_page::a_failure_names_the_version_still_serving(
        &browser, &daemon, &slow_repo, slow_live,
    )
    .await;
    deployment_page::the_end_alone_settles_the_page(&browser, &daemon).await;
    deployment_page::a_failed_first_deployment_claims_nothing(&browser, &daemon).await;

    // Settings: every wrong field is named next to itself and nothing is saved.
    browser
        .goto(&format!("{}/apps/shop/settings", daemon.api))
        .await;
    browser.fill("#settings", "port", "http").await;
    browser
        .fill("#settings", "env", "GOOD=1\nno equals sign")
        .await;
    browser.fill("#settings", "replicas", "2").await;
    browser.submit("#save").await;
    assert!(browser
        .text("[data-field=port]")
        .await
        .contains("not a port"));
    assert!(browser.text("[data-field=env]").await.contains("line 2"));
    assert!(browser.exists("#not-saved").await);
    browser.screenshot("07-settings-errors").await;
    let (_, app) = daemon.call(Method::GET, "/apps/shop", None).await;
    assert_eq!(app["replicas"], 1, "nothing was saved: {app}");
    // Save and deploy: saved, then a deployment of the fixed repo that goes live with them.
    repo.commit_version("v3", &[]);
    browser.fill("#settings", "port", "").await;
    browser.fill("#settings", "env", "GREETING=hello").await;
    browser.submit("#save-deploy").await;
    let path = browser.path().await;
    assert!(path.starts_with("/deployments/"), "{path}");
    assert!(browser
        .text("#flash")
        .await
        .contains("Settings saved; deployment #"));
    browser
        .wait_text("#state", "live", Duration::from_secs(120))
        .await;
    let (_, app) = daemon.call(Method::GET, "/apps/shop", None).await;
    assert_eq!(app["env"]["GREETING"], "hello");
    assert_eq!(app["replicas"], 2);
    assert_eq!(app["live"]["commit_message"], "v3", "{app}");
    let v3 = format!("#{}", app["live"]["id"]);
    assert_eq!(path, format!("/deployments/{}", app["live"]["id"]));
    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    assert_eq!(
        sensible::latest_change(&browser).await,
        "settings changed: variable GREETING added, replicas 1 → 2",
        "exactly the fields that changed"
    );
    browser
        .goto(&format!("{}/apps/shop/settings", daemon.api))
        .await;

    // A secret goes in and its value never comes back to the browser.
    browser.fill("#secret-form", "name", "API_KEY").await;
    browser
        .fill("#secret-form", "value", "s3cr3t-value-xyz")
        .await;
    browser.submit("#secret-form button").await;
    let page = browser.source().await;
    assert!(page.contains("API_KEY") && !page.contains("s3cr3t-value-xyz"));
    browser.screenshot("08-settings").await;

    // Users and tokens: a token's secret is shown once.
    browser.goto(&format!("{}/access", daemon.api)).await;
    browser.fill("#token-form", "name", "ci").await;
    browser.click("#token-form [name=scope_deploy]").await;
    browser.submit("#token-form button").await;
    let token = browser.text("#new-token").await;
    assert!(token.starts_with("cap_"), "{token}");
    let (status, restart) = daemon
        .call_as(Some(&token), Method::POST, "/apps/shop/restart", None)
        .await;
    assert_eq!(status, 202, "the new deploy token works: {restart}");
    let restart_id = restart["id"].as_i64().unwrap();
    daemon.wait(restart_id).await;
    browser.screenshot("09-access").await;
    deployment_page::the_spec_page_never_shows_a_secret(
        &browser,
        &daemon,
        restart_id,
        "API_KEY",
        "s3cr3t-value-xyz",
    )
    .await;
    browser.goto(&format!("{}/access", daemon.api)).await;
    assert!(!browser.source().await.contains(&token), "shown only once");

    browser.goto(&format!("{}/server", daemon.api)).await;
    assert!(browser.text("#server").await.contains("running"));
    browser.screenshot("10-server").await;

    // The history: live is the restart of v3; v3 itself runs the same image, so neither
    // is offered, nor the failed build; v1, its rollback and v2 are.
    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    let history = sensible::history(&browser).await;
    let (latest, ids) = (
        &history[0],
        history.iter().map(|e| &e.id).collect::<Vec<_>>(),
    );
    assert_eq!(
        (
            latest.id.as_str(),
            latest.state.as_str(),
            latest.trigger.as_str()
        ),
        (
            format!("#{restart_id}").as_str(),
            "live",
            format!("restart of {v3}").as_str()
        ),
        "a restart names the deployment whose release it reused"
    );
    assert!(ids.contains(&&v3) && history.iter().any(|e| e.state == "failed"));
    let back = history.iter().find(|e| e.id == rollback).unwrap();
    assert_eq!(back.trigger, format!("rollback of {v1}"));
    assert_eq!(
        sensible::rollback_offers(&browser).await,
        [rollback, v2, v1],
        "not the live one, nor v3 whose image it runs, nor the failed one"
    );
    sensible::empty_filter(&browser, &daemon, "shop").await;

    // A phone-sized screen.
    browser.goto(&daemon.api).await;
    let dashboard = browser.text("#apps").await;
    assert!(
        dashboard.contains("v3"),
        "the live version's commit subject survives a restart: {dashboard}"
    );
    sensible::narrow_screen(&browser, &daemon, "shop").await;
    let v1_id = first["live"]["id"].as_i64().unwrap();
    sensible::a_rollback_shows_the_settings_it_brought_back(&browser, &daemon, "shop", v1_id).await;

    // Delete needs the typed name. The rollback's replaced version may still be draining:
    // the delete is then refused, saying to wait, and is tried again.
    for attempt in 0.. {
        browser.goto(&format!("{}/apps/shop", daemon.api)).await;
        browser.fill(".danger form", "confirm", "shop").await;
        browser.submit(".danger form button").await;
        if browser.path().await == "/" {
            break;
        }
        let page = browser.text("main").await;
        assert!(
            page.contains("wait for it to finish") && attempt < 30,
            "the delete was refused: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let (status, _) = daemon.call(Method::GET, "/apps/shop", None).await;
    assert_eq!(status, 404);

    // Signing out ends the session; a wrong password is refused with a message.
    browser.submit(".who button").await;
    assert_eq!(browser.path().await, "/login");
    browser.fill("form", "name", "ada").await;
    browser.fill("form", "password", "not the password").await;
    browser.submit("form button").await;
    assert!(browser
        .text("#error")
        .await
        .contains("Wrong user name or password."));
    browser.screenshot("13-login-refused").await;
    browser.goto(&daemon.api).await;
    assert_eq!(browser.path().await, "/login", "signed out");

    // A link into the panel opened signed out comes back to its page after signing in.
    browser.goto(&format!("{}/server", daemon.api)).await;
    assert_eq!(browser.path().await, "/login");
    browser.fill("form", "name", "ada").await;
    browser.fill("form", "password", PASSWORD).await;
    browser.submit("form button").await;
    assert_eq!(
        browser.path().await,
        "/server",
        "back where the link pointed"
    );
    browser.close().await;
}
