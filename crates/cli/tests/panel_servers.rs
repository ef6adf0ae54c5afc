//! The servers page in a real Chromium against a real daemon and a real OpenSSH server on
//! loopback: `local` listed with what the background check found; the add form says every
//! problem at once beside its field, then adds the server and shows the `authorized_keys`
//! line with the next step; Check shows each check (the real sshd's greeting, and on first
//! contact the host key it presented, matching sshd's own); Remove is refused for `local`
//! and while an app targets the server (naming the app, as the API), then allowed; a post
//! without the anti-forgery token is refused; a viewer gets no Servers link and a 403 for
//! the page and for every post; the page fits 390 px. Screenshots go to
//! `$CAPSTAN_ARTIFACTS_DIR/panel_servers`.

mod support;

use capstan_testkit::browser::Browser;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
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

async fn set_up(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&daemon.api).await;
    assert_eq!(browser.path().await, "/setup");
    let code = std::fs::read_to_string(daemon.data_dir.path().join("setup-code")).unwrap();
    for (field, value) in [
        ("code", code.trim()),
        ("name", "ada"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ] {
        browser.fill("form", field, value).await;
    }
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");
}

/// Fills the add form with `fields` and submits it.
async fn add(browser: &Browser, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        browser.fill("#server-form", name, value).await;
    }
    browser.submit("#add-server-button").await;
}

/// Each check shown once after Check, as `[name, ok, detail]`.
async fn checks_shown(browser: &Browser) -> Vec<(String, bool, String)> {
    let found = js(
        browser,
        "return [...document.querySelectorAll('#checks li')].map(li =>
           [li.dataset.check, li.dataset.ok === 'true', li.querySelector('.detail').textContent])",
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// Clicks a button that asks to confirm, accepts, and waits for the next page.
async fn confirmed(browser: &Browser, css: &str) {
    js(browser, "window.capstanOldPage = true").await;
    browser.click(css).await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_new_page().await;
}

/// Nothing sticks out of the viewport (content inside a box that scrolls counts as that
/// box), and every navigation link is shown.
const FITS: &str = r#"
const width = document.documentElement.clientWidth;
const problems = [];
if (document.documentElement.scrollWidth > width)
  problems.push('page is ' + document.documentElement.scrollWidth + ' wide in ' + width);
const clipped = el => {
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement)
    if (getComputedStyle(up).overflowX !== 'visible') return true;
  return false;
};
[...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > width + 0.5 && !clipped(el))
  .forEach(el => problems.push('wider: ' + el.tagName + '#' + el.id + '.' + el.className));
