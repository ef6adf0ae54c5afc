//! `capstan-servers-bench`: deploys one prebuilt release to 1, 5 and 10 servers reached over
//! SSH (real sshd processes on loopback in front of the test engine, each server its own
//! namespace and proxy), and measures the wall time of each fan-out, the SSH connections
//! each sshd serves while the deployment runs, the bytes moved to the second host (its own
//! engine) on a one-line source change against the changed layers, and the daemon's
//! resident memory with 10 servers connected. Prints measured against target and writes
//! JSON. Reproduce with `scripts/bench-servers.sh`.

mod rss;

use capstan_testkit::{Daemon, SecondHost, Sshd, SshdConfig};
use clap::Parser;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The capstan binary (default: next to this one).
    #[arg(long)]
    capstan: Option<PathBuf>,
    /// How many servers each round deploys to.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    counts: Vec<usize>,
    /// Deployments timed per round (after the one that prepares the servers).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "docs/servers-bench-results.json")]
    out: PathBuf,
}

const MAIN_SOCKET: &str = "/var/run/docker.sock";

/// A server of the bench: its sshd and what the daemon was told of it.
struct Server {
    name: String,
    sshd: Arc<Sshd>,
}

impl Server {
    async fn add(daemon: &Daemon, name: String, sshd: Sshd, socket: &str) -> Server {
        let namespace = format!("sb{:06x}{name}", rand_u32() & 0xff_ffff);
        MADE.lock()
            .unwrap()
            .push((socket.to_string(), namespace.clone()));
        let body = json!({
            "name": name, "kind": "ssh", "host": sshd.host(), "port": sshd.port(),
            "user": sshd.user(), "host_key_fingerprint": sshd.host_key_fingerprint(),
            "docker_socket": socket, "namespace": namespace,
            "proxy_http_port": capstan_testkit::free_port(),
            "proxy_https_port": capstan_testkit::free_port(),
        });
        let (status, added) = daemon.call(Method::POST, "/servers", Some(body)).await;
        assert_eq!(status, 201, "add server {name}: {added}");
        sshd.authorize(added["public_key"].as_str().unwrap())
            .unwrap();
        Server {
            name,
            sshd: Arc::new(sshd),
        }
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// One round: a release deployed to `count` servers.
struct Round {
    count: usize,
    first_ms: u128,
    timed_ms: Vec<u128>,
    max_connections_per_server: usize,
}

/// Every namespace the bench made on an engine, as (socket, namespace): purged at the end
/// whatever happened, a panic included.
static MADE: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let run = tokio::spawn(bench(Args::parse()));
    let outcome = run.await;
    let made = std::mem::take(&mut *MADE.lock().unwrap());
    for (socket, namespace) in made {
        purge_namespace(&socket, &namespace).await;
    }
    if outcome.is_err() {
        eprintln!("[servers] the benchmark failed (see above); what it made was removed");
        std::process::exit(1);
    }
}

async fn bench(args: Args) {
    let binary = args
        .capstan
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("capstan"));
    let largest = args.counts.iter().copied().max().unwrap_or(1);
    let (_, throwaway) = capstan_remote::generate_key_pair().unwrap();
    let mut daemon = Daemon::start(&binary, &[]).await;
    let mut servers = Vec::new();
    for i in 1..=largest {
        let sshd = Sshd::start(&throwaway).expect("sshd starts (openssh-server)");
        servers.push(Server::add(&daemon, format!("s{i:02}"), sshd, MAIN_SOCKET).await);
    }
    let pid = daemon.pid().expect("the daemon runs");
    let memory = rss::Sampler::start(pid);
    memory.reset_peak();
    let mut rounds = Vec::new();
    for &count in &args.counts {
        let round = fan_out_round(&daemon, &servers[..count], args.repeats).await;
        eprintln!(
            "[servers] {count} server(s): first {} ms, then {:?} ms; at most {} SSH connection(s) per server; daemon RSS {:.1} MiB ({} locked)",
            round.first_ms,
            round.timed_ms,
            round.max_connections_per_server,
            rss::current_kib(pid) as f64 / 1024.0,
            status_field(pid, "VmLck:")
        );
        rounds.push(round);
    }
    // Connected and idle: what the daemon holds with the servers, once the deployments'
    // freed memory went back (the daemon returns it every 20 s).
    tokio::time::sleep(Duration::from_secs(25)).await;
    let rss_mib = rss::current_kib(pid) as f64 / 1024.0;
    let peak_mib = memory.peak_kib() as f64 / 1024.0;
    let transfer = bytes_round(&daemon, &throwaway).await;
    let daemon_log = daemon.daemon_log();
    daemon.kill();
    drop(servers);
    let results = report(&rounds, (rss_mib, peak_mib), &transfer, largest);
    if let Some(parent) = args.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    eprintln!("[servers] results written to {}", args.out.display());
    if results["failed"].as_bool() == Some(true) {
        eprintln!("--- daemon log (tail) ---\n{}", tail(&daemon_log, 60));
    }
}

