//! One-off commands against the real daemon, engine and proxy: a command runs in a fresh
//! container of the live release (its env, secrets, volumes), never in the serving one,
//! which keeps serving untouched; its output is stored masked, its exit code kept, its
//! time limit kills it and leaves nothing behind; scopes, bad input, limits, the change
//! log, `capstan run`, the panel's form and run page in a real Chromium (a deployer
//! types one line, sees the argv it ran and its output followed live to its exit code), a
//! daemon crash mid-run and deleting the app mid-run.

#[path = "one_off_runs/panel.rs"]
mod panel;
mod support;

use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{docker, Daemon, SampleRepo};

const SECRET: &str = "run-Secret-value-5821";

/// Waits until run `id` of `app` has ended and returns it.
async fn finished(daemon: &Daemon, app: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, run) = daemon
            .call(Method::GET, &format!("/apps/{app}/runs/{id}"), None)
            .await;
        assert_eq!(status, 200, "{run}");
        if run["state"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} never ended: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(daemon: &Daemon, app: &str, body: Value) -> Value {
    let (status, run) = daemon
        .call(Method::POST, &format!("/apps/{app}/runs"), Some(body))
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["state"], "running", "{run}");
    run
}

/// Starts `command` and waits for its end: (run, output).
async fn run_to_end(daemon: &Daemon, app: &str, command: &[&str]) -> (Value, String) {
    let run = start(daemon, app, json!({"command": command, "timeout_secs": 60})).await;
    let id = run["id"].as_i64().unwrap();
    let run = finished(daemon, app, id).await;
    let output = daemon.text(&format!("/apps/{app}/runs/{id}/output")).await;
    (run, output)
}

/// The containers of one-off runs this daemon has on the engine.
fn run_containers(daemon: &Daemon) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=capstan.instance={}", daemon.instance),
        "--filter",
        "label=capstan.role=run",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// (id, started at, restart count, running) of a container.
fn container_facts(name: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{.Id}} {{.State.StartedAt}} {{.RestartCount}} {{.State.Running}}",
        name,
    ])
}

