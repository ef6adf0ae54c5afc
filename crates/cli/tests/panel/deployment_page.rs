//! The deployment page in `panel.rs`'s browser and daemon: a deploy with a slow health
//! check followed phase by phase (badge, phase rows, a running phase's ticking duration,
//! the tab's title) without a reload, also when the page is opened mid-deploy; the phases
//! card inside its column at 1,400 and 390 px; a failed deployment opened afterward,
//! scrolled to its end, whose banner names the version still serving — and a failed first
//! deployment's, which claims none; the compose spec as a panel page.

use crate::support::{sample_app, Daemon, SampleRepo};
use capstan_testkit::browser::Browser;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long the slow version's `/health` answers 503 after it starts.
const SLOW_HEALTH_SECS: &str = "8";

async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// Starts recording, in the page, every change of the tab's title and the state badge.
async fn record_changes(browser: &Browser) {
    js(
        browser,
        "window.sameDocument = 'yes';
         window.seen = [];
         const note = () => {
           const entry = document.title + ' | ' + document.getElementById('state').textContent;
           if (window.seen[window.seen.length - 1] !== entry) window.seen.push(entry);
         };
         note();
         const watch = new MutationObserver(note);
         watch.observe(document.querySelector('title'), { childList: true, characterData: true, subtree: true });
         watch.observe(document.getElementById('state'), { childList: true, characterData: true, subtree: true });",
    )
    .await;
}

async fn recorded(browser: &Browser) -> Vec<String> {
    serde_json::from_value(js(browser, "return window.seen").await).unwrap()
}

/// Waits until the tab's title contains `wanted`; returns the title.
async fn wait_title(browser: &Browser, wanted: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let title = js(browser, "return document.title").await;
        let title = title.as_str().unwrap_or_default().to_string();
        if title.contains(wanted) {
            return title;
        }
        assert!(
            Instant::now() < deadline,
            "title never had {wanted:?}: {title}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_duration(browser: &Browser) -> String {
    browser.text("#phases tr.running td.num").await
}

/// A deploy whose health check takes seconds, followed on its page: the phases move live,
/// a running phase's duration ticks, a page opened mid-deploy shows the phases so far and
/// then follows. Returns the sample repo and the live deployment's id.
pub async fn follows_a_slow_deploy_phase_by_phase(
    browser: &Browser,
    daemon: &Daemon,
) -> (SampleRepo, i64) {
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[("HEALTHY_AFTER_SECS", SLOW_HEALTH_SECS)]);
    let mut app = sample_app("slow", &repo, "main", "slow.test");
    // Failures inside the start period do not count: the check passes once /health does.
    app["health"]["start_period_secs"] = serde_json::json!(20);
    daemon.create_app(app).await;
    // The app's deployments run one at a time: the one followed waits in the queue behind
    // another (at least the slow health check long), so the page opens before it starts,
    // however fast the build (a cached one takes no time).
    let ahead = daemon.deploy("slow", None).await;
    let id = daemon.deploy("slow", None).await;
    let page = format!("{}/deployments/{id}", daemon.api);
    browser.resize(1400, 900).await;
    browser.goto(&page).await;
    record_changes(browser).await;
    assert_eq!(
        recorded(browser).await,
        [format!("⏳ queued · Deployment #{id} · Capstan | queued")],
        "opened before it starts (#{ahead} runs ahead of it)"
    );
    let title = wait_title(browser, "health check", Duration::from_secs(90)).await;
    assert_eq!(
        title,
        format!("⏳ health check · Deployment #{id} · Capstan")
    );
    assert_eq!(browser.text("#state").await, "health_checking");
    let before = running_duration(browser).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = running_duration(browser).await;
    assert!(
        before.ends_with(" so far") && after.ends_with(" so far") && before != after,
        "a running phase's duration ticks: {before:?} then {after:?}"
    );
    let running = browser.text("#phases tr.running").await;
    assert!(running.starts_with("health check"), "{running:?}");
    assert_phases_fit(browser, 1400, true).await;
    browser.screenshot("14-deployment-health-check").await;
    let first_look = recorded(browser).await;
    let running: BTreeSet<&String> = first_look[1..]
        .iter()
        .filter(|entry| entry.starts_with('⏳'))
        .collect();
    // Of preparing, building, starting and health check, each with title and badge
    // together (the stream sends the state it finds at each look at the store, which may
    // miss a short phase, so not each one is asserted).
    assert!(
        running.len() >= 2,
        "at least two phases arrived live, title and badge together: {first_look:?}"
    );
    assert_eq!(
        js(browser, "return window.sameDocument").await,
        "yes",
        "no reload"
    );

    // Opened mid-deploy: the phases so far, the running one, then it follows.
    browser.goto(&page).await;
    assert_eq!(browser.text("#state").await, "health_checking");
    let phases = browser.text("#phases").await;
    for phase in [
        "queued",
        "preparing",
        "building",
        "starting",
        "health check",
    ] {
        assert!(phases.contains(phase), "{phase} in {phases}");
    }
    assert!(running_duration(browser).await.ends_with(" so far"));
    record_changes(browser).await;
    wait_title(browser, "✓ live", Duration::from_secs(60)).await;
    assert_eq!(
        js(browser, "return document.title").await,
        format!("✓ live · Deployment #{id} · Capstan")
    );
    assert_eq!(browser.text("#state").await, "live");
    assert_eq!(
        js(browser, "return window.sameDocument").await,
        "yes",
        "no reload"
    );
    let phases = browser.text("#phases").await;
    assert!(
        phases.contains("switching") && phases.contains("live"),
        "{phases}"
    );
    assert!(
        !browser.exists("#phases tr.running").await,
        "nothing runs once live: {phases}"
    );
    assert!(
        browser.exists("#error[hidden]").await,
        "no banner when live"
    );
    let last_look = recorded(browser).await;
    assert!(
        last_look
            .last()
            .is_some_and(|e| e.ends_with("Capstan | live")),
        "{last_look:?}"
    );
    browser.screenshot("15-deployment-live").await;
    assert_eq!(daemon.via_proxy("slow.test", "/").await.0, 200);
    browser.resize(1280, 900).await;
    (repo, id)
}

