//! The second host as a real remote: testkit's sshd started inside its network namespace on
//! 10.250.0.2, and the second engine reached through that sshd alone. The client is the
//! OpenSSH one, forwarding a local Unix socket to the engine's socket (`-L local:remote`,
//! the `direct-streamlocal@openssh.com` channel Capstan's own transport opens). Needs root,
//! the Docker engine, the test images and Debian's openssh-server and openssh-client.

use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the ssh client when dropped.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("runs");
    assert!(out.status.success(), "{command:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh ed25519 client key in `dir`; returns its public line.
fn client_key(dir: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "capstan-test", "-f"])
        .arg(dir.join("id")));
    std::fs::read_to_string(dir.join("id.pub")).unwrap()
}

/// `known_hosts` for the sshd, checked against the fingerprint it was started with.
fn pin_host_key(dir: &Path, sshd: &Sshd) -> std::path::PathBuf {
    let scanned = run(Command::new("ssh-keyscan").args([
        "-t",
        "ed25519",
        "-p",
        &sshd.port().to_string(),
        &sshd.host(),
    ]));
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, &scanned).unwrap();
    let fingerprints = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&known_hosts));
    assert!(
        fingerprints.contains(sshd.host_key_fingerprint()),
        "{fingerprints} lacks {}",
        sshd.host_key_fingerprint()
    );
    known_hosts
}

#[test]
fn the_second_engine_answers_through_sshd_in_its_namespace() {
    let host = SecondHost::ensure().unwrap_or_else(|e| panic!("second host: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let public = client_key(dir.path());
    let sshd = Sshd::start_with(SshdConfig::in_netns(
        &public,
        host.netns_path(),
        IpAddr::V4(host.ip()),
    ))
    .unwrap_or_else(|e| panic!("sshd in the second host: {e}"));
    assert_eq!(sshd.host(), host.ip().to_string());
    let known_hosts = pin_host_key(dir.path(), &sshd);

    let local = dir.path().join("docker.sock");
    let forward = format!("{}:{}", local.display(), host.docker_socket().display());
    let _client = Client(
        Command::new("ssh")
            .args(["-F", "/dev/null", "-N", "-o", "BatchMode=yes"])
            .args(["-o", "ExitOnForwardFailure=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-i")
            .arg(dir.path().join("id"))
            .args(["-p", &sshd.port().to_string(), "-L", &forward])
            .arg(format!("{}@{}", sshd.user(), sshd.host()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !local.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh never forwarded {forward}; sshd log:\n{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let id = ["info", "--format", "{{.ID}}"];
    let through_ssh = run(Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", local.display()))
        .args(id));
    let direct = run(host.docker_cli().args(id));
    let main = run(Command::new("docker").args(id));
    assert_eq!(through_ssh.trim(), direct.trim());
    assert_ne!(through_ssh.trim(), main.trim());
    assert!(sshd.connections() >= 1, "{}", sshd.log());
}
