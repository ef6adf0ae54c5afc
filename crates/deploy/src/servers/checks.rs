//! A server's preflight checks: is the engine reachable, new enough, of the daemon's
//! architecture, with room on its disk, its proxy running and answering, and its clock
//! close to ours. Written over a [`capstan_engine::Engine`], so an engine reached over SSH
//! is checked the same way as the local one; an SSH server's address is checked by
//! connecting to it and reading sshd's greeting.

use capstan_engine::cleanup::DiskUsage;
use capstan_engine::host_facts::HostFacts;
use capstan_engine::Engine;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The oldest Docker API Capstan speaks (Docker 20.10): one network at container create,
/// no health `start_interval`.
pub const MIN_API_VERSION: (u32, u32) = (1, 41);

/// The most the engine host's clock may differ from the daemon's.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The least free space under the engine's data root for builds and images.
pub const MIN_FREE_BYTES: u64 = 2 << 30;

/// How long the engine may take to say what it is.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an SSH address may take to connect and greet.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The names of the checks that need the server's engine, in the order they are shown.
pub const ENGINE_CHECKS: [&str; 5] = ["engine_version", "architecture", "disk", "proxy", "clock"];

/// One check's outcome: what was checked, whether it passed, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// Every check of a server and whether all passed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preflight {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Preflight {
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// Where the engine's data root can be measured from.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskAccess {
    /// The engine runs on the daemon's host: its data root is a path here.
    ThisHost,
    /// The engine is elsewhere and was measured through its API (see
    /// `capstan_engine::Engine::data_root_disk`): its data root and disk, or why not.
    Measured(Result<(String, DiskUsage), String>),
}

/// The engine's checks: `reachable`, then [`ENGINE_CHECKS`]. `proxy_answers` is whether
/// the proxy's API answered its ping, when the caller can ask it.
pub async fn engine_checks(
    engine: &Engine,
    disk: DiskAccess,
    proxy_answers: Option<bool>,
) -> Vec<Check> {
    let before = chrono::Utc::now();
    let facts = tokio::time::timeout(ENGINE_TIMEOUT, engine.host_facts()).await;
    let after = chrono::Utc::now();
    let facts = match facts {
        Ok(Ok(facts)) => facts,
        Ok(Err(err)) => return unreachable(&format!("the Docker engine does not answer: {err}")),
        Err(_) => {
            return unreachable(&format!(
                "the Docker engine did not answer within {} s",
                ENGINE_TIMEOUT.as_secs()
            ))
        }
    };
    vec![
        Check::new(
            "reachable",
            true,
            format!(
                "the Docker engine answers ({} ms)",
                (after - before).num_milliseconds()
            ),
        ),
        version_check(&facts),
        architecture_check(&facts),
        disk_check(&facts, disk),
        proxy_check(engine, proxy_answers).await,
        clock_check(&facts, before, after),
    ]
}

/// `reachable` failed with `why`; every engine check says it was not run.
/// What must hold before anything is prepared or deployed on a server: its engine answers,
/// is new enough and runs the daemon's architecture; the first that fails, as a check.
pub async fn deploy_preflight(engine: &Engine) -> Option<Check> {
    let unreachable = |why: String| Some(Check::new("reachable", false, why));
    let facts = match tokio::time::timeout(ENGINE_TIMEOUT, engine.host_facts()).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(err)) => return unreachable(format!("the Docker engine does not answer: {err}")),
        Err(_) => {
            return unreachable(format!(
                "the Docker engine did not answer within {} s",
                ENGINE_TIMEOUT.as_secs()
            ))
        }
    };
    [version_check(&facts), architecture_check(&facts)]
        .into_iter()
        .find(|check| !check.ok)
}

fn unreachable(why: &str) -> Vec<Check> {
    let mut checks = vec![Check::new("reachable", false, why)];
    checks.extend(
        ENGINE_CHECKS
            .iter()
            .map(|name| Check::new(name, false, "not checked: the engine is not reachable")),
    );
    checks
}

