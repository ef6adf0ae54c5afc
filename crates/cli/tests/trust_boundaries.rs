//! Trust boundaries, tried as a hostile user would on the real engine and proxy: a repo's
//! files, an image's labels and an app's containers must not reach what a higher level
//! guards (host paths, the Docker socket, the data dir, another app's domain, volumes or
//! network), and nothing they hold leaks into logs.

mod support;

use capstan_testkit::{docker, GitAnswer, GitServer};
use reqwest::Method;
use serde_json::{json, Value};
use support::{sample_app, Daemon, SampleRepo};

/// The request fails with `status` and an error that mentions every needle.
async fn refused(
    daemon: &Daemon,
    method: Method,
    path: &str,
    body: Value,
    status: u16,
    needles: &[&str],
) {
    let (got, value) = daemon.call(method.clone(), path, Some(body)).await;
    assert_eq!(got, status, "{method} {path}: {value}");
    let message = value["error"].as_str().unwrap_or_default().to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "{method} {path}: {message:?} should mention {needle:?}"
        );
    }
}

/// The IP address of `container` on `network`.
fn ip_on(container: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker(&["inspect", "-f", &format, container])
        .trim()
        .to_string()
}

/// Whether a container attached to `network` gets an HTTP answer from `host:port`
/// (busybox's nc has no `-z`: an HTTP request that gets a status line is the proof).
fn reachable_from(network: &str, host: &str, port: u16) -> bool {
    let request =
        format!("printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | nc -w 3 {host} {port}");
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            network,
            "busybox:stable",
            "sh",
            "-c",
            &request,
        ])
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).contains("HTTP/1.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_repos_cannot_route_mount_or_read_what_they_do_not_own() {
    let daemon = support::start_daemon().await;
    let instance = daemon.instance.clone();

    // The victim: an ordinary app on victim.test.
    let victim_repo = daemon.live_sample("victim", "victim.test", &[]).await;

    // An image whose labels claim the victim's domain with top priority.
    let evil_repo = SampleRepo::new();
    evil_repo.commit_file(
        "Dockerfile",
        "FROM scratch\nCOPY app /app\nENV VERSION=evil\n\
         LABEL traefik.enable=true \
         traefik.http.routers.hijack.rule=\"Host(`victim.test`)\" \
         traefik.http.routers.hijack.entrypoints=web \
         traefik.http.routers.hijack.priority=100000 \
         traefik.http.services.hijack.loadbalancer.server.port=8080 \
         traefik.tcp.routers.sni.rule=\"HostSNI(`*`)\" \
         traefik.tcp.routers.sni.entrypoints=websecure\n\
         ENTRYPOINT [\"/app\"]\n",
        "evil",
    );
    daemon
        .create_app(sample_app("evil", &evil_repo, "main", "evil.test"))
        .await;
    daemon.deploy_expect("evil", None, "live").await;
    for _ in 0..5 {
        assert_eq!(
            daemon.via_proxy("victim.test", "/").await,
            (200, "version: v1\n".into())
        );
    }
    assert_eq!(
        daemon.via_proxy("evil.test", "/").await,
        (200, "version: evil\n".into())
    );
    let rawdata = reqwest::get(format!("{}/api/rawdata", proxy_api(&daemon)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !rawdata.contains("hijack"),
        "no router from image labels: {rawdata}"
    );

    // PATCH is a JSON merge patch: a nested change keeps the object's other fields.
    let (status, body) = daemon
        .call(
            Method::PATCH,
            "/apps/victim",
            Some(json!({"health": {"retries": 5}, "env": {"A": "1"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["health"]["path"], "/health", "{body}");
    assert_eq!(body["health"]["retries"], 5, "{body}");
    let (_, body) = daemon
        .call(
            Method::PATCH,
            "/apps/victim",
            Some(json!({"env": {"A": null}})),
        )
        .await;
    assert_eq!(body["env"], json!({}), "{body}");

    // A domain another app routes is refused, in any case.
    let mut thief = sample_app("thief", &victim_repo, "main", "VICTIM.test");
    refused(
        &daemon,
        Method::POST,
        "/apps",
        thief.take(),
        409,
        &["victim.test", "victim"],
    )
    .await;
    refused(
        &daemon,
        Method::PATCH,
        "/apps/evil",
        json!({"domains": ["victim.test"]}),
        409,
        &["victim"],
    )
    .await;

    // A repo's capstan.toml cannot mount host paths; the live version keeps serving.
    victim_repo.commit_file(
        "capstan.toml",
        "[[volumes]]\nsource = \"/var/run/docker.sock\"\ntarget = \"/var/run/docker.sock\"\n",
        "grab the socket",
    );
    let failed = daemon.deploy_expect("victim", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("capstan.toml") && error.contains("volumes[0].source"),
        "{error}"
    );
    assert_eq!(
        daemon.via_proxy("victim.test", "/").await.1,
        "version: v1\n"
    );

    // Host paths through the API: never the data dir, the socket or / in any spelling.
    let data_dir = daemon.data_dir.path().canonicalize().unwrap();
    let data_dir = data_dir.to_string_lossy();
    for source in [
        "/var/run/docker.sock",
        "/run//docker.sock",
        &format!("{data_dir}/./secret.key"),
        "/./..",
        "//",
        "/var/lib/docker/volumes",
    ] {
        let body = json!({"volumes": [{"source": source, "target": "/host"}]});
        refused(
            &daemon,
            Method::PATCH,
            "/apps/victim",
            body,
            422,
            &["volumes.source"],
        )
        .await;
    }

    // Local sources only under the operator's allow-list, never the data dir.
    let body =
        json!({"name": "etc", "source": {"path": "/etc"}, "build": {"dockerfile": "shadow"}});
    refused(
        &daemon,
        Method::POST,
        "/apps",
        body,
        422,
        &["source.path", "/etc/capstan"],
    )
    .await;
    let body = json!({"name": "usr", "source": {"path": "/usr/share"}});
    refused(&daemon, Method::POST, "/apps", body, 422, &["source_dirs"]).await;
    let body = json!({"name": "data", "source": {"path": data_dir}});
    refused(&daemon, Method::POST, "/apps", body, 422, &["source.path"]).await;

    // A symlink chain out of the tree fails the deploy before anything is read through it.
    let links = SampleRepo::new();
    links.commit_version("v1", &[]);
    std::os::unix::fs::symlink(".", links.path().join("top")).unwrap();
    std::os::unix::fs::symlink(
        "top/top/../../../../../../../../etc/passwd",
        links.path().join(".dockerignore"),
    )
    .unwrap();
    links.commit_file("README", "links\n", "links");
    daemon
        .create_app(sample_app("links", &links, "main", "links.test"))
        .await;
    let d = daemon.deploy_expect("links", None, "failed").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(".dockerignore") && log.contains("outside the source tree"),
        "{log}"
    );
    assert!(
        !log.contains("root:x:0"),
        "no host file content in the log:\n{log}"
    );

    // A repo cannot build from, copy out of, or run another app's image.
    let victim_image = daemon.call(Method::GET, "/apps/victim", None).await.1["live"]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let thief = SampleRepo::new();
    thief.commit_file(
        "Dockerfile",
        &format!("FROM busybox:stable\nCOPY --from={victim_image} /app /stolen\n"),
        "copy from the victim",
    );
    daemon
        .create_app(sample_app("thief", &thief, "main", "thief.test"))
        .await;
    let failed = daemon.deploy_expect("thief", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("Dockerfile line 2") && error.contains("another app's image"),
        "{error}"
    );
    thief.commit_file(
        "compose.yaml",
        &format!("services:\n  web:\n    image: {victim_image}\n"),
        "run the victim's image",
    );
    let (status, _) = daemon
        .call(
            Method::PATCH,
            "/apps/thief",
            Some(json!({"build": {"type": "compose"}})),
        )
        .await;
    assert_eq!(status, 200);
    let failed = daemon.deploy_expect("thief", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("another app's image"), "{error}");

    // An app called `proxy` with a volume `data` gets its own volume, not the proxy's.
    let proxy_app = SampleRepo::new();
    proxy_app.commit_version("p1", &[]);
    let mut settings = sample_app("proxy", &proxy_app, "main", "proxy-app.test");
    settings["volumes"] = json!([{"source": "data", "target": "/data"}]);
    daemon.create_app(settings).await;
    let d = daemon.deploy_expect("proxy", None, "live").await;
    let container = format!("{instance}_proxy_d{}", d["id"]);
    let mounts = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{end}}",
        &container,
    ]);
    assert!(
        mounts.contains(&format!("{instance}_proxy_data")),
        "{mounts}"
    );
    assert!(
        !mounts.contains(&format!("{instance}-proxy-data")),
        "{mounts}"
    );

    // Apps are on networks of their own: from the victim's network, neither Traefik's API
    // nor the evil app's containers can be reached; the victim's own container can.
    let victim_net = format!("{instance}_victim");
    let proxy = format!("{instance}-proxy");
    let proxy_ip = ip_on(&proxy, &victim_net);
    assert!(!proxy_ip.is_empty(), "the proxy is on the app's network");
    assert!(
        reachable_from(&victim_net, &proxy_ip, 80),
        "the proxy's web entrypoint answers"
    );
    assert!(
        !reachable_from(&victim_net, &proxy_ip, 8080),
        "Traefik's API is not reachable from an app network"
    );
    let victim_live = daemon.call(Method::GET, "/apps/victim", None).await.1;
    let victim_container = format!("{instance}_victim_d{}", victim_live["live"]["id"]);
    assert!(reachable_from(&victim_net, &victim_container, 8080));
    let evil_live = daemon.call(Method::GET, "/apps/evil", None).await.1;
    let evil_container = format!("{instance}_evil_d{}", evil_live["live"]["id"]);
    let evil_ip = ip_on(&evil_container, &format!("{instance}_evil"));
    assert!(
        !reachable_from(&victim_net, &evil_ip, 8080),
        "another app's container is out of reach"
    );
    assert!(!reachable_from(&victim_net, &evil_container, 8080));
}

/// Traefik's API address as the daemon publishes it (loopback, engine-picked port).
fn proxy_api(daemon: &Daemon) -> String {
    let port = docker(&["port", &format!("{}-proxy", daemon.instance), "8080/tcp"]);
    let port = port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .to_string();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_credentials_never_reach_the_log() {
    let daemon = support::start_daemon().await;

    // A build step prints a build secret in two chunks, a second apart.
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM busybox:stable\nARG TOKEN\n\
         RUN printf 'token: %s' \"${TOKEN%????????}\"; sleep 1; printf '%s\\n' \"${TOKEN#???????????}\"\n\
         RUN printf 'colour: %s\\033[1;31m%s\\033[0m\\n' \"${TOKEN%????????}\" \"${TOKEN#???????????}\"; \
             printf %s \"$TOKEN\" | base64; printf 'x%s' \"$TOKEN\" | base64; \
             printf 'xy%s\\n' \"$TOKEN\" | base64 | tr '+/' '-_'; \
             printf %s \"$TOKEN\" | od -An -tx1 | tr -d ' \\n'; echo; \
             printf %s \"$TOKEN\" | od -An -tx1 | tr -d ' \\n' | tr a-f A-F; echo\n\
         COPY app /app\nENV VERSION=v1\nENTRYPOINT [\"/app\"]\n",
        "v1",
    );
    daemon
        .create_app(sample_app("chunks", &repo, "main", "chunks.test"))
        .await;
    let secret = "abcdefghSECRETVALUE";
    let (status, body) = daemon
        .call(
            Method::PUT,
            "/apps/chunks/secrets/TOKEN",
            Some(json!({"value": secret, "build": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warning"].as_str().unwrap().contains("docker history"),
        "{body}"
    );
    let d = daemon.deploy_expect("chunks", None, "live").await;
    let log = daemon.final_log(d["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("token: ****"),
        "the line is masked whole:\n{log}"
    );
    assert!(
        !log.contains("abcdefghSEC") && !log.contains("RETVALUE"),
        "{log}"
    );
    assert!(
        log.contains("build secret TOKEN is a BuildKit secret mount"),
        "how it reaches the build is said:\n{log}"
    );
    // Split by colour codes, in base64 (at three offsets, standard and URL-safe) and in
    // hex (both cases): masked all the same.
    assert!(log.contains("colour: ****"), "{log}");
    for encoded in [
        "ZGVmZ2hTRUNSRVRW",
        "RlZmdoU0VDUkVU",
        "ZWZnaFNFQ1JFVFZB",
        "6465666768534543",
        "52455456414c",
        "52455456414C",
    ] {
        assert!(!log.contains(encoded), "{encoded}:\n{log}");
    }

    // Credentials in a git URL are redacted from the log and the error. The server
    // answers when the apps are created, and refuses when they are deployed.
    let server = GitServer::loopback();
    let published = SampleRepo::new();
    published.commit_version("v1", &[]);
    server.publish(published.path(), "x");
    let port = server.port();
    let app = json!({
        "name": "creds",
        "source": {"git": {"url": format!("http://capuser:s3cretpw@127.0.0.1:{port}/x.git")}},
    });
    daemon.create_app(app).await;
    let app = json!({
        "name": "qcreds",
        "source": {"git": {"url": format!("http://127.0.0.1:{port}/x.git?private_token=glpat-Qs3cret&X-Amz-Signature=feedface")}},
    });
    daemon.create_app(app).await;
    server.answer(GitAnswer::Refuse);
    let d = daemon.deploy_expect("creds", None, "failed").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    assert!(
        !log.contains("s3cretpw") && !d.to_string().contains("s3cretpw"),
        "{log}\n{d}"
    );
    let shown_url = format!("http://****@127.0.0.1:{port}/x.git");
    assert!(log.contains(&shown_url), "{log}");
    let shown = daemon.call(Method::GET, "/apps/creds", None).await.1;
    assert_eq!(shown["source"]["git"]["url"], shown_url, "{shown}");

    // So are credentials in its query string (GitLab's `private_token`, a presigned URL).
    let redacted = format!("http://127.0.0.1:{port}/x.git?private_token=****&X-Amz-Signature=****");
    let shown = daemon.call(Method::GET, "/apps/qcreds", None).await.1;
    assert_eq!(shown["source"]["git"]["url"], redacted, "{shown}");
    let d = daemon.deploy_expect("qcreds", None, "failed").await;
    let log = daemon.log(d["id"].as_i64().unwrap()).await;
    for leaked in ["glpat-Qs3cret", "feedface"] {
        assert!(
            !log.contains(leaked) && !d.to_string().contains(leaked),
            "{log}\n{d}"
        );
    }
    assert!(log.contains(&redacted), "{log}");
    assert!(
        d["error"].as_str().unwrap().contains("private_token=****"),
        "git's own message, redacted: {d}"
    );
}