/// Deploys a prebuilt image to `servers` once (preparing them), then `repeats` times timed,
/// counting each sshd's connections while the deployments run.
async fn fan_out_round(daemon: &Daemon, servers: &[Server], repeats: usize) -> Round {
    let name = format!("fan{}", servers.len());
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    daemon
        .create_app(json!({
            "name": name, "source": {"image": "busybox:stable"},
            "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "port": 8080, "domains": [format!("{name}.bench")], "servers": names,
            "health": {"interval_secs": 0.25}, "drain_secs": 1, "stop_grace_secs": 1,
        }))
        .await;
    let first = timed_deploy(daemon, &name).await;
    let counting = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (counting, most) = (counting.clone(), most.clone());
        let watched: Vec<Arc<Sshd>> = servers.iter().map(|s| s.sshd.clone()).collect();
        tokio::spawn(async move {
            while counting.load(Ordering::Relaxed) {
                for sshd in &watched {
                    most.fetch_max(sshd.connections(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut timed_ms = Vec::new();
    for _ in 0..repeats {
        timed_ms.push(timed_deploy(daemon, &name).await);
    }
    counting.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    Round {
        count: servers.len(),
        first_ms: first,
        timed_ms,
        max_connections_per_server: most.load(Ordering::Relaxed),
    }
}

/// Deploys `app` and waits for it to be live everywhere; the wall time from the call.
async fn timed_deploy(daemon: &Daemon, app: &str) -> u128 {
    let started = Instant::now();
    let done = daemon.deploy_expect(app, None, "live").await;
    let elapsed = started.elapsed().as_millis();
    let id = done["id"].as_i64().unwrap();
    let shown = daemon.deployment(id).await;
    let failed: Vec<&Value> = shown["servers"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["state"] != "live").collect())
        .unwrap_or_default();
    assert!(failed.is_empty(), "deployment {id} failed on {failed:?}");
    elapsed
}

/// What moving an image to the second host cost on a one-line source change.
struct Transfer {
    first_bytes: u64,
    changed_bytes_sent: u64,
    changed_layer_bytes: u64,
}

/// An app built on the test engine (a 2 MiB source tree copied in as one layer) and
/// deployed to a loopback server and the second host; then one line of the source
/// changes, the image is built again and deployed: what moved to the second host.
async fn bytes_round(daemon: &Daemon, throwaway: &str) -> Transfer {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .expect("the second host comes up (scripts/second-host.sh)");
    let config = SshdConfig::in_netns(throwaway, host.netns_path(), host.ip().into());
    let sshd = Sshd::start_with(config).expect("sshd in the second host's namespace");
    let socket = host.docker_socket().to_string_lossy().into_owned();
    let far = Server::add(daemon, "far".into(), sshd, &socket).await;
    let near_sshd = Sshd::start(throwaway).expect("sshd");
    let near = Server::add(daemon, "near".into(), near_sshd, MAIN_SOCKET).await;
    let tag = format!("capstan-bench-bytes-{:06x}", rand_u32() & 0xff_ffff);
    let source = tempfile::tempdir().unwrap();
    // The run's tag in the source: an earlier run's cached build is never reused.
    write_source(source.path(), &format!("{tag} version 1"));
    build(source.path(), &format!("{tag}:v1"));
    daemon
        .create_app(json!({
            "name": "bytes", "source": {"image": format!("{tag}:v1")}, "port": 8080,
            "domains": ["bytes.bench"], "servers": ["near", "far"],
            "health": {"interval_secs": 0.25}, "drain_secs": 1,
        }))
        .await;
    let first = moved(daemon, "bytes").await;
    write_source(source.path(), &format!("{tag} version 2"));
    build(source.path(), &format!("{tag}:v2"));
    let patch = json!({"source": {"image": format!("{tag}:v2")}});
    let (status, body) = daemon.call(Method::PATCH, "/apps/bytes", Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    let second = moved(daemon, "bytes").await;
    drop((far, near));
    for image in [format!("{tag}:v1"), format!("{tag}:v2")] {
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        let _ = host.docker_cli().args(["rmi", "-f", &image]).output();
    }
    Transfer {
        first_bytes: first.0,
        changed_bytes_sent: second.0,
        changed_layer_bytes: second.1,
    }
}

/// A source tree of about 2 MiB (64 files) whose `version.txt` says `version`.
fn write_source(dir: &std::path::Path, version: &str) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..64 {
        let path = src.join(format!("module{i:02}.txt"));
        if !path.exists() {
            let line = format!("fn module_{i}() {{ /* generated source for the benchmark */ }}\n");
            std::fs::write(&path, line.repeat(32 * 1024 / line.len())).unwrap();
        }
    }
    std::fs::write(src.join("version.txt"), format!("{version}\n")).unwrap();
    std::fs::write(src.join("index.html"), "bench\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:stable\nCOPY src /www\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
}

fn build(dir: &std::path::Path, tag: &str) {
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir)
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deploys and reads from the log what moved to the second host: (bytes sent, changed
/// layer bytes).
async fn moved(daemon: &Daemon, app: &str) -> (u64, u64) {
    let done = daemon.deploy_expect(app, None, "live").await;
    let id = done["id"].as_i64().unwrap();
    let log = daemon.log(id).await;
    let line = log
        .lines()
        .find(|l| l.contains("[far] image moved"))
        .unwrap_or_else(|| panic!("no image moved to far in deployment {id}:\n{log}"));
    eprintln!("[servers] deployment {id}: {line}");
    (
        number_after(line, "("),
        number_after(line, "changed layers "),
    )
}

/// The whole number right after the first `marker` in `line`.
fn number_after(line: &str, marker: &str) -> u64 {
    let start = line
        .find(marker)
        .map(|i| i + marker.len())
        .unwrap_or(line.len());
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?} in {line:?}"))
}

/// Removes every object of a namespace from the engine at `socket`.
async fn purge_namespace(socket: &str, namespace: &str) {
    let host = format!("unix://{socket}");
    if let Ok(engine) = capstan_engine::Engine::connect(Some(&host), namespace).await {
        if let Ok(objects) = engine.instance_objects().await {
            engine.purge(&objects, |_| {}).await;
        }
    }
}

fn median(values: &[u128]) -> u128 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Prints each figure beside its target and returns them as JSON.
fn report(rounds: &[Round], memory: (f64, f64), transfer: &Transfer, largest: usize) -> Value {
    let (rss_mib, peak_mib) = memory;
    let one = rounds
        .iter()
        .find(|r| r.count == 1)
        .map(|r| median(&r.timed_ms));
    let most = rounds.iter().max_by_key(|r| r.count);
    let ratio_time = match (one, most) {
        (Some(one), Some(most)) if one > 0 => median(&most.timed_ms) as f64 / one as f64,
        _ => 0.0,
    };
    let connections = rounds
        .iter()
        .map(|r| r.max_connections_per_server)
        .max()
        .unwrap_or(0);
    let ratio_bytes =
        transfer.changed_bytes_sent as f64 / transfer.changed_layer_bytes.max(1) as f64;
    println!("servers benchmark (measured vs target)");
    for round in rounds {
        println!(
            "  deploy a prebuilt release to {:>2} server(s): median {} ms (first, preparing them: {} ms)",
            round.count,
            median(&round.timed_ms),
            round.first_ms
        );
    }
    println!("  wall time {largest} servers / 1 server: {ratio_time:.2}x (target <= 2.00x)");
    println!(
        "  SSH connections per server during a deploy: at most {connections} (target exactly 1)"
    );
    println!(
        "  one-line change moved {} bytes for {} bytes of changed layers: {ratio_bytes:.3}x (target <= 1.2x; the first deploy moved {} bytes)",
        transfer.changed_bytes_sent, transfer.changed_layer_bytes, transfer.first_bytes
    );
    println!("  daemon RSS with {largest} servers connected, idle: {rss_mib:.1} MiB (target <= 40 MiB; peak while deploying {peak_mib:.1} MiB)");
    let failed = ratio_time > 2.0 || connections != 1 || ratio_bytes > 1.2 || rss_mib > 40.0;
    json!({
        "rounds": rounds.iter().map(|r| json!({
            "servers": r.count, "first_ms": r.first_ms as u64,
            "timed_ms": r.timed_ms.iter().map(|t| *t as u64).collect::<Vec<_>>(),
            "median_ms": median(&r.timed_ms) as u64,
            "max_ssh_connections_per_server": r.max_connections_per_server,
        })).collect::<Vec<_>>(),
        "wall_time_ratio": ratio_time,
        "max_ssh_connections_per_server": connections,
        "one_line_change": {"bytes_sent": transfer.changed_bytes_sent,
            "changed_layer_bytes": transfer.changed_layer_bytes, "ratio": ratio_bytes,
            "first_deploy_bytes": transfer.first_bytes},
        "daemon_rss_mib": rss_mib,
        "daemon_peak_rss_mib": peak_mib,
        "failed": failed,
        "measured_at": chrono::Utc::now().to_rfc3339(),
    })
}

/// A line of the process's /proc status (e.g. `VmLck:`), as it reads.
fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_string())
        })
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
