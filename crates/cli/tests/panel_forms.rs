//! The panel's forms in a real Chromium (Debian's chromium + chromium-driver) against a
//! real daemon, as a new user meets them: every problem of a form shown at once beside
//! its field, with what was typed kept (setup, a new app, secrets, users); a success
//! confirmed once and never again on reload; Back and Forward after a post show the page
//! as it is now, with its buttons usable; a new token's secret on one page once, not on
//! Back, Forward or reload; after signing out, Back shows nothing private; times that
//! read relative and give the local time on hover; sizes in a unit that reads.
//! Screenshots go to `$CAPSTAN_ARTIFACTS_DIR/panel_forms`.

#[path = "panel_forms/links_and_server.rs"]
mod links_and_server;
mod support;

use capstan_testkit::browser::Browser;
use reqwest::Method;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// Runs `script` in the page and returns what it returns.
async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// Goes back, forward or reloads, and waits for the page to be a new one.
async fn history(browser: &Browser, step: &str) {
    js(browser, "window.capstanOldPage = true").await;
    match step {
        "back" => browser.client.back().await.unwrap(),
        "forward" => browser.client.forward().await.unwrap(),
        _ => browser.client.refresh().await.unwrap(),
    }
    browser.wait_new_page().await;
}

/// The problems shown beside fields, by field.
async fn problems(browser: &Browser) -> Vec<String> {
    let found = js(
        browser,
        "return [...document.querySelectorAll('.field-error')].map(e => e.dataset.field)",
    )
    .await;
    let mut fields: Vec<String> = serde_json::from_value(found).unwrap();
    fields.sort();
    fields
}

async fn value_of(browser: &Browser, css: &str) -> String {
    let script = format!("return document.querySelector({css:?}).value");
    js(browser, &script)
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// First-run setup: passwords that differ are named and the code stays typed in.
async fn set_up(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&daemon.api).await;
    assert_eq!(browser.path().await, "/setup");
    let code_file = daemon.data_dir.path().join("setup-code");
    let code = std::fs::read_to_string(&code_file).unwrap();
    let code = code.trim();
    for (field, value) in [
        ("code", code),
        ("name", "ada"),
        ("password", PASSWORD),
        ("confirm", "another horse battery"),
    ] {
        browser.fill("form", field, value).await;
    }
    browser.submit("form button").await;
    assert_eq!(problems(browser).await, ["confirm"]);
    assert_eq!(
        value_of(browser, "[name=code]").await,
        code,
        "a password mismatch keeps the setup code"
    );
    assert_eq!(value_of(browser, "[name=name]").await, "ada");
    browser.screenshot("01-setup-mismatch").await;
    browser.fill("form", "password", PASSWORD).await;
    browser.fill("form", "confirm", PASSWORD).await;
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");
}

/// A new app whose git source does not answer: refused beside the source's fields, with
/// everything typed kept, and nothing created.
async fn a_source_that_does_not_answer(browser: &Browser, daemon: &support::Daemon) {
    let server = capstan_testkit::GitServer::loopback();
    let repo = support::SampleRepo::new();
    repo.commit_version("v1", &[]);
    let cases = [
        (server.url("nothing"), "main", "git_url"),
        (repo.url(), "no-such-branch", "git_ref"),
    ];
    for (url, reference, field) in cases {
        browser.goto(&format!("{}/new", daemon.api)).await;
        browser.fill("#new-app", "name", "checked").await;
        browser.fill("#new-app", "git_url", &url).await;
        browser.fill("#new-app", "git_ref", reference).await;
        browser.fill("#new-app", "domains", "checked.test").await;
        browser.submit("#create").await;
        assert_eq!(browser.path().await, "/new");
        assert_eq!(problems(browser).await, [field], "{url} at {reference}");
        let said = browser
            .text(&format!(".field-error[data-field={field}]"))
            .await;
        let expected = match field {
            "git_url" => "No git repository answers at",
            _ => "Ref \"no-such-branch\" does not exist",
        };
        assert!(said.starts_with(expected), "{said}");
        assert!(browser.exists("#not-created").await);
        for (name, typed) in [
            ("name", "checked"),
            ("git_url", url.as_str()),
            ("git_ref", reference),
            ("domains", "checked.test"),
        ] {
            let css = format!("#new-app [name={name}]");
            assert_eq!(value_of(browser, &css).await, typed, "{name} kept");
        }
        if field == "git_url" {
            browser.screenshot("01b-new-app-source-refused").await;
        }
    }
    let (_, apps) = daemon.call(Method::GET, "/apps", None).await;
    assert_eq!(apps, serde_json::json!([]), "nothing created");
}

