//! The panel offers only what makes sense and stays usable on a phone: no Restart or
//! Maintenance before a first deployment, no Roll back to what already runs, a filter
//! that finds nothing says so, and at 390 px every history entry keeps its Roll back,
//! commit and time on screen while the navigation wraps. Checked in the DOM of the real
//! Chromium (boxes inside the viewport, not merely present in the page).

use capstan_testkit::browser::Browser;
use capstan_testkit::Daemon;
use reqwest::Method;
use serde_json::Value;

async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// An app never deployed: its page offers neither Restart nor Maintenance, and the API
/// refuses both with words that say why.
pub async fn nothing_to_restart_yet(browser: &Browser, daemon: &Daemon, app: &str) {
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    assert!(browser.exists("#deploy").await, "Deploy is offered");
    assert!(
        !browser.exists("#restart").await && !browser.exists("#maintenance").await,
        "no Restart and no Maintenance before a first deployment"
    );
    browser.screenshot("04b-app-never-deployed").await;
    for (method, path) in [
        (Method::POST, format!("/apps/{app}/restart")),
        (Method::PUT, format!("/apps/{app}/maintenance")),
    ] {
        let (status, body) = daemon.call(method, &path, None).await;
        assert_eq!(status, 409, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("nothing is deployed yet"), "{path}: {body}");
    }
}

/// The history entries (`#<id>`) that offer Roll back, newest first.
pub async fn rollback_offers(browser: &Browser) -> Vec<String> {
    let found = js(
        browser,
        "return [...document.querySelectorAll('#deployments tr.entry')]
           .filter(row => row.querySelector('td.rollback button'))
           .map(row => row.querySelector('td.id').textContent.trim())",
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// One entry of the history as shown.
pub struct Entry {
    /// `#<id>`
    pub id: String,
    pub state: String,
    /// The trigger, and for a rollback or restart `of #<id>` of the deployment reused.
    pub trigger: String,
}

/// The history entries, newest first.
pub async fn history(browser: &Browser) -> Vec<Entry> {
    let found = js(
        browser,
        "return [...document.querySelectorAll('#deployments tr.entry')].map(row =>
           ['id', 'state', 'trigger'].map(cell =>
             row.querySelector('td.' + cell).textContent.trim().replace(/\\s+/g, ' ')))",
    )
    .await;
    let rows: Vec<[String; 3]> = serde_json::from_value(found).unwrap();
    rows.into_iter()
        .map(|[id, state, trigger]| Entry { id, state, trigger })
        .collect()
}

/// The newest entry of the app page's change log.
pub async fn latest_change(browser: &Browser) -> String {
    browser.text("#changes tr td:last-child").await
}

/// A dashboard filter with no match says so and its link clears it.
pub async fn empty_filter(browser: &Browser, daemon: &Daemon, app: &str) {
    browser.goto(&format!("{}/?q=xyz", daemon.api)).await;
    assert_eq!(browser.text("#no-match").await, "No app matches “xyz”.");
    assert!(!browser.exists("#apps").await);
    browser.screenshot("10b-filter-no-match").await;
    browser.submit("#clear-filter").await;
    assert_eq!(browser.path().await, "/");
    let query = browser.client.current_url().await.unwrap();
    assert_eq!(query.query(), None, "the filter is gone");
    assert!(browser.text("#apps").await.contains(app));
    let typed = js(browser, "return document.querySelector('[name=q]').value").await;
    assert_eq!(typed, "");
}

/// What sticks out of a 390 px viewport, or is hidden, on the page shown: the page's
/// width, the top navigation's links, and per history entry its Roll back, commit and time.
const LAYOUT_CHECK: &str = r#"
const width = document.documentElement.clientWidth;
const problems = [];
const seen = (what, el) => {
  if (!el) { problems.push(what + ': missing'); return; }
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  if (style.display === 'none' || style.visibility === 'hidden' || box.width === 0 || box.height === 0)
    problems.push(what + ': not shown');
  else if (box.left < 0 || box.right > width + 0.5)
    problems.push(what + ': from ' + box.left + ' to ' + box.right + ' of ' + width);
};
if (document.documentElement.scrollWidth > width)
  problems.push('page is ' + document.documentElement.scrollWidth + ' wide in ' + width);
// Inside a box that scrolls or clips, content may be wider than the page: that box counts.
const clipped = el => {
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement)
    if (getComputedStyle(up).overflowX !== 'visible') return true;
  return false;
};
const wide = [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > width + 0.5 && !clipped(el))
  .map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
if (wide.length) problems.push('wider than the viewport: ' + wide.slice(0, 5).join(', '));
document.querySelectorAll('.bar nav a').forEach(a => seen('nav ' + a.textContent, a));
const rows = [...document.querySelectorAll('#deployments tr.entry')];
rows.forEach(row => {
  const id = row.querySelector('td.id').textContent.trim();
  seen(id + ' time', row.querySelector('td.when time'));
  if (row.querySelector('td.commit code')) seen(id + ' commit', row.querySelector('td.commit code'));
  if (row.querySelector('td.rollback button')) seen(id + ' Roll back', row.querySelector('td.rollback button'));
});
return {width, problems, rows: rows.length,
  commits: rows.filter(r => r.querySelector('td.commit code')).length,
  rollbacks: rows.filter(r => r.querySelector('td.rollback button')).length,
  nav: document.querySelectorAll('.bar nav a').length};
"#;

