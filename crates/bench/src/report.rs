//! Turning samples and deployments into figures, printed next to their targets and
//! written as JSON.

use crate::load::Sample;
use crate::Action;
use serde_json::{json, Value};

/// Requests after a deployment's `live` moment stay "cutover" this long (old container
/// drain, stop and removal).
const RETIRE_WINDOW_MS: i64 = 7000;

pub struct VariantResult {
    pub name: String,
    pub total: usize,
    pub failed: usize,
    pub failed_steady: usize,
    pub failed_before_switch: usize,
    pub failed_cutover: usize,
    pub keep_alive: usize,
    pub new_connection: usize,
    pub rps: f64,
    pub p50_steady_ms: f64,
    pub p99_steady_ms: f64,
    pub p50_cutover_ms: f64,
    pub p99_cutover_ms: f64,
    pub cutover_ms: Vec<i64>,
    pub overhead_ms: Vec<i64>,
    pub rollback_ms: Vec<i64>,
    pub restart_ms: Vec<i64>,
    pub deploys_failed: usize,
}

pub struct Results {
    pub variants: Vec<VariantResult>,
    pub idle_rss_mib: f64,
    pub run_peak_rss_mib: f64,
    pub concurrent_peak_rss_mib: f64,
    pub concurrent_failed: usize,
    pub redeploys: usize,
    pub clients: usize,
    pub measured_at: String,
}

