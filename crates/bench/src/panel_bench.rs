//! `capstan-panel-bench`: the panel's speed and weight with a long history. Fills a fresh
//! data dir with 1,000 apps and 100,000 finished deployments (with phases and log lines),
//! starts the real daemon on it, signs in through the setup page, then times the
//! dashboard, an app page and a deployment page (sequential requests, as a person
//! clicking), and reads the daemon's memory after serving them. Prints measured against
//! target and writes JSON. Reproduce with `scripts/bench-panel.sh`.

#[path = "rss.rs"]
mod rss;

use capstan_store::fixtures::SyntheticHistory;
use capstan_testkit::Daemon;
use clap::Parser;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The capstan binary (default: next to this one).
    #[arg(long)]
    capstan: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    apps: usize,
    #[arg(long, default_value_t = 100)]
    deployments_per_app: usize,
    #[arg(long, default_value_t = 10)]
    log_lines: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    #[arg(long, default_value = "docs/panel-bench-results.json")]
    out: PathBuf,
}

const P99_TARGET_MS: f64 = 50.0;
const RSS_TARGET_MIB: f64 = 40.0;

struct Timing {
    page: &'static str,
    path: String,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    bytes: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn time_page(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    page: &'static str,
    path: String,
    requests: usize,
) -> Timing {
    let get = || async {
        let response = http
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap().len()
    };
    let mut bytes = 0;
    for _ in 0..10 {
        bytes = get().await;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        get().await;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Timing {
        page,
        path,
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        max_ms: *samples.last().unwrap(),
        bytes,
    }
}

/// Signs in through first-run setup with the code the daemon wrote; the session cookie.
async fn sign_up(http: &reqwest::Client, daemon: &Daemon) -> String {
    let code = std::fs::read_to_string(daemon.data_dir.path().join("setup-code")).unwrap();
    let (form_cookie, token) =
        capstan_testkit::forms::pre_session(http, &daemon.api, "/setup").await;
    let response = http
        .post(format!("{}/setup", daemon.api))
        .header("cookie", form_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("code", code.trim()),
            ("name", "bench"),
            ("password", "benchmark password"),
            ("confirm", "benchmark password"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("setup signs in")
        .to_str()
        .unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let capstan = args.capstan.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .join("capstan")
    });
    let data_dir = tempfile::tempdir().unwrap();
    let history = SyntheticHistory {
        apps: args.apps,
        deployments_per_app: args.deployments_per_app,
        log_lines_per_deployment: args.log_lines,
    };
    let fill_start = Instant::now();
    {
        let store = capstan_store::Store::open(&data_dir.path().join("capstan.db"))
            .await
            .unwrap();
        let spec = serde_json::from_value(json!({
            "source": {"git": {"url": "https://git.example.com/team/app.git", "ref": "main"}},
            "env": {"MODE": "production", "LOG_LEVEL": "info"},
            "health": {"path": "/health"},
            "replicas": 2
        }))
        .unwrap();
        store.fill_synthetic(&history, &spec).await.unwrap();
    }
    let total = args.apps * args.deployments_per_app;
    println!(
        "filled {} apps, {total} deployments, {} log lines in {:.1} s",
        args.apps,
        total * args.log_lines,
        fill_start.elapsed().as_secs_f64()
    );

    let daemon = Daemon::start_in(&capstan, data_dir, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cookie = sign_up(&http, &daemon).await;
    let middle_app = format!("app-{:04}", args.apps / 2);
    let middle_deployment =
        (args.apps / 2 * args.deployments_per_app + args.deployments_per_app / 2) as i64;
    let pid = daemon.pid().expect("the daemon runs");
    let rss_before = rss::current_kib(pid);
    let sampler = rss::Sampler::start(pid);
    sampler.reset_peak();
    let mut timings = Vec::new();
    for (page, path) in [
        ("dashboard", "/".to_string()),
        ("app page", format!("/apps/{middle_app}")),
        (
            "deployment page",
            format!("/deployments/{middle_deployment}"),
        ),
    ] {
        timings.push(time_page(&http, &daemon.api, &cookie, page, path, args.requests).await);
    }
    let rss_after = rss::current_kib(pid) as f64 / 1024.0;
    let rss_peak = sampler.peak_kib() as f64 / 1024.0;

    println!();
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>10} {:>8}  path",
        "page", "p50 ms", "p99 ms", "max ms", "target", "bytes"
    );
    for t in &timings {
        println!(
            "{:<16} {:>9.2} {:>9.2} {:>9.2} {:>10} {:>8}  {}",
            t.page,
            t.p50_ms,
            t.p99_ms,
            t.max_ms,
            format!("p99≤{P99_TARGET_MS:.0}"),
            t.bytes,
            t.path
        );
    }
    println!(
        "{:<16} {:>9.1} MiB after serving them (before: {:.1} MiB, peak while serving: {rss_peak:.1} MiB)   target ≤ {RSS_TARGET_MIB:.0} MiB",
        "daemon RSS",
        rss_after,
        rss_before as f64 / 1024.0
    );
    let met = timings.iter().all(|t| t.p99_ms <= P99_TARGET_MS) && rss_after <= RSS_TARGET_MIB;
    println!("\nall targets met: {met}");
    let results = json!({
        "apps": args.apps,
        "deployments": total,
        "log_lines": total * args.log_lines,
        "requests_per_page": args.requests,
        "pages": timings.iter().map(|t| json!({
            "page": t.page, "path": t.path, "p50_ms": t.p50_ms, "p99_ms": t.p99_ms,
            "max_ms": t.max_ms, "bytes": t.bytes, "p99_target_ms": P99_TARGET_MS,
        })).collect::<Vec<_>>(),
        "rss_mib_after": rss_after,
        "rss_mib_peak": rss_peak,
        "rss_target_mib": RSS_TARGET_MIB,
        "targets_met": met,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("results written to {}", args.out.display());
}
