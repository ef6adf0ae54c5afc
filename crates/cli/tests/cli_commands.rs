//! The `capstan` client against a real daemon: `login` saves the URL and token (0600) for
//! every later command; apps are created from a TOML file, secrets set from standard input,
//! deployments followed with `--wait` (exit code 0 when live, 1 when failed), rollback and
//! restart, `--json` output that parses, and errors as one line.

mod support;

use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use support::SampleRepo;

struct Client {
    config: tempfile::TempDir,
}

impl Client {
    /// Runs `capstan ARGS` with `input` on stdin: (exit code, stdout, stderr).
    fn run(&self, args: &[&str], input: &str) -> (i32, String, String) {
        self.run_with(args, input, &[("CAPSTAN_DATA_DIR", "/nonexistent")])
    }

    /// As `run`, with these environment variables set (no `CAPSTAN_URL`/`CAPSTAN_TOKEN`
    /// unless given).
    fn run_with(&self, args: &[&str], input: &str, env: &[(&str, &str)]) -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(args)
            .env("XDG_CONFIG_HOME", self.config.path())
            .env_remove("CAPSTAN_URL")
            .env_remove("CAPSTAN_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args, "");
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_logs_in_creates_deploys_rolls_back_and_reports_failures() {
    let daemon = support::start_daemon().await;
    let client = Client {
        config: tempfile::tempdir().unwrap(),
    };
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);

    // No login yet, no token, no data dir: one clear line.
    let (code, _, stderr) = client.run(&["apps"], "");
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("capstan login"), "{stderr}");
    // Without a login, the data dir gives both the admin token and the URL of the daemon
    // that wrote it (here not on :8000); an explicit URL still wins, and a daemon that
    // does not answer is named with the ways to choose another.
    let data_dir = daemon.data_dir.path().to_str().unwrap();
    let (code, stdout, stderr) =
        client.run_with(&["status"], "", &[("CAPSTAN_DATA_DIR", data_dir)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let api_url = std::fs::read_to_string(daemon.data_dir.path().join("api-url")).unwrap();
    assert_eq!(api_url.trim(), daemon.api);
    let mode = std::fs::metadata(daemon.data_dir.path().join("api-url"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let closed = format!("http://127.0.0.1:{}", capstan_testkit::free_port());
    let (code, _, stderr) = client.run_with(
        &["status"],
        "",
        &[("CAPSTAN_DATA_DIR", data_dir), ("CAPSTAN_URL", &closed)],
    );
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needed in [closed.as_str(), "--url", "CAPSTAN_URL", "capstan login"] {
        assert!(stderr.contains(needed), "{needed}: {stderr}");
    }

    // A wrong token is refused and nothing is saved.
    let (code, _, stderr) = client.run(&["login", &daemon.api], "cap_wrong\n");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    let saved = client.config.path().join("capstan/login.json");
    assert!(!saved.exists());
    let (code, stdout, stderr) =
        client.run(&["login", &daemon.api], &format!("{}\n", daemon.token));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let settings = client.config.path().join("web1.toml");
    std::fs::write(
        &settings,
        format!(
            "domains = [\"web1.test\"]\ndrain_secs = 1\nstop_grace_secs = 2\n\n[source.git]\nurl = \"{}\"\nref = \"main\"\n\n[health]\npath = \"/health\"\ninterval_secs = 0.5\n",
            repo.url()
        ),
    )
    .unwrap();
    let created = client.json(&[
        "app",
        "create",
        "web1",
        "--file",
        settings.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(created["name"], "web1");
    let (code, _, stderr) = client.run(&["app", "create", "web1", "--image", "busybox:stable"], "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("409") && stderr.lines().count() == 1,
        "{stderr}"
    );

    // A secret from standard input; listed by name only.
    let (code, stdout, stderr) =
        client.run(&["secrets", "set", "web1", "API_KEY"], "from-stdin-123\n");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let secrets = client.json(&["secrets", "list", "web1", "--json"]);
    assert_eq!(secrets[0]["name"], "API_KEY");
    assert!(!secrets.to_string().contains("from-stdin-123"));
    assert!(client.ok(&["secrets", "list", "web1"]).contains("API_KEY"));

    let out = client.ok(&["deploy", "web1", "--wait"]);
    assert!(out.contains(": live"), "{out}");
    assert!(
        out.contains(&format!("panel:  {}/deployments/", daemon.api)),
        "the deployment's page: {out}"
    );
    assert_eq!(
        daemon.via_proxy("web1.test", "/env/API_KEY").await,
        (200, "from-stdin-123\n".to_string())
    );
    repo.commit_version("v2", &[]);
    // Without --wait: queued, with the page and the command that follows it (which works).
    let out = client.ok(&["deploy", "web1"]);
    let follow = out
        .lines()
        .find_map(|line| line.trim().strip_prefix("follow: capstan "))
        .unwrap_or_else(|| panic!("no follow hint: {out}"));
    let follow: Vec<&str> = follow.split_whitespace().collect();
    assert_eq!(follow[0], "logs", "{out}");
    let followed = client.ok(&follow);
    assert!(followed.trim_end().ends_with(": live"), "{followed}");
    repo.commit_version("v3", &[("EXIT_AT_START", "1")]);
    let (code, stdout, _) = client.run(&["deploy", "web1", "--wait"], "");
    assert_eq!(code, 1, "a failed deployment exits non-zero: {stdout}");
    assert!(stdout.contains(": failed:"), "{stdout}");
    assert_eq!(
        daemon.via_proxy("web1.test", "/").await,
        (200, "version: v2\n".to_string())
    );
    client.ok(&["rollback", "web1", "--wait"]);
    assert_eq!(
        daemon.via_proxy("web1.test", "/").await,
        (200, "version: v1\n".to_string())
    );
    client.ok(&["restart", "web1", "--wait"]);

    let apps = client.json(&["apps", "--json"]);
    assert_eq!(apps[0]["name"], "web1");
    assert_eq!(apps[0]["live"]["trigger"], "restart");
    assert_eq!(apps[0]["live"]["actor"], "token:admin");
    let table = client.ok(&["apps"]);
    assert!(
        table.starts_with("NAME") && table.contains("web1"),
        "{table}"
    );
    let shown = client.json(&["app", "show", "web1", "--json"]);
    assert_eq!(shown["domains"][0], "web1.test");
    client.ok(&["secrets", "rm", "web1", "API_KEY"]);
    let status = client.json(&["status", "--json"]);
    assert_eq!(status["engine"]["reachable"], true, "{status}");
    assert!(
        status["engine"]["version"].as_str().unwrap().contains('.'),
        "{status}"
    );
    assert!(
        status["engine"]["images"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert_eq!(status["proxy"], "running");
    assert_eq!(status["apps"], 1);
    assert_eq!(
        status["queue"],
        serde_json::json!({"queued": 0, "running": 0})
    );
    assert!(
        status["daemon"]["rss_bytes"].as_u64().unwrap() > 1 << 20,
        "{status}"
    );
    let plain = client.ok(&["status"]);
    assert!(
        plain.contains("engine  Docker") && plain.contains("proxy   running"),
        "{plain}"
    );
    let (code, _, stderr) = client.run(&["app", "show", "nope"], "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("404") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
