//! Secrets end to end: set through the API, encrypted in the database, passed to the build
//! (build secrets) and the container (runtime secrets), and never visible in clear in the
//! API, the stored log, the stored compose spec or the database file, even when a build
//! step echoes one.

mod support;

use reqwest::Method;
use serde_json::json;
use support::SampleRepo;

const RUNTIME_VALUE: &str = "rt-Secret-value-7391";
const BUILD_VALUE: &str = "bt-Secret-value-2846";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_build_and_container_but_never_the_log_api_or_disk() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nARG NPM_TOKEN\nRUN echo \"token is $NPM_TOKEN\" && echo \"twice: ${NPM_TOKEN}${NPM_TOKEN}\"\n\
         COPY app /app\nENV VERSION=v1\nENTRYPOINT [\"/app\"]\n",
        "echoing build",
    );
    let mut app = support::sample_app("vault", &repo, "main", "vault.test");
    app["post_deploy"] = json!({"command": ["/bin/sh", "-c", "echo post sees $API_KEY"]});
    daemon.create_app(app).await;

    let (status, body) = daemon
        .call(
            Method::PUT,
            "/apps/vault/secrets/API_KEY",
            Some(json!({"value": RUNTIME_VALUE})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "****");
    let (status, _) = daemon
        .call(
            Method::PUT,
            "/apps/vault/secrets/NPM_TOKEN",
            Some(json!({"value": BUILD_VALUE, "build": true})),
        )
        .await;
    assert_eq!(status, 200);

    // Bad input: each a 4xx that says what is wrong.
    for (path, body, code, text) in [
        (
            "/apps/vault/secrets/BAD-NAME",
            json!({"value": "long enough"}),
            422,
            "secret name",
        ),
        (
            "/apps/vault/secrets/SHORT",
            json!({"value": "abc"}),
            422,
            "at least 4",
        ),
        (
            "/apps/vault/secrets/X",
            json!({"value": "long enough", "scope": 1}),
            422,
            "scope",
        ),
        ("/apps/vault/secrets/X", json!({}), 422, "value"),
        (
            "/apps/nope/secrets/X",
            json!({"value": "long enough"}),
            404,
            "nope",
        ),
    ] {
        let (status, answer) = daemon.call(Method::PUT, path, Some(body)).await;
        assert_eq!(status, code, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(text),
            "{path}: {answer}"
        );
    }

    let d = daemon.deploy_expect("vault", None, "live").await;
    let id = d["id"].as_i64().unwrap();
    assert_eq!(
        daemon.via_proxy("vault.test", "/env/API_KEY").await.1,
        format!("{RUNTIME_VALUE}\n"),
        "the container has the runtime secret"
    );
    // A build secret is a runtime secret too ("build" means: the build also sees it).
    assert_eq!(
        daemon.via_proxy("vault.test", "/env/NPM_TOKEN").await.1,
        format!("{BUILD_VALUE}\n")
    );
    let log = daemon.final_log(id).await;
    assert!(
        log.contains("token is ****"),
        "the build echoed it, masked:\n{log}"
    );
    assert!(log.contains("twice: ********"), "{log}");
    assert!(log.contains("post sees ****"), "{log}");

    let (_, listed) = daemon.call(Method::GET, "/apps/vault/secrets", None).await;
    let spec_text = daemon.text(&format!("/deployments/{id}/spec")).await;
    assert!(spec_text.contains("${API_KEY}"), "{spec_text}");
    for value in [RUNTIME_VALUE, BUILD_VALUE] {
        assert!(!log.contains(value), "log leaks {value}");
        assert!(!listed.to_string().contains(value), "listing leaks {value}");
        assert!(!spec_text.contains(value), "stored spec leaks {value}");
        for file in ["capstan.db", "capstan.db-wal"] {
            let path = daemon.data_dir.path().join(file);
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "{file} holds {value} in clear"
                );
            }
        }
    }
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(daemon.data_dir.path().join("secret.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let (status, _) = daemon
        .call(Method::DELETE, "/apps/vault/secrets/API_KEY", None)
        .await;
    assert_eq!(status, 204);
    let (status, answer) = daemon
        .call(Method::DELETE, "/apps/vault/secrets/API_KEY", None)
        .await;
    assert_eq!(status, 404, "{answer}");
}
