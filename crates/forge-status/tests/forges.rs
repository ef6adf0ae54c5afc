//! Commit statuses received by a local HTTP stub of each forge's API: the reporter is fed
//! deployment events through a bus of the test's own, with a real store holding the app's
//! forge settings and its sealed token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use capstan_core::{AppName, AppSpec, DeploymentState, Trigger};
use capstan_deploy::events::{DeployEvent, FailureKind, FailureReason, Finished, Outcome};
use capstan_forge_status::Reporter;
use capstan_store::{NewDeployment, SecretKey, Store};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

const TOKEN: &str = "tok-s3cret-123";

/// What the stub received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    auth: Option<String>,
    private_token: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Stub {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order; 201 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn record(
    State(stub): State<Stub>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    stub.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        auth: header("authorization"),
        private_token: header("private-token"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    let code = stub.answers.lock().unwrap().pop_front().unwrap_or(201);
    StatusCode::from_u16(code).unwrap()
}

impl Stub {
    async fn start() -> (Stub, String) {
        let stub = Stub::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, format!("http://{addr}"))
    }

    /// Waits until `count` requests arrived (at most 5 s), then returns them all.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..500 {
            if self.received.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received.lock().unwrap().clone()
    }
}

struct Daemon {
    store: Store,
    key: SecretKey,
    bus: broadcast::Sender<DeployEvent>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(public_url: Option<&str>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
        let (bus, _) = broadcast::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut reporter =
            Reporter::new(store.clone(), key.clone(), public_url.map(str::to_string));
        reporter.retry_delays = vec![Duration::from_millis(50); 3];
        tokio::spawn(reporter.run(bus.subscribe(), stop_rx));
        Daemon {
            store,
            key,
            bus,
            _stop: stop_tx,
            _dir: dir,
        }
    }

    async fn app(&self, name: &str, spec: Value, token: Option<&str>) -> AppName {
        let name = AppName::parse(name).unwrap();
        let spec: AppSpec = serde_json::from_value(spec).unwrap();
        spec.validate().unwrap();
        self.store.create_app(&name, &spec).await.unwrap();
        if let Some(token) = token {
            self.store
                .set_secret(&self.key, &name, "FORGE_TOKEN", token, false)
                .await
                .unwrap();
        }
        name
    }

    /// Queues a deployment of `git_ref` and says so on the bus.
    async fn queue(&self, app: &AppName, git_ref: &str) -> i64 {
        let record = self
            .store
            .enqueue(NewDeployment {
                app,
                trigger: Trigger::Deploy,
                git_ref: Some(git_ref),
                from_release: None,
                no_cache: false,
                actor: "test",
                servers: &["local"],
            })
            .await
            .unwrap();
        self.bus
            .send(DeployEvent::Queued {
                deployment: record.id,
                app: app.clone(),
                trigger: Trigger::Deploy,
            })
            .unwrap();
        record.id
    }

    async fn finish(&self, id: i64, commit: Option<&str>, outcome: Outcome) {
        if let Some(commit) = commit {
            self.store.set_commit(id, commit, None).await.unwrap();
        }
        let record = self.store.deployment(id).await.unwrap();
        let finished = Finished {
            record,
            phases: vec![],
            outcome,
        };
        self.bus
            .send(DeployEvent::Finished(Arc::new(finished)))
            .unwrap();
    }
}

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

fn spec(git_url: &str, provider: &str, api_url: Option<&str>) -> Value {
    let mut forge = json!({"provider": provider, "token_secret": "FORGE_TOKEN"});
    if let Some(api_url) = api_url {
        forge["api_url"] = json!(api_url);
    }
    json!({
        "source": {"git": {"url": git_url, "ref": "main"}},
        "domains": ["web.example.com"],
        "tls": true,
        "forge": forge,
    })
}

#[tokio::test]
async fn each_forge_gets_pending_then_success_on_the_deployed_commit() {
    let (stub, base) = Stub::start().await;
    let daemon = Daemon::start(None).await;
    // GitHub and Bitbucket at a configured API root; GitLab and Gitea at the default
    // one, found from the repository's own http:// address.
    let host = base.trim_start_matches("http://");
    let cases = [
        (
            "gh",
            spec(
                "https://github.com/Acme/Web.git",
                "github",
                Some(&format!("{base}/gh/")),
            ),
            1,
        ),
        (
            "gl",
            spec(&format!("http://{host}/group/sub/web.git"), "gitlab", None),
            2,
        ),
        (
            "gt",
            spec(&format!("http://{host}/acme/web.git"), "forgejo", None),
            3,
        ),
        (
            "bb",
            spec(
                "git@bitbucket.org:acme/web.git",
                "bitbucket",
                Some(&format!("{base}/bb")),
            ),
            4,
        ),
    ];
    let mut seen = 0;
    for (name, spec, n) in cases {
        let app = daemon.app(name, spec, Some(TOKEN)).await;
        let id = daemon.queue(&app, &sha(n)).await;
        let pending = stub.wait_for(seen + 1).await;
        assert_eq!(pending.len(), seen + 1, "{name}: pending not reported");
        daemon.finish(id, Some(&sha(n)), Outcome::Live).await;
        let got = stub.wait_for(seen + 2).await;
        assert_eq!(got.len(), seen + 2, "{name}: {got:?}");
        let (pending, done) = (&got[seen], &got[seen + 1]);
        seen += 2;
        assert_eq!(pending.path, done.path, "{name}");
        let context = format!("capstan/{name}");
        let (path, states, context_field, url_field) = match name {
            "gh" => (
                format!("/gh/repos/acme/web/statuses/{}", sha(n)),
                ["pending", "success"],
                "context",
                "target_url",
            ),
            "gl" => (
                format!("/api/v4/projects/group%2Fsub%2Fweb/statuses/{}", sha(n)),
                ["pending", "success"],
                "name",
                "target_url",
            ),
            "gt" => (
                format!("/api/v1/repos/acme/web/statuses/{}", sha(n)),
                ["pending", "success"],
                "context",
                "target_url",
            ),
            _ => (
                format!("/bb/repositories/acme/web/commit/{}/statuses/build", sha(n)),
                ["INPROGRESS", "SUCCESSFUL"],
                "key",
                "url",
            ),
        };
        assert_eq!(done.path, path, "{name}");
        assert_eq!(
            pending.body["state"], states[0],
            "{name}: {:?}",
            pending.body
        );
        assert_eq!(done.body["state"], states[1], "{name}: {:?}", done.body);
        assert_eq!(done.body[context_field], context, "{name}");
        assert_eq!(done.body[url_field], "https://web.example.com", "{name}");
        match name {
            "gl" => {
                assert_eq!(done.private_token.as_deref(), Some(TOKEN));
                assert_eq!(done.auth, None);
            }
            "gt" => assert_eq!(done.auth, Some(format!("token {TOKEN}"))),
            _ => assert_eq!(done.auth, Some(format!("Bearer {TOKEN}")), "{name}"),
        }
    }
}

