//! The app page's links and the server page's actions in Chromium: every domain of a
//! deployed app listed as a link that opens the app through the proxy (its published
//! port in the address, as it is not 80, as on the dashboard), with the certificate state
//! (HTTP only here);
//! the server page shows the proxy's published ports, previews a cleanup (nothing
//! removed), cleans up (the result said once)
//! and writes a backup archive (listed, on disk, mode 0600).

use super::support;
use capstan_testkit::browser::Browser;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// `*.localhost` names reach this host in Chromium without any DNS.
const DOMAINS: [&str; 2] = ["links-one.localhost", "links-two.localhost"];

pub async fn every_domain_opens_the_app(browser: &Browser, daemon: &support::Daemon) {
    let repo = support::SampleRepo::new();
    repo.commit_version("v1", &[]);
    let mut app = support::sample_app("links", &repo, "main", DOMAINS[0]);
    app["domains"] = json!(DOMAINS);
    daemon.create_app(app).await;
    daemon.deploy_expect("links", None, "live").await;

    browser.goto(&format!("{}/apps/links", daemon.api)).await;
    let listed = js(
        browser,
        "return [...document.querySelectorAll('#domains li')].map(li =>
           [li.dataset.domain, li.querySelector('a').href, li.dataset.cert,
            li.querySelector('.badge').textContent])",
    )
    .await;
    let port = daemon.proxy_port;
    assert_eq!(
        listed,
        json!(DOMAINS
            .iter()
            .map(|d| json!([d, format!("http://{d}:{port}/"), "http_only", "HTTP only"]))
            .collect::<Vec<_>>()),
        "every domain, with the proxy's port"
    );
    browser.screenshot("10-app-domains").await;
    // The dashboard's address is the first domain's, with the same port.
    browser.goto(&format!("{}/?q=links", daemon.api)).await;
    let address = js(
        browser,
        "const row = [...document.querySelectorAll('#apps tbody tr')]
           .find(tr => tr.querySelector('a.strong').textContent === 'links');
         return row.querySelector('a.address').href",
    )
    .await;
    assert_eq!(
        address,
        json!(format!("http://{}:{port}/", DOMAINS[0])),
        "the dashboard's link carries the proxy's port"
    );
    for domain in DOMAINS {
        browser.goto(&format!("{}/apps/links", daemon.api)).await;
        // The link opens a new tab; follow its address in this one.
        let href = js(
            browser,
            &format!(
                "return document.querySelector('#domains li[data-domain=\"{domain}\"] a').href"
            ),
        )
        .await;
        browser.goto(href.as_str().unwrap()).await;
        let body = js(browser, "return document.body.innerText").await;
        assert_eq!(
            body.as_str().unwrap().trim(),
            "version: v1",
            "{domain} opens the app"
        );
    }
}

pub async fn server_ports_cleanup_and_backup(browser: &Browser, daemon: &support::Daemon) {
    browser.goto(&format!("{}/server", daemon.api)).await;
    let ports = browser.text("#proxy-ports").await;
    let https_port = support::docker(&["port", &format!("{}-proxy", daemon.instance), "443/tcp"]);
    let https_port = https_port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert!(
        ports.contains(&format!("0.0.0.0:{} → 80/tcp (HTTP)", daemon.proxy_port))
            && ports.contains(&format!("0.0.0.0:{https_port} → 443/tcp (HTTPS)")),
        "the ports the engine publishes: {ports}"
    );

    // Cleanup: confirmed first, then what it did, once. A network of a deleted app goes.
    let old = format!("{}-leftover-test", daemon.instance);
    support::docker(&[
        "network",
        "create",
        "--label",
        &format!("capstan.instance={}", daemon.instance),
        "--label",
        "capstan.app=gone",
        "--label",
        "capstan.role=app-network",
        &old,
    ]);
    // The preview lists it and removes nothing.
    browser.submit("#cleanup-preview").await;
    let preview = browser.text("#flash").await;
    assert!(
        preview.starts_with("Cleanup preview (nothing removed): ")
            && preview.contains(&format!("Would remove network {old}.")),
        "{preview}"
    );
    let still_there = support::docker(&["network", "ls", "-q", "--filter", &format!("name={old}")]);
    assert!(!still_there.trim().is_empty(), "a preview removes nothing");
    js(browser, "window.capstanOldPage = true").await;
    browser.click("#cleanup-run").await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_new_page().await;
    let flash = browser.text("#flash").await;
    assert!(
        flash.starts_with("Cleanup: ")
            && flash.contains("of images freed")
            && flash.contains(&format!("Removed network {old}.")),
        "{flash}"
    );
    assert!(
        support::docker(&["network", "ls", "-q", "--filter", &format!("name={old}")])
            .trim()
            .is_empty()
    );
    browser.screenshot("11-server-cleanup").await;

    // Backup: written now into the backup directory, listed, readable by its owner only.
    browser.submit("#backup-run").await;
    let flash = browser.text("#flash").await;
    assert!(
        flash.starts_with("Backup written: capstan-backup-"),
        "{flash}"
    );
    let listed = js(
        browser,
        "return [...document.querySelectorAll('#backup-list tbody tr')].map(r => r.dataset.archive)",
    )
    .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), 1, "{listed}");
    assert!(flash.contains(names[0]), "{flash}");
    let file = daemon.data_dir.path().join("backups").join(names[0]);
    let meta = std::fs::metadata(&file).unwrap();
    assert!(meta.len() > 0);
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{}",
        file.display()
    );
    let row = browser.text("#backup-list tbody tr").await;
    assert!(row.contains("0600"), "{row}");
    browser.screenshot("12-server-backup").await;
}
