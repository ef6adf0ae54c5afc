//! `install.sh` for real: in a fresh Debian 12 system (debootstrap, imported as an image by
//! scripts/build-test-images.sh) running systemd as PID 1, with the host's Docker socket.
//! Install → the unit is active and the daemon healthy with its proxy up; a second run
//! changes nothing; an upgrade with a different binary (checksum verified, a wrong one
//! refused) restarts it; a binary that cannot start is rolled back. With an app deployed
//! through the installed daemon, --uninstall removes unit and binaries and keeps the data
//! and every labelled Docker object, saying how to remove them; --purge-data removes data
//! and config only; --purge (config gone, instance named) removes every labelled object
//! while another instance's and foreign ones stay. `shellcheck install.sh` runs too.
//!
//! The daemon in the container talks to the host's engine, which resolves bind-mount
//! sources on the host: the test's directory is mounted at the same path inside, and the
//! data dir lives there (outside /tmp and /var/tmp, which the unit makes private). The
//! container shares the host's network, as the daemon does on a VPS.

mod support;
mod uninstall_objects;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "capstan-test/debian-systemd:12";

struct Host {
    container: String,
    listen: String,
    instance: String,
    suffix: String,
    dir: PathBuf,
}

impl Host {
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("docker")
            .args(["exec", &self.container])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn install(&self, args: &[&str]) -> (bool, String) {
        let script = self.dir.join("install.sh");
        let mut all = vec!["bash", script.to_str().unwrap()];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    fn main_pid(&self) -> String {
        self.exec(&["systemctl", "show", "-p", "MainPID", "--value", "capstan"])
            .1
            .trim()
            .to_string()
    }

    fn healthy(&self) -> bool {
        let url = format!("http://{}/api/v1/health", self.listen);
        self.exec(&["curl", "-fsS", &url]).0
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.container])
            .output();
        let filter = format!("label=capstan.instance={}", self.instance);
        for (list, remove) in [
            (
                vec!["ps", "-aq", "--filter", &filter],
                vec!["rm", "-f", "-v"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &filter],
                vec!["network", "rm"],
            ),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
            (vec!["images", "-q", "--filter", &filter], vec!["rmi", "-f"]),
        ] {
            let listed = support::docker(&list);
            let ids: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(&remove).args(&ids).output();
            }
        }
        let proxy_data = format!("{}-proxy-data", self.instance);
        let other = format!("other-{}", self.suffix);
        let foreign = format!("foreign-{}", self.suffix);
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &other, &foreign])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &proxy_data, &other])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_exe(from: &Path, to: &Path, extra: &[u8]) {
    let mut bytes = std::fs::read(from).unwrap();
    bytes.extend_from_slice(extra);
    std::fs::write(to, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_rerun_upgrade_rollback_and_uninstall_on_debian_with_systemd() {
    let shellcheck = Command::new("shellcheck")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../install.sh"))
        .output()
        .expect("shellcheck is installed (scripts/test.sh installs it)");
    assert!(
        shellcheck.status.success(),
        "{}",
        String::from_utf8_lossy(&shellcheck.stdout)
    );

    let suffix = format!("{:08x}", rand::random::<u32>());
    let dir = PathBuf::from(format!("/var/lib/capstan-install-tests/{suffix}"));
    std::fs::create_dir_all(dir.join("v1")).unwrap();
    std::fs::create_dir_all(dir.join("v2")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../install.sh"),
        dir.join("install.sh"),
    )
    .unwrap();
    let capstan = Path::new(env!("CARGO_BIN_EXE_capstan"));
    let probe = capstan_testkit::assets_dir().join("capstan-probe");
    copy_exe(capstan, &dir.join("v1/capstan"), b"");
    copy_exe(&probe, &dir.join("v1/capstan-probe"), b"");
    // A second, different release: the same program with bytes appended (it still runs),
    // packed as a release archive.
    copy_exe(capstan, &dir.join("v2/capstan"), b"\nrelease-2\n");
    copy_exe(&probe, &dir.join("v2/capstan-probe"), b"");
    let archive = dir.join("capstan-release-2.tar.gz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.join("v2"))
        .args(["capstan", "capstan-probe"])
        .status()
        .unwrap();
    assert!(tar.success());
    // A release whose daemon cannot start.
    std::fs::create_dir_all(dir.join("broken")).unwrap();
    std::fs::write(
        dir.join("broken/capstan"),
        "#!/bin/sh\necho broken >&2\nexit 3\n",
    )
    .unwrap();
    copy_exe(
        &dir.join("broken/capstan"),
        &dir.join("broken/capstan"),
        b"",
    );
    copy_exe(&probe, &dir.join("broken/capstan-probe"), b"");

    let instance = format!("i{suffix}");
    let container = format!("capstan-install-{suffix}");
    let mount = format!("{0}:{0}", dir.display());
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &container])
        .args(["--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"])
        // The host's network, as on a VPS: the daemon reaches the proxy's API on the
        // loopback port the engine publishes.
        .args(["--network", "host"])
        .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .args(["-v", &mount])
        // Not labelled as the instance's: `--uninstall --purge` would remove this host.
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "cannot start the Debian container (scripts/build-test-images.sh builds {IMAGE}): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let listen = format!("127.0.0.1:{}", capstan_testkit::free_port());
    let host = Host {
        container,
        listen: listen.clone(),
        instance: instance.clone(),
        suffix: suffix.clone(),
        dir: dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, state) = host.exec(&["systemctl", "is-system-running"]);
        if state.contains("running") || state.contains("degraded") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "systemd did not come up: {state}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let http_port = capstan_testkit::free_port().to_string();
    let https_port = capstan_testkit::free_port().to_string();
    let data_dir = dir.join("data");
    let common = [
        "--listen",
        &listen,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--http-port",
        &http_port,
        "--https-port",
        &https_port,
        "--instance",
        &instance,
    ];
    let v1 = dir.join("v1/capstan");
    let mut args = vec!["--binary", v1.to_str().unwrap()];
    args.extend_from_slice(&common);

    // Unknown options and a missing source are refused with a reason.
    let (ok, out) = host.install(&["--bogus"]);
    assert!(!ok && out.contains("unknown option --bogus"), "{out}");
    let (ok, out) = host.install(&common);
    assert!(
        !ok && out.contains("--binary PATH|URL or --from-source"),
        "{out}"
    );

    // Another system is refused by name; a taken port is refused naming its holder.
    host.exec(&["cp", "/etc/os-release", "/root/os-release"]);
    host.exec(&["sed", "-i", "s/^ID=.*/ID=fedora/", "/etc/os-release"]);
    let (ok, out) = host.install(&args);
    assert!(!ok && out.contains("(fedora 12) is not supported"), "{out}");
    host.exec(&["cp", "/root/os-release", "/etc/os-release"]);
    let holder = std::net::TcpListener::bind(("0.0.0.0", http_port.parse::<u16>().unwrap()))
        .expect("the free port is still free");
    let (ok, out) = host.install(&args);
    assert!(
        !ok && out.contains(&format!("port {http_port} is in use by")),
        "{out}"
    );
    drop(holder);

    // First install.
    let (ok, out) = host.install(&args);
    assert!(ok, "{out}");
    assert!(
        out.contains("installed the binaries")
            && out.contains("wrote /etc/systemd/system/capstan.service"),
        "{out}"
    );
    assert!(out.contains("setup-code"), "where the setup code is: {out}");
    assert!(!out.to_lowercase().contains("password:"), "{out}");
    assert_eq!(
        host.exec(&["systemctl", "is-active", "capstan"]).1.trim(),
        "active"
    );
    assert!(host.healthy());
    let (_, unit) = host.exec(&["cat", "/etc/systemd/system/capstan.service"]);
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "{unit}");
    }
    assert!(
        unit.contains(&format!("ReadWritePaths={}", data_dir.display())),
        "{unit}"
    );
    let (_, config) = host.exec(&["cat", "/etc/capstan/capstan.toml"]);
    assert!(
        config.contains(&format!("proxy_http_port = {http_port}"))
            && config.contains("# acme_email"),
        "{config}"
    );
    // Local sources under the test's directory may be deployed (the app uninstall keeps
    // and --purge removes); the upgrade below restarts the daemon onto this.
    std::fs::write(
        dir.join("capstan.toml"),
        format!("{config}source_dirs = [\"{}\"]\n", dir.display()),
    )
    .unwrap();
    let edited = dir.join("capstan.toml");
    host.exec(&["cp", edited.to_str().unwrap(), "/etc/capstan/capstan.toml"]);
    let (_, mode) = host.exec(&["stat", "-c", "%a", data_dir.to_str().unwrap()]);
    assert_eq!(mode.trim(), "700");
    let (_, mode) = host.exec(&[
        "stat",
        "-c",
        "%a",
        data_dir.join("setup-code").to_str().unwrap(),
    ]);
    assert_eq!(mode.trim(), "600");
    // The daemon bootstrapped its proxy on the host's engine, on the ports asked for.
    let proxy = support::docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &format!("{instance}-proxy"),
    ]);
    assert_eq!(proxy.trim(), "true");
    let pid = host.main_pid();

    // Second run: nothing changes, the daemon is not restarted.
    let (ok, out) = host.install(&args);
    assert!(ok, "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(host.main_pid(), pid, "a re-run must not restart the daemon");

    // Upgrade from a release archive: a wrong checksum is refused, the right one installs.
    let archive_arg = archive.to_str().unwrap();
    let mut upgrade = vec!["--binary", archive_arg, "--sha256", "00ff"];
    upgrade.extend_from_slice(&common);
    let (ok, out) = host.install(&upgrade);
    assert!(!ok && out.contains("checksum mismatch"), "{out}");
    assert_eq!(host.main_pid(), pid);
    let sum = sha256(&archive);
    upgrade[3] = &sum;
    let (ok, out) = host.install(&upgrade);
    assert!(ok, "{out}");
    assert!(
        out.contains("checksum of capstan-release-2.tar.gz verified")
            && out.contains("upgraded the binaries"),
        "{out}"
    );
    assert_ne!(host.main_pid(), pid, "the daemon runs the new binary");
    assert!(host.healthy());
    let (_, installed) = host.exec(&["sha256sum", "/usr/local/bin/capstan"]);
    assert!(
        installed.starts_with(&sha256(&dir.join("v2/capstan"))),
        "{installed}"
    );

    // An upgrade whose daemon cannot start is undone.
    let broken = dir.join("broken/capstan");
    let mut bad = vec!["--binary", broken.to_str().unwrap()];
    bad.extend_from_slice(&common);
    let (ok, out) = host.install(&bad);
    assert!(!ok, "{out}");
    assert!(out.contains("previous ones are back and serving"), "{out}");
    assert_eq!(
        host.exec(&["systemctl", "is-active", "capstan"]).1.trim(),
        "active"
    );
    assert!(host.healthy());
    let (_, installed) = host.exec(&["sha256sum", "/usr/local/bin/capstan"]);
    assert!(
        installed.starts_with(&sha256(&dir.join("v2/capstan"))),
        "{installed}"
    );

    uninstall_objects::uninstall_keeps_then_purges(&host, &data_dir).await;
}
