//! Image transfer on the production path: from the local engine to the second host's own
//! engine through one SSH connection (an sshd in the second host's network namespace,
//! every engine call a `direct-streamlocal` channel). The full image's missing layers go
//! through the tunnel once; a one-line change then sends about the changed layer only.

use bollard::container::{Config, CreateContainerOptions, LogsOptions, RemoveContainerOptions};
use capstan_engine::images::BuildRequest;
use capstan_engine::transfer::send_image;
use capstan_engine::{Builder, Engine};
use capstan_remote::{connect, generate_key_pair, Contact, SshOptions};
use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_line_change_crosses_the_ssh_tunnel_as_its_layer_only() {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("second host: {e}"));
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start_with(SshdConfig::in_netns(
        &public,
        host.netns_path(),
        IpAddr::V4(host.ip()),
    ))
    .unwrap();
    let mut options = SshOptions::new(&sshd.host(), sshd.port(), sshd.user(), &private);
    options.timeout = Duration::from_secs(10);
    options.host_key_fingerprint = Some(sshd.host_key_fingerprint().to_string());
    options.docker_socket = host.docker_socket().to_string_lossy().into_owned();
    let connection = match connect(options).await {
        Ok(Contact::Connected(connection)) => connection,
        Ok(Contact::FirstContact { .. }) => panic!("pinned, yet first contact"),
        Err(err) => panic!("connect: {err}\nsshd log:\n{}", sshd.log()),
    };
    let prefix = format!("capstan-xfer-ssh-{:08x}", rand::random::<u32>());
    let remote = connection.engine(&prefix).await.unwrap();
    // The classic builder: its cache is the images, removed at the end (BuildKit's would stay).
    let mut local = Engine::connect(None, &prefix).await.unwrap();
    local.use_builder(Builder::Classic).unwrap();
    let second = host.docker().await.unwrap();
    let spool = std::env::temp_dir().join(&prefix);
    let mut cleanup = Cleanup {
        images: Vec::new(),
        second_host: host.docker_host(),
        spool: spool.clone(),
    };

    let tag = format!("{prefix}-app:test");
    let big: Vec<u8> = (0..16 * 1024 * 1024)
        .map(|_| rand::random::<u8>())
        .collect();
    let v1 = build(&local, &tag, &big, "release 1").await;
    cleanup.images.push(v1.clone());
    let started = Instant::now();
    let first = send_image(&local, &remote, &tag, &spool).await.unwrap();
    let first_time = started.elapsed();
    assert_eq!(run_output(&second, &tag).await, "release 1");

    let v2 = build(&local, &tag, &big, "release 2").await;
    cleanup.images.push(v2.clone());
    let started = Instant::now();
    let second_send = send_image(&local, &remote, &tag, &spool).await.unwrap();
    let second_time = started.elapsed();
    let ratio = second_send.bytes_sent as f64 / second_send.changed_layer_bytes as f64;
    eprintln!(
        "over SSH: first send {} bytes ({} layers) in {first_time:?}; after a one-line change {} bytes \
         for a {}-byte changed layer (ratio {ratio:.3}) in {second_time:?}; full export {} bytes",
        first.bytes_sent,
        first.layers_sent,
        second_send.bytes_sent,
        second_send.changed_layer_bytes,
        second_send.export_bytes
    );
    assert_eq!(second_send.image_id, v2);
    assert_eq!(second_send.layers_sent, 1);
    assert!(ratio <= 1.2, "sent {ratio:.3}× the changed layer");
    assert!(second_send.bytes_sent * 20 < second_send.export_bytes);
    assert_eq!(run_output(&second, &tag).await, "release 2");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files left"
    );
    assert_eq!(connection.tcp_connections_opened(), 1);
    assert_eq!(sshd.connections(), 1);
}

/// Removes the test's images from both engines and its spool directory, also after a
/// failure (through the CLI: no runtime in `drop`).
struct Cleanup {
    images: Vec<String>,
    second_host: String,
    spool: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for host in [None, Some(&self.second_host)] {
            let mut command = std::process::Command::new("docker");
            if let Some(host) = host {
                command.arg("-H").arg(host);
            }
            let _ = command
                .args(["image", "rm", "-f"])
                .args(self.images.iter().rev())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// Builds busybox + a 16 MiB layer + a source file whose first line is `first`.
async fn build(engine: &Engine, tag: &str, big: &[u8], first: &str) -> String {
    let dockerfile = "FROM busybox:stable\nCOPY big.bin /data/big.bin\nCOPY app.txt /app/app.txt\n\
                      CMD [\"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let mut app = format!("{first}\n");
    for i in 1..4096 {
        app.push_str(&format!(
            "line {i:05} of the application's source, unchanged across releases\n"
        ));
    }
    let mut context = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", dockerfile.as_bytes()),
        ("big.bin", big),
        ("app.txt", app.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        context.append_data(&mut header, name, data).unwrap();
    }
    let (log, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let request = BuildRequest {
        context_tar: context.into_inner().unwrap(),
        dockerfile: "Dockerfile".into(),
        target: None,
        build_args: HashMap::new(),
        secrets: HashMap::new(),
        tag: tag.to_string(),
        labels: HashMap::new(),
        no_cache: false,
    };
    let built = engine.build_image(request, &log).await;
    drop(log);
    let mut output = Vec::new();
    while let Some(line) = lines.recv().await {
        output.push(line);
    }
    built.unwrap_or_else(|e| panic!("build of {tag}: {e}\n{}", output.join("\n")))
}

/// Runs `image`'s default command on `docker` and returns what it printed.
async fn run_output(docker: &bollard::Docker, image: &str) -> String {
    let name = format!("capstan-xfer-ssh-run-{:08x}", rand::random::<u32>());
    let config = Config {
        image: Some(image.to_string()),
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
    docker.start_container::<String>(&name, None).await.unwrap();
    let mut wait = docker.wait_container::<String>(&name, None);
    while wait.next().await.is_some() {}
    let logs_options = LogsOptions::<String> {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(&name, Some(logs_options));
    let mut output = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        output.push_str(&chunk.to_string());
    }
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker.remove_container(&name, Some(remove)).await.unwrap();
    output.trim().to_string()
}