/// An API version as (major, minor).
fn api_of(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn version_check(facts: &HostFacts) -> Check {
    let (major, minor) = MIN_API_VERSION;
    let said = format!("Docker {}, API {}", facts.version, facts.api_version);
    match api_of(&facts.api_version) {
        Some(api) if api >= MIN_API_VERSION => Check::new("engine_version", true, said),
        Some(_) => Check::new(
            "engine_version",
            false,
            format!("{said}: too old, Capstan needs API {major}.{minor} (Docker 20.10) or later"),
        ),
        None => Check::new(
            "engine_version",
            false,
            format!("{said}: the API version is not a version Capstan can read"),
        ),
    }
}

/// The daemon's own architecture as Docker names it: the probe Capstan mounts into app
/// containers is built for it.
fn own_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

fn architecture_check(facts: &HostFacts) -> Check {
    let platform = format!("{}/{}", facts.os, facts.arch);
    let own = format!("linux/{}", own_arch());
    if platform == own {
        Check::new("architecture", true, platform)
    } else {
        Check::new(
            "architecture",
            false,
            format!(
                "{platform}: the health probe Capstan puts into app containers is built for {own}"
            ),
        )
    }
}

fn disk_check(facts: &HostFacts, disk: DiskAccess) -> Check {
    let (root, usage) = match (disk, facts.data_root.as_deref()) {
        (DiskAccess::Measured(Ok((root, usage))), _) => (root, usage),
        (DiskAccess::Measured(Err(why)), _) => return Check::new("disk", false, why),
        (DiskAccess::ThisHost, None) => {
            return Check::new(
                "disk",
                false,
                "the engine does not say where its data root is",
            )
        }
        (DiskAccess::ThisHost, Some(root)) => {
            let Some(usage) = capstan_engine::cleanup::disk_usage(std::path::Path::new(root))
            else {
                return Check::new(
                    "disk",
                    false,
                    format!("cannot measure the disk under {root}"),
                );
            };
            (root.to_string(), usage)
        }
    };
    let free = capstan_core::units::size(usage.free_bytes);
    let detail = format!(
        "{free} free under {root} ({:.1}% used)",
        usage.used_percent()
    );
    if usage.free_bytes >= MIN_FREE_BYTES {
        Check::new("disk", true, detail)
    } else {
        Check::new(
            "disk",
            false,
            format!(
                "{detail}: builds need at least {}",
                capstan_core::units::size(MIN_FREE_BYTES)
            ),
        )
    }
}

async fn proxy_check(engine: &Engine, answers: Option<bool>) -> Check {
    let name = engine.proxy_container_name();
    let status = match tokio::time::timeout(ENGINE_TIMEOUT, engine.proxy_status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(err)) => return Check::new("proxy", false, format!("cannot inspect {name}: {err}")),
        Err(_) => return Check::new("proxy", false, format!("inspecting {name} timed out")),
    };
    let Some(status) = status else {
        return Check::new(
            "proxy",
            false,
            format!("there is no proxy container {name}"),
        );
    };
    if !status.running {
        return Check::new("proxy", false, format!("{name} is not running"));
    }
    let ports = match (status.host_port(80), status.host_port(443)) {
        (Some(http), Some(https)) => format!("HTTP on port {http}, HTTPS on port {https}"),
        _ => "no HTTP/HTTPS ports published".into(),
    };
    match answers {
        Some(false) => Check::new(
            "proxy",
            false,
            format!("{name} runs ({ports}) but its API does not answer its ping"),
        ),
        Some(true) => Check::new("proxy", true, format!("{name} runs and answers ({ports})")),
        None => Check::new("proxy", true, format!("{name} runs ({ports})")),
    }
}

/// The engine's clock against ours, read between `before` and `after`.
fn clock_check(
    facts: &HostFacts,
    before: chrono::DateTime<chrono::Utc>,
    after: chrono::DateTime<chrono::Utc>,
) -> Check {
    let Some(theirs) = facts
        .system_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return Check::new("clock", false, "the engine does not say what time it is");
    };
    let theirs = theirs.with_timezone(&chrono::Utc);
    let max = chrono::Duration::from_std(MAX_CLOCK_SKEW).unwrap_or_default();
    let midpoint = before + (after - before) / 2;
    let skew_ms = (theirs - midpoint).num_milliseconds();
    let detail = format!("the engine's clock is {skew_ms} ms off ours");
    if theirs >= before - max && theirs <= after + max {
        Check::new("clock", true, detail)
    } else {
        Check::new(
            "clock",
            false,
            format!(
                "{detail}: more than {} s; set up NTP there",
                MAX_CLOCK_SKEW.as_secs()
            ),
        )
    }
}

