//! Notifications delivered for real: a local HTTP sink (axum on 127.0.0.1:0) receives the
//! generic webhook (its signature checked here), Slack's and Discord's shapes, and a retry
//! after two 500s; a tiny SMTP receiver gets the email; the outbox survives a new store
//! handle and worker (a restart). Events come on a real `DeployEvent` broadcast channel.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_deploy::{DeployEvent, FailureKind, FailureReason, Finished, Outcome};
use capstan_notify::{ChannelInput, Notifier, RetryPolicy, SIGNATURE_HEADER};
use capstan_store::{DeploymentRecord, SecretKey, Store};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Each request the sink got: its headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Sink {
    received: Received,
    fail_first: Arc<AtomicUsize>,
}

async fn receive(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    sink.received.lock().unwrap().push((headers, body.to_vec()));
    let failing = sink.fail_first.load(Ordering::SeqCst);
    if failing > 0 {
        sink.fail_first.store(failing - 1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

/// The sink and its base URL.
async fn sink() -> (Sink, String) {
    let sink = Sink::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/{*path}", post(receive))
        .with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (sink, base)
}

struct Setup {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    key: SecretKey,
    notifier: Notifier,
    app: AppName,
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        delays: vec![Duration::from_millis(50), Duration::from_millis(50)],
        poll: Duration::from_millis(20),
    }
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("capstan.db");
    let store = Store::open(&db).await.unwrap();
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap();
    store.create_app(&app, &spec).await.unwrap();
    let notifier = Notifier::new(store, key.clone(), fast()).unwrap();
    Setup {
        _dir: dir,
        db,
        key,
        notifier,
        app,
    }
}

fn input(value: Value) -> ChannelInput {
    serde_json::from_value(value).unwrap()
}

fn finished(app: &AppName, outcome: Outcome) -> DeployEvent {
    let state = match outcome {
        Outcome::Failed(_) => DeploymentState::Failed,
        _ => DeploymentState::Live,
    };
    let record = DeploymentRecord {
        id: 42,
        app: app.clone(),
        server: "local".into(),
        environment: "production".into(),
        trigger: Trigger::Deploy,
        state,
        git_ref: Some("main".into()),
        commit_sha: Some("0123456789abcdef0123".into()),
        commit_message: Some("Fix the checkout".into()),
        image: None,
        from_release: None,
        no_cache: false,
        error: None,
        created_at: 0,
        started_at: None,
        finished_at: None,
        actor: None,
    };
    DeployEvent::Finished(Arc::new(Finished {
        record,
        phases: vec![],
        outcome,
    }))
}

fn failed() -> Outcome {
    Outcome::Failed(FailureReason {
        phase: DeploymentState::HealthChecking,
        kind: FailureKind::Phase,
        message: "never became healthy".into(),
    })
}

/// Publishes `events` on a bus the notifier follows, then runs the worker until `done`.
async fn run(notifier: &Notifier, events: Vec<DeployEvent>, done: impl Fn() -> bool) {
    let (bus, _keep) = tokio::sync::broadcast::channel(16);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let follower = {
        let (n, rx, s) = (notifier.clone(), bus.subscribe(), stop.clone());
        tokio::spawn(async move { n.follow(rx, s).await })
    };
    let worker = {
        let n = notifier.clone();
        tokio::spawn(async move { n.deliver(stop).await })
    };
    for event in events {
        bus.send(event).unwrap();
    }
    for _ in 0..250 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    follower.await.unwrap();
    worker.await.unwrap();
}

fn verify(secret: &str, header: &str, body: &[u8]) {
    let (t, v1) = header.split_once(",v1=").expect("t=..,v1=..");
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 60,
        "a fresh timestamp"
    );
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
}

#[tokio::test]
async fn a_signed_webhook_slack_and_discord_get_a_failed_deployment() {
    let s = setup().await;
    let (sink, base) = sink().await;
    let (hook, secret) = s
        .notifier
        .add(
            Some(&s.app),
            input(json!({"kind": "webhook", "url": format!("{base}/hook?token=abc")})),
        )
        .await
        .unwrap();
    let secret = secret.expect("a webhook gets a signing secret");
    assert_eq!(hook.config["url"], format!("{base}/…"));
    s.notifier
        .add(
            None,
            input(json!({"kind": "slack", "url": format!("{base}/slack")})),
        )
        .await
        .unwrap();
    s.notifier
        .add(Some(&s.app), input(json!({"kind": "discord", "url": format!("{base}/discord"), "events": ["deployment.live"]})))
        .await
        .unwrap();
    let count = || sink.received.lock().unwrap().len();
    run(&s.notifier, vec![finished(&s.app, failed())], || {
        count() >= 2
    })
    .await;
    let got = sink.received.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "discord wants only live deployments");
    let (headers, body) = got
        .iter()
        .find(|(h, _)| h.contains_key(SIGNATURE_HEADER))
        .unwrap();
    verify(&secret, headers[SIGNATURE_HEADER].to_str().unwrap(), body);
    let note: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (note["event"].as_str(), note["app"].as_str()),
        (Some("deployment.failed"), Some("shop"))
    );
    assert_eq!(note["deployment"], 42);
    assert_eq!(note["error"]["phase"], "health_checking");
    let (_, slack) = got
        .iter()
        .find(|(h, _)| !h.contains_key(SIGNATURE_HEADER))
        .unwrap();
    let slack: Value = serde_json::from_slice(slack).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("shop: deployment 42 failed") && text.contains("never became healthy"),
        "{text}"
    );
    assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");

    sink.received.lock().unwrap().clear();
    run(&s.notifier, vec![finished(&s.app, Outcome::Live)], || {
        count() >= 3
    })
    .await;
    let got = sink.received.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "webhook, slack and discord all want live");
    let discord = got
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
        .find(|v| v.get("embeds").is_some())
        .expect("a Discord body");
    assert_eq!(discord["embeds"][0]["title"], "shop: deployment 42 live");
    assert!(discord["embeds"][0]["color"].is_u64());
}

