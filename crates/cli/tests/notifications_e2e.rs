//! Notifications through the real daemon: `capstan notify add` (the URL on standard input)
//! gives an app a signed webhook channel pointing at a local HTTP sink started here; a real
//! deployment that goes live reaches the sink as `deployment.live` with a signature that
//! verifies; `capstan notify list` shows it delivered and `capstan notify test` delivers.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Got = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal HTTP/1.1 sink: the signature header and body of each POST, answered 200.
async fn sink() -> (Got, u16) {
    let got: Got = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let signature = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("x-capstan-signature")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push((signature, buf[head_end..].to_vec()));
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (got, port)
}

fn capstan(daemon: &support::Daemon, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .env("CAPSTAN_URL", &daemon.api)
        .env("CAPSTAN_TOKEN", &daemon.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_deployment_reaches_a_signed_webhook_channel() {
    let daemon = support::start_daemon().await;
    let (got, port) = sink().await;
    let repo = support::SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(support::sample_app(
            "notified",
            &repo,
            "main",
            "notified.test",
        ))
        .await;
    let url = format!("http://127.0.0.1:{port}/hook/t0k3n\n");
    let args = ["notify", "add", "notified", "--kind", "webhook"];
    let (ok, added) = capstan(&daemon, &args, &url);
    assert!(ok, "{added}");
    assert!(!added.contains("t0k3n"), "{added}");
    let secret = added
        .rsplit(": ")
        .next()
        .map(str::trim)
        .filter(|s| s.len() == 64)
        .unwrap_or_else(|| panic!("no signing secret in {added}"))
        .to_string();

    let deployed = daemon.deploy_expect("notified", None, "live").await;
    let mut live = None;
    for _ in 0..100 {
        live = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| String::from_utf8_lossy(body).contains("deployment.live"))
            .cloned();
        if live.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (signature, body) = live.expect("deployment.live reaches the sink within 10 s");
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("signature {signature:?}"));
    assert_eq!(signature, capstan_notify::signature(&secret, t, &body));
    let note: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(note["app"], "notified");
    assert_eq!(note["deployment"], deployed["id"], "{note}");
    assert_eq!(note["outcome"], "live");

    let (ok, listed) = capstan(&daemon, &["notify", "list", "notified"], "");
    assert!(
        ok && listed.contains("deployment.live delivered"),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_string();
    let (ok, tested) = capstan(&daemon, &["notify", "test", &id], "");
    assert!(ok && tested.contains("delivered"), "{tested}");
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .any(|(_, body)| String::from_utf8_lossy(body).contains("\"event\":\"test\"")));
}
