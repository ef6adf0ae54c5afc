//! The engine through one SSH connection to a real OpenSSH server (the host's own engine,
//! reached at its socket through `direct-streamlocal` channels): version and status,
//! concurrent calls on exactly one TCP connection, an exec's attached output, a BuildKit
//! build, and a connection killed mid-stream failing within the bound instead of hanging
//! or ending as if the output were complete.

use bollard::container::{Config, CreateContainerOptions, LogsOptions};
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use capstan_engine::Engine;
use capstan_remote::{connect, generate_key_pair, Contact, RemoteError, SshConnection, SshOptions};
use capstan_testkit::Sshd;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound given to the connection in these tests.
const BOUND: Duration = Duration::from_secs(6);
const IMAGE: &str = "busybox:stable";

async fn pinned(sshd: &Sshd, private: &str) -> Arc<SshConnection> {
    let mut options = SshOptions::new(&sshd.host(), sshd.port(), sshd.user(), private);
    options.host_key_fingerprint = Some(sshd.host_key_fingerprint().to_string());
    options.timeout = BOUND;
    match connect(options).await {
        Ok(Contact::Connected(connection)) => connection,
        Ok(Contact::FirstContact { .. }) => panic!("pinned, yet first contact"),
        Err(err) => panic!("connect: {err}\nsshd log:\n{}", sshd.log()),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("capstan-remote-{prefix}-{}-{nanos}", std::process::id())
}

/// A running busybox container running `script`, removed on drop (through the local
/// engine, which is the same one).
struct Container(String);

impl Container {
    async fn start(docker: &Docker, prefix: &str, script: &str) -> Container {
        let name = unique(prefix);
        let config = Config {
            image: Some(IMAGE.to_string()),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: name.clone(),
            platform: None,
        };
        docker
            .create_container(Some(options), config)
            .await
            .unwrap();
        let container = Container(name);
        docker
            .start_container::<String>(&container.0, None)
            .await
            .unwrap();
        container
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

fn docker_over(connection: &Arc<SshConnection>) -> Docker {
    capstan_engine::dial::docker_over(connection.docker_dialer(), 120).unwrap()
}

/// Whether a failure came from the SSH connection being lost.
fn lost(err: &bollard::errors::Error) -> bool {
    let cause = capstan_engine::dial::dial_failure(err);
    matches!(
        cause.and_then(|e| e.downcast_ref::<RemoteError>()),
        Some(RemoteError::ConnectionLost { .. })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_answers_through_the_tunnel() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let instance = unique("status");
    let remote = match connection.engine(&instance).await {
        Ok(engine) => engine,
        Err(err) => panic!("{err:?}\nsshd log:\n{}", sshd.log()),
    };
    let local = Engine::connect(None, &instance).await.unwrap();
    let (remote_status, local_status) = (
        remote.status().await.unwrap(),
        local.status().await.unwrap(),
    );
    assert_eq!(remote_status, local_status);
    assert!(!remote_status.version.is_empty());
    // The BuildKit session upgrade went through a channel too.
    assert_eq!(remote.builds_with_buildkit(), local.builds_with_buildkit());
    assert!(
        connection.channels_opened() >= 4,
        "{}",
        connection.channels_opened()
    );
    assert_eq!(connection.tcp_connections_opened(), 1);
    assert_eq!(sshd.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_exactly_one_tcp_connection() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let engine = connection.engine(&unique("many")).await.unwrap();
    let docker = docker_over(&connection);
    let before = connection.channels_opened();
    let statuses = futures::future::join_all((0..16).map(|_| engine.status()));
    let infos = futures::future::join_all((0..16).map(|_| docker.info()));
    let (statuses, infos) = tokio::join!(statuses, infos);
    assert!(statuses.iter().all(Result::is_ok), "{statuses:?}");
    assert!(infos.iter().all(Result::is_ok));
    assert!(connection.channels_opened() >= before + 48);
    assert_eq!(connection.tcp_connections_opened(), 1);
    assert_eq!(
        sshd.connections(),
        1,
        "sshd serves more than one connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_with_attached_output_works_over_ssh() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let engine = connection.engine(&unique("exec")).await.unwrap();
    let container = Container::start(&docker_over(&connection), "exec", "sleep 300").await;
    let (log, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let argv: Vec<String> = ["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]
        .map(String::from)
        .to_vec();
    let code = engine
        .exec(&container.0, &argv, Duration::from_secs(30), &log)
        .await
        .unwrap();
    drop(log);
    let mut output = Vec::new();
    while let Some(line) = lines.recv().await {
        output.push(line);
    }
    assert_eq!(code, 3);
    assert!(output.iter().any(|l| l == "out-line"), "{output:?}");
    assert!(output.iter().any(|l| l == "err-line"), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_logs_fails_within_the_bound_when_the_connection_dies() {
    let (private, public) = generate_key_pair().unwrap();
    let mut sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let docker = docker_over(&connection);
    let script = "while true; do echo tick; sleep 0.2; done";
    let container = Container::start(&docker, "logs", script).await;
    let options = LogsOptions::<String> {
        follow: true,
        stdout: true,
        ..Default::default()
    };
    let mut logs = docker.logs(&container.0, Some(options));
    let first = logs.next().await.expect("a first line").unwrap();
    assert!(first.to_string().contains("tick"), "{first}");
    sshd.kill();
    let killed = Instant::now();
    let end = tokio::time::timeout(BOUND * 2, async {
        loop {
            match logs.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the follow hung after the connection died");
    let err = match end {
        Some(Err(err)) => err,
        None => panic!("the follow ended as if the logs were complete"),
        Some(Ok(_)) => unreachable!(),
    };
    assert!(killed.elapsed() <= BOUND, "{:?}", killed.elapsed());
    // bollard keeps only the message of a failure inside a line-decoded stream: the
    // failure is still one of the transport, never an answer of the engine.
    assert!(
        lost(&err) || capstan_engine::is_unreachable(&err),
        "not a transport failure: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_fails_within_the_bound_when_the_connection_dies_and_others_go_on() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let docker = docker_over(&connection);
    let container = Container::start(&docker, "exec-kill", "sleep 300").await;
    let exec = CreateExecOptions {
        cmd: Some(vec!["sh", "-c", "echo started; sleep 120; echo finished"]),
        attach_stdout: Some(true),
        ..Default::default()
    };
    let exec = docker.create_exec(&container.0, exec).await.unwrap();
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("not attached");
    };
    let first = output.next().await.expect("output").unwrap();
    assert!(first.to_string().contains("started"), "{first}");
    // The connection drops (sshd stays up, as after a network blip).
    sshd.drop_connections();
    let dropped = Instant::now();
    let end = tokio::time::timeout(BOUND * 2, output.next())
        .await
        .expect("the exec hung after the connection died");
    match end {
        Some(Err(err)) => assert!(lost(&err), "not a lost connection: {err:?}"),
        None => panic!("the exec's output ended as if it had finished"),
        Some(Ok(more)) => panic!("more output after the drop: {more}"),
    }
    assert!(dropped.elapsed() <= BOUND, "{:?}", dropped.elapsed());
    // The next call reconnects, on a second TCP connection, and works.
    let info = docker.inspect_exec(&exec.id).await.unwrap();
    assert!(info.running.is_some());
    assert_eq!(connection.tcp_connections_opened(), 2);
}

/// A build context holding only `dockerfile`.
fn context(dockerfile: &str) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    archive
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    archive.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_streams_its_context_and_output_through_the_tunnel() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    let instance = unique("build");
    let engine = connection.engine(&instance).await.unwrap();
    // With BuildKit (the /session upgrade and /build?version=2, both over channels) the
    // secret comes from the session Capstan serves; the classic builder gets it as a
    // build argument.
    let (mount, read) = if engine.builds_with_buildkit() {
        ("--mount=type=secret,id=token ", "cat /run/secrets/token")
    } else {
        ("", "echo $token")
    };
    let dockerfile = format!(
        "FROM busybox:stable\nARG token\nRUN {mount}test \"$({read})\" = s3cret && echo built-over-ssh\n"
    );
    let tag = format!("{instance}:1");
    let request = capstan_engine::images::BuildRequest {
        context_tar: context(&dockerfile),
        dockerfile: "Dockerfile".into(),
        target: None,
        build_args: Default::default(),
        secrets: [("token".to_string(), "s3cret".to_string())].into(),
        tag: tag.clone(),
        labels: Default::default(),
        no_cache: true,
    };
    let (log, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let built = engine.build_image(request, &log).await;
    drop(log);
    let mut output = Vec::new();
    while let Some(line) = lines.recv().await {
        output.push(line);
    }
    let id = built.unwrap_or_else(|e| panic!("build over SSH failed: {e}\n{output:#?}"));
    assert!(!id.is_empty());
    assert!(
        output.iter().any(|l| l.contains("built-over-ssh")),
        "{output:#?}"
    );
    engine.remove_image(&tag).await.unwrap();
    assert_eq!(connection.tcp_connections_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_restricted_to_no_shell_still_reaches_the_engine() {
    // Capstan opens no session channel (no shell, no command, no pty), so the server may
    // pin the key to a command that does nothing.
    let (private, public) = generate_key_pair().unwrap();
    let restricted = format!(
        "command=\"/bin/false\",no-pty,no-agent-forwarding,no-X11-forwarding,no-user-rc {public}"
    );
    let sshd = Sshd::start(&restricted).unwrap();
    let connection = pinned(&sshd, &private).await;
    let engine = connection.engine(&unique("restricted")).await.unwrap();
    assert!(!engine.status().await.unwrap().version.is_empty());
}
