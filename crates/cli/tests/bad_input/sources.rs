//! Sources asked before anything is stored: each bad git URL, ref, directory or image
//! reference is a 422 naming its field, within the time limit, and creates nothing.

use crate::support::{Daemon, SampleRepo};
use capstan_testkit::GitServer;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The names of the daemon's apps.
async fn app_names(daemon: &Daemon) -> Vec<String> {
    let (status, apps) = daemon.call(Method::GET, "/apps", None).await;
    assert_eq!(status, 200, "{apps}");
    apps.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

/// `body` is refused with a 422 naming `field` and saying `needle`, and no app is created.
async fn source_refused(daemon: &Daemon, body: Value, field: &str, needle: &str) -> Duration {
    let before = app_names(daemon).await;
    let started = Instant::now();
    let (status, answer) = daemon.call(Method::POST, "/apps", Some(body.clone())).await;
    let took = started.elapsed();
    assert_eq!(status, 422, "{body} → {answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{field}:")) && error.contains(needle),
        "{body} → {error:?} should name {field} and say {needle:?}"
    );
    assert_eq!(app_names(daemon).await, before, "{body} created nothing");
    took
}

pub async fn sources_are_asked_before_anything_is_created(daemon: &Daemon, repo: &SampleRepo) {
    let git = |url: &str, reference: &str| json!({"name": "checked", "source": {"git": {"url": url, "ref": reference}}});
    // A host no resolver knows.
    let unknown = git("https://git.nonexistent.invalid/app.git", "main");
    source_refused(daemon, unknown, "source.git.url", "Could not resolve host").await;
    // A web server with no repository there, and a directory that is not one.
    let server = GitServer::loopback();
    let not_a_repo = git(&server.url("nothing"), "main");
    source_refused(daemon, not_a_repo, "source.git.url", "not found").await;
    let plain = tempfile::tempdir().unwrap();
    let plain = git(&plain.path().to_string_lossy(), "main");
    source_refused(
        daemon,
        plain,
        "source.git.url",
        "not appear to be a git repository",
    )
    .await;
    // A repository without that ref.
    let missing = git(&repo.url(), "no-such-branch");
    source_refused(
        daemon,
        missing,
        "source.git.ref",
        "\"no-such-branch\" does not exist",
    )
    .await;
    // A remote that accepts and never answers: refused after the limit, not hung.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let hanging = git(&format!("http://127.0.0.1:{port}/app.git"), "main");
    let took = source_refused(daemon, hanging, "source.git.url", "no progress for 3s").await;
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    // A local directory outside the operator's source_dirs, or not there at all.
    let outside = json!({"name": "checked", "source": {"path": "/usr/share"}});
    source_refused(daemon, outside, "source.path", "source_dirs").await;
    let gone = std::env::temp_dir().join("capstan-no-such-dir");
    let gone = json!({"name": "checked", "source": {"path": gone}});
    source_refused(daemon, gone, "source.path", "does not exist").await;
    // An image reference the engine cannot read; one it does not hold is pulled later.
    let unreadable = json!({"name": "checked", "source": {"image": "Upper/Case:1"}});
    source_refused(
        daemon,
        unreadable,
        "source.image",
        "invalid reference format",
    )
    .await;
    let absent = json!({"name": "pulled", "source": {"image": "capstan-never-built:1"}});
    let (status, body) = daemon.call(Method::POST, "/apps", Some(absent)).await;
    assert_eq!(status, 201, "{body}");

    // A URL and ref that answer: created; a tag too. Changing the source is asked again.
    daemon.create_app(git(&repo.url(), "main")).await;
    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/checked",
            Some(json!({"source": {"git": {"url": repo.url(), "ref": "gone"}}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("source.git.ref:"),
        "{body}"
    );
    let (_, shown) = daemon.call(Method::GET, "/apps/checked", None).await;
    assert_eq!(shown["source"]["git"]["ref"], "main", "unchanged: {shown}");
    for name in ["checked", "pulled"] {
        let (status, _) = daemon
            .call(Method::DELETE, &format!("/apps/{name}"), None)
            .await;
        assert_eq!(status, 204);
    }
}
