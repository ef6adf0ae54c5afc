//! Every bad input gets a 4xx with a message naming the problem, or a failed deployment
//! whose log says why, and the live version keeps serving throughout.

#[path = "bad_input/sources.rs"]
mod sources;
mod support;

use capstan_testkit::{GitAnswer, GitServer};
use reqwest::Method;
use serde_json::{json, Value};
use support::{sample_app, Daemon, SampleRepo};

async fn expect_error(
    daemon: &Daemon,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    needle: &str,
) {
    let (got, value) = daemon.call(method.clone(), path, body).await;
    assert_eq!(got, status, "{method} {path}: {value}");
    let message = value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path}: no error message in {value}"));
    assert!(
        message.contains(needle),
        "{method} {path}: {message:?} should mention {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rejects_bad_requests_with_clear_messages() {
    // Git is given up on after 3 s without a word (the hanging remote below).
    let daemon = support::start_daemon_with(&["--fetch-idle-secs", "3"]).await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let http = &daemon.http;

    // Authentication.
    let no_token = http.get(daemon.url("/apps")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let body: Value = no_token.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    let wrong = http
        .get(daemon.url("/apps"))
        .bearer_auth("cap_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let basic = http
        .get(daemon.url("/apps"))
        .header("Authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(
        http.get(daemon.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "health needs no token"
    );

    // App creation.
    let mut bad_name = sample_app("web", &repo, "main", "web.test");
    bad_name["name"] = json!("Not_A_Label");
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(bad_name),
        422,
        "DNS label",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(json!({"source": {"path": "/x"}})),
        422,
        "name: missing",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(json!({"name": "x", "source": {"path": "/x"}, "prot": 1})),
        422,
        "prot",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(json!({"name": "x", "source": {"git": {"url": "--upload-pack=touch /tmp/x"}}})),
        422,
        "url",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(json!({"name": "x", "source": {"path": "/x"}, "domains": ["a`) || Host(`b"]})),
        422,
        "host name",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(json!({"name": "x", "source": {"path": "/x"}, "build": {"dockerfile": "../../etc/passwd"}})),
        422,
        "dockerfile",
    )
    .await;
    let malformed = http
        .post(daemon.url("/apps"))
        .bearer_auth(&daemon.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );

    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps",
        Some(sample_app("web", &repo, "main", "web.test")),
        409,
        "already exists",
    )
    .await;

    // Unknown things.
    expect_error(
        &daemon,
        Method::GET,
        "/apps/nope",
        None,
        404,
        "app nope not found",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps/nope/deployments",
        None,
        404,
        "app nope",
    )
    .await;
    expect_error(
        &daemon,
        Method::GET,
        "/apps/Bad_Name",
        None,
        400,
        "DNS label",
    )
    .await;
    expect_error(
        &daemon,
        Method::GET,
        "/deployments/999999",
        None,
        404,
        "deployment 999999",
    )
    .await;
    expect_error(
        &daemon,
        Method::GET,
        "/deployments/abc",
        None,
        400,
        "not a deployment id",
    )
    .await;
    expect_error(
        &daemon,
        Method::GET,
        "/no/such/endpoint",
        None,
        404,
        "no such endpoint",
    )
    .await;
    expect_error(&daemon, Method::PUT, "/apps/web", None, 405, "not allowed").await;
    sources::sources_are_asked_before_anything_is_created(&daemon, &repo).await;

    // Deploy requests.
    expect_error(
        &daemon,
        Method::POST,
        "/apps/web/deployments",
        Some(json!({"ref": "-bad"})),
        422,
        "ref",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps/web/deployments",
        Some(json!({"rf": "main"})),
        400,
        "rf",
    )
    .await;
    expect_error(
        &daemon,
        Method::PATCH,
        "/apps/web",
        Some(json!({"port": 0})),
        422,
        "port",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps/web/restart",
        None,
        409,
        "nothing is deployed yet",
    )
    .await;
    expect_error(
        &daemon,
        Method::PUT,
        "/apps/web/maintenance",
        None,
        409,
        "nothing is deployed yet",
    )
    .await;
    expect_error(
        &daemon,
        Method::POST,
        "/apps/web/rollback",
        None,
        409,
        "no earlier successful release",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sources_fail_the_deployment_and_keep_the_live_version() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(sample_app("web", &repo, "main", "web.test"))
        .await;
    daemon.deploy_expect("web", None, "live").await;
    let serving = (200, "version: v1\n".to_string());

    let failed = |d: &Value| d["id"].as_i64().unwrap();

    // A ref that does not exist.
    let d = daemon
        .deploy_expect("web", Some(json!({"ref": "no-such-branch"})), "failed")
        .await;
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("ref \"no-such-branch\" does not exist"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // A Dockerfile that fails to build (scratch has no shell for RUN).
    repo.commit_file(
        "Dockerfile",
        "FROM scratch\nCOPY app /app\nRUN /app --version\n",
        "broken build",
    );
    let d = daemon.deploy_expect("web", None, "failed").await;
    let log = daemon.log(failed(&d)).await;
    assert!(
        d["error"].as_str().unwrap().contains("image build failed"),
        "{d}"
    );
    assert!(
        log.contains("[2/2] RUN /app --version") && log.contains("/bin/sh: no such file"),
        "build output up to the failure is logged:\n{log}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // A symlink in the build context that points out of it.
    repo.commit_version("v3", &[]);
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("passwd")).unwrap();
    repo.commit_file("README", "with a link out\n", "link out");
    let d = daemon.deploy_expect("web", None, "failed").await;
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("the symlink passwd resolves outside the source tree"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);
    std::fs::remove_file(repo.path().join("passwd")).unwrap();

    // A compose file with a service that has neither an image nor a build.
    std::fs::remove_file(repo.path().join("Dockerfile")).unwrap();
    repo.commit_file(
        "compose.yaml",
        "services:\n  web:\n    image: busybox:stable\n  worker:\n    command: [run]\n",
        "broken compose",
    );
    let d = daemon.deploy_expect("web", None, "failed").await;
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("compose.yaml: service \"worker\" has neither an image nor a build"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // A source with nothing Capstan knows how to build.
    std::fs::remove_file(repo.path().join("compose.yaml")).unwrap();
    repo.commit_file("README", "no dockerfile here\n", "no dockerfile");
    let d = daemon.deploy_expect("web", None, "failed").await;
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("looked for (1) a Dockerfile") && error.contains("index.html"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // A git URL that answered when it was set and cannot be fetched when deployed.
    let server = GitServer::loopback();
    let url = server.publish(repo.path(), "web");
    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/web",
            Some(json!({"source": {"git": {"url": url, "ref": "main"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.answer(GitAnswer::Refuse);
    let d = daemon.deploy_expect("web", None, "failed").await;
    assert!(
        d["error"].as_str().unwrap().contains("git clone failed"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // A local directory that does not exist is refused when set; one that disappears
    // before the deploy fails the deployment.
    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/web",
            Some(json!({"source": {"path": "/nonexistent/capstan"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    let vanishing = tempfile::tempdir().unwrap();
    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/web",
            Some(json!({"source": {"path": vanishing.path()}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(vanishing);
    let d = daemon.deploy_expect("web", None, "failed").await;
    assert!(
        d["error"].as_str().unwrap().contains("does not exist"),
        "{d}"
    );
    assert_eq!(daemon.via_proxy("web.test", "/").await, serving);

    // Deleting the app removes its containers and route.
    let (status, _) = daemon.call(Method::DELETE, "/apps/web", None).await;
    assert_eq!(status, 204);
    assert!(daemon.containers("web").is_empty());
    let answer = daemon.via_proxy("web.test", "/").await;
    assert_eq!(answer.0, 404, "{answer:?}");
}