/// A new app: four problems in one submit, then created and confirmed once.
async fn new_app(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&format!("{}/new", daemon.api)).await;
    js(
        browser,
        "const kind = document.querySelector('[name=source_kind]');
         kind.value = 'image'; kind.dispatchEvent(new Event('change'));",
    )
    .await;
    browser.fill("#new-app", "name", "Shop Front").await;
    browser.fill("#new-app", "image", "-busybox").await;
    browser.fill("#new-app", "domains", "not a host").await;
    browser.fill("#new-app", "port", "http").await;
    browser.submit("#create").await;
    assert_eq!(
        problems(browser).await,
        ["domains", "image", "name", "port"]
    );
    assert_eq!(value_of(browser, "#new-app [name=port]").await, "http");
    let text = browser.text("#new-app").await;
    assert!(
        !text.contains("source.image") && !text.contains("[A-Za-z"),
        "{text}"
    );
    browser.screenshot("02-new-app-every-problem").await;
    browser.fill("#new-app", "name", "shop").await;
    browser.fill("#new-app", "image", "busybox:stable").await;
    browser.fill("#new-app", "domains", "shop.test").await;
    browser.fill("#new-app", "port", "8080").await;
    browser.submit("#create").await;
    assert_eq!(browser.path().await, "/apps/shop/plan");
    assert!(browser.text("#flash").await.contains("App shop created"));
    browser.screenshot("03-created-confirmed").await;
    history(browser, "reload").await;
    assert!(!browser.exists("#flash").await, "confirmed once only");
}

/// Secrets: both problems at once; a set secret confirmed once; Back and Forward after
/// the post show the page as it is, with usable buttons.
async fn secrets_and_back(browser: &Browser, daemon: &support::Daemon) {
    browser
        .goto(&format!("{}/apps/shop/settings", daemon.api))
        .await;
    browser.fill("#secret-form", "name", "api key").await;
    browser.fill("#secret-form", "value", "xy").await;
    browser.submit("#secret-form button").await;
    assert_eq!(problems(browser).await, ["secret_name", "secret_value"]);
    assert_eq!(
        value_of(browser, "#secret-form [name=name]").await,
        "api key"
    );
    browser.screenshot("04-secret-problems").await;
    browser.fill("#secret-form", "name", "API_KEY").await;
    browser
        .fill("#secret-form", "value", "s3cr3t-value-xyz")
        .await;
    browser.submit("#secret-form button").await;
    assert!(browser.text("#flash").await.contains("Secret API_KEY set"));
    assert!(!browser.source().await.contains("s3cr3t-value-xyz"));
    browser.screenshot("05-secret-set").await;

    for step in ["back", "forward", "reload"] {
        history(browser, step).await;
        assert_eq!(browser.path().await, "/apps/shop/settings", "after {step}");
        assert!(
            !browser.exists("#flash").await,
            "no confirmation again on {step}"
        );
        let disabled = js(
            browser,
            "return document.querySelectorAll('button:disabled').length",
        )
        .await;
        assert_eq!(disabled, 0, "every button usable after {step}");
    }
    assert!(browser.text("#secrets").await.contains("API_KEY"));

    // A page restored from the back/forward cache frees the buttons its submit held.
    let freed = js(
        browser,
        "const button = document.querySelector('#secret-form button');
         button.disabled = true; button.dataset.busy = '';
         window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
         return !button.disabled;",
    )
    .await;
    assert_eq!(freed, true);
}