fn capstan(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_commands_run_beside_the_live_release() {
    let mut daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nCOPY app /app\nENV VERSION=v1\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n",
        "v1 with a shell",
    );
    let mut app = support::sample_app("jobs", &repo, "main", "jobs.test");
    app["env"] = json!({"GREETING": "hello-from-env"});
    app["volumes"] = json!([{"source": "data", "target": "/data"}]);
    // No init process: the engine itself refuses to start a program the image lacks.
    app["init"] = json!(false);
    daemon.create_app(app).await;
    let (status, body) = daemon
        .call(
            Method::PUT,
            "/apps/jobs/secrets/API_KEY",
            Some(json!({"value": SECRET})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Nothing live yet: nothing to run in.
    let (status, body) = daemon
        .call(
            Method::POST,
            "/apps/jobs/runs",
            Some(json!({"command": ["true"]})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("deploy it first"),
        "{body}"
    );

    daemon.deploy_expect("jobs", None, "live").await;
    let serving = daemon.containers("jobs");
    assert_eq!(serving.len(), 1, "{serving:?}");
    let serving_before = container_facts(&serving[0]);

    // Env, the secret (masked in what is stored), a volume write, stderr, exit 3.
    let script = "echo greeting=$GREETING; echo key=$API_KEY; echo from-run > /data/run.txt; \
                  echo to-stderr >&2; exit 3";
    let (run, output) = run_to_end(&daemon, "jobs", &["sh", "-c", script]).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["exit_code"], 3, "{run}");
    assert_eq!(run["actor"], "token:admin", "{run}");
    assert_eq!(run["command"], json!(["sh", "-c", script]));
    assert!(run["finished_at"].is_string(), "{run}");
    assert!(output.contains("greeting=hello-from-env"), "{output}");
    assert!(output.contains("key=****"), "{output}");
    assert!(output.contains("to-stderr"), "{output}");
    assert!(!output.contains(SECRET), "{output}");

    // The volume is the app's: the serving container and a second run see the write.
    assert_eq!(
        daemon
            .via_proxy("jobs.test", "/file/read?path=/data/run.txt")
            .await
            .1,
        "from-run\n"
    );
    let (run, output) = run_to_end(&daemon, "jobs", &["cat", "/data/run.txt"]).await;
    assert_eq!(
        (run["state"].as_str(), run["exit_code"].as_i64()),
        (Some("succeeded"), Some(0))
    );
    assert_eq!(output, "from-run\n");

    // The argv is run as it is: no shell expands or splits it.
    let (_, output) = run_to_end(&daemon, "jobs", &["echo", "$API_KEY;", "id", "`id`"]).await;
    assert_eq!(output, "$API_KEY; id `id`\n");

    // A secret value in the argv itself is masked in the record, the output and the
    // change log.
    let (run, output) = run_to_end(&daemon, "jobs", &["echo", SECRET]).await;
    assert_eq!(run["command"], json!(["echo", "****"]), "{run}");
    assert_eq!(output, "****\n");

    // The serving container was never touched and still serves.
    assert_eq!(daemon.containers("jobs"), serving);
    assert_eq!(container_facts(&serving[0]), serving_before);
    assert_eq!(
        daemon.via_proxy("jobs.test", "/").await,
        (200, "version: v1\n".to_string())
    );
    assert!(
        run_containers(&daemon).is_empty(),
        "every run's container is removed"
    );

    timeouts_limits_and_bad_input(&daemon).await;
    scopes_and_change_log(&daemon).await;
    cli_runs(&daemon).await;
    panel::panel_runs(&daemon).await;

    // A daemon crash mid-run: the run is failed as interrupted, its container removed.
    let run = start(&daemon, "jobs", json!({"command": ["sleep", "60"]})).await;
    let id = run["id"].as_i64().unwrap();
    wait_for(|| run_containers(&daemon).len() == 1).await;
    daemon.kill();
    daemon.spawn().await;
    let run = finished(&daemon, "jobs", id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("interrupted"),
        "{run}"
    );
    assert!(run_containers(&daemon).is_empty());
    assert_eq!(daemon.via_proxy("jobs.test", "/").await.0, 200);

    // Deleting the app ends its running commands with it.
    let run = start(&daemon, "jobs", json!({"command": ["sleep", "60"]})).await;
    wait_for(|| run_containers(&daemon).len() == 1).await;
    let (status, body) = daemon.call(Method::DELETE, "/apps/jobs", None).await;
    assert_eq!(status, 204, "{body}");
    assert!(run_containers(&daemon).is_empty());
    let (status, _) = daemon
        .call(Method::GET, &format!("/apps/jobs/runs/{}", run["id"]), None)
        .await;
    assert_eq!(status, 404);
}

async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A command past its time limit is killed and leaves no container; input is checked;
/// at most 4 commands of an app run at once.
async fn timeouts_limits_and_bad_input(daemon: &Daemon) {
    let begun = Instant::now();
    let run = start(
        daemon,
        "jobs",
        json!({"command": ["sleep", "30"], "timeout_secs": 2}),
    )
    .await;
    let run = finished(daemon, "jobs", run["id"].as_i64().unwrap()).await;
    assert_eq!(run["state"], "timed_out", "{run}");
    assert!(run["exit_code"].is_null(), "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("within 2s"),
        "{run}"
    );
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "{:?}",
        begun.elapsed()
    );
    assert!(
        run_containers(daemon).is_empty(),
        "{:?}",
        run_containers(daemon)
    );

    for (body, code, text) in [
        (json!({"command": []}), 422, "program"),
        (json!({"command": [""]}), 422, "blank"),
        (
            json!({"command": ["true"], "timeout_secs": 0}),
            422,
            "timeout_secs",
        ),
        (
            json!({"command": ["true"], "timeout_secs": 999_999}),
            422,
            "3600",
        ),
        (json!({"command": "echo hi"}), 400, "invalid JSON"),
        (json!({"command": ["true"], "shell": true}), 400, "shell"),
    ] {
        let (status, answer) = daemon
            .call(Method::POST, "/apps/jobs/runs", Some(body))
            .await;
        assert_eq!(status, code, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(text), "{answer}");
    }
    let (status, _) = daemon
        .call(
            Method::POST,
            "/apps/nope/runs",
            Some(json!({"command": ["true"]})),
        )
        .await;
    assert_eq!(status, 404);
    for path in [
        "/apps/jobs/runs/99999",
        "/apps/nope/runs/1",
        "/apps/jobs/runs/abc/output",
    ] {
        let (status, _) = daemon.call(Method::GET, path, None).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    // A program the image lacks: the engine cannot start it; failed, said why, and the
    // container it created is removed.
    let (run, output) = run_to_end(daemon, "jobs", &["/no/such/program"]).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(run["exit_code"].is_null(), "{run}");
    assert!(
        output.contains("could not run") && output.contains("/no/such/program"),
        "{output}"
    );
    assert!(
        run_containers(daemon).is_empty(),
        "{:?}",
        run_containers(daemon)
    );

    let mut sleepers = Vec::new();
    for _ in 0..4 {
        let run = start(
            daemon,
            "jobs",
            json!({"command": ["sleep", "30"], "timeout_secs": 3}),
        )
        .await;
        sleepers.push(run["id"].as_i64().unwrap());
    }
    let (status, answer) = daemon
        .call(
            Method::POST,
            "/apps/jobs/runs",
            Some(json!({"command": ["true"]})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("4 commands running"),
        "{answer}"
    );
    for id in sleepers {
        assert_eq!(finished(daemon, "jobs", id).await["state"], "timed_out");
    }
    assert!(run_containers(daemon).is_empty());
}

/// A read-only token may read runs, not start one; the change log names who ran what.
async fn scopes_and_change_log(daemon: &Daemon) {
    let (status, token) = daemon
        .call(
            Method::POST,
            "/tokens",
            Some(json!({"name": "reader", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let reader = token["token"].as_str().unwrap();
    let (status, body) = daemon
        .call_as(
            Some(reader),
            Method::POST,
            "/apps/jobs/runs",
            Some(json!({"command": ["true"]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("deploy scope"),
        "{body}"
    );
    let (status, runs) = daemon
        .call_as(Some(reader), Method::GET, "/apps/jobs/runs", None)
        .await;
    assert_eq!(status, 200, "{runs}");
    let runs = runs.as_array().unwrap();
    assert!(runs.len() >= 8, "{runs:?}");
    let first = runs.last().unwrap();
    assert_eq!(first["exit_code"], 3, "oldest last: {first}");

    let (_, events) = daemon.call(Method::GET, "/apps/jobs/events", None).await;
    let events = events.as_array().unwrap();
    let about = |action: &str, detail: &str| {
        events.iter().any(|e| {
            e["action"] == action
                && e["actor"] == "token:admin"
                && e["detail"].as_str().unwrap().contains(detail)
        })
    };
    let id = &first["id"];
    assert!(
        about("command run", &format!("run {id}: sh -c '")),
        "{events:?}"
    );
    assert!(
        about("command finished", &format!("run {id}: failed (exit 3)")),
        "{events:?}"
    );
    assert!(about("command finished", "timed out"), "{events:?}");
    assert!(!format!("{events:?}").contains(SECRET));
}

/// `capstan run` prints the output and exits with the command's status.
async fn cli_runs(daemon: &Daemon) {
    let out = capstan(
        daemon,
        &[
            "run",
            "jobs",
            "--",
            "sh",
            "-c",
            "echo cli-run $GREETING; exit 5",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stdout}{stderr}");
    assert_eq!(stdout, "cli-run hello-from-env\n", "{stderr}");
    assert!(
        stderr.trim_end().ends_with("exited with status 5"),
        "the last line says how it ended: {stderr}"
    );

    let out = capstan(daemon, &["run", "jobs", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = capstan(
        daemon,
        &["run", "jobs", "--timeout", "1", "--", "sleep", "20"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("did not finish within 1s"), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("exit status 124)") && stderr.contains("timed out"),
        "{stderr}"
    );

    let out = capstan(daemon, &["run", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
