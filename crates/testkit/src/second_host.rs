//! A second host with its own Docker engine, for tests of remote servers, image transfer and
//! swarm: `scripts/second-host.sh up` (network namespace `capstan-h2` at 10.250.0.2, a second
//! `dockerd` inside it with its own socket; `../shared/design.md` §9), run once per test
//! process. The fixture outlives the process and is shared by every test on the machine:
//! tests create their own uniquely named objects on it and remove them; `second-host.sh down`
//! tears it down (CI, at the end).

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Why the second host is not there.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecondHostError {
    #[error("could not run {script} {verb}: {reason}")]
    Spawn {
        script: PathBuf,
        verb: String,
        reason: String,
    },
    #[error("{script} {verb} failed ({status}):\n{stderr}")]
    Failed {
        script: PathBuf,
        verb: String,
        status: String,
        stderr: String,
    },
    #[error("{script} up printed no usable `{key}` (stdout: {stdout:?})")]
    Facts {
        script: PathBuf,
        key: &'static str,
        stdout: String,
    },
    #[error("the second engine at {socket} does not answer: {reason}")]
    Connect { socket: PathBuf, reason: String },
}

/// The second host, up: its address, its engine's socket and its network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondHost {
    ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    docker_socket: PathBuf,
    netns_path: PathBuf,
    dir: PathBuf,
    images: Vec<String>,
}

/// Where the fixture's script is.
pub fn second_host_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/second-host.sh")
}

impl SecondHost {
    /// Sets the second host up (idempotent, shared with parallel test processes through the
    /// script's lock) the first time it is called in this process; later calls return the
    /// same answer. Blocking: it may take several seconds when the engine starts cold.
    pub fn ensure() -> Result<SecondHost, SecondHostError> {
        static UP: OnceLock<Result<SecondHost, SecondHostError>> = OnceLock::new();
        UP.get_or_init(|| run_script("up").and_then(|stdout| SecondHost::parse(&stdout)))
            .clone()
    }

    /// Makes the second engine a single-node swarm manager advertising [`SecondHost::ip`]
    /// (idempotent). The main engine's swarm state is never touched.
    pub fn swarm_up(&self) -> Result<(), SecondHostError> {
        run_script("swarm-up").map(drop)
    }

    /// The second engine leaves its swarm (nothing when it is in none).
    pub fn swarm_down(&self) -> Result<(), SecondHostError> {
        run_script("swarm-down").map(drop)
    }

    /// The host's address as seen from the outside: its containers publish on it.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The address of this (the first) host on the link to the second one.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The second engine's Unix socket (reachable from the host's filesystem).
    pub fn docker_socket(&self) -> &Path {
        &self.docker_socket
    }

    /// The second engine as a `DOCKER_HOST` value (`unix://…`).
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.docker_socket.display())
    }

    /// The network namespace, for `nsenter --net=<path>`.
    pub fn netns_path(&self) -> &Path {
        &self.netns_path
    }

    /// The fixture's directory (the engine's data and exec roots, its log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The test images `up` copied from the main engine (same IDs), e.g. `traefik:v3.7`.
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// A bollard client on the second engine, with the API version negotiated.
    pub async fn docker(&self) -> Result<bollard::Docker, SecondHostError> {
        let connect_error = |e: bollard::errors::Error| SecondHostError::Connect {
            socket: self.docker_socket.clone(),
            reason: e.to_string(),
        };
        let socket = self.docker_socket.to_string_lossy();
        bollard::Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(connect_error)?
            .negotiate_version()
            .await
            .map_err(connect_error)
    }

    /// `program` to be run inside the second host's network namespace (as a process of the
    /// host otherwise: same filesystem, same users), e.g. an sshd listening on
    /// [`SecondHost::ip`]. `nsenter --net`, not `ip netns exec`, which remounts `/sys`.
    pub fn command_in_netns(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns_path.display()))
            .arg("--")
            .arg(program);
        command
    }

    /// The docker CLI aimed at the second engine (test set-up and inspection only).
    pub fn docker_cli(&self) -> Command {
        let mut command = Command::new("docker");
        command.arg("-H").arg(self.docker_host());
        command
    }

    /// Reads the `key=value` lines `second-host.sh up` prints.
    fn parse(stdout: &str) -> Result<SecondHost, SecondHostError> {
        let value = |key: &'static str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecondHostError::Facts {
                    script: second_host_script(),
                    key,
                    stdout: stdout.to_string(),
                })
        };
        let address = |key: &'static str| {
            value(key)?
                .parse::<Ipv4Addr>()
                .map_err(|_| SecondHostError::Facts {
                    script: second_host_script(),
                    key,
                    stdout: stdout.to_string(),
                })
        };
        Ok(SecondHost {
            ip: address("ip")?,
            host_ip: address("host_ip")?,
            docker_socket: PathBuf::from(value("socket")?),
            netns_path: PathBuf::from(value("netns")?),
            dir: PathBuf::from(value("dir")?),
            images: value("images")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }
}

/// Runs `second-host.sh <verb>` and returns its stdout; its stderr is in the error.
fn run_script(verb: &str) -> Result<String, SecondHostError> {
    let script = second_host_script();
    let output = Command::new("bash")
        .arg(&script)
        .arg(verb)
        .output()
        .map_err(|e| SecondHostError::Spawn {
            script: script.clone(),
            verb: verb.to_string(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(SecondHostError::Failed {
            script,
            verb: verb.to_string(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_facts_the_script_prints() {
        let host = SecondHost::parse(
            "ip=10.250.0.2\nhost_ip=10.250.0.1\nsocket=/var/tmp/capstan-h2/docker.sock\n\
             netns=/var/run/netns/capstan-h2\ndir=/var/tmp/capstan-h2\npid=42\n\
             images=traefik:v3.7 busybox:stable\n",
        )
        .unwrap();
        assert_eq!(host.ip(), Ipv4Addr::new(10, 250, 0, 2));
        assert_eq!(host.host_ip(), Ipv4Addr::new(10, 250, 0, 1));
        assert_eq!(host.docker_host(), "unix:///var/tmp/capstan-h2/docker.sock");
        assert_eq!(host.netns_path(), Path::new("/var/run/netns/capstan-h2"));
        assert_eq!(host.images(), ["traefik:v3.7", "busybox:stable"]);
    }

    #[test]
    fn a_missing_or_bad_fact_is_named() {
        let missing = SecondHost::parse("ip=10.250.0.2\n").unwrap_err();
        assert!(matches!(
            missing,
            SecondHostError::Facts { key: "host_ip", .. }
        ));
        let bad = SecondHost::parse("ip=10.250.0.x\n").unwrap_err();
        assert!(matches!(bad, SecondHostError::Facts { key: "ip", .. }));
    }
}