document.querySelectorAll('.bar nav a, .server-card button, #server-form button').forEach(el => {
  const box = el.getBoundingClientRect();
  if (box.width === 0 || box.left < 0 || box.right > width + 0.5)
    problems.push(el.textContent + ' not in view');
});
return problems.slice(0, 8);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_added_checked_and_removed_in_the_panel() {
    let daemon = support::start_daemon().await;
    let sshd = capstan_testkit::Sshd::start(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0ZXN0a2V5Zm9ydGhlc2VydmVyc3Rlc3RzMDAwMDA placeholder",
    )
    .expect("sshd starts (scripts/test.sh installs openssh-server)");
    let browser = Browser::start("panel_servers").await;
    set_up(&browser, &daemon).await;

    // The navigation tells this daemon's host from the servers apps deploy to.
    let nav = browser.text(".bar nav").await;
    assert!(
        nav.contains("This host") && nav.contains("Servers"),
        "{nav}"
    );
    browser.click(".bar nav a[href='/servers']").await;
    browser.wait_new_page().await;
    let local = browser.text("#server-local").await;
    assert!(
        local.contains("this daemon's own Docker engine")
            && local.contains(&daemon.instance)
            && !local.contains("Remove"),
        "{local}"
    );
    // What the background check found of `local`: reachable, checked at a `<time>`.
    let mut seen = Value::Null;
    for _ in 0..40 {
        seen = js(
            &browser,
            "const card = document.querySelector('#server-local');
             const time = card.querySelector('.checked time');
             return [card.dataset.state, card.querySelector('.reachability').textContent,
                     time ? time.dateTime : null]",
        )
        .await;
        if seen[0] == "reachable" && seen[2].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        browser.goto(&format!("{}/servers", daemon.api)).await;
    }
    assert_eq!(
        (&seen[0], &seen[1]),
        (&json!("reachable"), &json!("reachable")),
        "{seen}"
    );
    assert!(seen[2].as_str().is_some_and(|t| t.ends_with('Z')), "{seen}");

    // Every problem at once, what was typed kept.
    add(
        &browser,
        &[
            ("name", "Edge 1"),
            ("host", "no spaces"),
            ("port", "ssh"),
            ("host_key_fingerprint", "SHA256:short"),
            ("proxy_http_port", "8080"),
        ],
    )
    .await;
    assert_eq!(
        problems(&browser).await,
        ["host", "host_key_fingerprint", "name", "port"]
    );
    let kept = js(
        &browser,
        "return ['name', 'port', 'proxy_http_port'].map(n =>
           document.querySelector('#server-form [name=' + n + ']').value)",
    )
    .await;
    assert_eq!(kept, json!(["Edge 1", "ssh", "8080"]));
    browser.screenshot("01-add-server-problems").await;

    // Added: the key line to copy and the next step, once.
    add(
        &browser,
        &[
            ("name", "edge"),
            ("host", &sshd.host()),
            ("port", &sshd.port().to_string()),
            ("host_key_fingerprint", ""),
            ("namespace", "edge"),
        ],
    )
    .await;
    assert_eq!(browser.path().await, "/servers");
    let said = browser.text("#flash").await;
    assert!(
        said.contains("Server edge added")
            && said.contains("authorized_keys")
            && said.contains("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"),
        "{said}"
    );
    let key_line = browser.text("#copy-line").await;
    assert!(key_line.starts_with("ssh-ed25519 "), "{key_line}");
    let (_, server) = daemon.call(Method::GET, "/servers/edge", None).await;
    assert_eq!(server["public_key"], json!(key_line), "the API's key line");
    let card = browser.text("#server-edge").await;
    assert!(
        card.contains(&format!("root@{}:{}", sshd.host(), sshd.port()))
            && card.contains("not confirmed yet")
            && card.contains("edge"),
        "{card}"
    );
    browser.screenshot("02-server-added").await;
    sshd.authorize(&key_line).unwrap();

    // Check: sshd's greeting, and the host key it presented, not trusted.
    browser.submit("#server-edge .check-server").await;
    let checks = checks_shown(&browser).await;
    let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(&names[..2], ["reachable", "ssh"], "{checks:?}");
    assert!(
        checks[0].1 && checks[0].2.contains("SSH-2.0-OpenSSH"),
        "{checks:?}"
    );
    assert!(
        !checks[1].1 && checks[1].2.contains(sshd.host_key_fingerprint()),
        "first contact shows the key sshd presented: {checks:?}"
    );
    assert!(browser.text("#flash").await.contains("Check of edge:"));
    browser.screenshot("03-server-checked").await;
    // Trust: a mistyped key is refused in the card, naming the one presented; the one
    // presented is pinned, and Check then logs in with the key line already installed.
    let form = "#server-edge .pin-key";
    let typo = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    browser.fill(form, "fingerprint", typo).await;
    browser.submit("#server-edge .pin-host-key").await;
    let refused = browser.text("#server-edge .pin-error").await;
    assert!(refused.contains(sshd.host_key_fingerprint()), "{refused}");
    browser
        .fill(form, "fingerprint", sshd.host_key_fingerprint())
        .await;
    browser.submit("#server-edge .pin-host-key").await;
    assert!(browser.text("#flash").await.contains("pinned"));
    let shown = browser.text("#server-edge .fingerprint").await;
    assert!(shown.contains(sshd.host_key_fingerprint()), "{shown}");
    assert!(!browser.exists("#server-edge .pin-key").await);
    browser.submit("#server-edge .check-server").await;
    let checks = checks_shown(&browser).await;
    assert!(checks.iter().any(|c| c.0 == "ssh" && c.1), "{checks:?}");
    browser.submit("#server-local .check-server").await;
    assert!(!checks_shown(&browser).await.is_empty());

    // Remove: refused while an app targets it, naming the app; `local` never.
    let repo = support::SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = support::sample_app("aimed", &repo, "main", "aimed.test");
    app["servers"] = json!(["edge"]);
    daemon.create_app(app).await;
    browser.goto(&format!("{}/servers", daemon.api)).await;
    assert!(browser.text("#server-edge .apps").await.contains("aimed"));
    confirmed(&browser, "#server-edge .remove-server").await;
    let refused = browser.text("#server-edge .removal-error").await;
    let (status, api) = daemon.call(Method::DELETE, "/servers/edge", None).await;
    assert_eq!(status, 409);
    assert_eq!(json!(refused), api["error"], "the API's words");
    assert!(refused.contains("aimed"), "{refused}");
    browser.screenshot("04-removal-refused").await;
    let local = js(
        &browser,
        "const body = new URLSearchParams({csrf: document.querySelector('[name=csrf]').value});
         return fetch('/servers/local/delete', {method: 'POST', body})
           .then(async r => [r.status, await r.text()])",
    )
    .await;
    assert_eq!(local[0], 409, "{local}");
    assert!(local[1].as_str().unwrap().contains("cannot be removed"));
    let local_only = json!({"servers": ["local"]});
    let (status, answer) = daemon
        .call(Method::PATCH, "/apps/aimed", Some(local_only))
        .await;
    assert_eq!(status, 200, "{answer}");
    browser.goto(&format!("{}/servers", daemon.api)).await;
    confirmed(&browser, "#server-edge .remove-server").await;
    assert!(browser.text("#flash").await.contains("Server edge removed"));
    assert!(!browser.exists("#server-edge").await);

    // A phone-sized screen: nothing sticks out, every button in view.
    add(
        &browser,
        &[
            ("name", "edge-two"),
            (
                "host",
                "very-long-host-name-for-the-narrow-screen.example.com",
            ),
            ("port", "2222"),
        ],
    )
    .await;
    browser.resize(390, 844).await;
    browser.goto(&format!("{}/servers", daemon.api)).await;
    assert_eq!(
        js(&browser, FITS).await,
        json!([]),
        "servers page at 390 px"
    );
    browser.screenshot("05-servers-phone").await;
    browser.goto(&format!("{}/server", daemon.api)).await;
    assert_eq!(js(&browser, FITS).await, json!([]), "this host at 390 px");
    // A post without the session's anti-forgery token adds nothing.
    let forged = js(
        &browser,
        "const body = new URLSearchParams({name: 'forged', host: '10.0.0.9'});
         return fetch('/servers', {method: 'POST', body})
           .then(async r => [r.status, await r.text()])",
    )
    .await;
    assert_eq!(forged[0], 403, "{forged}");
    assert!(forged[1].as_str().unwrap().contains("anti-forgery"));

    // A viewer sees no Servers link and is refused the page, as by the API.
    let viewer = json!({"name": "vic", "password": PASSWORD, "role": "viewer"});
    let (status, answer) = daemon.call(Method::POST, "/users", Some(viewer)).await;
    assert_eq!(status, 201, "{answer}");
    browser.resize(1280, 900).await;
    browser.submit(".who button").await;
    browser.fill("form", "name", "vic").await;
    browser.fill("form", "password", PASSWORD).await;
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");
    assert!(!browser.exists(".bar nav a[href='/servers']").await);
    browser.goto(&format!("{}/servers", daemon.api)).await;
    let refused = browser.source().await;
    assert!(refused.contains("does not allow this"), "{refused}");
    browser.goto(&daemon.api).await;
    let posted = js(
        &browser,
        "const csrf = document.querySelector('[name=csrf]').value;
         const post = (path, fields) => fetch(path, {method: 'POST',
           body: new URLSearchParams({csrf, ...fields})}).then(r => r.status);
         return Promise.all([post('/servers', {name: 'sneaky', host: '10.0.0.9'}),
           post('/servers/edge-two/check', {}), post('/servers/edge-two/delete', {})])",
    )
    .await;
    assert_eq!(
        posted,
        json!([403, 403, 403]),
        "a viewer changes and checks nothing"
    );
    let (_, listed) = daemon.call(Method::GET, "/servers", None).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["local", "edge-two"]);
    browser.close().await;
}
