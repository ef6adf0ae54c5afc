//! Upgrading the daemon under load: a deployed app takes steady traffic through the proxy
//! while the `capstan` binary is replaced and the daemon stopped (SIGTERM, as systemd and
//! install.sh do) and started from the new file. The app and the proxy are the engine's
//! containers, not the daemon's children: not one request fails, and the new daemon
//! deploys as before.

mod support;

use capstan_testkit::traffic::Traffic;
use capstan_testkit::Daemon;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_swap_and_restart_drop_no_request() {
    let bin_dir = tempfile::tempdir().unwrap();
    let installed = bin_dir.path().join("capstan");
    let release = |extra: &[u8]| {
        let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_capstan")).unwrap();
        bytes.extend_from_slice(extra);
        let staged = bin_dir.path().join(".capstan.new");
        std::fs::write(&staged, bytes).unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
        // As install.sh does: the new file renamed over the old one.
        std::fs::rename(&staged, &installed).unwrap();
    };
    release(b"");
    let mut daemon = Daemon::start(&installed, &[]).await;
    let repo = daemon.live_sample("web", "web.test", &[]).await;
    let traffic = Traffic::start(daemon.proxy_port, "web.test", "/", 2);
    traffic.pass(200).await;

    // A different release (the same program with bytes appended), swapped in place.
    release(b"\nrelease-2\n");
    let pid = daemon.pid().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful stop: {status:?}"
    );
    traffic.pass(100).await;
    daemon.spawn().await;
    assert_ne!(daemon.pid().unwrap().to_string(), pid);
    traffic.pass(200).await;

    // The upgraded daemon deploys as before.
    repo.commit_version("v2", &[]);
    daemon.deploy_expect("web", None, "live").await;
    traffic.pass(200).await;

    let tally = traffic.stop().await;
    assert!(
        tally.errors.is_empty(),
        "failed requests: {:?}",
        tally.errors
    );
    assert_eq!(tally.total(), tally.count(200), "{tally:?}");
    assert!(
        tally.bodies.contains_key("version: v1") && tally.bodies.contains_key("version: v2"),
        "{tally:?}"
    );
    eprintln!(
        "upgrade under load: {} requests, all 200: {:?}",
        tally.total(),
        tally.bodies
    );
    let log = daemon.daemon_log();
    assert!(
        !log.contains("recreating the proxy"),
        "the proxy is kept: {log}"
    );
}
