//! Builds through the engine's BuildKit, deployed for real: a Dockerfile written for
//! BuildKit (heredoc, cache mount that persists across builds, `$BUILDPLATFORM`, a failing
//! test stage BuildKit never builds), build secrets as secret mounts (mounted by id and read
//! into `ARG NAME`) that never reach the image's history and are masked in the log, and a
//! failing step whose own output and line reach the deployment.

mod support;

use serde_json::json;
use support::SampleRepo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buildkit_dockerfile_builds_with_buildkit_and_secrets_stay_out_of_the_image() {
    let daemon = support::start_daemon().await;
    let (_, server) = daemon.call(reqwest::Method::GET, "/server", None).await;
    assert_eq!(server["engine"]["builder"], "buildkit", "{server}");
    let repo = SampleRepo::new();
    repo.commit_file("version.txt", "1", "version 1");
    // BuildKit's layer cache is the engine's, shared by every run on it: each stage starts
    // with this run's instance so that every step runs and prints here.
    let run = &daemon.instance;
    repo.commit_file(
        "Dockerfile",
        &format!(
            "# syntax=docker/dockerfile:1.4\n\
         FROM --platform=$BUILDPLATFORM busybox:stable AS build\n\
         ENV TEST_RUN={run}\n\
         ARG TARGETARCH\n\
         COPY version.txt /version.txt\n\
         RUN --mount=type=cache,target=/var/cache/build <<EOF\n\
         set -e\n\
         mkdir -p /out\n\
         n=$(cat /var/cache/build/n 2>/dev/null || echo 0)\n\
         n=$((n + 1))\n\
         echo $n > /var/cache/build/n\n\
         echo $n > /out/builds.txt\n\
         echo \"built for $TARGETARCH\" > /out/arch.txt\n\
         EOF\n\
         \n\
         FROM build AS test\n\
         RUN echo \"the test stage fails\" && false\n\
         \n\
         FROM busybox:stable\n\
         ENV TEST_RUN={run}\n\
         ARG NPM_TOKEN\n\
         RUN --mount=type=secret,id=NPM_TOKEN wc -c < /run/secrets/NPM_TOKEN > /mounted-len\n\
         RUN printf %s \"$NPM_TOKEN\" | wc -c > /arg-len && echo \"token is $NPM_TOKEN\"\n\
         COPY app /app\n\
         COPY --from=build /out/ /\n\
         ENV VERSION=buildkit\n\
         ENTRYPOINT [\"/app\"]\n"
        ),
        "buildkit Dockerfile",
    );
    daemon
        .create_app(json!({
            "name": "bkit",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["bkit.test"],
            "drain_secs": 1,
            "stop_grace_secs": 2
        }))
        .await;
    let secret = "npm_Sup3rSecretValue";
    let (status, body) = daemon
        .call(
            reqwest::Method::PUT,
            "/apps/bkit/secrets/NPM_TOKEN",
            Some(json!({"value": secret, "build": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warning"]
            .as_str()
            .unwrap()
            .contains("BuildKit secret mount"),
        "{body}"
    );
    let d = daemon.deploy_expect("bkit", None, "live").await;
    let log = daemon.final_log(d["id"].as_i64().unwrap()).await;
    for expected in [
        "the `# syntax=` line is not used",
        "heredoc runs as a /bin/sh -c script",
        "build secret NPM_TOKEN is a BuildKit secret mount",
        // BuildKit's own progress, step by step.
        "RUN --mount=type=secret,id=NPM_TOKEN : build-secrets=",
        "cache mount(s) kept apart from other apps' builds",
        "wc -c < /run/secrets/NPM_TOKEN > /mounted-len",
        "token is ****",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
    assert!(
        !log.contains("the test stage fails"),
        "BuildKit skips it: {log}"
    );
    assert!(!log.contains("passed as a build argument"), "{log}");
    assert!(!log.contains(secret), "{log}");
    let read = |path: &'static str| daemon.via_proxy("bkit.test", path);
    let arch = capstan_testkit::docker_arch();
    assert_eq!(
        read("/file/read?path=/arch.txt").await,
        (200, format!("built for {arch}\n"))
    );
    let length = format!("{}\n", secret.len());
    assert_eq!(
        read("/file/read?path=/mounted-len").await,
        (200, length.clone())
    );
    assert_eq!(read("/file/read?path=/arg-len").await, (200, length));
    assert_eq!(
        read("/file/read?path=/builds.txt").await,
        (200, "1\n".into())
    );
    // Neither the image's history nor its config holds the secret.
    let image = d["image"].as_str().unwrap().to_string();
    let history = support::docker(&["history", "--no-trunc", &image]);
    assert!(history.contains("/run/secrets/NPM_TOKEN"), "{history}");
    assert!(!history.contains(secret), "{history}");
    assert!(!support::docker(&["image", "inspect", &image]).contains(secret));

    // A change before the cached step reruns it; the cache mount keeps what the last
    // build left there.
    repo.commit_file("version.txt", "2", "version 2");
    let again = daemon.deploy_expect("bkit", None, "live").await;
    let log = daemon.final_log(again["id"].as_i64().unwrap()).await;
    assert_eq!(
        read("/file/read?path=/builds.txt").await,
        (200, "2\n".into()),
        "{log}"
    );

    // A failing step: its own output and the step reach the deployment; v2 keeps serving.
    repo.commit_file(
        "Dockerfile",
        &format!("FROM busybox:stable\nENV TEST_RUN={run}\nRUN echo 'fetching dependencies: registry unreachable' >&2 && exit 3\n"),
        "broken",
    );
    let failed = daemon.deploy_expect("bkit", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("exit code: 3"), "{error}");
    let log = daemon.final_log(failed["id"].as_i64().unwrap()).await;
    assert!(
        log.contains("fetching dependencies: registry unreachable"),
        "{log}"
    );
    assert_eq!(
        daemon.via_proxy("bkit.test", "/").await,
        (200, "version: buildkit\n".to_string())
    );
}

/// One app's build cannot read or write another app's BuildKit cache mount, however the
/// mount is spelled: key case, aliases, quoted flag words and CSV fields, escapes, no id
/// (the target is the id), tabs, a blank line inside a continuation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_cache_mounts_are_out_of_reach_of_another_apps_build_in_every_spelling() {
    let daemon = support::start_daemon().await;
    let run = &daemon.instance;
    // The victim keeps a marker in two cache mounts, one with an id and one without, and
    // says whether it finds someone else's file there. Its last step fails: only the
    // build matters, and the deployment ends there.
    let victim = SampleRepo::new();
    let victim_dockerfile = format!(
        "FROM busybox:stable\nENV TEST_RUN={run}\nCOPY version.txt /version.txt\n\
         RUN --mount=type=cache,id=shared,target=/c --mount=type=cache,target=/var/cache/v \
         sh -c 'for d in /c /var/cache/v; do if [ -e $d/poison ]; then echo POISONED-$d; fi; \
         if [ -e $d/m ]; then echo victim-kept-$d; fi; echo victim-marker > $d/m; done'\n\
         RUN exit 7\n"
    );
    victim.commit_file("version.txt", "1", "v1");
    victim.commit_file("Dockerfile", &victim_dockerfile, "victim");
    daemon
        .create_app(
            json!({"name": "cachea", "source": {"git": {"url": victim.url(), "ref": "main"}}}),
        )
        .await;
    daemon.deploy_expect("cachea", None, "failed").await;

    // The attacker names the victim's cache by the id it really has on the engine.
    let shared = format!("{run}/cachea/shared");
    let unnamed = format!("{run}/cachea/var/cache/v");
    let spellings = [
        (format!("--mount=TYPE=CACHE,ID={shared},TARGET=/c"), "/c"),
        (format!("--mount=Type=Cache,Id={shared},Dst=/c"), "/c"),
        (
            format!("--mount=type=cache,destination=/c,id={shared}"),
            "/c",
        ),
        (
            format!("--mount=\"type=cache,id={shared},target=/c\""),
            "/c",
        ),
        (
            format!("--mount='type=cache,\"id={shared}\",target=/c'"),
            "/c",
        ),
        (
            format!("--mount=ty\\pe=cache,i\\d={shared},target=/c"),
            "/c",
        ),
        (format!("--mount=TYPE=CACHE,ID={unnamed},target=/c"), "/c"),
        // No id, a relative target: BuildKit's id would be the victim's.
        (
            format!("--mount=type=cache,target={shared}"),
            shared.as_str(),
        ),
    ];
    let probe = "sh -c 'if [ -e $1/m ]; then echo LEAK-$0; else echo none-$0; fi; \
                 echo poison > $1/poison'";
    let mut dockerfile = format!("FROM busybox:stable\nENV TEST_RUN={run}\n");
    for (n, (mount, dir)) in spellings.iter().enumerate() {
        dockerfile.push_str(&format!("RUN {mount} {probe} {n} {dir}\n"));
    }
    let n = spellings.len();
    dockerfile.push_str(&format!(
        "RUN\t--mount=type=cache,id={shared},target=/c\t{probe} {n} /c\n"
    ));
    dockerfile.push_str(&format!(
        "RUN \\\n\n  --mount=type=cache,id={shared},target=/c \\\n  {probe} {} /c\n",
        n + 1
    ));
    dockerfile.push_str("RUN exit 7\n");
    let attacker = SampleRepo::new();
    attacker.commit_file("Dockerfile", &dockerfile, "attacker");
    daemon
        .create_app(
            json!({"name": "cacheb", "source": {"git": {"url": attacker.url(), "ref": "main"}}}),
        )
        .await;
    let d = daemon.deploy_expect("cacheb", None, "failed").await;
    let log = daemon.final_log(d["id"].as_i64().unwrap()).await;
    // (The step lines echo the command, `LEAK-$0`: only the output names a step.)
    for step in 0..n + 2 {
        assert!(
            !log.contains(&format!("LEAK-{step}")),
            "step {step} read the victim's cache:\n{log}"
        );
        assert!(log.contains(&format!("none-{step}")), "step {step}:\n{log}");
    }

    // The victim's next build finds its own marker, and nothing the attacker wrote.
    victim.commit_file("version.txt", "2", "v2");
    let d = daemon.deploy_expect("cachea", None, "failed").await;
    let log = daemon.final_log(d["id"].as_i64().unwrap()).await;
    assert!(log.contains("victim-kept-/c"), "{log}");
    assert!(log.contains("victim-kept-/var/cache/v"), "{log}");
    assert!(
        !log.contains("POISONED-/"),
        "wrote into the victim's cache:\n{log}"
    );
}
