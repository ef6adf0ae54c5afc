//! `capstan-sample`: a small HTTP/1.1 server (keep-alive, thread per connection) whose
//! behaviour is set by environment variables, so one static binary can play every kind of
//! app a deployment test or benchmark needs.
//!
//! - `PORT` (8080), `VERSION` (the body of `/`), `MESSAGE` (optional extra text)
//! - `HEALTHY_AFTER_SECS`: `/health` answers 503 until this long after start
//! - `HEALTH_STATUS`: a fixed status for `/health` (e.g. 500: never healthy)
//! - `CRASH_AFTER_SECS`: exit with status 3 this long after start
//! - `SHUTDOWN`: `graceful` (default; on SIGTERM stop accepting, finish in-flight requests,
//!   exit), `immediate` (exit at once on SIGTERM, dropping in-flight requests) or `ignore`
//!   (SIGTERM does nothing, as for a PID 1 without a handler: only SIGKILL stops it)
//! - `EXIT_AT_START`: exit with status 1 before listening
//!
//! As a one-off task (pre/post-deploy commands): `capstan-sample task EXIT MESSAGE` prints
//! MESSAGE and exits with EXIT; `capstan-sample sleep SECS`; `capstan-sample write PATH V`;
//! `capstan-sample burn SECS` keeps one core busy for SECS (for CPU use readings).
//!
//! Routes: `/` (version), `/health`, `/slow?ms=N` (answers after N ms), `/env/NAME`,
//! `/file/read?path=P` and `/file/write?path=P&value=V` (for volume tests).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Settings {
    version: String,
    healthy_after: Duration,
    health_status: Option<u16>,
    started: Instant,
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn env_secs(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs a one-off task named by the arguments, if any, and exits.
fn run_task(args: &[String]) {
    match args.first().map(String::as_str) {
        Some("task") => {
            let code = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            println!("{}", args.get(2).cloned().unwrap_or_default());
            std::process::exit(code);
        }
        Some("sleep") => {
            let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            std::thread::sleep(Duration::from_secs(secs));
            std::process::exit(0);
        }
        Some("burn") => {
            let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            burn(Duration::from_secs(secs));
            std::process::exit(0);
        }
        Some("write") => {
            let (path, value) = (
                args.get(1).cloned().unwrap_or_default(),
                args.get(2).cloned().unwrap_or_default(),
            );
            match std::fs::write(&path, value) {
                Ok(()) => println!("wrote {path}"),
                Err(e) => {
                    eprintln!("cannot write {path}: {e}");
                    std::process::exit(1);
                }
            }
            std::process::exit(0);
        }
        _ => {}
    }
}

/// Spins on one core until `how_long` has passed.
fn burn(how_long: Duration) {
    let until = Instant::now() + how_long;
    let mut spins: u64 = 0;
    while Instant::now() < until {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    run_task(&args);
    if std::env::var("EXIT_AT_START").is_ok() {
        eprintln!("EXIT_AT_START is set: exiting with status 1");
        std::process::exit(1);
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let settings = Arc::new(Settings {
        version: std::env::var("VERSION").unwrap_or_else(|_| "unknown".into()),
        healthy_after: Duration::from_secs(env_secs("HEALTHY_AFTER_SECS").unwrap_or(0)),
        health_status: std::env::var("HEALTH_STATUS")
            .ok()
            .and_then(|v| v.parse().ok()),
        started: Instant::now(),
    });
    if let Some(secs) = env_secs("CRASH_AFTER_SECS") {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            eprintln!("CRASH_AFTER_SECS={secs}: crashing");
            std::process::exit(3);
        });
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let shutdown = std::env::var("SHUTDOWN").unwrap_or_default();
    if shutdown != "ignore" {
        watch_signals(stopping.clone(), shutdown != "immediate");
    }
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    println!("capstan-sample {} listening on {port}", settings.version);
    while !stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let settings = settings.clone();
                let stopping = stopping.clone();
                std::thread::spawn(move || serve(stream, &settings, &stopping));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    drop(listener);
    // Graceful: let in-flight requests finish (bounded), then exit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("stopped after finishing in-flight requests");
}

fn watch_signals(stopping: Arc<AtomicBool>, graceful: bool) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).expect("signals");
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if !graceful {
                println!("SIGTERM: exiting at once");
                std::process::exit(0);
            }
            println!("SIGTERM: finishing in-flight requests");
            stopping.store(true, Ordering::SeqCst);
        }
    });
}

fn serve(stream: TcpStream, settings: &Settings, stopping: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let mut close = request_line.contains("HTTP/1.0");
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower == "connection: close" {
                close = true;
            } else if lower == "connection: keep-alive" {
                close = false;
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        if content_length > 0 {
            let mut body = vec![0u8; content_length.min(1 << 20)];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let (status, body) = respond(&target, settings);
        // While stopping, ask the client to close so keep-alive connections end cleanly.
        let close = close || stopping.load(Ordering::SeqCst);
        let reason = if status < 400 { "OK" } else { "Error" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        let written = writer
            .write_all(response.as_bytes())
            .and_then(|_| writer.flush());
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        if written.is_err() || close {
            return;
        }
    }
}

fn respond(target: &str, settings: &Settings) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/health" | "/up" => {
            if let Some(status) = settings.health_status {
                return (status, format!("health status fixed at {status}\n"));
            }
            if settings.started.elapsed() < settings.healthy_after {
                (503, "starting\n".into())
            } else {
                (200, "ok\n".into())
            }
        }
        "/slow" => {
            let ms = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000u64);
            std::thread::sleep(Duration::from_millis(ms.min(60_000)));
            (
                200,
                format!("version: {} (slow {ms} ms)\n", settings.version),
            )
        }
        "/file/read" | "/file/write" => {
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_string()
            };
            let file = param("path");
            if path == "/file/write" {
                match std::fs::write(&file, param("value")) {
                    Ok(()) => (200, "written\n".into()),
                    Err(e) => (500, format!("cannot write {file}: {e}\n")),
                }
            } else {
                match std::fs::read_to_string(&file) {
                    Ok(text) => (200, text),
                    Err(e) => (404, format!("cannot read {file}: {e}\n")),
                }
            }
        }
        _ if path.starts_with("/env/") => {
            let name = &path[5..];
            match std::env::var(name) {
                Ok(v) => (200, format!("{v}\n")),
                Err(_) => (404, format!("{name} is not set\n")),
            }
        }
        _ => {
            let message = std::env::var("MESSAGE")
                .map(|m| format!("{m}\n"))
                .unwrap_or_default();
            (200, format!("version: {}\n{message}", settings.version))
        }
    }
}
