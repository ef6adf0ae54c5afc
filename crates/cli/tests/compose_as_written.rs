//! A compose file as people write them, deployed unchanged: a web service with an
//! upper-case name and a `ports` entry that names its port, variables interpolated from the
//! app's environment and secrets (secrets stay placeholders in the stored spec), an
//! `env_file`, a secret mounted as a file, a volume name with `_` and `.`, a companion
//! serving a directory of the repo mounted read-only, harmless keys noted, `extra_hosts`
//! (but not over a service's name) and an accepted `runtime` applied, a profiled service
//! skipped; and a file with several forbidden keys refused with all of them listed.

mod support;

use capstan_testkit::docker;
use reqwest::Method;
use serde_json::json;
use support::SampleRepo;

const TOKEN: &str = "tok-7781-secret";
const DB_PASSWORD: &str = "pw-5521-secret";

const COMPOSE: &str = r#"services:
  Web_App:
    build: .
    ports: ["9000:9000"]
    environment:
      GREETING: "${GREETING:-hello}"
      DB_URL: "postgres://app:${DB_PASSWORD}@db/app"
      TAG: "${TAG}"
    env_file: [web.env]
    secrets: [api-token]
    volumes: ["app_data.v2:/data"]
    container_name: my-web
    restart: always
    labels: [com.example.owner=shop]
    logging: {driver: json-file}
    healthcheck:
      test: ["CMD", "/app", "task", "0", "compose check ok"]
      interval: 30s
    depends_on: {files: {condition: service_started}}
    extra_hosts: ["files:10.9.9.9", "metrics.internal:10.1.2.3", "host.docker.internal:host-gateway"]
    runtime: runc
  files:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8081", "-h", "/srv"]
    volumes: ["./site:/srv:ro"]
    hostname: files
    networks: [front]
  debug:
    image: busybox:stable
    profiles: [debug]