#[tokio::test]
async fn a_message_is_retried_after_two_500s_and_delivered() {
    let s = setup().await;
    let (sink, base) = sink().await;
    sink.fail_first.store(2, Ordering::SeqCst);
    let (channel, _) = s
        .notifier
        .add(
            Some(&s.app),
            input(json!({"kind": "slack", "url": format!("{base}/s")})),
        )
        .await
        .unwrap();
    let store = s.notifier.store().clone();
    let delivered = || sink.received.lock().unwrap().len() >= 3;
    run(
        &s.notifier,
        vec![finished(&s.app, Outcome::Live)],
        delivered,
    )
    .await;
    let rows = store.channel_deliveries(channel.id, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("delivered", 3));
    let error = rows[0].last_error.as_deref().unwrap();
    assert!(error.contains("500") && !error.contains("/s"), "{error}");
}

#[tokio::test]
async fn a_queued_message_survives_a_restart_and_one_out_of_tries_is_failed() {
    let s = setup().await;
    let (sink, base) = sink().await;
    let (ok, _) = s
        .notifier
        .add(
            None,
            input(json!({"kind": "slack", "url": format!("{base}/ok")})),
        )
        .await
        .unwrap();
    let (dead, _) = s
        .notifier
        .add(
            None,
            input(json!({"kind": "webhook", "url": "http://127.0.0.1:9/closed"})),
        )
        .await
        .unwrap();
    let note = capstan_notify::Notification::finished(match &finished(&s.app, Outcome::Live) {
        DeployEvent::Finished(f) => f,
        _ => unreachable!(),
    });
    assert_eq!(s.notifier.enqueue(&note).await.unwrap(), 2);
    drop(s.notifier);
    // The daemon restarts: a new store handle on the same file, a new worker.
    let store = Store::open(&s.db).await.unwrap();
    let notifier = Notifier::new(store.clone(), s.key.clone(), fast()).unwrap();
    let done = || sink.received.lock().unwrap().len() == 1;
    run(&notifier, vec![], done).await;
    for _ in 0..100 {
        if store.channel_deliveries(dead.id, 1).await.unwrap()[0].state != "pending" {
            break;
        }
        notifier.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ok_rows = store.channel_deliveries(ok.id, 10).await.unwrap();
    assert_eq!(ok_rows[0].state, "delivered");
    let dead_rows = store.channel_deliveries(dead.id, 10).await.unwrap();
    assert_eq!(
        (dead_rows[0].state.as_str(), dead_rows[0].attempts),
        ("failed", 3)
    );
    let error = dead_rows[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("cannot connect") && !error.contains("closed"),
        "{error}"
    );
}

/// A tiny SMTP receiver: one session, no TLS, no auth; returns the DATA it got.
async fn smtp_sink() -> (u16, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            if in_data {
                if line == "." {
                    in_data = false;
                    write.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go on\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            write.write_all(answer).await.unwrap();
        }
        data
    });
    (port, task)
}

#[tokio::test]
async fn an_email_names_the_app_the_deployment_and_the_outcome() {
    let s = setup().await;
    let (port, received) = smtp_sink().await;
    s.notifier
        .add(
            Some(&s.app),
            input(
                json!({"kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
                "smtp_tls": "none", "from": "capstan@example.com", "to": ["ops@example.com"]}),
            ),
        )
        .await
        .unwrap();
    run(&s.notifier, vec![finished(&s.app, failed())], || {
        received.is_finished()
    })
    .await;
    let mail = received.await.unwrap();
    assert!(
        mail.contains("Subject: [Capstan] shop: deployment 42 failed"),
        "{mail}"
    );
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(
        mail.contains("never became healthy") && mail.contains("commit 0123456789ab"),
        "{mail}"
    );
}
