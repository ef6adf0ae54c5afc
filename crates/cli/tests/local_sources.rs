//! Local sources stay the admin's and are checked before anything of them is read, tried
//! against a real daemon, engine and proxy: a git URL that names this host (a path,
//! `file://`, a `.git` directory, a loopback address) needs the admin scope and a path
//! inside `source_dirs`; submodules are held to the same rule before git fetches them; a
//! local directory swapped for a symlink after it was allowed is refused before it is
//! read, and no image of it is left on the engine.

mod support;

use capstan_testkit::{docker, git, GitServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::{sample_app, Daemon, SampleRepo};

/// A directory outside the daemon's `source_dirs` (the test harness allows the temporary
/// directory), for what an app must never read.
fn outside_source_dirs() -> tempfile::TempDir {
    let tmp = std::env::temp_dir().canonicalize().unwrap();
    let base = [
        PathBuf::from("/var/tmp"),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    ]
    .into_iter()
    .find(|dir| {
        dir.canonicalize()
            .is_ok_and(|real| !real.starts_with(&tmp) && !tmp.starts_with(&real))
    })
    .expect("a writable directory outside the temporary directory");
    tempfile::tempdir_in(base).unwrap()
}

/// A git repo at `dir` holding `file` with `content`; returns its commit.
fn repo_with(dir: &Path, file: &str, content: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(file), content).unwrap();
    git(dir, &["add", "-A"]);
    commit(dir, "content");
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

fn commit(dir: &Path, message: &str) {
    git(
        dir,
        &[
            "-c",
            "user.email=t@example.test",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

/// Commits, in the sample `repo`, a Dockerfile for `version` that copies the submodule
/// `vendor` (at `commit`, fetched from `url`) into the image.
fn commit_with_submodule(repo: &Path, version: &str, url: &str, commit_id: &str) {
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY app /app\nCOPY vendor /vendor\nENV VERSION={version}\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join(".gitmodules"),
        format!("[submodule \"vendor\"]\n\tpath = vendor\n\turl = {url}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("vendor")).unwrap();
    git(
        repo,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{commit_id},vendor"),
        ],
    );
    git(repo, &["add", "Dockerfile", ".gitmodules"]);
    commit(repo, version);
}

async fn token(daemon: &Daemon, name: &str, scopes: &[&str]) -> String {
    let (status, body) = daemon
        .call(
            Method::POST,
            "/tokens",
            Some(json!({"name": name, "scopes": scopes})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// The call with `token` is refused with `status`, naming every needle.
async fn refused_for(
    daemon: &Daemon,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
    status: u16,
    needles: &[&str],
) {
    let (got, answer) = daemon
        .call_as(Some(token), method.clone(), path, Some(body.clone()))
        .await;
    assert_eq!(got, status, "{method} {path} {body}: {answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(
            message.contains(needle),
            "{method} {path} {body}: {message:?} should name {needle:?}"
        );
    }
}

/// Image IDs this daemon's engine holds for deployment `id`.
fn images_of_deployment(daemon: &Daemon, id: &Value) -> String {
    docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=capstan.instance={}", daemon.instance),
        "--filter",
        &format!("label=capstan.deployment={id}"),
    ])
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sources_are_the_admins_and_are_checked_before_they_are_read() {
    // A host whose git fetches file:// submodules (protocol.file.allow=always, as every git
    // before 2.38.1 did): the daemon must not rely on git's defaults to refuse them.
    std::env::set_var("GIT_CONFIG_COUNT", "1");
    std::env::set_var("GIT_CONFIG_KEY_0", "protocol.file.allow");
    std::env::set_var("GIT_CONFIG_VALUE_0", "always");
    let daemon = support::start_daemon().await;
    let outside = outside_source_dirs();
    git_urls_naming_this_host_are_the_admins(&daemon, outside.path()).await;
    submodules_are_checked_before_git_fetches_them(&daemon, outside.path()).await;
    a_path_source_is_checked_and_copied_before_it_is_read(&daemon, outside.path()).await;
    drop(daemon);
    the_operator_may_allow_private_submodules().await;
}

async fn git_urls_naming_this_host_are_the_admins(daemon: &Daemon, outside: &Path) {
    let writer = token(daemon, "ci writer", &["write", "deploy"]).await;
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    let path = repo.url();
    for url in [
        path.clone(),
        format!("file://{path}"),
        format!("file://{}", path.replace('/', "%2f")),
        format!("{path}/.git"),
        "http://127.0.0.1:9/x.git".to_string(),
        "https://[::1]/x.git".to_string(),
        "ssh://git@localhost/x.git".to_string(),
        "git@127.1:x.git".to_string(),
    ] {
        let body = json!({"name": "grab", "source": {"git": {"url": url}}});
        refused_for(
            daemon,
            &writer,
            Method::POST,
            "/apps",
            body,
            403,
            &["source.git.url"],
        )
        .await;
    }
    // A remote repo is the writer's to use, but not to turn into a host repo later.
    let server = GitServer::outward();
    let remote =
        json!({"name": "remote", "source": {"git": {"url": server.publish(repo.path(), "a")}}});
    let (status, answer) = daemon
        .call_as(Some(&writer), Method::POST, "/apps", Some(remote))
        .await;
    assert_eq!(status, 201, "{answer}");
    let patch = json!({"source": {"git": {"url": format!("{path}/.git")}}});
    refused_for(
        daemon,
        &writer,
        Method::PATCH,
        "/apps/remote",
        patch,
        403,
        &["source.git.url", "admin"],
    )
    .await;

    // The admin may, but only inside source_dirs.
    let hidden = outside.join("hidden");
    repo_with(&hidden, "README", "host repo\n");
    let body = json!({"name": "hidden", "source": {"git": {"url": format!("file://{}", hidden.display())}}});
    refused_for(
        daemon,
        &daemon.token,
        Method::POST,
        "/apps",
        body,
        422,
        &["source.git.url", "source_dirs"],
    )
    .await;
    let mut app = sample_app("hostrepo", &repo, "main", "hostrepo.test");
    app["source"]["git"]["url"] = json!(format!("file://{path}"));
    daemon.create_app(app).await;

    // The writer may change the admin's app's other settings and deploy it, not its source.
    let (status, answer) = daemon
        .call_as(
            Some(&writer),
            Method::PATCH,
            "/apps/hostrepo",
            Some(json!({"env": {"MESSAGE": "from the writer"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let patch = json!({"source": {"git": {"url": format!("{path}/.git")}}});
    refused_for(
        daemon,
        &writer,
        Method::PATCH,
        "/apps/hostrepo",
        patch,
        403,
        &["source.git.url"],
    )
    .await;
    let (status, answer) = daemon
        .call_as(
            Some(&writer),
            Method::POST,
            "/apps/hostrepo/deployments",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let done = daemon.wait(answer["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "live", "{done}");
    assert_eq!(
        daemon.via_proxy("hostrepo.test", "/").await.1,
        "version: v1\nfrom the writer\n"
    );
}

async fn submodules_are_checked_before_git_fetches_them(daemon: &Daemon, outside: &Path) {
    // A repo of the host outside source_dirs, worth stealing.
    let secret = outside.join("secret");
    let secret_commit = repo_with(&secret, "marker.txt", "HOST-SECRET-7d1f\n");
    let repo = daemon.live_sample("subs", "subs.test", &[]).await;
    let url = format!("file://{}", secret.display());
    commit_with_submodule(repo.path(), "v2", &url, &secret_commit);
    let failed = daemon.deploy_expect("subs", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("submodule \"vendor\"") && error.contains("source_dirs"),
        "{error}"
    );
    assert_eq!(daemon.via_proxy("subs.test", "/").await.1, "version: v1\n");
    let log = daemon.log(failed["id"].as_i64().unwrap()).await;
    assert!(!log.contains("HOST-SECRET"), "{log}");

    // Inside source_dirs, for an app whose own source is the admin's local repo: fetched.
    let shared = tempfile::tempdir().unwrap();
    let shared_commit = repo_with(shared.path(), "marker.txt", "shared library\n");
    let url = format!("file://{}", shared.path().display());
    commit_with_submodule(repo.path(), "v3", &url, &shared_commit);
    daemon.deploy_expect("subs", None, "live").await;
    assert_eq!(
        daemon
            .via_proxy("subs.test", "/file/read?path=/vendor/marker.txt")
            .await,
        (200, "shared library\n".into())
    );

    // A submodule on a loopback address is refused by default, before git asks it.
    let server = GitServer::loopback();
    let lib_url = server.publish(shared.path(), "lib");
    commit_with_submodule(repo.path(), "v4", &lib_url, &shared_commit);
    let failed = daemon.deploy_expect("subs", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("submodule \"vendor\"")
            && error.contains("127.0.0.1")
            && error.contains("allow_private_submodules"),
        "{error}"
    );
    assert_eq!(server.hits(), 0, "the loopback server was never asked");
    assert_eq!(daemon.via_proxy("subs.test", "/").await.1, "version: v3\n");

    // An app whose own source is not a local repo gets no local submodule, even inside
    // source_dirs (the admin may fetch from a loopback server; its submodules may not).
    let upstream = SampleRepo::new();
    upstream.commit_version("v1", &[]);
    commit_with_submodule(upstream.path(), "u2", &url, &shared_commit);
    let mut app = sample_app("upstream", &upstream, "main", "upstream.test");
    app["source"]["git"]["url"] = json!(server.publish(upstream.path(), "upstream"));
    daemon.create_app(app).await;
    let failed = daemon.deploy_expect("upstream", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("submodule \"vendor\"") && error.contains("app's own source"),
        "{error}"
    );
}

async fn a_path_source_is_checked_and_copied_before_it_is_read(daemon: &Daemon, outside: &Path) {
    // What the app must never read: a directory outside source_dirs that would build.
    std::fs::create_dir_all(outside.join("loot")).unwrap();
    let loot = outside.join("loot");
    std::fs::write(loot.join("marker"), "OUTSIDE-MARKER-5e2a\n").unwrap();
    let sample = capstan_testkit::assets_dir().join("capstan-sample");
    let dockerfile = |version: &str| {
        format!("FROM scratch\nCOPY . /src\nCOPY app /app\nENV VERSION={version}\nEXPOSE 8080\nENTRYPOINT [\"/app\"]\n")
    };
    std::fs::copy(&sample, loot.join("app")).unwrap();
    std::fs::write(loot.join("Dockerfile"), dockerfile("stolen")).unwrap();

    // An allowed directory, deployed by the admin: live.
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("site");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&sample, dir.join("app")).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile("p1")).unwrap();
    std::fs::create_dir(dir.join("node_modules")).unwrap();
    std::fs::write(dir.join("node_modules/big.js"), "x".repeat(64 * 1024)).unwrap();
    std::fs::write(dir.join(".dockerignore"), "node_modules\n").unwrap();
    let app = json!({
        "name": "site",
        "source": {"path": dir.to_string_lossy()},
        "port": 8080,
        "domains": ["site.test"],
        "health": {"path": "/health", "interval_secs": 1, "timeout_secs": 2, "retries": 3, "deadline_secs": 30},
        "drain_secs": 1,
        "stop_grace_secs": 5
    });
    daemon.create_app(app).await;
    let live = daemon.deploy_expect("site", None, "live").await;
    let log = daemon.log(live["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("leaving out node_modules as .dockerignore says"),
        "{log}"
    );

    // The directory becomes a symlink to the host directory: refused before it is read,
    // no image of it stays on the engine, v1 keeps serving.
    std::fs::rename(&dir, parent.path().join("site.real")).unwrap();
    std::os::unix::fs::symlink(&loot, &dir).unwrap();
    let failed = daemon.deploy_expect("site", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("source.path") && error.contains("source_dirs"),
        "{error}"
    );
    assert_eq!(
        images_of_deployment(daemon, &failed["id"]),
        "",
        "no image of a refused source"
    );
    let log = daemon.log(failed["id"].as_i64().unwrap()).await;
    assert!(
        !log.contains("build plan") && !log.contains("OUTSIDE-MARKER"),
        "{log}"
    );
    assert_eq!(daemon.via_proxy("site.test", "/").await.1, "version: p1\n");

    // A link inside the directory that leads out of it: refused, nothing read through it.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(parent.path().join("site.real"), &dir).unwrap();
    std::os::unix::fs::symlink(loot.join("marker"), dir.join("leak")).unwrap();
    let failed = daemon.deploy_expect("site", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("leak") && error.contains("outside the source"),
        "{error}"
    );
    assert_eq!(images_of_deployment(daemon, &failed["id"]), "");
    assert_eq!(daemon.via_proxy("site.test", "/").await.1, "version: p1\n");
}

async fn the_operator_may_allow_private_submodules() {
    let daemon = support::start_daemon_with(&["--allow-private-submodules", "true"]).await;
    let lib = tempfile::tempdir().unwrap();
    let lib_commit = repo_with(lib.path(), "marker.txt", "from the loopback server\n");
    let server = GitServer::loopback();
    let url = server.publish(lib.path(), "lib");
    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    commit_with_submodule(repo.path(), "v2", &url, &lib_commit);
    daemon
        .create_app(sample_app("private", &repo, "main", "private.test"))
        .await;
    daemon.deploy_expect("private", None, "live").await;
    assert_eq!(
        daemon
            .via_proxy("private.test", "/file/read?path=/vendor/marker.txt")
            .await,
        (200, "from the loopback server\n".into())
    );
    assert!(server.hits() > 0, "fetched from the loopback server");
}