/// The phases card holds its rows without overflowing (scrollWidth ≤ clientWidth); at a
/// desktop width (`one_line`) each phase also stays on one line.
async fn assert_phases_fit(browser: &Browser, width: u32, one_line: bool) {
    let sizes = js(
        browser,
        "const card = document.getElementById('phases');
         const heights = [...card.querySelectorAll('tr')].map(row => row.getBoundingClientRect().height);
         return [card.scrollWidth, card.clientWidth, heights.length,
                 Math.max(...heights) - Math.min(...heights)];",
    )
    .await;
    assert!(sizes[2].as_u64().unwrap() >= 5, "{sizes}");
    assert!(
        sizes[0].as_u64() <= sizes[1].as_u64(),
        "the phases card overflows at {width} px: scrollWidth, clientWidth, rows = {sizes}"
    );
    if one_line {
        assert!(
            sizes[3].as_f64().unwrap() < 2.0,
            "a phase wraps at {width} px (rows differ in height by {} px)",
            sizes[3]
        );
    }
}

/// The phases card fits at 1,400 and 390 px.
pub async fn phases_card_fits(browser: &Browser, daemon: &Daemon, id: i64) {
    for (width, height) in [(1400, 900), (390, 844)] {
        browser.resize(width, height).await;
        browser
            .goto(&format!("{}/deployments/{id}", daemon.api))
            .await;
        assert_phases_fit(browser, width, width > 1000).await;
        browser.screenshot(&format!("16-phases-{width}px")).await;
    }
    browser.resize(1280, 900).await;
}

/// The log of `page` opened fresh: scrolled to its end, with its last line in view.
async fn log_opens_at_its_end(browser: &Browser, page: &str) {
    browser.goto(page).await;
    let view = js(
        browser,
        "const log = document.getElementById('log');
         const last = log.lastElementChild.getBoundingClientRect();
         const box = log.getBoundingClientRect();
         return [log.scrollHeight, log.clientHeight, log.scrollTop,
                 last.top >= box.top && last.bottom <= box.bottom + 1,
                 log.lastElementChild.textContent];",
    )
    .await;
    let number = |i: usize| view[i].as_f64().unwrap();
    assert!(
        number(0) > number(1) + 100.0,
        "the log is longer than its box, so where it opens matters: {view}"
    );
    assert!(
        number(0) - number(2) - number(1) < 2.0,
        "scrolled to the bottom: {view}"
    );
    assert_eq!(view[3], true, "the last line is in view: {view}");
    assert!(
        view[4].as_str().unwrap().contains("deployment failed"),
        "{view}"
    );
}

