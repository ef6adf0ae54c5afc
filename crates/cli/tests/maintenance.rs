//! Maintenance mode at the proxy: on → every request but the app's health path gets a 503
//! page with the message and `Retry-After`; kept across a daemon crash and through a new
//! deployment; off → the app again. Steady traffic the whole time sees only 200s and the
//! intended 503s, never a failed request.

mod support;

use capstan_testkit::traffic::Traffic;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_page_on_and_off_under_traffic() {
    let mut daemon = support::start_daemon().await;
    let repo = daemon.live_sample("shop", "shop.test", &[]).await;
    let traffic = Traffic::start(daemon.proxy_port, "shop.test", "/", 2);
    traffic.pass(100).await;

    // Bad input is refused and changes nothing.
    let (status, body) = daemon
        .call(
            Method::PUT,
            "/apps/shop/maintenance",
            Some(json!({"retry_after_secs": 0})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("retry_after_secs"),
        "{body}"
    );
    let (status, body) = daemon
        .call(Method::PUT, "/apps/nope/maintenance", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(daemon.via_proxy("shop.test", "/").await.0, 200);

    let message = "Upgrading the database — back at 5 <b>soon</b>";
    let (status, on) = daemon
        .call(
            Method::PUT,
            "/apps/shop/maintenance",
            Some(json!({"message": message, "retry_after_secs": 120})),
        )
        .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["enabled"], true);
    assert_eq!(on["applied"], true, "{on}");
    assert_eq!(on["actor"], "token:admin", "{on}");
    traffic.pass(100).await;
    assert_maintenance_page(&daemon, message).await;

    // A crash of the daemon changes nothing; after it, the state is still there.
    daemon.kill();
    traffic.pass(50).await;
    daemon.spawn().await;
    let (_, state) = daemon
        .call(Method::GET, "/apps/shop/maintenance", None)
        .await;
    assert_eq!(state["enabled"], true, "{state}");
    assert_eq!(state["message"], message);
    assert_maintenance_page(&daemon, message).await;

    // A deployment during maintenance goes live behind the page.
    repo.commit_version("v2", &[]);
    daemon.deploy_expect("shop", None, "live").await;
    assert_maintenance_page(&daemon, message).await;

    // The CLI switches it off.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["maintenance", "shop", "off"])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("shop: maintenance off"), "{stdout}");
    traffic.pass(100).await;
    assert_eq!(
        daemon.via_proxy("shop.test", "/").await,
        (200, "version: v2\n".to_string())
    );

    let tally = traffic.stop().await;
    assert!(
        tally.errors.is_empty(),
        "failed requests: {:?}",
        tally.errors
    );
    assert_eq!(
        tally.total(),
        tally.count(200) + tally.count(503),
        "only the app's answers and the intended 503s: {tally:?}"
    );
    assert!(
        tally.count(503) > 100 && tally.count(200) > 100,
        "{tally:?}"
    );
    eprintln!("traffic: {:?}", tally.statuses);

    // And on again from the CLI, with the default page.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["maintenance", "shop", "on", "--retry-after", "30"])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("maintenance on since"), "{stdout}");
    let (status, body) = daemon.via_proxy("shop.test", "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("down for maintenance"), "{body}");
}

/// The page: 503, `Retry-After: 120`, the message escaped, JSON on request; the app's
/// health path still reaches the app.
async fn assert_maintenance_page(daemon: &capstan_testkit::Daemon, message: &str) {
    let url = format!("http://127.0.0.1:{}/orders?x=1", daemon.proxy_port);
    let response = daemon
        .http
        .get(&url)
        .header("Host", "shop.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "120");
    let body = response.text().await.unwrap();
    let escaped = message.replace('<', "&lt;").replace('>', "&gt;");
    assert!(body.contains(&escaped), "{body}");
    let json: serde_json::Value = daemon
        .http
        .get(&url)
        .header("Host", "shop.test")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["message"], message);
    assert_eq!(json["retry_after_secs"], 120);
    assert_eq!(daemon.via_proxy("shop.test", "/health").await.0, 200);
}