/// A token's secret: on the page after the post once; not on reload, Back or Forward.
async fn token_once(browser: &Browser, daemon: &support::Daemon) -> String {
    browser.goto(&format!("{}/access", daemon.api)).await;
    assert_eq!(
        value_of(browser, "#user-form [name=role]").await,
        "viewer",
        "a new user is a viewer unless chosen"
    );
    browser.fill("#user-form", "name", "a b").await;
    browser.fill("#user-form", "password", "short").await;
    browser.submit("#user-form button").await;
    assert_eq!(problems(browser).await, ["user_name", "user_password"]);
    browser.screenshot("06-user-problems").await;

    browser.fill("#token-form", "name", "ci").await;
    browser.click("#token-form [name=scope_deploy]").await;
    browser.submit("#token-form button").await;
    assert_eq!(browser.path().await, "/access");
    let token = browser.text("#new-token").await;
    assert!(token.starts_with("cap_"), "{token}");
    assert!(!browser
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("cap_"));
    browser.screenshot("07-token-once").await;
    for step in ["reload", "back", "forward"] {
        history(browser, step).await;
        assert!(
            !browser.source().await.contains(&token),
            "the secret is not shown again after {step}"
        );
    }
    token
}

/// Times read relative, stay current and show the local time on hover; sizes read.
async fn times_and_sizes(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&format!("{}/access", daemon.api)).await;
    let shown = js(
        browser,
        "const time = document.querySelector('#users time');
         return [time.textContent, time.title, time.dateTime];",
    )
    .await;
    assert_eq!(shown[0], "just now", "{shown}");
    let title = shown[1].as_str().unwrap();
    assert!(
        title.contains("GMT+5:30"),
        "the moment in the browser's own zone (Asia/Kolkata here) on hover: {title}"
    );
    let aged = js(
        browser,
        "const time = document.querySelector('#users time');
         time.dateTime = new Date(Date.now() - 5 * 60000).toISOString();
         refreshTimes();
         return time.textContent;",
    )
    .await;
    assert_eq!(aged, "5 min ago");

    let sizes = js(
        browser,
        "return [0, 1023, 1536, 1048575, 78809601638, 1000 * 1024 ** 3].map(formatSize)",
    )
    .await;
    assert_eq!(
        sizes,
        serde_json::json!(["0 B", "1023 B", "1.5 KiB", "1.0 MiB", "73.4 GiB", "1.0 TiB"]),
        "the script writes sizes as the server does"
    );

    browser.goto(&format!("{}/server", daemon.api)).await;
    let server = browser.text("#server").await;
    let sizes: Vec<&str> = server
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| ["B", "KiB", "MiB", "GiB", "TiB"].contains(&w[1]))
        .map(|w| w[0])
        .collect();
    assert!(!sizes.is_empty(), "{server}");
    for number in sizes {
        let digits = number.split('.').next().unwrap_or("");
        assert!(digits.len() <= 4, "a size reads in a better unit: {server}");
    }
    browser.screenshot("08-server-sizes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_say_every_problem_confirm_once_and_back_is_safe() {
    let daemon = support::start_daemon().await;
    // The browser's zone is not the server's (UTC): times on hover must be the browser's.
    std::env::set_var("TZ", "Asia/Kolkata");
    let browser = Browser::start("panel_forms").await;
    set_up(&browser, &daemon).await;
    a_source_that_does_not_answer(&browser, &daemon).await;
    new_app(&browser, &daemon).await;
    secrets_and_back(&browser, &daemon).await;
    let token = token_once(&browser, &daemon).await;
    let (status, _) = daemon
        .call_as(Some(&token), Method::GET, "/apps/shop", None)
        .await;
    assert_eq!(status, 200, "the token shown once works");
    times_and_sizes(&browser, &daemon).await;
    links_and_server::every_domain_opens_the_app(&browser, &daemon).await;
    links_and_server::server_ports_cleanup_and_backup(&browser, &daemon).await;

    browser.goto(&format!("{}/apps/shop", daemon.api)).await;
    // Delete: confirmed on the dashboard once.
    browser.fill("#delete-form", "confirm", "shop").await;
    browser.submit("#delete-form button").await;
    assert_eq!(browser.path().await, "/");
    assert!(browser.text("#flash").await.contains("App shop deleted"));
    history(&browser, "reload").await;
    assert!(!browser.exists("#flash").await);

    // After signing out, Back shows nothing private.
    browser.goto(&format!("{}/access", daemon.api)).await;
    browser.submit(".who button").await;
    assert_eq!(browser.path().await, "/login");
    history(&browser, "back").await;
    let page = browser.source().await;
    assert_eq!(browser.path().await, "/login", "Back asks to sign in again");
    assert!(
        !page.contains("Sign out") && !page.contains("API tokens"),
        "nothing private after sign-out: {page}"
    );
    browser.screenshot("09-back-after-sign-out").await;
    browser.close().await;
}
