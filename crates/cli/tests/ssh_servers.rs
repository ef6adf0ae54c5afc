//! SSH servers checked for real: the second host of the tests (its own Docker engine in
//! its own network namespace at 10.250.0.2, with a real OpenSSH server beside it) added
//! through the API and checked through the daemon's one SSH connection to it. First
//! contact reports the host key without trusting it; the pinned key logs in and the
//! remote engine passes its checks through the tunnel; a changed host key is refused
//! naming both fingerprints; a key the server does not authorize is refused; an engine
//! socket that is not there fails the engine checks, not the SSH ones.

mod support;

use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// The named check of a check answer.
fn check<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {answer}"))
}

fn passed(answer: &Value, name: &str) -> bool {
    check(answer, name)["ok"] == json!(true)
}

fn detail(answer: &Value, name: &str) -> String {
    check(answer, name)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Adds an SSH server at the sshd; returns its `authorized_keys` line.
async fn add(daemon: &capstan_testkit::Daemon, body: Value) -> String {
    let (status, server) = daemon.call(Method::POST, "/servers", Some(body)).await;
    assert_eq!(status, 201, "{server}");
    server["public_key"]
        .as_str()
        .expect("public_key")
        .to_string()
}

async fn check_server(daemon: &capstan_testkit::Daemon, name: &str) -> Value {
    let path = format!("/servers/{name}/check");
    let (status, answer) = daemon.call(Method::POST, &path, None).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_servers_are_checked_through_one_pinned_connection() {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .expect("the second host comes up (scripts/second-host.sh)");
    // sshd on the second host starts with a throwaway key; each server's own key is
    // authorized once the server is added.
    let (_, throwaway) = capstan_remote::generate_key_pair().unwrap();
    let config = SshdConfig::in_netns(&throwaway, host.netns_path(), host.ip().into());
    let sshd = Sshd::start_with(config).expect("sshd starts in the second host's namespace");
    let daemon = support::start_daemon().await;
    let socket = host.docker_socket().to_string_lossy().into_owned();
    let pinned = sshd.host_key_fingerprint().to_string();
    let server = |name: &str| {
        json!({
            "name": name, "kind": "ssh", "host": sshd.host(), "port": sshd.port(),
            "user": sshd.user(), "docker_socket": socket, "namespace": "h2test",
        })
    };

    // First contact: the key the server shows, not trusted.
    let key = add(&daemon, server("fresh")).await;
    sshd.authorize(&key).unwrap();
    let answer = check_server(&daemon, "fresh").await;
    assert_eq!(answer["ok"], json!(false), "{answer}");
    assert!(passed(&answer, "reachable"), "{answer}");
    assert!(!passed(&answer, "ssh"), "{answer}");
    assert!(detail(&answer, "ssh").contains(&pinned), "{answer}");
    // Pinning a key the server does not present is refused, naming both; the one it
    // presents is pinned through the CLI, and the key pair (already authorized) stays.
    let wrong = json!({"fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"});
    let (status, refused) = daemon
        .call(Method::PUT, "/servers/fresh/host-key", Some(wrong))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains(&pinned),
        "{refused}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["server", "trust", "fresh", &pinned])
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, fresh) = daemon.call(Method::GET, "/servers/fresh", None).await;
    assert_eq!(fresh["host_key_fingerprint"], json!(pinned), "{fresh}");
    assert_eq!(fresh["public_key"].as_str(), Some(key.trim()), "{fresh}");
    let answer = check_server(&daemon, "fresh").await;
    assert!(
        passed(&answer, "ssh") && passed(&answer, "engine"),
        "{answer}"
    );

    // Pinned: logged in, and the second host's engine checked through the tunnel.
    let mut body = server("h2");
    body["host_key_fingerprint"] = json!(pinned);
    let key = add(&daemon, body).await;
    sshd.authorize(&key).unwrap();
    let answer = check_server(&daemon, "h2").await;
    for name in [
        "reachable",
        "ssh",
        "engine",
        "engine_version",
        "architecture",
        "clock",
    ] {
        assert!(passed(&answer, name), "{name}: {answer}");
    }
    // fresh and h2: one connection each.
    assert_eq!(
        sshd.connections(),
        2,
        "one SSH connection per server: {}",
        sshd.log()
    );
    // A second check reuses it.
    let again = check_server(&daemon, "h2").await;
    assert!(passed(&again, "engine"), "{again}");
    assert_eq!(sshd.connections(), 2, "still one connection per server");

    // A changed host key (another pinned fingerprint) is refused, naming both.
    let mut body = server("changed");
    body["host_key_fingerprint"] = json!("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s");
    let key = add(&daemon, body).await;
    sshd.authorize(&key).unwrap();
    let answer = check_server(&daemon, "changed").await;
    let refused = detail(&answer, "ssh");
    assert!(
        !passed(&answer, "ssh") && refused.contains(&pinned),
        "{answer}"
    );
    assert!(
        refused.contains("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
        "{refused}"
    );
    assert!(!passed(&answer, "engine_version"), "{answer}");

    // A server whose key was never authorized there is refused.
    let mut body = server("stranger");
    body["host_key_fingerprint"] = json!(pinned);
    add(&daemon, body).await;
    let answer = check_server(&daemon, "stranger").await;
    assert!(detail(&answer, "ssh").contains("refused"), "{answer}");

    // The SSH side works but the engine socket is not there: the engine checks fail.
    let mut body = server("nosocket");
    body["host_key_fingerprint"] = json!(pinned);
    body["docker_socket"] = json!("/var/tmp/capstan-no-such-engine.sock");
    let key = add(&daemon, body).await;
    sshd.authorize(&key).unwrap();
    let answer = check_server(&daemon, "nosocket").await;
    assert!(passed(&answer, "ssh"), "{answer}");
    assert!(!passed(&answer, "engine"), "{answer}");
    assert!(
        detail(&answer, "engine").contains("capstan-no-such-engine.sock"),
        "{answer}"
    );

    // Removing a server closes the daemon's connection to it.
    for name in ["fresh", "h2", "changed", "stranger", "nosocket"] {
        let (status, body) = daemon
            .call(Method::DELETE, &format!("/servers/{name}"), None)
            .await;
        assert!(status == 204 || status == 200, "{name}: {status} {body}");
    }
    for _ in 0..50 {
        if sshd.connections() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sshd.connections(), 0, "the connection was closed");
}
