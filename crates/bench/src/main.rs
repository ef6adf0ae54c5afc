//! `capstan-bench`: deploys sample apps with the real daemon, engine and proxy, drives HTTP
//! load through the proxy while redeploying (alternating versions), rolling back and
//! restarting, and reports failed requests, latency, cutover, rollback and restart times,
//! orchestration overhead and daemon memory against their targets. Reproduce with
//! `scripts/bench.sh`.

mod load;
mod report;
mod rss;

use capstan_testkit::{Daemon, SampleRepo};
use clap::Parser;
use load::{now_ms, Load};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The capstan binary (default: next to this one).
    #[arg(long)]
    capstan: Option<PathBuf>,
    /// Redeploys per sample app, alternating two versions.
    #[arg(long, default_value_t = 20)]
    redeploys: usize,
    #[arg(long, default_value_t = 3)]
    rollbacks: usize,
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Keep-alive clients (as many again open a new connection per request).
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Pause of each client between requests, in milliseconds.
    #[arg(long, default_value_t = 2)]
    pause_ms: u64,
    /// Which sample apps: graceful, immediate, slow-start, stubborn (ignores SIGTERM; its
    /// rollbacks come right after a deploy) (comma separated).
    #[arg(long, default_value = "graceful,immediate,slow-start,stubborn")]
    variants: String,
    /// Where to write the JSON results.
    #[arg(long, default_value = "docs/bench-results.json")]
    out: PathBuf,
}

/// One deployment the bench triggered, with what it switched from and to.
pub struct Action {
    pub kind: &'static str,
    pub call_ms: i64,
    pub deployment: Value,
    pub old_version: String,
    pub new_version: String,
    pub drain_ms: i64,
}

fn variant_env(variant: &str) -> Vec<(&'static str, &'static str)> {
    match variant {
        "immediate" => vec![("SHUTDOWN", "immediate")],
        "slow-start" => vec![("HEALTHY_AFTER_SECS", "3")],
        "stubborn" => vec![("SHUTDOWN", "ignore")],
        _ => vec![],
    }
}