fn ms(value: &Value, phase: &str) -> Option<i64> {
    let text = value["phases"][phase].as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn at(value: &Value, field: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value[field].as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn median(values: &[i64]) -> i64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// When, after `from_ms`, the old version answered for the last time: every request that
/// started later got the new one.
fn last_old_answer(samples: &[Sample], action: &Action, from_ms: i64, until_ms: i64) -> i64 {
    samples
        .iter()
        .filter(|s| {
            s.start_ms >= from_ms && s.start_ms <= until_ms && s.version == action.old_version
        })
        .map(|s| s.start_ms + s.latency.as_millis() as i64)
        .max()
        .unwrap_or(from_ms)
}

pub fn analyse(name: &str, samples: &[Sample], actions: &[Action]) -> VariantResult {
    // Windows: [call, switching) before the switch; [switching, finished + retire) cutover.
    let windows: Vec<(i64, i64, i64)> = actions
        .iter()
        .map(|a| {
            let switching = ms(&a.deployment, "switching").unwrap_or(a.call_ms);
            let end = at(&a.deployment, "finished_at").unwrap_or(switching) + RETIRE_WINDOW_MS;
            (a.call_ms, switching, end)
        })
        .collect();
    let phase_of = |s: &Sample| {
        for (call, switching, end) in &windows {
            if s.start_ms >= *switching && s.start_ms <= *end {
                return 2;
            }
            if s.start_ms >= *call && s.start_ms < *switching {
                return 1;
            }
        }
        0
    };
    let mut failed = [0usize; 3];
    let mut steady = Vec::new();
    let mut cutover = Vec::new();
    for s in samples {
        let phase = phase_of(s);
        if s.failed() {
            failed[phase] += 1;
        }
        if !s.slow && !s.failed() {
            let latency = s.latency.as_secs_f64() * 1000.0;
            if phase == 2 {
                cutover.push(latency)
            } else {
                steady.push(latency)
            }
        }
    }
    steady.sort_by(f64::total_cmp);
    cutover.sort_by(f64::total_cmp);
    let mut result = VariantResult {
        name: name.to_string(),
        total: samples.len(),
        failed: failed.iter().sum(),
        failed_steady: failed[0],
        failed_before_switch: failed[1],
        failed_cutover: failed[2],
        keep_alive: samples.iter().filter(|s| s.keep_alive).count(),
        new_connection: samples.iter().filter(|s| !s.keep_alive).count(),
        rps: {
            let span = samples.iter().map(|s| s.start_ms).max().unwrap_or(0)
                - samples.iter().map(|s| s.start_ms).min().unwrap_or(0);
            samples.len() as f64 / (span.max(1) as f64 / 1000.0)
        },
        p50_steady_ms: percentile(&steady, 50.0),
        p99_steady_ms: percentile(&steady, 99.0),
        p50_cutover_ms: percentile(&cutover, 50.0),
        p99_cutover_ms: percentile(&cutover, 99.0),
        cutover_ms: Vec::new(),
        overhead_ms: Vec::new(),
        rollback_ms: Vec::new(),
        restart_ms: Vec::new(),
        deploys_failed: actions
            .iter()
            .filter(|a| a.deployment["state"] != "live")
            .count(),
    };
    for (index, action) in actions.iter().enumerate() {
        if action.deployment["state"] != "live" {
            continue;
        }
        let d = &action.deployment;
        let (Some(switching), Some(finished)) = (ms(d, "switching"), at(d, "finished_at")) else {
            continue;
        };
        // Look for the old version only until the next action starts: it may switch back.
        let next_call = actions.get(index + 1).map_or(i64::MAX, |a| a.call_ms);
        let horizon = (finished + RETIRE_WINDOW_MS).min(next_call);
        match action.kind {
            "deploy" => {
                result
                    .cutover_ms
                    .push(last_old_answer(samples, action, switching, horizon) - switching);
                let created = at(d, "created_at").unwrap_or(action.call_ms);
                // Image build: `building` until `starting` (0 when the image was reused).
                let build = match (ms(d, "building"), ms(d, "starting")) {
                    (Some(b), Some(s)) => s - b,
                    _ => 0,
                };
                // Container readiness: from asking the engine for the container
                // (`starting`) until Docker reports it healthy (`switching`).
                let readiness = ms(d, "starting").map_or(0, |t| switching - t);
                result
                    .overhead_ms
                    .push(finished - created - build - readiness - action.drain_ms);
            }
            "rollback" => result
                .rollback_ms
                .push(last_old_answer(samples, action, action.call_ms, horizon) - action.call_ms),
            _ => result
                .restart_ms
                .push(last_old_answer(samples, action, action.call_ms, horizon) - action.call_ms),
        }
    }
    result
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

pub fn print(results: &Results) {
    println!();
    println!("Capstan cutover benchmark ({} redeploys per app, {} clients: half keep-alive, half new connection)", results.redeploys, results.clients);
    println!(
        "{:<12} {:>9} {:>7} {:>7} {:>9} {:>9} {:>7} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "app",
        "requests",
        "req/s",
        "failed",
        "f:steady",
        "f:deploy",
        "f:cut",
        "p50/p99 st",
        "p50/p99 cut",
        "cutover",
        "overhead",
        "rollback",
        "restart"
    );
    for v in &results.variants {
        println!("{:<12} {:>9} {:>7.0} {:>7} {:>9} {:>9} {:>7} {:>5.1}/{:<6.1} {:>5.1}/{:<6.1} {:>8}ms {:>8}ms {:>8}ms {:>8}ms",
            v.name, v.total, v.rps, v.failed, v.failed_steady, v.failed_before_switch, v.failed_cutover,
            v.p50_steady_ms, v.p99_steady_ms, v.p50_cutover_ms, v.p99_cutover_ms,
            median(&v.cutover_ms), median(&v.overhead_ms), median(&v.rollback_ms), median(&v.restart_ms));
    }
    let total_failed: usize = results.variants.iter().map(|v| v.failed).sum();
    let rollbacks: Vec<i64> = results
        .variants
        .iter()
        .flat_map(|v| v.rollback_ms.clone())
        .collect();
    let overheads: Vec<i64> = results
        .variants
        .iter()
        .flat_map(|v| v.overhead_ms.clone())
        .collect();
    let deploys_failed: usize = results
        .variants
        .iter()
        .map(|v| v.deploys_failed)
        .sum::<usize>()
        + results.concurrent_failed;
    println!();
    println!(
        "{:<46} {:>14} {:>14} {:>8}",
        "figure", "measured", "target", ""
    );
    let row = |name: &str, measured: String, target: &str, ok: bool| {
        println!("{name:<46} {measured:>14} {target:>14} {:>8}", verdict(ok));
    };
    row(
        "failed requests over all cutovers",
        total_failed.to_string(),
        "0",
        total_failed == 0,
    );
    row(
        "deployments that did not go live",
        deploys_failed.to_string(),
        "0",
        deploys_failed == 0,
    );
    row(
        "rollback time, median (call -> all new)",
        format!("{} ms", median(&rollbacks)),
        "<= 2000 ms",
        median(&rollbacks) <= 2000,
    );
    if let Some(stubborn) = results.variants.iter().find(|v| v.name == "stubborn") {
        row(
            "rollback right after a deploy (SIGTERM ignored)",
            format!("{} ms", median(&stubborn.rollback_ms)),
            "<= 2000 ms",
            median(&stubborn.rollback_ms) <= 2000,
        );
    }
    row(
        "orchestration overhead per deploy, median",
        format!("{} ms", median(&overheads)),
        "<= 1000 ms",
        median(&overheads) <= 1000,
    );
    println!("  (overhead = deploy wall time - image build - container readiness (start to healthy) - the configured drain window)");
    row(
        "daemon RSS idle",
        format!("{:.1} MiB", results.idle_rss_mib),
        "<= 30 MB",
        results.idle_rss_mib * 1.048576 <= 30.0,
    );
    row(
        "daemon RSS peak during the run",
        format!("{:.1} MiB", results.run_peak_rss_mib),
        "(reported)",
        true,
    );
    row(
        "daemon RSS peak, 10 concurrent deployments",
        format!("{:.1} MiB", results.concurrent_peak_rss_mib),
        "<= 100 MB",
        results.concurrent_peak_rss_mib * 1.048576 <= 100.0,
    );
}

impl Results {
    pub fn to_json(&self) -> Value {
        let variants: Vec<Value> = self.variants.iter().map(|v| json!({
            "app": v.name,
            "requests": v.total,
            "requests_per_second": v.rps,
            "keep_alive_requests": v.keep_alive,
            "new_connection_requests": v.new_connection,
            "failed": v.failed,
            "failed_by_phase": {"steady": v.failed_steady, "deploying_before_switch": v.failed_before_switch, "cutover": v.failed_cutover},
            "latency_ms": {"steady": {"p50": v.p50_steady_ms, "p99": v.p99_steady_ms}, "cutover": {"p50": v.p50_cutover_ms, "p99": v.p99_cutover_ms}},
            "cutover_ms": {"median": median(&v.cutover_ms), "all": v.cutover_ms},
            "orchestration_overhead_ms": {"median": median(&v.overhead_ms), "all": v.overhead_ms},
            "rollback_ms": {"median": median(&v.rollback_ms), "all": v.rollback_ms},
            "restart_ms": {"median": median(&v.restart_ms), "all": v.restart_ms},
            "deployments_not_live": v.deploys_failed,
        })).collect();
        json!({
            "measured_at": self.measured_at,
            "redeploys_per_app": self.redeploys,
            "clients": self.clients,
            "variants": variants,
            "concurrent_deployments_not_live": self.concurrent_failed,
            "daemon_rss_mib": {"idle": self.idle_rss_mib, "run_peak": self.run_peak_rss_mib, "concurrent_10_peak": self.concurrent_peak_rss_mib},
            "targets": {"failed_requests": 0, "rollback_median_ms": 2000, "overhead_median_ms": 1000, "idle_rss_mb": 30, "concurrent_10_rss_mb": 100},
        })
    }
}
