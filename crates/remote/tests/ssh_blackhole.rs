//! A connection that goes silent (packets dropped, no reset: a cable pulled, a firewall
//! change) never hangs a call: keepalive gives up within the bound and every call in
//! flight fails, while a call started meanwhile times out within the bound too.

use bollard::container::{Config, CreateContainerOptions, LogsOptions};
use capstan_remote::{connect, generate_key_pair, Contact, RemoteError, SshOptions};
use capstan_testkit::Sshd;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(6);

/// A TCP relay to `target` that can go silent: from then on it forwards nothing and
/// closes nothing.
struct Relay {
    address: SocketAddr,
    silent: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, flag.clone()));
                tokio::spawn(forward(server_read, client_write, flag.clone()));
            }
        });
        Relay { address, silent }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            // Hold both sockets open and say nothing, forever.
            let _held = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("capstan-remote-{prefix}-{}-{nanos}", std::process::id())
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_fails_calls_in_flight_within_the_bound() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let target: SocketAddr = format!("{}:{}", sshd.host(), sshd.port()).parse().unwrap();
    let relay = Relay::start(target).await;
    let mut options = SshOptions::new("127.0.0.1", relay.address.port(), "root", &private);
    options.host_key_fingerprint = Some(sshd.host_key_fingerprint().to_string());
    options.timeout = BOUND;
    let Ok(Contact::Connected(connection)) = connect(options).await else {
        panic!("connect through the relay failed");
    };
    let docker = capstan_engine::dial::docker_over(connection.docker_dialer(), 120).unwrap();

    let container = Container(unique("silent"));
    let config = Config {
        image: Some("busybox:stable".to_string()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "while true; do echo tick; sleep 0.2; done".into(),
        ]),
        ..Default::default()
    };
    let create = CreateContainerOptions {
        name: container.0.clone(),
        platform: None,
    };
    docker.create_container(Some(create), config).await.unwrap();
    docker
        .start_container::<String>(&container.0, None)
        .await
        .unwrap();
    let options = LogsOptions::<String> {
        follow: true,
        stdout: true,
        ..Default::default()
    };
    let mut logs = docker.logs(&container.0, Some(options));
    logs.next().await.expect("a first line").unwrap();

    relay.go_silent();
    let silent_since = Instant::now();
    let follow = tokio::time::timeout(BOUND * 3, async {
        loop {
            match logs.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    });
    // A call started while the connection is silent: its channel never opens.
    let open = tokio::time::timeout(BOUND * 3, connection.open_socket("/var/run/docker.sock"));
    let (follow, open) = tokio::join!(follow, open);
    let end = follow.expect("the follow hung on a silent connection");
    assert!(
        matches!(end, Some(Err(_))),
        "the follow did not fail: {end:?}"
    );
    let opened = open.expect("opening a channel hung on a silent connection");
    assert!(
        matches!(
            opened,
            Err(RemoteError::Timeout { .. } | RemoteError::ConnectionLost { .. })
        ),
        "{:?}",
        opened.err()
    );
    assert!(
        silent_since.elapsed() <= BOUND + Duration::from_secs(2),
        "{:?}",
        silent_since.elapsed()
    );
}