/// Checks the page shown at the current (narrow) size; returns the figures it found.
async fn fits(browser: &Browser, page: &str) -> Value {
    let found = js(browser, LAYOUT_CHECK).await;
    assert_eq!(found["problems"], serde_json::json!([]), "{page}: {found}");
    found
}

/// At 390 px: the dashboard, the app page and every other page fit, the navigation wraps
/// with every link visible, and each history entry keeps its Roll back, commit and time
/// in view.
pub async fn narrow_screen(browser: &Browser, daemon: &Daemon, app: &str) {
    // A command with one long word: the change log and the commands list must wrap it.
    let long_word = format!("--greeting={}", "x".repeat(90));
    let (status, run) = daemon
        .call(
            Method::POST,
            &format!("/apps/{app}/runs"),
            Some(serde_json::json!({"command": ["echo", long_word]})),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    browser.resize(390, 844).await;
    browser.goto(&daemon.api).await;
    let dashboard = fits(browser, "dashboard").await;
    assert!(dashboard["width"].as_i64().unwrap() <= 390, "{dashboard}");
    assert_eq!(dashboard["nav"], 5, "every link of an admin's navigation");
    browser.screenshot("11-dashboard-phone").await;
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    let page = fits(browser, "app page").await;
    assert!(
        page["rows"].as_i64().unwrap() >= 5
            && page["commits"].as_i64().unwrap() >= 4
            && page["rollbacks"].as_i64().unwrap() >= 2,
        "the history has entries with commits and Roll back to check: {page}"
    );
    js(
        browser,
        "document.querySelector('#deployments').scrollIntoView()",
    )
    .await;
    browser.screenshot("12-app-history-phone").await;
    // Every other page fits too: forms, the commands, the server's tables.
    for (path, shot) in [
        (format!("/apps/{app}/runs"), "12c-runs-phone"),
        (format!("/apps/{app}/settings"), "12d-settings-phone"),
        ("/server".to_string(), "12e-server-phone"),
        ("/servers".to_string(), "12h-servers-phone"),
        ("/access".to_string(), "12f-access-phone"),
        ("/new".to_string(), "12g-new-app-phone"),
    ] {
        browser.goto(&format!("{}{path}", daemon.api)).await;
        fits(browser, &path).await;
        browser.screenshot(shot).await;
    }
    browser.resize(1280, 900).await;
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    js(
        browser,
        "document.querySelector('#deployments').scrollIntoView()",
    )
    .await;
    let wide = js(
        browser,
        "const head = document.querySelector('#deployments thead');
         return getComputedStyle(head).display",
    )
    .await;
    assert_eq!(wide, "table-header-group", "a table again at full width");
    browser.screenshot("12b-app-history-wide").await;
}

/// After a deployment newer than the live one failed, the app page's Live card says so in
/// one line (where it stopped, the first line of why), linking to it.
pub async fn a_newer_failure_shows_on_the_app_page(
    browser: &Browser,
    daemon: &Daemon,
    app: &str,
    failed: i64,
) {
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    let said = browser.text("#newer-deployment").await;
    assert!(
        said.starts_with(&format!("Deployment #{failed} failed while building: "))
            && !said.contains('\n'),
        "{said}"
    );
    let link = js(
        browser,
        "return document.querySelector('#newer-deployment a').getAttribute('href')",
    )
    .await;
    assert_eq!(link, format!("/deployments/{failed}"));
    browser.screenshot("06c-app-newer-failed").await;
}

/// A rollback brings back the release's settings with its image: the confirmation says
/// so, the Live card then names each setting the live release runs that the saved ones do
/// not, and the domain links follow what the proxy routes (the live release's domains),
/// not a domain saved since.
pub async fn a_rollback_shows_the_settings_it_brought_back(
    browser: &Browser,
    daemon: &Daemon,
    app: &str,
    to: i64,
) {
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    let card = browser.text("#actions").await;
    assert!(
        !browser.exists("#live-settings").await && !browser.exists("#newer-deployment").await,
        "the live release runs the saved settings and nothing newer failed: {card}"
    );
    let form = format!("#deployments form:has(input[name=deployment][value='{to}'])");
    let confirm = js(
        browser,
        &format!("return document.querySelector(\"{form}\").dataset.confirm"),
    )
    .await;
    let confirm = confirm.as_str().unwrap();
    assert!(
        confirm.contains("image and its settings come back")
            && confirm.contains("saved settings stay as they are and apply at the next deploy"),
        "{confirm}"
    );
    browser.click(&format!("{form} button")).await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_new_page().await;
    browser
        .wait_text("#state", "live", std::time::Duration::from_secs(60))
        .await;
    let (status, body) = daemon
        .call(
            Method::PATCH,
            &format!("/apps/{app}"),
            Some(serde_json::json!({"domains": ["later.test"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    browser.goto(&format!("{}/apps/{app}", daemon.api)).await;
    let note = browser.text("#live-settings").await;
    assert!(
        note.contains("Runs other settings than the saved ones (rolled back): ")
            && note.contains("domains")
            && note.contains("variable GREETING removed")
            && note.contains("replicas 2 → 1")
            && note.ends_with("The saved ones apply at the next deploy."),
        "{note}"
    );
    let routed = js(
        browser,
        "return [...document.querySelectorAll('#domains li')].map(li => li.dataset.domain)",
    )
    .await;
    assert_eq!(
        routed,
        serde_json::json!(["panel.test"]),
        "what the proxy routes"
    );
    browser.screenshot("11b-app-rolled-back-settings").await;
}