async fn run_variant(
    daemon: &Daemon,
    args: &Args,
    variant: &str,
) -> (Vec<load::Sample>, Vec<Action>) {
    let repo = SampleRepo::new();
    let env = variant_env(variant);
    repo.commit_version("a", &env);
    repo.tag("a");
    repo.commit_version("b", &env);
    repo.tag("b");
    let host = format!("{variant}.bench");
    let drain_secs = 1;
    daemon
        .create_app(json!({
            "name": variant,
            "source": {"git": {"url": repo.url(), "ref": "a"}},
            "port": 8080,
            "domains": [host],
            "health": {"path": "/health", "interval_secs": 0.25, "timeout_secs": 2, "retries": 3,
                       "start_period_secs": if variant == "slow-start" { 10 } else { 0 }, "deadline_secs": 60},
            "drain_secs": drain_secs,
            "stop_grace_secs": if variant == "stubborn" { 10 } else { 5 },
            // The stubborn app runs without an init process, as PID 1 that ignores SIGTERM.
            "init": variant != "stubborn"
        }))
        .await;
    daemon.deploy_expect(variant, None, "live").await;
    let url = format!("http://127.0.0.1:{}", daemon.proxy_port);
    let load = Load::start(
        &url,
        &host,
        args.clients,
        Duration::from_millis(args.pause_ms),
        10,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut actions = Vec::new();
    let mut current = "version: a".to_string();
    let drain_ms = drain_secs * 1000;
    for i in 0..args.redeploys {
        let action = redeploy(daemon, variant, &current, drain_ms).await;
        eprintln!(
            "[{variant}] redeploy {}/{}: {} ({})",
            i + 1,
            args.redeploys,
            action.deployment["state"],
            action.new_version
        );
        current = action.new_version.clone();
        actions.push(action);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for i in 0..args.rollbacks {
        if variant == "stubborn" {
            // Right after a deploy: the container it replaced ignores SIGTERM and sits in
            // its 10 s grace period while the rollback runs.
            let action = redeploy(daemon, variant, &current, drain_ms).await;
            current = action.new_version.clone();
            actions.push(action);
        }
        let new_version = if current == "version: a" {
            "version: b"
        } else {
            "version: a"
        }
        .to_string();
        let action = act(
            daemon,
            variant,
            "rollback",
            &current,
            &new_version,
            drain_ms,
        )
        .await;
        eprintln!(
            "[{variant}] rollback {}/{}: {}",
            i + 1,
            args.rollbacks,
            action.deployment["state"]
        );
        actions.push(action);
        current = new_version;
    }
    for i in 0..args.restarts {
        // A changed VERSION setting makes the restarted container tell itself apart.
        let patch = json!({"env": {"VERSION": format!("restart-{i}")}});
        daemon
            .call(Method::PATCH, &format!("/apps/{variant}"), Some(patch))
            .await;
        let new_version = format!("version: restart-{i}");
        let action = act(daemon, variant, "restart", &current, &new_version, drain_ms).await;
        eprintln!(
            "[{variant}] restart {}/{}: {}",
            i + 1,
            args.restarts,
            action.deployment["state"]
        );
        actions.push(action);
        current = new_version;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    (load.stop().await, actions)
}

/// Deploys the other of the two versions (`a` <-> `b`) and waits for the deployment.
async fn redeploy(daemon: &Daemon, app: &str, current: &str, drain_ms: i64) -> Action {
    let (git_ref, version) = if current == "version: a" {
        ("b", "version: b")
    } else {
        ("a", "version: a")
    };
    let call_ms = now_ms();
    let id = daemon.deploy(app, Some(json!({"ref": git_ref}))).await;
    let deployment = daemon.wait(id).await;
    let new_version = if deployment["state"] == "live" {
        version.to_string()
    } else {
        current.to_string()
    };
    Action {
        kind: "deploy",
        call_ms,
        deployment,
        old_version: current.to_string(),
        new_version,
        drain_ms,
    }
}

/// Calls `POST /apps/{app}/{kind}` (rollback or restart) and waits for the deployment.
async fn act(
    daemon: &Daemon,
    app: &str,
    kind: &'static str,
    old: &str,
    new: &str,
    drain_ms: i64,
) -> Action {
    let call_ms = now_ms();
    let (status, accepted) = daemon
        .call(Method::POST, &format!("/apps/{app}/{kind}"), None)
        .await;
    assert_eq!(status, 202, "{kind}: {accepted}");
    let deployment = daemon.wait(accepted["id"].as_i64().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Action {
        kind,
        call_ms,
        deployment,
        old_version: old.to_string(),
        new_version: new.to_string(),
        drain_ms,
    }
}

/// Deploys ten different apps at once; returns the daemon's peak RSS meanwhile and how many
/// of them did not go live.
async fn concurrent_deploys(daemon: &Daemon, sampler: &rss::Sampler) -> (u64, usize) {
    let repo = SampleRepo::new();
    repo.commit_version("c", &[]);
    for n in 0..10 {
        daemon
            .create_app(capstan_testkit::sample_app(
                &format!("c{n}"),
                &repo,
                "main",
                &format!("c{n}.bench"),
            ))
            .await;
    }
    sampler.reset_peak();
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(daemon.deploy(&format!("c{n}"), None).await);
    }
    let mut failed = 0;
    for id in ids {
        let d = daemon.wait(id).await;
        if d["state"] != "live" {
            eprintln!("concurrent deployment {id} did not go live: {}", d["error"]);
            failed += 1;
        }
    }
    (sampler.peak_kib(), failed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let capstan = args
        .capstan
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("capstan"));
    let daemon = Daemon::start(&capstan, &["--build-slots", "10"]).await;
    let pid = daemon.pid().expect("daemon runs");
    let sampler = rss::Sampler::start(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_kib = rss::current_kib(pid);
    sampler.reset_peak();
    let mut variants = Vec::new();
    for variant in args
        .variants
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        let (samples, actions) = run_variant(&daemon, &args, variant).await;
        variants.push(report::analyse(variant, &samples, &actions));
    }
    let run_peak_kib = sampler.peak_kib();
    let (concurrent_peak_kib, concurrent_failed) = concurrent_deploys(&daemon, &sampler).await;
    let results = report::Results {
        variants,
        idle_rss_mib: idle_kib as f64 / 1024.0,
        run_peak_rss_mib: run_peak_kib as f64 / 1024.0,
        concurrent_peak_rss_mib: concurrent_peak_kib as f64 / 1024.0,
        concurrent_failed,
        redeploys: args.redeploys,
        clients: args.clients * 2,
        measured_at: chrono::Utc::now().to_rfc3339(),
    };
    report::print(&results);
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&results.to_json()).unwrap(),
    )
    .unwrap();
    eprintln!("results written to {}", args.out.display());
}