#[tokio::test]
async fn a_failure_carries_its_reason_and_the_deployment_page() {
    let (stub, base) = Stub::start().await;
    let daemon = Daemon::start(Some("https://capstan.example.com/")).await;
    let app = daemon
        .app(
            "web",
            spec("https://github.com/acme/web", "github", Some(&base)),
            Some(TOKEN),
        )
        .await;
    let id = daemon.queue(&app, &sha(9)).await;
    let long = "never healthy: ".to_string() + &"x".repeat(300);
    let reason = FailureReason {
        phase: DeploymentState::HealthChecking,
        kind: FailureKind::Phase,
        message: long,
    };
    daemon.finish(id, None, Outcome::Failed(reason)).await;
    let got = stub.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let page = format!("https://capstan.example.com/deployments/{id}");
    assert_eq!(got[0].body["target_url"], page.as_str());
    let failed = &got[1].body;
    assert_eq!(failed["state"], "failure");
    assert_eq!(failed["target_url"], page.as_str());
    let description = failed["description"].as_str().unwrap();
    assert!(
        description.starts_with("Failed while health_checking: never healthy"),
        "{description}"
    );
    assert_eq!(description.chars().count(), 140, "{description}");
    assert!(got[1].path.ends_with(&sha(9)));
}

#[tokio::test]
async fn a_server_error_is_retried_and_a_refusal_is_not() {
    let (stub, base) = Stub::start().await;
    stub.answers.lock().unwrap().extend([500, 201, 401]);
    let daemon = Daemon::start(None).await;
    let app = daemon
        .app(
            "web",
            spec("https://github.com/acme/web", "github", Some(&base)),
            Some(TOKEN),
        )
        .await;
    let id = daemon.queue(&app, &sha(1)).await;
    let got = stub.wait_for(2).await;
    assert_eq!(got.len(), 2, "the 500 is retried: {got:?}");
    assert_eq!(got[0].body, got[1].body);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pending = daemon.store.commit_status(id).await.unwrap().unwrap();
    assert_eq!(
        (pending.state.as_str(), pending.delivered, pending.tries),
        ("pending", true, 2)
    );
    assert_eq!(pending.error, None);
    daemon.finish(id, None, Outcome::Live).await;
    let got = stub.wait_for(3).await;
    assert_eq!(got[2].body["state"], "success");
    // The 401 is not asked again, and is what the deployment's record says.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stub.received.lock().unwrap().len(), 3);
    let last = daemon.store.commit_status(id).await.unwrap().unwrap();
    assert_eq!(
        (last.provider.as_str(), last.state.as_str()),
        ("github", "success")
    );
    assert_eq!((last.delivered, last.tries), (false, 1));
    assert!(last.error.as_deref().unwrap().contains("401"), "{last:?}");
    assert_eq!(last.sha, sha(1));
}

#[tokio::test]
async fn a_missing_token_or_commit_skips_and_the_reporter_carries_on() {
    let (stub, base) = Stub::start().await;
    let daemon = Daemon::start(None).await;
    let spec = spec("https://github.com/acme/web", "github", Some(&base));
    let app = daemon.app("web", spec, None).await;
    let id = daemon.queue(&app, &sha(2)).await;
    daemon.finish(id, None, Outcome::Live).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        stub.received.lock().unwrap().is_empty(),
        "no token, nothing sent"
    );
    // A branch name is no commit: nothing on queue, the fetched commit once it is known.
    daemon
        .store
        .set_secret(&daemon.key, &app, "FORGE_TOKEN", TOKEN, false)
        .await
        .unwrap();
    let id = daemon.queue(&app, "main").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        stub.received.lock().unwrap().is_empty(),
        "no commit yet, nothing sent"
    );
    daemon.finish(id, Some(&sha(3)), Outcome::Superseded).await;
    let got = stub.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].path.ends_with(&sha(3)), "{}", got[0].path);
    assert_eq!(got[0].body["state"], "error");
    // An app without forge settings is never reported.
    let plain = daemon
        .app(
            "plain",
            json!({"source": {"git": {"url": "https://github.com/acme/plain"}}}),
            None,
        )
        .await;
    let id = daemon.queue(&plain, &sha(4)).await;
    daemon.finish(id, None, Outcome::Live).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stub.received.lock().unwrap().len(), 1);
}
