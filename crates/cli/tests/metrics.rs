//! `/metrics` against a real daemon, read with a Prometheus text-format parser: it needs a
//! token (any scope), and its figures move as deployments run: a build, a build-cache hit,
//! a deployment whose container never gets healthy, phase durations and cutover times,
//! the stored deployments by state, the queue, and the process's memory and descriptors.
//! Beside it, `GET /api/v1/apps/{app}/usage` reads each container's CPU and memory.

mod support;

use prometheus_parse::{Scrape, Value};
use reqwest::Method;
use serde_json::json;

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => f64::NAN,
        })
        .sum()
}

async fn scrape(daemon: &support::Daemon, token: &str) -> Scrape {
    let response = daemon
        .http
        .get(format!("{}/metrics", daemon.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_builds_cache_hits_failures_phases_and_the_queue() {
    let daemon = support::start_daemon().await;
    let anonymous = daemon
        .http
        .get(format!("{}/metrics", daemon.api))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "metrics need a token");
    let (status, created) = daemon
        .call(
            Method::POST,
            "/tokens",
            Some(json!({"name": "prometheus", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();

    let (status, missing) = daemon.call(Method::GET, "/apps/nope/usage", None).await;
    assert_eq!(status, 404, "{missing}");
    let before = scrape(&daemon, &token).await;
    assert_eq!(value(&before, "capstan_image_builds_total", &[]), 0.0);
    assert!(value(&before, "capstan_process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(value(&before, "capstan_process_open_fds", &[]) > 3.0);
    assert_eq!(
        value(&before, "capstan_queue_depth", &[("state", "queued")]),
        0.0
    );

    // A build, then the same source again (the build cache), then a version that never
    // passes its health check.
    let repo = daemon.live_sample("metered", "metered.test", &[]).await;
    daemon.deploy_expect("metered", None, "live").await;
    daemon
        .create_app(json!({
            "name": "deaf",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "env": {"HEALTH_STATUS": "500"},
            "health": {"path": "/health", "interval_secs": 0.25, "retries": 2, "deadline_secs": 10},
        }))
        .await;
    daemon.deploy_expect("deaf", None, "failed").await;

    // What the live container uses, from the engine.
    let (status, usage) = daemon
        .call_as(Some(&token), Method::GET, "/apps/metered/usage", None)
        .await;
    assert_eq!(status, 200, "{usage}");
    let containers = usage.as_array().unwrap();
    assert_eq!(containers.len(), 1, "one replica: {usage}");
    assert_eq!(containers[0]["role"], "app");
    assert!(
        containers[0]["memory_bytes"].as_u64().unwrap() > 100_000,
        "{usage}"
    );
    assert!(containers[0]["cpu_percent"].as_f64().unwrap() >= 0.0);
    assert!(containers[0]["deployment"].as_i64().is_some());

    let after = scrape(&daemon, &token).await;
    let finished = |state| {
        value(
            &after,
            "capstan_deployments_finished_total",
            &[("state", state), ("trigger", "deploy")],
        )
    };
    assert_eq!(finished("live"), 2.0);
    assert_eq!(finished("failed"), 1.0);
    assert_eq!(
        value(&after, "capstan_image_builds_total", &[]),
        2.0,
        "one per app"
    );
    assert_eq!(
        value(&after, "capstan_build_cache_hits_total", &[]),
        1.0,
        "the second deploy of the same source reuses the image"
    );
    assert_eq!(
        value(&after, "capstan_health_check_failures_total", &[]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "capstan_deployments",
            &[("state", "live"), ("trigger", "deploy")]
        ),
        1.0,
        "one live deployment stored (the first was superseded)"
    );
    assert_eq!(
        value(
            &after,
            "capstan_deployments",
            &[("state", "superseded"), ("trigger", "deploy")]
        ),
        1.0
    );
    // Histograms: every finished deployment went through `queued`; both live ones through
    // `switching` (the cutover).
    let count = |name: &str, labels: &[(&str, &str)]| {
        after
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Summary(_) => f64::NAN,
            })
            .sum::<f64>()
    };
    let queued_count = count("capstan_deployment_phase_seconds", &[("phase", "queued")])
        + count(
            "capstan_deployment_phase_seconds_count",
            &[("phase", "queued")],
        );
    assert!(queued_count >= 3.0, "{:?}", after.samples);
    let cutovers =
        count("capstan_cutover_seconds", &[]) + count("capstan_cutover_seconds_count", &[]);
    assert!(cutovers >= 2.0, "{:?}", after.samples);
}