/// Whether `host:port` takes a TCP connection and greets like an SSH server, within
/// [`SSH_TIMEOUT`] (name resolution included).
pub async fn ssh_reachable(host: &str, port: u16) -> Check {
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let mut greeting = vec![0u8; 255];
        let read = stream.read(&mut greeting).await?;
        greeting.truncate(read);
        Ok::<_, std::io::Error>(greeting)
    };
    match tokio::time::timeout(SSH_TIMEOUT, attempt).await {
        Err(_) => Check::new(
            "reachable",
            false,
            format!(
                "{address} did not connect and greet within {} s",
                SSH_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(err)) => Check::new(
            "reachable",
            false,
            format!("cannot connect to {address}: {err}"),
        ),
        Ok(Ok(greeting)) => {
            let text = String::from_utf8_lossy(&greeting);
            let line = text.lines().next().unwrap_or_default();
            let shown: String = line.chars().filter(|c| !c.is_control()).take(80).collect();
            if line.starts_with("SSH-2.0-") {
                Check::new("reachable", true, format!("{address} answers: {shown}"))
            } else {
                Check::new(
                    "reachable",
                    false,
                    format!("{address} connects but does not greet as an SSH server ({shown:?})"),
                )
            }
        }
    }
}

/// The engine checks of a server whose engine could not be reached.
pub fn not_connected(extra: &[&str]) -> Vec<Check> {
    ENGINE_CHECKS
        .iter()
        .chain(extra)
        .map(|name| Check::new(name, false, "not checked: the engine was not reached"))
        .collect()
}

/// The SSH log-in failed: the reason (an unconfirmed or changed host key names the
/// fingerprints; a refused key names the user).
pub fn ssh_failed(reason: &str) -> Check {
    Check::new("ssh", false, reason)
}

/// The SSH log-in worked with the pinned host key.
pub fn ssh_ok(fingerprint: &Option<String>) -> Check {
    let pinned = fingerprint.as_deref().unwrap_or("(none)");
    Check::new("ssh", true, format!("logged in; host key {pinned}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(api: &str, arch: &str) -> HostFacts {
        HostFacts {
            version: "20.10.24".into(),
            api_version: api.into(),
            os: "linux".into(),
            arch: arch.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_old_engine_or_another_architecture_is_refused_with_the_reason() {
        assert!(version_check(&facts("1.41", "amd64")).ok);
        assert!(version_check(&facts("1.47", "amd64")).ok);
        let old = version_check(&facts("1.40", "amd64"));
        assert!(!old.ok && old.detail.contains("1.41"), "{old:?}");
        assert!(!version_check(&facts("junk", "amd64")).ok);
        assert!(architecture_check(&facts("1.41", own_arch())).ok);
        let other = architecture_check(&facts("1.41", "s390x"));
        assert!(
            !other.ok && other.detail.contains("linux/s390x"),
            "{other:?}"
        );
    }

    #[test]
    fn the_clock_check_allows_the_skew_and_no_more() {
        let now = chrono::Utc::now();
        let mut f = facts("1.41", "amd64");
        f.system_time = Some((now + chrono::Duration::seconds(2)).to_rfc3339());
        assert!(clock_check(&f, now, now).ok);
        f.system_time = Some((now - chrono::Duration::seconds(60)).to_rfc3339());
        let off = clock_check(&f, now, now);
        assert!(!off.ok && off.detail.contains("-60000 ms"), "{off:?}");
        f.system_time = None;
        assert!(!clock_check(&f, now, now).ok);
    }

    #[tokio::test]
    async fn an_ssh_address_must_connect_and_greet() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut peer, _)) = listener.accept().await {
                let _ = peer.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n").await;
            }
        });
        let ok = ssh_reachable("127.0.0.1", port).await;
        assert!(ok.ok && ok.detail.contains("OpenSSH_9.2p1"), "{ok:?}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = ssh_reachable("127.0.0.1", closed_port).await;
        assert!(
            !refused.ok && refused.detail.contains("cannot connect"),
            "{refused:?}"
        );
    }
}