networks: {front: {}}
volumes: {app_data.v2: {}}
secrets:
  api-token:
    file: ./token.txt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_file_as_people_write_it_deploys_unchanged() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "Dockerfile",
        "FROM scratch\nCOPY app /app\nENV VERSION=v1\nENTRYPOINT [\"/app\"]\n",
        "web",
    );
    repo.commit_file("web.env", "FROM_ENV_FILE=yes\n", "env file");
    repo.commit_file(".env", "TAG=from-dotenv\n", "dotenv");
    repo.commit_file("site/index.html", "repo site v1\n", "site");
    repo.commit_file("compose.yaml", COMPOSE, "compose");
    daemon
        .create_app(json!({
            "name": "written",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["written.test"],
            "env": {"GREETING": "hi-from-app"},
            "drain_secs": 1,
            "stop_grace_secs": 2
        }))
        .await;
    // The file mounts a secret the app does not have yet: the deploy says which.
    let (status, _) = daemon
        .call(
            Method::PUT,
            "/apps/written/secrets/DB_PASSWORD",
            Some(json!({ "value": DB_PASSWORD })),
        )
        .await;
    assert_eq!(status, 200);
    let failed = daemon.deploy_expect("written", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("no secret API_TOKEN"), "{error}");
    let (status, _) = daemon
        .call(
            Method::PUT,
            "/apps/written/secrets/API_TOKEN",
            Some(json!({ "value": TOKEN })),
        )
        .await;
    assert_eq!(status, 200);

    let d = daemon.deploy_expect("written", None, "live").await;
    let id = d["id"].as_i64().unwrap();
    let log = daemon.log(id).await;
    for expected in [
        "port 9000 (from compose.yaml: service Web_App's ports)",
        "service debug has profiles",
        "`container_name` ignored",
        "`logging` ignored",
        "secret api-token is filled from the app's secret API_TOKEN",
        "baking the repository's site into a copy of busybox:stable for service files",
        "health check: the compose service's healthcheck (CMD /app task 0 compose check ok)",
        "health probe: compose check ok",
        "extra_hosts entries naming the app's own services ignored",
        "runs on the engine's runc runtime",
    ] {
        assert!(log.contains(expected), "{expected}: {log}");
    }
    assert!(!log.contains(TOKEN) && !log.contains(DB_PASSWORD), "{log}");
    let env = |name: &str| {
        let daemon = &daemon;
        let path = format!("/env/{name}");
        async move { daemon.via_proxy("written.test", &path).await.1 }
    };
    assert_eq!(env("PORT").await, "9000\n");
    assert_eq!(env("GREETING").await, "hi-from-app\n", "the app's env wins");
    assert_eq!(env("TAG").await, "from-dotenv\n");
    assert_eq!(env("FROM_ENV_FILE").await, "yes\n");
    assert_eq!(
        env("DB_URL").await,
        format!("postgres://app:{DB_PASSWORD}@db/app\n")
    );
    let (status, secret_file) = daemon
        .via_proxy("written.test", "/file/read?path=/run/secrets/api-token")
        .await;
    assert_eq!((status, secret_file.as_str()), (200, TOKEN));
    // extra_hosts: added to the container's own hosts file, except over a service's name.
    let (_, hosts) = daemon
        .via_proxy("written.test", "/file/read?path=/etc/hosts")
        .await;
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("metrics.internal")),
        "{hosts}"
    );
    assert!(hosts.contains("host.docker.internal"), "{hosts}");
    assert!(!hosts.contains("10.9.9.9"), "{hosts}");
    // The stored spec keeps placeholders, never values.
    let spec = daemon.text(&format!("/deployments/{id}/spec")).await;
    assert!(spec.contains("${DB_PASSWORD}"), "{spec}");
    assert!(
        !spec.contains(DB_PASSWORD) && !spec.contains(TOKEN),
        "{spec}"
    );

    // The companion serves the repo's directory, baked in; the profiled one never ran.
    let instance = &daemon.instance;
    let files = format!("{instance}_written_svc_files");
    let served = docker(&["exec", &files, "cat", "/srv/index.html"]);
    assert_eq!(served, "repo site v1\n");
    let all = docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        !all.contains(&format!("{instance}_written_svc_debug")),
        "{all}"
    );
    let web = daemon
        .containers("written")
        .into_iter()
        .find(|c| !c.contains("_svc_"))
        .expect("the web container");
    let label = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.example.owner\"}}",
        &web,
    ]);
    assert_eq!(label.trim(), "shop");
    let runtime = docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", &web]);
    assert_eq!(runtime.trim(), "runc");
    let volumes = docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(
        volumes.contains(&format!("{instance}_written_app_data.v2")),
        "{volumes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_crosses_the_trust_boundary_is_refused_with_every_reason() {
    let daemon = support::start_daemon().await;
    let repo = SampleRepo::new();
    repo.commit_file(
        "compose.yaml",
        "services:\n  web:\n    image: busybox:stable\n    privileged: true\n    pid: host\n    \
         volumes: [\"/var/run/docker.sock:/var/run/docker.sock\", \"/etc:/host-etc\"]\n    \
         devices: [\"/dev/sda:/dev/sda\"]\n    runtime: nvidia\n    environment:\n      KEY: \"${REQUIRED_KEY:?set REQUIRED_KEY}\"\n",
        "hostile",
    );
    daemon
        .create_app(json!({
            "name": "hostile",
            "source": {"git": {"url": repo.url(), "ref": "main"}},
            "domains": ["hostile.test"]
        }))
        .await;
    let failed = daemon.deploy_expect("hostile", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("REQUIRED_KEY"), "{error}");
    // With the variable set, every remaining problem is listed at once.
    let (status, _) = daemon
        .call(
            Method::PATCH,
            "/apps/hostile",
            Some(json!({"env": {"REQUIRED_KEY": "k"}})),
        )
        .await;
    assert_eq!(status, 200);
    let failed = daemon.deploy_expect("hostile", None, "failed").await;
    let error = failed["error"].as_str().unwrap();
    for expected in [
        "problems",
        "`privileged`",
        "`pid`",
        "`devices`",
        "/var/run/docker.sock",
        "asks for the runtime \"nvidia\"",
    ] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
}
