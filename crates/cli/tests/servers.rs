//! Servers end to end against a real daemon and the real engine: `capstan server add`
//! prints the key line for `authorized_keys`, `capstan server check local` passes every
//! preflight check against the engine and proxy the daemon runs (exit 0), an SSH server (a
//! real sshd on loopback) answers but fails its engine checks (exit 1), and `capstan
//! server remove` is refused while an app targets the server (naming the app), then
//! allowed.

mod support;

use reqwest::Method;
use serde_json::json;
use std::process::Output;

fn capstan(daemon: &capstan_testkit::Daemon, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_through_the_cli_and_local_checked_for_real() {
    let daemon = support::start_daemon().await;
    // A real OpenSSH server on loopback is the SSH server's address; it authorizes another
    // key than the server's, so Capstan gets its greeting but cannot log in.
    let sshd = capstan_testkit::Sshd::start(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0ZXN0a2V5Zm9ydGhlc2VydmVyc3Rlc3RzMDAwMDA placeholder",
    )
    .expect("sshd starts (scripts/test.sh installs openssh-server)");
    let ssh_port = sshd.port().to_string();
    let fingerprint = sshd.host_key_fingerprint().to_string();
    let out = capstan(
        &daemon,
        &[
            "server",
            "add",
            "edge",
            "--host",
            "127.0.0.1",
            "--port",
            &ssh_port,
            "--user",
            "deploy",
            "--fingerprint",
            &fingerprint,
            "--proxy-http-port",
            "8080",
            "--namespace",
            "edge",
        ],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("authorized_keys"), "{said}");
    let key_line = said
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap_or_else(|| panic!("no key line in {said}"));
    let (status, server) = daemon.call(Method::GET, "/servers/edge", None).await;
    assert_eq!(status, 200, "{server}");
    assert_eq!(server["public_key"], key_line);
    assert_eq!(server["host_key_fingerprint"], fingerprint);
    let again = capstan(&daemon, &["server", "add", "edge", "--host", "127.0.0.1"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("409") && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );
    let bad = capstan(&daemon, &["server", "add", "bad", "--host", "no spaces"]);
    assert!(
        text(&bad).contains("422") && text(&bad).contains("host"),
        "{}",
        text(&bad)
    );

    let list = capstan(&daemon, &["server", "list"]);
    let listed = text(&list);
    assert!(
        list.status.success() && listed.contains("local") && listed.contains("deploy@127.0.0.1"),
        "{listed}"
    );

    // local, checked against the real engine and the proxy the daemon runs.
    let check = capstan(&daemon, &["server", "check", "local"]);
    let report = text(&check);
    assert!(
        check.status.success(),
        "every check of local should pass: {report}"
    );
    for name in [
        "reachable",
        "engine_version",
        "architecture",
        "disk",
        "proxy",
        "clock",
    ] {
        assert!(report.contains(&format!("ok   {name}")), "{name}: {report}");
    }
    let (status, checks) = daemon
        .call(Method::POST, "/servers/local/check", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(checks["ok"], true, "{checks}");

    // The SSH server answers with OpenSSH's greeting; its engine checks do not pass
    // (Capstan's key is not authorized there, and no proxy runs in its namespace).
    let edge = capstan(&daemon, &["server", "check", "edge"]);
    let report = text(&edge);
    assert_eq!(edge.status.code(), Some(1), "{report}");
    assert!(
        report.contains("ok   reachable") && report.contains("OpenSSH"),
        "{report}"
    );
    assert!(report.contains("FAIL proxy"), "{report}");
    assert!(report.contains("server edge: not ready"), "{report}");

    // An app that targets it holds it.
    let repo = capstan_testkit::SampleRepo::new();
    repo.commit_version("v1", &[]);
    let app = capstan_testkit::sample_app("far", &repo, "main", "far.test");
    let url = app["source"]["git"]["url"].as_str().unwrap();
    let made = capstan(
        &daemon,
        &["app", "create", "far", "--git", url, "--server", "edge"],
    );
    assert!(made.status.success(), "{}", text(&made));
    let (_, far) = daemon.call(Method::GET, "/apps/far", None).await;
    assert_eq!(far["servers"], json!(["edge"]), "{far}");
    // The deployment is queued and connects when it runs: edge does not authorize the
    // server's key, so it fails there, saying why, and nothing else changes.
    let (status, body) = daemon
        .call(Method::POST, "/apps/far/deployments", None)
        .await;
    assert_eq!(status, 202, "{body}");
    let ended = daemon.wait(body["id"].as_i64().unwrap()).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    assert_eq!(ended["server"], "edge", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .unwrap()
            .contains("refused Capstan's key"),
        "{ended}"
    );
    let held = capstan(&daemon, &["server", "remove", "edge"]);
    assert!(!held.status.success());
    assert!(
        text(&held).contains("409") && text(&held).contains("far"),
        "{}",
        text(&held)
    );
    let local = capstan(&daemon, &["server", "remove", "local"]);
    assert!(
        !local.status.success() && text(&local).contains("cannot be removed"),
        "{}",
        text(&local)
    );

    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/far",
            Some(json!({"servers": ["local"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let removed = capstan(&daemon, &["server", "remove", "edge"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let show = capstan(&daemon, &["server", "show", "edge"]);
    assert!(
        !show.status.success() && text(&show).contains("404"),
        "{}",
        text(&show)
    );
}
