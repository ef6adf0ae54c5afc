//! The Docker engine going away under a running daemon: the daemon reaches the engine
//! through a socket forwarder this test can cut. While it is cut, API calls that need the
//! engine answer 503 with a message (never 500), calls that need only the database still
//! answer, and the live app keeps serving through the proxy; when the engine is back, so
//! is everything else.

mod support;

use reqwest::Method;
use std::path::{Path, PathBuf};
use support::SampleRepo;
use tokio::net::{UnixListener, UnixStream};

/// Forwards a unix socket to the engine's until stopped; stopping drops every connection
/// and removes the socket.
struct Forwarder {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    fn start(path: &Path) -> Forwarder {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                connections.spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        Forwarder {
            path: path.to_path_buf(),
            task,
        }
    }

    fn stop(self) {
        // Aborting the accept loop drops the JoinSet, which aborts every connection.
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_engine_gone_the_api_answers_503_and_the_app_keeps_serving() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("engine.sock");
    let forwarder = Forwarder::start(&socket);
    let host = format!("unix://{}", socket.display());
    let daemon = support::start_daemon_with(&["--docker-host", &host]).await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(support::sample_app("outage", &repo, "main", "outage.test"))
        .await;
    daemon.deploy_expect("outage", None, "live").await;

    forwarder.stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (method, path) in [
        (Method::GET, "/apps/outage/logs"),
        (Method::DELETE, "/apps/outage"),
    ] {
        let (status, body) = daemon.call(method.clone(), path, None).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains("not reachable"), "{method} {path}: {body}");
    }
    // What needs only the database still answers; the refused delete removed nothing, so
    // the app still serves.
    let (status, _) = daemon.call(Method::GET, "/apps/outage", None).await;
    assert_eq!(status, 200);
    let (status, server) = daemon.call(Method::GET, "/server", None).await;
    assert_eq!(status, 200, "{server}");
    assert_eq!(server["engine"]["reachable"], false, "{server}");
    assert_eq!(
        daemon.via_proxy("outage.test", "/").await,
        (200, "version: v1\n".to_string())
    );

    let _forwarder = Forwarder::start(&socket);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = daemon.call(Method::GET, "/apps/outage/logs", None).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the engine is back but the API still says {status}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