/// A version that fails its health check: opened afterward, the page shows the end of the
/// log and a banner that says where it stopped and that the previous version serves.
pub async fn a_failure_names_the_version_still_serving(
    browser: &Browser,
    daemon: &Daemon,
    repo: &SampleRepo,
    live: i64,
) {
    repo.commit_version("v2", &[("EXIT_AT_START", "1")]);
    let id = daemon.deploy("slow", None).await;
    assert_eq!(daemon.wait(id).await["state"], "failed");
    daemon.final_log(id).await;
    let page = format!("{}/deployments/{id}", daemon.api);
    // A short window, so the log (some 30 lines) is longer than its box.
    browser.resize(1280, 480).await;
    log_opens_at_its_end(browser, &page).await;
    browser.resize(1280, 900).await;
    let banner = browser.text("#error").await;
    assert!(
        banner.starts_with(&format!("Deployment #{id} failed at the health check:")),
        "{banner}"
    );
    assert!(
        banner.ends_with(&format!("The previous version (#{live}) is still serving.")),
        "{banner}"
    );
    assert_eq!(
        js(browser, "return document.title").await,
        format!("✗ failed · Deployment #{id} · Capstan")
    );
    browser.screenshot("17-failed-previous-serving").await;
    assert!(daemon.via_proxy("slow.test", "/").await.1.contains("v1"));
}

/// The page settles on the `end` event alone when no `phase` event brings the final state
/// (the server could not read the phases then: here the page refuses to read any, as if
/// none came): the badge, the tab's title and the error are the end's.
pub async fn the_end_alone_settles_the_page(browser: &Browser, daemon: &Daemon) {
    // The slow app's newest version fails at its start; the one followed waits behind
    // another, so the page is open (and deaf to phases) before it starts.
    let ahead = daemon.deploy("slow", None).await;
    let id = daemon.deploy("slow", None).await;
    browser
        .goto(&format!("{}/deployments/{id}", daemon.api))
        .await;
    js(
        browser,
        "const parse = JSON.parse;
         JSON.parse = (text) => {
           if (String(text).includes('\"phases\"')) throw new Error('no phases today');
           return parse(text);
         };",
    )
    .await;
    record_changes(browser).await;
    assert_eq!(
        recorded(browser).await,
        [format!("⏳ queued · Deployment #{id} · Capstan | queued")],
        "opened before it starts (#{ahead} runs ahead of it)"
    );
    let title = wait_title(browser, "failed", Duration::from_secs(90)).await;
    assert_eq!(title, format!("✗ failed · Deployment #{id} · Capstan"));
    assert_eq!(browser.text("#state").await, "failed");
    let error = daemon.wait(id).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!error.is_empty());
    assert_eq!(browser.text("#error").await, error);
    assert!(!browser.exists("#following").await);
    assert_eq!(
        recorded(browser).await.len(),
        2,
        "no phase reached the page, the end did"
    );
}

/// A first deployment that fails: neither its banner nor its log claims a version serves.
pub async fn a_failed_first_deployment_claims_nothing(browser: &Browser, daemon: &Daemon) {
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[("EXIT_AT_START", "1")]);
    daemon
        .create_app(sample_app("first", &repo, "main", "first.test"))
        .await;
    let id = daemon.deploy("first", None).await;
    assert_eq!(daemon.wait(id).await["state"], "failed");
    daemon.final_log(id).await;
    browser
        .goto(&format!("{}/deployments/{id}", daemon.api))
        .await;
    let banner = browser.text("#error").await;
    assert!(
        banner.ends_with("Nothing was serving before; the app is not up."),
        "{banner}"
    );
    let log = browser.text("#log").await;
    assert!(
        log.contains("nothing was serving before") && !log.contains("keeps serving"),
        "{log}"
    );
    assert!(!banner.contains("still serving") && !banner.contains("keeps serving"));
    browser.screenshot("18-failed-first-deployment").await;
}

/// "Compose spec" opens the spec as a page of the panel, with secrets as `${NAME}`.
pub async fn the_spec_opens_in_the_panel(browser: &Browser, daemon: &Daemon, id: i64) {
    browser
        .goto(&format!("{}/deployments/{id}", daemon.api))
        .await;
    browser.submit("#spec-link").await;
    assert_eq!(browser.path().await, format!("/deployments/{id}/spec"));
    let spec = browser.text("#spec").await;
    assert!(
        spec.contains("services:") && spec.contains("image:") && spec.contains("healthcheck:"),
        "{spec}"
    );
    browser.screenshot("19-compose-spec").await;
    browser.submit("#back").await;
    assert_eq!(browser.path().await, format!("/deployments/{id}"));
}

/// A deployment made after a secret was set: its spec page holds the secret's name only.
pub async fn the_spec_page_never_shows_a_secret(
    browser: &Browser,
    daemon: &Daemon,
    id: i64,
    name: &str,
    value: &str,
) {
    browser
        .goto(&format!("{}/deployments/{id}/spec", daemon.api))
        .await;
    let spec = browser.text("#spec").await;
    assert!(spec.contains(&format!("${{{name}}}")), "{spec}");
    assert!(!browser.source().await.contains(value));
}
